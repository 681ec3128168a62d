package api

import (
	"testing"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault/internal/static"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// FuzzRequestDecoding feeds arbitrary bodies and cursors through the same
// decoding and validation the handlers use: errors, never panics.
func FuzzRequestDecoding(f *testing.F) {
	for _, s := range []string{`{}`, `{"connection_id":"x","min_valid_seconds":-5}`, `{"limit":1e99}`, `{"cursor":"YzE6eA"}`, `[`, `null`, "\x00", `{"connection_id":"x","credentials":{"access_key_id":"a","secret_access_key":1}}`,
		`{"type":"static","provider_id":"p","provider_name":"p","strategy":{"type":"header","config":{"header":"X"}},"credential_schema":{"type":"object"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var tr messages.TokenRequest
		if natsx.Decode(data, &tr) == nil {
			_, _ = minValidity(tr.MinValidSeconds)
		}
		var lr messages.ListConnectionsRequest
		if natsx.Decode(data, &lr) == nil {
			if id, ok := decodeCursor(lr.Cursor); ok && encodeCursor(id) == "" {
				t.Fatal("cursor round trip")
			}
		}
		var vc messages.VaultClient
		if natsx.Decode(data, &vc) == nil {
			_ = validateClient(&vc, nil)
		}
		var ss storeStaticRequest
		if natsx.Decode(data, &ss) == nil && len(ss.Credentials) > 0 {
			if creds, err := static.Decode(ss.Credentials); err == nil {
				_ = static.Check(messages.Strategy{Type: messages.StrategyAWSSigV4, Config: map[string]any{"service": "s3", "region": "x"}}, creds)
			}
		}
		for _, v := range []any{&messages.VaultExchange{}, &messages.VaultCreateConnection{}, &messages.VaultFailConnection{}, &messages.ConnectionRef{}, &messages.VaultClientRef{}} {
			_ = natsx.Decode(data, v)
		}
		if id, ok := decodeCursor(string(data)); ok {
			if got, ok2 := decodeCursor(encodeCursor(id)); !ok2 || got != id {
				t.Fatalf("cursor %q does not round-trip", id)
			}
		}
	})
}
