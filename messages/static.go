package messages

import "log/slog"

// VaultStoreStatic carries the credentials a user submitted, already
// validated against the provider's JSON Schema by the handshake. The vault
// validates them again (it does not trust the bus).
type VaultStoreStatic struct {
	ConnectionID string         `json:"connection_id"`
	Credentials  map[string]any `json:"credentials"`
	// Confirm: as for VaultExchange.
	Confirm *Confirmation `json:"confirm,omitempty"`
}

// LogValue keeps the credentials out of logs.
func (v VaultStoreStatic) LogValue() slog.Value {
	return slog.GroupValue(slog.String("connection_id", v.ConnectionID), slog.String("credentials", "[redacted]"))
}

// Verification is an optional request the vault makes with new static
// credentials, applied with the provider's strategy, before it accepts them:
// a 2xx (or ExpectStatus) answer means the credentials work.
type Verification struct {
	Method       string `json:"method,omitempty"` // GET by default
	URL          string `json:"url"`
	ExpectStatus int    `json:"expect_status,omitempty"`
}
