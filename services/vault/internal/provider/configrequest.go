package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/publicsuffix"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/secret"
)

// Some values the Gateway needs come only from the provider's API, after
// the consent: the tenants a Xero connection may use, the cloud id of an
// Atlassian site. A registration's quirks.config_from_request names a GET
// the vault makes once, with the access token just issued, and the fields
// of its JSON answer kept as config.

// SameSite reports whether raw is on the same site as the token endpoint:
// the same registrable domain (api.xero.com and identity.xero.com), or the
// same host when either is an address or has none. The access token goes
// only where the grant's own tokens go.
func SameSite(raw, tokenEndpoint string) bool {
	a, errA := url.Parse(raw)
	b, errB := url.Parse(tokenEndpoint)
	if errA != nil || errB != nil || a.Hostname() == "" {
		return false
	}
	ha, hb := strings.ToLower(a.Hostname()), strings.ToLower(b.Hostname())
	if net.ParseIP(ha) != nil || net.ParseIP(hb) != nil {
		return ha == hb
	}
	sa, errA := publicsuffix.EffectiveTLDPlusOne(ha)
	sb, errB := publicsuffix.EffectiveTLDPlusOne(hb)
	if errA != nil || errB != nil {
		return ha == hb
	}
	return sa == sb
}

// LookupConfig makes cl's config request with access and returns the
// values it names. The error never quotes the answer.
func (c *Client) LookupConfig(ctx context.Context, cl Registration, access secret.Value) (map[string]string, error) {
	r := cl.Quirks.ConfigFromRequest
	if r == nil {
		return nil, nil
	}
	if !SameSite(r.URL, cl.TokenEndpoint) {
		return nil, errors.New("the config request's URL is not on the token endpoint's site")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL, nil)
	if err != nil {
		return nil, errors.New("bad config request URL")
	}
	req.Header.Set("Authorization", "Bearer "+access.Reveal())
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, classify("config", err, messages.Quirks{})
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &Error{Kind: Rejected, Endpoint: "config", Status: resp.StatusCode, Err: fmt.Errorf("HTTP %d", resp.StatusCode)}
	}
	var root any
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&root); err != nil {
		return nil, classify("config", err, messages.Quirks{})
	}
	return configValues(root, r.Config), nil
}
