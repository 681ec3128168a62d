package static

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/egress"
)

// VerifyError: the verification request did not accept the credentials,
// or was never made. It carries the HTTP status only: never the response
// body, the URL (a query_param strategy puts the credential in it) or a
// credential.
type VerifyError struct {
	Status int // 0 when there was no answer
	// Transient: no answer (timeout, network error), or 5xx or 429, which
	// say nothing about the credentials.
	Transient bool
	// Refused: the egress guard would not send the request where the URL
	// points (its host and why, never the URL). Nothing was sent, so it is
	// the same whether anything listens there or not.
	Refused *egress.RefusedError
}

func (e *VerifyError) Error() string {
	if e.Refused != nil {
		return "the broker does not send the provider's verification request: " + e.Refused.Error()
	}
	if e.Status == 0 {
		return "the provider's verification request got no answer (timeout or network error)"
	}
	return fmt.Sprintf("the provider's verification request answered HTTP %d", e.Status)
}

// Verifier makes providers' verification requests.
type Verifier struct {
	http *egress.Client
	now  func() time.Time
}

// NewVerifier returns a Verifier whose requests go through hc, the egress
// guard (a guard that opens no private network when nil): only to
// addresses it allows, never following a redirect (Go would re-send the
// applied credentials, headers and query, to whatever host it names), and
// with its timeouts. now may be nil.
func NewVerifier(hc *egress.Client, now func() time.Time) *Verifier {
	if hc == nil {
		hc = egress.New(egress.Options{})
	}
	if now == nil {
		now = time.Now
	}
	return &Verifier{http: hc, now: now}
}

// Verify makes v's request with creds (as Select returned them) applied
// with st. It succeeds on v.ExpectStatus, or any 2xx when that is unset;
// anything else is a *VerifyError.
func (x *Verifier) Verify(ctx context.Context, v messages.Verification, st messages.Strategy, creds map[string]any) error {
	method := v.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, v.URL, http.NoBody)
	if err != nil {
		return fmt.Errorf("verification request: invalid method or URL")
	}
	req.Header.Set("User-Agent", "nexus-broker-vault")
	if err := Apply(ctx, req, st, creds, x.now()); err != nil {
		return err
	}
	resp, err := x.http.Do(req)
	if err != nil {
		// err quotes the URL, which may hold the credential: drop it. A
		// refusal names only the host and the address it resolved to.
		var refused *egress.RefusedError
		if errors.As(err, &refused) {
			return &VerifyError{Refused: refused}
		}
		return &VerifyError{Transient: true}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if v.ExpectStatus != 0 {
		ok = resp.StatusCode == v.ExpectStatus
	}
	if ok {
		return nil
	}
	return &VerifyError{Status: resp.StatusCode,
		Transient: resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests}
}
