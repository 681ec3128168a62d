package begin

import (
	"encoding/json"
	"slices"

	"github.com/nexus-broker/nexus/messages"
)

// maxIDLen bounds the ids and the provider reference in a begin request.
// The scope limits are the contract's (messages.MaxScopes, ValidScope).
const maxIDLen = 256

// checkRequest validates everything that needs no other service, so a bad
// request creates nothing.
func checkRequest(req *messages.BeginRequest) error {
	switch {
	case req.Provider == "":
		return messages.Errorf(messages.CodeInvalidRequest, "provider is required")
	case req.WorkspaceID == "":
		return messages.Errorf(messages.CodeInvalidRequest, "workspace_id is required")
	case len(req.Provider) > maxIDLen || len(req.WorkspaceID) > maxIDLen || len(req.ConnectionID) > maxIDLen:
		return messages.Errorf(messages.CodeInvalidRequest, "provider, workspace_id and connection_id must be at most %d characters", maxIDLen)
	case req.ReturnURL == "":
		return messages.Errorf(messages.CodeInvalidRequest, "return_url is required")
	case len(req.Scopes) > messages.MaxScopes:
		return messages.Errorf(messages.CodeInvalidRequest, "at most %d scopes", messages.MaxScopes)
	}
	for _, s := range req.Scopes {
		if !messages.ValidScope(s) {
			return messages.Errorf(messages.CodeInvalidRequest, "scope %q is not a valid OAuth 2.0 scope", truncate(s, 64))
		}
	}
	if len(req.Metadata) > 0 {
		if b, err := json.Marshal(req.Metadata); err != nil || len(b) > messages.MaxMetadataBytes {
			return messages.Errorf(messages.CodeInvalidRequest, "metadata must be a JSON object of at most %d bytes", messages.MaxMetadataBytes)
		}
	}
	return nil
}

// scopes is what the authorization request asks for: the request's scopes,
// or the provider's defaults when it names none, without duplicates, and for
// OIDC with "openid" first. Static providers have none.
func scopes(requested []string, p *messages.Provider) []string {
	if p.Type == messages.ProviderStatic {
		return []string{} // static credentials have no scopes
	}
	src := requested
	if len(src) == 0 {
		src = p.Scopes
	}
	var out []string
	if p.Type == messages.ProviderOIDC {
		out = append(out, "openid")
	}
	for _, s := range src {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// withGranted is requested followed by the scopes an active or
// attention_required connection was granted that it lacks (the vault's
// store.ReopenConnection does the same).
func withGranted(requested []string, c messages.Connection) []string {
	if c.Status != messages.StatusActive && c.Status != messages.StatusAttentionRequired {
		return requested
	}
	out := slices.Clone(requested)
	for _, s := range c.Scopes {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// reservedParams are set by the handshake itself; a provider's
// authorization_params may not override them.
var reservedParams = map[string]bool{
	"response_type": true, "client_id": true, "redirect_uri": true, "scope": true, "state": true,
	"nonce": true, "code_challenge": true, "code_challenge_method": true, "response_mode": true,
	"request": true, "request_uri": true,
}

// authParams returns the provider's extra authorization parameters minus the
// reserved ones.
func authParams(in map[string]string) map[string]string {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		if !reservedParams[k] {
			out[k] = v
		}
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
