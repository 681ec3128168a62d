package oidcprovider

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/storage"
)

// store wraps fosite's in-memory storage (storage.MemoryStore) and adds three
// things fosite's example store lacks, without changing its token semantics:
//
//  1. Clients live in a map guarded by our own mutex, so AddClient may be
//     called while requests are being served (MemoryStore.Clients is an
//     exported map whose mutex is unexported).
//  2. All access to MemoryStore.RefreshTokens is serialised through rtMu.
//     MemoryStore.RevokeRefreshToken (called on rotation, reuse detection and
//     revocation) writes that map while holding only the request-ID mutex, which
//     races with GetRefreshTokenSession under `go test -race`.
//  3. It remembers the signature of every access and refresh token it stored
//     so that RevokeAllGrants can delete them, and it implements the
//     "omit refresh token on refresh" test mode (see keepOldRefreshToken).
//  4. A rotated refresh token stays usable for reuseWindow
//     (Options.RefreshTokenReuseWindow), and presentations of rotated
//     tokens are counted.
type store struct {
	*storage.MemoryStore

	rtMu sync.RWMutex

	clientsMu sync.RWMutex
	clients   map[string]fosite.Client

	issuedMu      sync.Mutex
	refreshTokens map[string]struct{} // signatures
	accessTokens  map[string]struct{} // signatures

	reuseWindow time.Duration
	graceMu     sync.Mutex
	rotated     map[string]rotation // signature of a rotated refresh token
	reused      Reuses
}

// rotation is when a refresh token was rotated, and its family (the
// request id every token of one grant shares).
type rotation struct {
	at     time.Time
	family string
}

func newStore(reuseWindow time.Duration) *store {
	return &store{
		MemoryStore:   storage.NewMemoryStore(),
		clients:       map[string]fosite.Client{},
		refreshTokens: map[string]struct{}{},
		accessTokens:  map[string]struct{}{},
		reuseWindow:   reuseWindow,
		rotated:       map[string]rotation{},
	}
}

type ctxKey int

// keepOldRefreshTokenKey marks a refresh_token grant whose response will have
// its refresh_token removed (Server.OmitRefreshTokenOnRefresh). For such a
// grant the store neither revokes the presented refresh token nor stores the
// newly minted one, so the presented token stays the live token of its family.
const keepOldRefreshTokenKey ctxKey = 1

func keepOldRefreshToken(ctx context.Context) bool {
	v, _ := ctx.Value(keepOldRefreshTokenKey).(bool)
	return v
}

func (s *store) setClient(c fosite.Client) {
	s.clientsMu.Lock()
	defer s.clientsMu.Unlock()
	s.clients[c.GetID()] = c
}

// GetClient overrides MemoryStore.GetClient (see point 1 above).
func (s *store) GetClient(_ context.Context, id string) (fosite.Client, error) {
	s.clientsMu.RLock()
	defer s.clientsMu.RUnlock()
	c, ok := s.clients[id]
	if !ok {
		return nil, fosite.ErrNotFound
	}
	return c, nil
}

func (s *store) CreateAccessTokenSession(ctx context.Context, signature string, req fosite.Requester) error {
	if err := s.MemoryStore.CreateAccessTokenSession(ctx, signature, req); err != nil {
		return err
	}
	s.issuedMu.Lock()
	s.accessTokens[signature] = struct{}{}
	s.issuedMu.Unlock()
	return nil
}

func (s *store) CreateRefreshTokenSession(ctx context.Context, signature, accessTokenSignature string, req fosite.Requester) error {
	if keepOldRefreshToken(ctx) {
		// The new refresh token is never handed out, so do not store it: the
		// presented one remains the family's current refresh token.
		return nil
	}
	s.rtMu.Lock()
	err := s.MemoryStore.CreateRefreshTokenSession(ctx, signature, accessTokenSignature, req)
	s.rtMu.Unlock()
	if err != nil {
		return err
	}
	s.issuedMu.Lock()
	s.refreshTokens[signature] = struct{}{}
	s.issuedMu.Unlock()
	return nil
}

// GetRefreshTokenSession answers a rotated token as active within the reuse
// window (fosite then rotates the family again), and counts every
// presentation of a rotated token.
func (s *store) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	s.rtMu.RLock()
	req, err := s.MemoryStore.GetRefreshTokenSession(ctx, signature, session)
	s.rtMu.RUnlock()
	if !errors.Is(err, fosite.ErrInactiveToken) {
		return req, err
	}
	s.graceMu.Lock()
	defer s.graceMu.Unlock()
	if r, ok := s.rotated[signature]; ok && time.Since(r.at) < s.reuseWindow {
		s.reused.Within++
		return req, nil
	}
	s.reused.Beyond++
	return req, err
}

func (s *store) reuses() Reuses {
	s.graceMu.Lock()
	defer s.graceMu.Unlock()
	return s.reused
}

func (s *store) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	s.rtMu.Lock()
	defer s.rtMu.Unlock()
	return s.MemoryStore.DeleteRefreshTokenSession(ctx, signature)
}

// RevokeRefreshToken is fosite's revocation of a family (reuse detection,
// the revocation endpoint): no token of it is usable any more, rotated ones
// within their reuse window included.
func (s *store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	s.graceMu.Lock()
	for sig, r := range s.rotated {
		if r.family == requestID {
			delete(s.rotated, sig)
		}
	}
	s.graceMu.Unlock()
	return s.deactivate(ctx, requestID)
}

func (s *store) deactivate(ctx context.Context, requestID string) error {
	s.rtMu.Lock()
	defer s.rtMu.Unlock()
	return s.MemoryStore.RevokeRefreshToken(ctx, requestID)
}

// RotateRefreshToken mirrors MemoryStore.RotateRefreshToken (revoke the
// family's current refresh token and access token) but goes through the
// locked methods above, and is a no-op in "keep old refresh token" mode.
// The presented token and the family's current one (they differ when a
// rotated token is presented within the reuse window) start their reuse
// window, unless it has started already.
func (s *store) RotateRefreshToken(ctx context.Context, requestID string, presented string) error {
	if keepOldRefreshToken(ctx) {
		return nil
	}
	s.rtMu.RLock()
	current := s.RefreshTokenRequestIDs[requestID]
	s.rtMu.RUnlock()
	now := time.Now()
	s.graceMu.Lock()
	for _, sig := range []string{presented, current} {
		if _, ok := s.rotated[sig]; !ok && sig != "" {
			s.rotated[sig] = rotation{at: now, family: requestID}
		}
	}
	s.graceMu.Unlock()
	if err := s.deactivate(ctx, requestID); err != nil {
		return err
	}
	return s.RevokeAccessToken(ctx, requestID)
}

// revokeAll deletes every access and refresh token stored so far.
func (s *store) revokeAll(ctx context.Context) {
	s.issuedMu.Lock()
	refresh := s.refreshTokens
	access := s.accessTokens
	s.refreshTokens = map[string]struct{}{}
	s.accessTokens = map[string]struct{}{}
	s.issuedMu.Unlock()

	for sig := range refresh {
		_ = s.DeleteRefreshTokenSession(ctx, sig)
	}
	for sig := range access {
		_ = s.DeleteAccessTokenSession(ctx, sig)
	}
}

// sha256Hasher is the fosite.Hasher used for client secrets. fosite's default
// (bcrypt, cost 12) costs tens of milliseconds of CPU per token request, which
// would dominate tests and the benchmark; a test provider needs no
// password-grade hashing.
type sha256Hasher struct{}

var errSecretMismatch = errors.New("client secret mismatch")

func (sha256Hasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	sum := sha256.Sum256(data)
	return []byte(hex.EncodeToString(sum[:])), nil
}

func (h sha256Hasher) Compare(ctx context.Context, hash, data []byte) error {
	want, _ := h.Hash(ctx, data)
	if subtle.ConstantTimeCompare(hash, want) != 1 {
		return errSecretMismatch
	}
	return nil
}
