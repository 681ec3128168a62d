package system_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// TestKeysStatus: an operator asks how the vault's values stand against its
// keys, over NATS (as NATS user operator, admin relaying as user admin),
// over HTTP, and with nexus-admin keys status; all three give the vault's
// answer: the key id of ENCRYPTION_KEY, what it seals, and that nothing
// is left to rotate.
func TestKeysStatus(t *testing.T) {
	b := startBroker(t, oidcprovider.Options{})
	ctx := ctxT(t)
	if _, err := b.RegisterOIDC(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if q, err := b.Connect(ctx, "acme", "ws-1"); err != nil || q.Get("status") != "active" {
		t.Fatalf("consent: %v %v", q, err)
	}
	raw, err := base64.StdEncoding.DecodeString(b.Infra.EncryptionKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(append([]byte("nexus-key-id"), raw...))
	keyID := hex.EncodeToString(sum[:4])
	check := func(how string, ks messages.KeysStatus) {
		t.Helper()
		if ks.NewestKeyID != keyID || ks.CanaryKeyID != keyID || len(ks.Keys) != 1 || ks.Keys[0].KeyID != keyID ||
			ks.Keys[0].Rows["vault.connections.refresh_token"] != 1 || ks.Keys[0].Rows["vault.provider_clients.client_secret"] != 1 ||
			len(ks.Replicas) != 1 || !ks.RotationComplete {
			t.Fatalf("%s: %+v", how, ks)
		}
	}

	var ks messages.KeysStatus
	if err := b.Operator.Request(ctx, messages.SubjectKeysStatus, messages.KeysStatusRequest{}, &ks); err != nil {
		t.Fatalf("keys.status on NATS: %v", err)
	}
	check("NATS", ks)

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.AdminURL+"/v1/keys", nil)
	req.Header.Set("Authorization", "Bearer "+b.OperatorKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	ks = messages.KeysStatus{}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &ks) != nil {
		t.Fatalf("GET /v1/keys: %d %s", resp.StatusCode, body)
	}
	check("HTTP", ks)

	code, stdout, stderr := runBinary(t, binary(t, "./services/admin/cmd/nexus-admin"),
		[]string{"PATH=/usr/bin:/bin", "ADMIN_API_KEY=" + b.OperatorKey}, "keys", "status", "--http", b.AdminURL, "-o", "json")
	ks = messages.KeysStatus{}
	if code != 0 || json.Unmarshal([]byte(stdout), &ks) != nil {
		t.Fatalf("nexus-admin keys status: exit %d\n%s%s", code, stdout, stderr)
	}
	check("nexus-admin", ks)
}
