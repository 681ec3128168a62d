package soak

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

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
	ids      []string
	rate     int
	workers  int
	minValid int
	http     *http.Client

	mu sync.Mutex
	s  TokenStats
}

func newLoad(b *systemtest.Broker, ids []string, c Config) *load {
	return &load{b: b, ids: ids, rate: c.Rate, workers: c.Workers, minValid: int(c.MinValid / time.Second),
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
	if !expired && !seeded {
		verdict = l.check(id, cred.AccessToken)
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
	// superseded: refused, but the connection was refreshed between the
	// answer and the check (the provider revokes a grant's access token
	// when it rotates its refresh token): the vault now serves another.
	superseded
	// refused: refused while the vault still serves it. A broken promise.
	refused
	// unchecked: the provider could not be asked (a transport error).
	unchecked
	verdicts
)

// check presents token at the provider's userinfo; a refusal is told
// apart from a rotation that came in between by asking the vault again.
func (l *load) check(id, token string) checkVerdict {
	status, err := l.userinfo(token)
	switch {
	case err != nil:
		return unchecked
	case status == http.StatusOK:
		return accepted
	}
	again, err := l.get(id)
	if err != nil {
		return unchecked
	}
	if again.AccessToken != token {
		return superseded
	}
	return refused
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
	// The provider's verdict on the others (see checkVerdict).
	Accepted, Superseded, Refused, Unchecked int
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
