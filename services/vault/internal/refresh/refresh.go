// Package refresh renews a connection's access token with its refresh token:
// single-flight per connection within the process (singleflight) and across
// replicas (the connection's row lock), persisting a rotated refresh token
// before the new access token is handed out. tokens.get, tokens.refresh and
// a background refresher all go through Refresher.Refresh.
package refresh

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/provider"
	"github.com/nexus-broker/nexus/services/vault/internal/secret"
	"github.com/nexus-broker/nexus/services/vault/internal/store"
)

// Store is what a refresh needs from storage.
type Store interface {
	WithLock(ctx context.Context, id string, fn func(ctx context.Context, l *store.Locked) error) (store.Connection, error)
	GetClient(ctx context.Context, providerID string) (store.Client, error)
}

// Provider renews tokens at the provider.
type Provider interface {
	Refresh(ctx context.Context, cl store.Client, refresh secret.Value) (store.Tokens, error)
}

var _ Store = (*store.Store)(nil)

// flightBudget bounds a refresh from the first caller's arrival: waiting
// for the row lock, the provider call (provider.DefaultTimeout) and storing
// the result (saveMargin).
const (
	flightBudget = 30 * time.Second
	saveMargin   = 5 * time.Second
)

// Need says when the stored access token is good enough.
type Need struct {
	// MinValid: the token must stay valid at least this long.
	MinValid time.Duration
	// Force a refresh, unless the token changed since SeenVersion (another
	// replica or caller refreshed meanwhile, which satisfies a forced refresh).
	Force       bool
	SeenVersion int64
}

// Result is the connection and its access token after a refresh (or after
// finding that none was needed).
type Result struct {
	Conn        store.Connection
	AccessToken secret.Value
	Refreshed   bool
}

// LogValue keeps the token out of logs.
func (r Result) LogValue() slog.Value {
	return slog.GroupValue(slog.String("connection_id", r.Conn.ID), slog.Bool("refreshed", r.Refreshed))
}

// ErrNoRefreshToken: a forced refresh of a connection the provider gave no
// refresh token.
var ErrNoRefreshToken = errors.New("this connection has no refresh token; its access token cannot be renewed")

// RecentRefresh: a token refreshed this recently is as good as a refresh
// can make it, so it satisfies any min_valid_seconds while it is still
// valid. Without this, asking for more validity than the provider ever
// grants (min_valid_seconds at or above the token's lifetime) would refresh
// on every request.
const RecentRefresh = time.Minute

// Satisfies reports whether c's current token meets need at now.
func Satisfies(c store.Connection, need Need, now time.Time) bool {
	if need.Force {
		return c.TokenVersion != need.SeenVersion
	}
	if c.ExpiresAt == nil || c.ExpiresAt.After(now.Add(need.MinValid)) {
		return true
	}
	return c.LastRefreshedAt != nil && now.Sub(*c.LastRefreshedAt) < RecentRefresh && c.ExpiresAt.After(now)
}

// Refresher renews tokens. The store tells the caches about what it
// changes; the Refresher has nothing to remember.
type Refresher struct {
	store    Store
	provider Provider
	log      *slog.Logger
	now      func() time.Time

	flights singleflight.Group
}

// New returns a Refresher. now may be nil.
func New(st Store, p Provider, log *slog.Logger, now func() time.Time) *Refresher {
	if now == nil {
		now = time.Now
	}
	return &Refresher{store: st, provider: p, log: log, now: now}
}

// Refresh makes sure connection id (of providerID) has a token meeting need,
// calling the provider at most once per connection at a time across every
// replica. A permanent refusal (invalid_grant, unauthorized_client) moves the
// connection to attention_required and returns a *store.NotActiveError; a transient
// one returns a *provider.Error and changes nothing.
func (r *Refresher) Refresh(ctx context.Context, id, providerID string, need Need) (Result, error) {
	key := id + "|" + strconv.FormatInt(int64(need.MinValid), 10)
	if need.Force {
		key = id + "|force|" + strconv.FormatInt(need.SeenVersion, 10)
	}
	v, err, _ := r.flights.Do(key, func() (any, error) {
		// Detach from the first caller's cancellation: the others share this
		// flight, and a rotated token must be stored once fetched.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flightBudget)
		defer cancel()
		return r.refresh(fctx, id, providerID, need)
	})
	if err != nil {
		return Result{}, err
	}
	return v.(Result), nil
}

func (r *Refresher) refresh(ctx context.Context, id, providerID string, need Need) (Result, error) {
	cl, err := r.store.GetClient(ctx, providerID)
	if err != nil {
		return Result{}, err
	}
	var res Result
	conn, err := r.store.WithLock(ctx, id, func(ctx context.Context, l *store.Locked) error {
		if err := l.Conn.Serveable(); err != nil {
			return err
		}
		cur, err := l.Tokens()
		if err != nil {
			return err
		}
		now := r.now()
		if Satisfies(l.Conn, need, now) {
			// Nothing to do, or another replica refreshed while we waited
			// for the lock.
			res = Result{AccessToken: cur.Access}
			return nil
		}
		if cur.Refresh.IsZero() {
			if need.Force {
				return ErrNoRefreshToken
			}
			if l.Conn.ExpiresAt != nil && l.Conn.ExpiresAt.After(now) {
				res = Result{AccessToken: cur.Access} // the best there is
				return nil
			}
			if err := l.RequireAttention(ctx, messages.Reason{Code: "token_expired",
				Message: "The access token expired and the provider issued no refresh token; the user must connect again."}); err != nil {
				return err
			}
			return &store.NotActiveError{Conn: l.Conn}
		}
		// A provider that rotates the refresh token and answers just as our
		// budget runs out would leave the rotated token unsaved, and the next
		// refresh would fail with invalid_grant. After a long wait for the
		// lock, give up before calling rather than risk that.
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < provider.DefaultTimeout+saveMargin {
			return &provider.Error{Kind: provider.Transient, Endpoint: "token", Err: errors.New("too little time left to refresh and store the result")}
		}
		// We hold the row lock, so the stored refresh token cannot change
		// under us: an invalid_grant is about the token we presented, not
		// a race with another refresher (docs/ARCHITECTURE.md, invariants 5).
		fresh, err := r.provider.Refresh(ctx, cl, cur.Refresh)
		if err != nil {
			var pe *provider.Error
			if errors.As(err, &pe) && pe.Kind == provider.Permanent {
				if aerr := l.RequireAttention(ctx, messages.Reason{Code: pe.Code,
					Message: "The provider refused to renew access (" + pe.Code + "); the user must connect again."}); aerr != nil {
					return aerr
				}
				return &store.NotActiveError{Conn: l.Conn, Cause: err}
			}
			return err
		}
		if err := l.SaveRefreshed(ctx, fresh); err != nil {
			return err
		}
		res = Result{AccessToken: fresh.Access, Refreshed: true}
		return nil
	})
	if err != nil {
		var na *store.NotActiveError
		if errors.As(err, &na) {
			na.Conn = conn
		}
		return Result{}, err
	}
	res.Conn = conn
	if res.Refreshed {
		r.log.Info("token refreshed", "connection_id", id, "provider_id", providerID)
	}
	return res, nil
}
