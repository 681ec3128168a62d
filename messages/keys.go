package messages

import "time"

// KeysStatusRequest asks how the vault's sealed values stand against its
// encryption keys (v1.admin.keys.status, relayed as v1.vault.keys.status).
type KeysStatusRequest struct{}

// KeysStatus is what is sealed under each encryption key, the key a
// rotation moves everything to, and the vaults running now. Key ids are the
// first 4 bytes of a hash of the key, in hex: they name a key without
// revealing it.
type KeysStatus struct {
	// NewestKeyID is the key vaults started sealing with last: a rotation
	// re-seals every value under it.
	NewestKeyID string `json:"newest_key_id"`
	// CanaryKeyID seals the canary, which moves to the newest key last,
	// once nothing is sealed under another.
	CanaryKeyID string `json:"canary_key_id"`
	// Keys is every key the database has used, oldest first.
	Keys []KeyStatus `json:"keys"`
	// OlderFormatRows counts rows holding a value in a ciphertext format
	// older than the current one; the rotation pass re-seals them.
	OlderFormatRows int64 `json:"older_format_rows"`
	// Replicas are the vaults running now.
	Replicas []VaultReplica `json:"replicas"`
	// RotationComplete: every value and the canary are under NewestKeyID in
	// the current format and every running vault seals with it, so every
	// other key may be removed from ENCRYPTION_KEYS_PREVIOUS.
	RotationComplete bool `json:"rotation_complete"`
}

// KeyStatus is one encryption key and what it seals.
type KeyStatus struct {
	KeyID string `json:"key_id"`
	// ActivatedAt is when a vault first sealed with the key; absent for keys
	// in use before the vault recorded it.
	ActivatedAt *time.Time `json:"activated_at,omitempty"`
	// Rows counts, per sealed column ("vault.connections.refresh_token"),
	// the rows whose value in it the key seals.
	Rows map[string]int64 `json:"rows"`
	// Total is the sum of Rows.
	Total int64 `json:"total"`
}

// VaultReplica is a running vault: the key it seals with and every key it
// holds (ENCRYPTION_KEY and ENCRYPTION_KEYS_PREVIOUS).
type VaultReplica struct {
	ID           string    `json:"id"`
	SealingKeyID string    `json:"sealing_key_id"`
	KeyIDs       []string  `json:"key_ids"`
	StartedAt    time.Time `json:"started_at"`
	SeenAt       time.Time `json:"seen_at"`
}
