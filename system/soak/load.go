package soak

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/system/systemtest"
)

// requestTimeout bounds each tokens.get of the load, and each check at the
// provider.
const requestTimeout = 10 * time.Second

// load is the tokens.get load: Rate requests a second, at most Workers in
// flight, each for a connection picked at random, each answer checked.
type load struct {
	b        *systemtest.Broker
	pool     *pgxpool.Pool // the vault's database, to see a refresh in flight
	ids      []string
	rate     int
	workers  int
	minValid int
	http     *http.Client

	mu sync.Mutex
	s  TokenStats
}

func newLoad(b *systemtest.Broker, pool *pgxpool.Pool, ids []string, c Config) *load {
	return &load{b: b, pool: pool, ids: ids, rate: c.Rate, workers: c.Workers, minValid: int(c.MinValid / time.Second),
		http: &http.Client{Timeout: requestTimeout}}
}

// run sends the load until ctx ends; the channel closes when the last
// request is answered.
func (l *load) run(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	ticks := make(chan struct{})
	var wg sync.WaitGroup
	for range l.workers {
		wg.Go(func() {
			for range ticks {
				l.sample(l.ids[rand.IntN(len(l.ids))])
			}
		})
	}
	go func() {
		defer close(done)
		defer wg.Wait()
		defer close(ticks)
		t := time.NewTicker(time.Second / time.Duration(l.rate))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			select {
			case ticks <- struct{}{}:
			default: // every worker busy: the tick is dropped, and counted
				l.count(func(s *TokenStats) { s.Dropped++ })
			}
		}
	}()
	return done
}

// sample gets id's token and checks it: unexpired when it arrives, and a
// token the provider takes (seeded tokens are not the provider's; only
// their expiry is checked).
func (l *load) sample(id string) {
	start := time.Now()
	cred, err := l.get(id)
	at := time.Now()
	if err != nil {
		l.count(func(s *TokenStats) { s.addError(err) })
		return
	}
	expired := cred.ExpiresAt == nil || !cred.ExpiresAt.After(at)
	seeded := isSeeded(cred.AccessToken)
	var verdict checkVerdict
	var replaced time.Duration
	if !expired && !seeded {
		verdict, replaced = l.check(id, cred.AccessToken)
	}
	l.count(func(s *TokenStats) {
		s.Served++
		s.latencies = append(s.latencies, at.Sub(start))
		switch {
		case expired:
			s.Expired++
		case seeded:
			s.Seeded++
		default:
			s.verdicts[verdict]++
			s.Replaced = max(s.Replaced, replaced)
		}
	})
}

func (l *load) get(id string) (messages.Credential, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var cred messages.Credential
	err := l.b.Gateway.Request(ctx, messages.SubjectTokensGet, messages.TokenRequest{
		ConnectionID: id, WorkspaceID: Workspace, MinValidSeconds: &l.minValid,
	}, &cred)
	return cred, err
}

// checkVerdict is what the provider made of a served token.
type checkVerdict int

const (
	// accepted: the provider's userinfo answered 200.
	accepted checkVerdict = iota
	// superseded: refused because the connection's grant was rotated.
	// The provider revokes a grant's access token when it rotates the
	// grant, before the vault has stored the new one and before its
	// caches have dropped the old one: within recheckTries the vault
	// serves a token the provider accepts, or a refresh of the
	// connection is still in flight.
	superseded
	// refused: refused, and still served well after. A broken promise.
	refused
	// unchecked: the provider could not be asked (a transport error).
	unchecked
	verdicts
)

// A refused token is asked for again recheckTries times, recheckPause
// apart, before it counts as refused.
const (
	recheckTries = 10
	recheckPause = 100 * time.Millisecond
)

// check presents a served token at the provider's userinfo; a refusal is
// told apart from a rotation that came in between by asking the vault
// again a moment later, and then whether a refresh is in flight.
// It returns how long the refused token's replacement took to be served.
func (l *load) check(id, token string) (checkVerdict, time.Duration) {
	status, err := l.userinfo(token)
	switch {
	case err != nil:
		return unchecked, 0
	case status == http.StatusOK:
		return accepted, 0
	}
	refusedAt := time.Now()
	for range recheckTries {
		time.Sleep(recheckPause)
		again, err := l.get(id)
		if err != nil {
			return unchecked, 0
		}
		if status, err := l.userinfo(again.AccessToken); err != nil {
			return unchecked, 0
		} else if status == http.StatusOK {
			return superseded, time.Since(refusedAt)
		}
	}
	var inFlight bool
	if err := l.pool.QueryRow(context.Background(), "select refresh_inflight_owner is not null from vault.connections where id = $1", id).Scan(&inFlight); err != nil {
		return unchecked, 0
	}
	if inFlight {
		return superseded, time.Since(refusedAt)
	}
	return refused, 0
}

func (l *load) userinfo(token string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, l.b.Provider.Issuer()+"/userinfo", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := l.http.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (l *load) count(f func(*TokenStats)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(&l.s)
}

// served is how many answers the load has had so far.
func (l *load) served() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.Served
}

// stats are the load's figures, with latency percentiles.
func (l *load) stats() TokenStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.s
	s.latencies = slices.Clone(s.latencies)
	slices.Sort(s.latencies)
	if n := len(s.latencies); n > 0 {
		s.P50, s.P99 = s.latencies[n/2], s.latencies[n*99/100]
	}
	s.Accepted, s.Superseded, s.Refused, s.Unchecked = s.verdicts[accepted], s.verdicts[superseded], s.verdicts[refused], s.verdicts[unchecked]
	return s
}

// TokenStats are what the tokens.get load saw.
type TokenStats struct {
	// Served answers with a token; Expired of them expired when they
	// arrived; Seeded were still the seeded token (checked for expiry only).
	Served, Expired, Seeded int
	// The provider's verdict on the others (see checkVerdict), and the
	// longest a superseded token took to be replaced by one it accepts.
	Accepted, Superseded, Refused, Unchecked int
	Replaced                                 time.Duration
	// Errors are error answers by code ("unavailable" also when none came in time).
	Errors map[string]int
	// Dropped ticks: every worker was busy, so the load ran under Rate.
	Dropped  int
	P50, P99 time.Duration

	verdicts  [verdicts]int
	latencies []time.Duration
}

func (s *TokenStats) addError(err error) {
	if s.Errors == nil {
		s.Errors = map[string]int{}
	}
	code := "other"
	var me *messages.Error
	if errors.As(err, &me) {
		code = string(me.Code)
	}
	s.Errors[code]++
}

// ErrorCount is the number of error answers.
func (s TokenStats) ErrorCount() int {
	n := 0
	for _, v := range s.Errors {
		n += v
	}
	return n
}
