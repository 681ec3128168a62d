package provider

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/secret"
)

// ErrNoRevocationEndpoint: the provider registered none; nothing to call.
var ErrNoRevocationEndpoint = errors.New("provider has no revocation endpoint")

// Revoke asks the provider to revoke token (RFC 7009), hint being
// "refresh_token" or "access_token", authenticating the client the way it
// authenticates at the token endpoint.
func (c *Client) Revoke(ctx context.Context, cl Registration, token secret.Value, hint string) error {
	if cl.RevocationEndpoint == "" {
		return ErrNoRevocationEndpoint
	}
	form := url.Values{"token": {token.Reveal()}, "token_type_hint": {hint}}
	basic := cl.AuthMethod != messages.ClientSecretPost
	if !basic {
		form.Set("client_id", cl.ClientID)
		form.Set("client_secret", cl.ClientSecret.Reveal())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cl.RevocationEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return &Error{Kind: Rejected, Endpoint: "revocation", Err: errors.New("bad revocation endpoint URL")}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if basic {
		// RFC 6749 section 2.3.1: form-urlencode the id and secret first.
		req.SetBasicAuth(url.QueryEscape(cl.ClientID), url.QueryEscape(cl.ClientSecret.Reveal()))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return classify("revocation", err, cl.Quirks)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	e := &Error{Kind: Rejected, Endpoint: "revocation", Status: resp.StatusCode, Err: errors.New("revocation refused")}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		e.Kind = Transient
	}
	return e
}
