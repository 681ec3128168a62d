package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// SessionTTL is how long a console session lasts from its login, whatever
// is done with it: an operator signs in again at least once a working day.
const SessionTTL = 8 * time.Hour

// SessionIdle ends a session sooner: one that opened no page for this long
// (a laptop left signed in) needs a new sign-in.
const SessionIdle = 30 * time.Minute

// errNoSession: the cookie names no live session (unknown, expired or
// logged out).
var errNoSession = errors.New("console: no such session")

// session is a signed-in operator.
type session struct {
	// CSRF is the synchronizer token every state-changing form of this
	// session carries.
	CSRF      string
	KeyID     string
	ExpiresAt time.Time
}

// sessions keeps sessions in PostgreSQL (admin.console_sessions), by the
// hash of their id: random ids held server-side can be ended (logout, a
// key's removal) on every replica at once, which a signed cookie cannot,
// and admin has PostgreSQL where the other services have Redis.
type sessions struct {
	pool *pgxpool.Pool
	now  func() time.Time
	// live are the ids of the operator keys configured now.
	live map[string]bool
}

// randomToken is 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashID(id string) []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}

// create starts a session for the operator key keyID and returns its id
// (the cookie's value). Sessions that ended or went idle, and sign-in
// counts of windows that ended, are deleted on the way.
func (s *sessions) create(ctx context.Context, keyID string) (string, session, error) {
	now := s.now().UTC()
	id := randomToken()
	se := session{CSRF: randomToken(), KeyID: keyID, ExpiresAt: now.Add(SessionTTL)}
	if _, err := s.pool.Exec(ctx, `delete from admin.console_sessions where expires_at < $1 or last_seen_at < $2`, now, now.Add(-SessionIdle)); err != nil {
		return "", session{}, fmt.Errorf("console: prune sessions: %w", err)
	}
	if _, err := loginCounts(s.pool).Prune(ctx, now); err != nil {
		return "", session{}, fmt.Errorf("console: prune sign-in counts: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `insert into admin.console_sessions (id_hash, csrf_token, key_id, created_at, expires_at, last_seen_at) values ($1, $2, $3, $4, $5, $4)`,
		hashID(id), se.CSRF, se.KeyID, now, se.ExpiresAt); err != nil {
		return "", session{}, fmt.Errorf("console: create session: %w", err)
	}
	return id, se, nil
}

// get reads the live session id names, if its key is still configured,
// and marks it used: live means neither past SessionTTL from its sign-in
// nor SessionIdle from its last use.
func (s *sessions) get(ctx context.Context, id string) (session, error) {
	return s.read(ctx, id, `update admin.console_sessions set last_seen_at = $2
		where id_hash = $1 and expires_at > $2 and last_seen_at > $3
		returning csrf_token, key_id, expires_at`)
}

// check is get without marking the session used: for what the browser does
// by itself (the live stream's heartbeat), which must not keep an
// unattended session alive.
func (s *sessions) check(ctx context.Context, id string) (session, error) {
	return s.read(ctx, id, `select csrf_token, key_id, expires_at from admin.console_sessions
		where id_hash = $1 and expires_at > $2 and last_seen_at > $3`)
}

// read runs query, given the session's hash, now and the idle limit, for
// the live session id names.
func (s *sessions) read(ctx context.Context, id, query string) (session, error) {
	if id == "" {
		return session{}, errNoSession
	}
	now := s.now().UTC()
	var se session
	err := s.pool.QueryRow(ctx, query, hashID(id), now, now.Add(-SessionIdle)).Scan(&se.CSRF, &se.KeyID, &se.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return session{}, errNoSession
	}
	if err != nil {
		return session{}, fmt.Errorf("console: read session: %w", err)
	}
	if !s.live[se.KeyID] {
		return session{}, errNoSession // opened with a key no longer configured
	}
	return se, nil
}

// end deletes the session id names (logout).
func (s *sessions) end(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `delete from admin.console_sessions where id_hash = $1`, hashID(id)); err != nil {
		return fmt.Errorf("console: end session: %w", err)
	}
	return nil
}

// sameToken compares a presented token with the expected one in constant time.
func sameToken(presented, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(presented), []byte(want)) == 1
}
