// Package refresh renews a connection's access token with its refresh token:
// single-flight per connection within the process (singleflight) and across
// replicas (a refresh in flight is taken under the row lock and recorded on
// the row, so other replicas wait for it), with no database transaction
// open during the provider call. A rotated refresh token is stored, if the
// token presented is still the stored one, before the new access token is
// handed out. tokens.get, tokens.refresh and the background refresher all
// go through Refresher.Refresh.
package refresh

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync/atomic"
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

// StoreOverrun is how long after its in-flight mark runs out a live flight
// may still be storing its result: finish starts at the latest saveMargin
// before the mark's end and is bounded by saveMargin+finishAttempts seconds.
// A mark older than that has no owner left.
const StoreOverrun = finishAttempts * time.Second

// CallBudget bounds a refresh that does not queue behind another flight of
// its connection: the provider call and storing its result. The refresher
// waits this long (plus a margin) for a run's answer; a run that queued
// longer is joined by the refresher's retry.
const CallBudget = provider.DefaultTimeout + saveMargin + StoreOverrun

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

// Refusals is when the same 4xx refusal of a refresh, repeated, means the
// grant is dead whatever code the provider chose (one that answers
// invalid_request "refresh token already claimed" for ever): Count refusals
// in a row with the same code, over at least Window.
type Refusals struct {
	Count  int
	Window time.Duration
}

// DefaultRefusals: three refusals over at least five minutes.
var DefaultRefusals = Refusals{Count: 3, Window: 5 * time.Minute}

// FailedError is a refresh that failed without settling the connection's
// fate: Err (a *provider.Error) says why, Attempts how many refreshes in a
// row have failed, and RetryAt when the provider may be called again.
type FailedError struct {
	Err      error
	Attempts int
	RetryAt  time.Time
}

func (e *FailedError) Error() string { return e.Err.Error() }

// Unwrap returns the provider's error.
func (e *FailedError) Unwrap() error { return e.Err }

// Refresher renews tokens. The store tells the caches about what it
// changes; the Refresher has nothing to remember.
type Refresher struct {
	store    Store
	provider Provider
	log      *slog.Logger
	now      func() time.Time
	refusals Refusals
	// owner names this replica and boot in the refreshes it takes; each
	// flight adds "/" and its own number (flight), so that two flights of
	// this replica with different needs wait for each other as flights of
	// two replicas do.
	owner  string
	flight atomic.Uint64

	flights singleflight.Group
}

// New returns a Refresher whose flights are recorded as owner/<n>: owner
// names the replica and its boot, so that the vault's recovery finds the
// flights a dead boot left. now may be nil.
func New(st Store, p Provider, log *slog.Logger, now func() time.Time, owner string) *Refresher {
	if now == nil {
		now = time.Now
	}
	return &Refresher{store: st, provider: p, log: log, now: now, owner: owner, refusals: DefaultRefusals}
}

// SetRefusals changes when repeated refusals need the user (DefaultRefusals).
func (r *Refresher) SetRefusals(rf Refusals) { r.refusals = rf }

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

// waitStep bounds one wait for another replica's refresh in flight.
const waitStep = 100 * time.Millisecond

// refresh is one connection's refresh, in three steps so that no
// transaction is open while the provider answers: under the row lock, decide
// whether a refresh is needed and take it (or wait while another replica has
// it in flight); call the provider; under the row lock again, store the
// result (finish).
func (r *Refresher) refresh(ctx context.Context, id, providerID string, need Need) (Result, error) {
	cl, err := r.store.GetClient(ctx, providerID)
	if err != nil {
		return Result{}, err
	}
	for {
		var (
			res      Result
			taken    *lease
			waitTill time.Time
		)
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
				// Nothing to do, or another replica refreshed meanwhile.
				res = Result{AccessToken: cur.Access}
				return nil
			}
			if l.Conn.InFlight("", now) {
				waitTill = *l.Conn.RefreshInFlightUntil
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
			// After failures, the provider is called again only once their
			// backoff has passed, whoever asks: an expired token read in a
			// loop must not become a refresh storm against a provider that
			// is already refusing. Meanwhile a token still valid is served.
			b, err := l.Backoff(ctx)
			if err != nil {
				return err
			}
			if now.Before(b.Until) {
				if !need.Force && l.Conn.ExpiresAt != nil && l.Conn.ExpiresAt.After(now) {
					res = Result{AccessToken: cur.Access}
					return nil
				}
				return &FailedError{Attempts: l.Conn.RefreshAttempts, RetryAt: b.Until, Err: backingOff(b, now)}
			}
			// A provider that rotates the refresh token and answers just as
			// our budget runs out would leave the rotated token unsaved, and
			// the next refresh would fail with invalid_grant. After a long
			// wait, give up before calling rather than risk that.
			dl, ok := ctx.Deadline()
			if ok && time.Until(dl) < provider.DefaultTimeout+saveMargin {
				return &provider.Error{Kind: provider.Transient, Endpoint: "token", Err: errors.New("too little time left to refresh and store the result")}
			}
			if !ok {
				dl = now.Add(flightBudget)
			}
			owner := r.owner + "/" + strconv.FormatUint(r.flight.Add(1), 10)
			if err := l.TakeRefresh(ctx, owner, dl); err != nil {
				return err
			}
			taken = &lease{owner: owner, until: dl, refresh: cur.Refresh, version: l.Conn.TokenVersion, force: need.Force}
			return nil
		})
		if err != nil {
			var na *store.NotActiveError
			if errors.As(err, &na) {
				na.Conn = conn
			}
			return Result{}, err
		}
		switch {
		case taken != nil:
			// No transaction is open while the provider answers, and the
			// answer must come with saveMargin left to store it.
			pctx, cancel := context.WithDeadline(ctx, taken.until.Add(-saveMargin))
			fresh, perr := r.provider.Refresh(pctx, cl, taken.refresh)
			cancel()
			return r.finish(ctx, id, providerID, taken, fresh, perr)
		case !waitTill.IsZero():
			// Another replica is asking the provider: its result will do.
			if err := sleep(ctx, min(waitStep, time.Until(waitTill))); err != nil {
				return Result{}, &provider.Error{Kind: provider.Transient, Endpoint: "token", Err: errors.New("another refresh of this connection did not finish in time")}
			}
		default:
			res.Conn = conn
			return res, nil
		}
	}
}

// lease is a refresh taken: by whom and until when, the refresh token
// presented and the token version it belongs to.
type lease struct {
	owner   string
	until   time.Time
	refresh secret.Value
	version int64
	force   bool // a forced refresh: a still-valid token does not answer it
}

// finishAttempts bounds the tries to store a refresh's result: a rotated
// refresh token the provider just issued must not be lost because one
// database connection failed.
const finishAttempts = 5

// finish stores what the provider answered, under the row lock, if the token
// presented is still the stored one; otherwise another refresh won and its
// token is the answer (an invalid_grant is then about a token already
// replaced: invariant 5). A permanent refusal moves the connection to
// attention_required; a transient one releases the refresh. Database
// failures are retried on fresh connections, with the result held.
func (r *Refresher) finish(ctx context.Context, id, providerID string, ls *lease, fresh store.Tokens, perr error) (Result, error) {
	var (
		res  Result
		conn store.Connection
		err  error
	)
	// It must land even if the caller has gone: detach, and bound it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), saveMargin+finishAttempts*time.Second)
	defer cancel()
	for attempt := 1; ; attempt++ {
		res = Result{}
		conn, err = r.store.WithLock(ctx, id, func(ctx context.Context, l *store.Locked) error {
			if l.Conn.TokenVersion != ls.version && l.Conn.Status == messages.StatusActive && perr == nil && !fresh.Refresh.IsZero() {
				// Replaced meanwhile by a change that kept the refresh token
				// presented (a re-consent whose response had none): the
				// provider has just rotated it, so only this result's
				// refresh token is alive.
				cur, err := l.Tokens()
				if err != nil {
					return err
				}
				if cur.Refresh.Equal(ls.refresh) {
					if err := l.SaveRefreshed(ctx, fresh); err != nil {
						return err
					}
					res = Result{AccessToken: fresh.Access, Refreshed: true}
					return nil
				}
			}
			if l.Conn.TokenVersion != ls.version || l.Conn.Status != messages.StatusActive {
				// Replaced meanwhile (another refresh, a re-consent), or
				// revoked or needing attention: this result is not wanted.
				if err := l.ReleaseRefresh(ctx, ls.owner); err != nil {
					return err
				}
				if err := l.Conn.Serveable(); err != nil {
					return err
				}
				cur, err := l.Tokens()
				res = Result{AccessToken: cur.Access}
				return err
			}
			var pe *provider.Error
			switch {
			case perr == nil:
				if err := l.SaveRefreshed(ctx, fresh); err != nil {
					return err
				}
				res = Result{AccessToken: fresh.Access, Refreshed: true}
				return nil
			case errors.As(perr, &pe) && pe.Kind == provider.Permanent && l.Conn.InFlight(ls.owner, r.now()):
				// Another flight holds the refresh now (this one's ran out)
				// and presented the same token: the refusal may be about
				// its rotation. Its result decides.
				return &provider.Error{Kind: provider.Transient, Endpoint: "token", Err: errors.New("another refresh of this connection is in flight")}
			case errors.As(perr, &pe) && pe.Kind == provider.Permanent:
				if err := l.RequireAttention(ctx, messages.Reason{Code: pe.Code,
					Message: "The provider refused to renew access (" + pe.Code + "); the user must connect again."}); err != nil {
					return err
				}
				return &store.NotActiveError{Conn: l.Conn, Cause: perr}
			default:
				return r.failed(ctx, l, ls, perr, &res)
			}
		})
		if err == nil || !retryable(err, perr) || attempt == finishAttempts {
			break
		}
		r.log.Warn("storing a refresh result failed; retrying", "connection_id", id, "attempt", attempt, "err", err)
		if serr := sleep(ctx, time.Duration(attempt)*200*time.Millisecond); serr != nil {
			break
		}
	}
	if err != nil {
		var na *store.NotActiveError
		if errors.As(err, &na) {
			na.Conn = conn
		}
		if perr == nil && retryable(err, perr) {
			r.log.Error("a refreshed token could not be stored", "connection_id", id, "provider_id", providerID, "err", err)
		}
		return Result{}, err
	}
	res.Conn = conn
	if res.Refreshed {
		r.log.Info("token refreshed", "connection_id", id, "provider_id", providerID)
	}
	return res, nil
}

// backingOff is what a caller is told while a connection's backoff lasts:
// what the last failure was, and when the provider is asked again.
func backingOff(b store.Backoff, now time.Time) *provider.Error {
	e := &provider.Error{Kind: provider.Transient, Endpoint: "token", RetryAfter: b.Until.Sub(now),
		Err: errors.New("the last refreshes failed; the provider is asked again after " + b.Until.Format(time.RFC3339))}
	if b.Refused {
		e.Kind, e.Code = provider.Rejected, b.Code
		if e.Code == "" {
			e.Err = errors.New("the provider refused the last refresh; it is asked again after " + b.Until.Format(time.RFC3339))
		}
	}
	return e
}

// failed records a refresh that failed without a permanent refusal, under
// the row lock: the refresh is released, the failure counted and backed off
// (FailedError). The same 4xx refusal repeated past r.refusals needs the
// user: attention_required with the provider's code. A refresh that was
// not forced is answered with the stored token while it is still valid.
func (r *Refresher) failed(ctx context.Context, l *store.Locked, ls *lease, perr error, res *Result) error {
	if err := l.ReleaseRefresh(ctx, ls.owner); err != nil {
		return err
	}
	now := r.now()
	var pe *provider.Error
	errors.As(perr, &pe)
	f := store.Failure{}
	if pe != nil {
		// A refusal while another flight holds the refresh may be about
		// its rotation ("already claimed"): it says nothing of the grant.
		f = store.Failure{Code: pe.Code, RetryAfter: pe.RetryAfter, Refused: pe.Kind != provider.Transient,
			Counts: pe.Kind == provider.Rejected && pe.Refusal() && !l.Conn.InFlight(ls.owner, now)}
	}
	st, err := l.RecordFailure(ctx, f)
	if err != nil {
		return err
	}
	if f.Counts && r.refusals.Count > 0 && st.RefusalCount >= r.refusals.Count && now.Sub(st.RefusalSince) >= r.refusals.Window {
		code := f.Code
		if code == "" {
			code = "provider_refused"
		}
		if err := l.RequireAttention(ctx, messages.Reason{Code: code, Message: "The provider refused to renew access " +
			strconv.Itoa(st.RefusalCount) + " times in a row since " + st.RefusalSince.Format(time.RFC3339) + " (" + code + "); the user must connect again."}); err != nil {
			return err
		}
		return &store.NotActiveError{Conn: l.Conn, Cause: perr}
	}
	if !ls.force && l.Conn.ExpiresAt != nil && l.Conn.ExpiresAt.After(now) {
		cur, err := l.Tokens()
		if err != nil {
			return err
		}
		*res = Result{AccessToken: cur.Access}
		r.log.Warn("refresh failed; serving the stored token while it is valid", "connection_id", l.Conn.ID, "attempts", st.Attempts, "err", perr)
		return nil
	}
	return &FailedError{Err: perr, Attempts: st.Attempts, RetryAt: st.RetryNotBefore}
}

// retryable: err is the database failing, not an answer (the connection's
// status, the provider's refusal passed through).
func retryable(err, perr error) bool {
	var (
		na *store.NotActiveError
		fe *FailedError
	)
	if errors.As(err, &na) || errors.As(err, &fe) || errors.Is(err, store.ErrNotFound) || (perr != nil && errors.Is(err, perr)) {
		return false
	}
	return true
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(max(d, time.Millisecond))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
