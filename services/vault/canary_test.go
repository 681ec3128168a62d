package vault_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/vault"
	"github.com/nexus-broker/nexus/services/vault/internal/keyring"
)

func TestCanaryAndKeyRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.connect(workspace)
	cred, err := e.token(c.ConnectionID, intp(0))
	if err != nil {
		t.Fatal(err)
	}
	e.putClient(apiKeyClient(staticProviderID, "keys"))
	sc := e.connectStatic(staticProviderID, map[string]any{"api_key": "rotated-key-value"})
	keyA, keyB := e.key, randomKey(t)
	if err := e.svc.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Another key: refuse to start, saying which key ids and how to fix it.
	_, err = vault.Start(context.Background(), e.config(keyB), nil)
	if err == nil {
		t.Fatal("started with a key that does not open the database")
	}
	msg := err.Error()
	for _, want := range []string{"ENCRYPTION_KEY does not open this database", keyring.IDOf(keyA).String(), keyring.IDOf(keyB).String(), "ENCRYPTION_KEYS_PREVIOUS"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("error %q does not mention %q", msg, want)
		}
	}
	for _, k := range [][]byte{keyA, keyB} {
		if strings.Contains(msg, b64(k)) {
			t.Fatal("error contains key material")
		}
	}

	// New key with the old one as previous: starts and re-seals everything.
	svc := e.start(keyB, keyA)
	e.key = keyB
	within(t, "every value, the canary last, is re-sealed under the new key", func() bool { return e.keys().RotationComplete })
	var n int
	idB := keyring.IDOf(keyB)
	if err := e.pool.QueryRow(context.Background(), `select
		(select count(*) from vault.connections where substring(access_token from 2 for 4) <> $1 or substring(refresh_token from 2 for 4) <> $1
			or substring(static_credentials from 2 for 4) <> $1) +
		(select count(*) from vault.provider_clients where substring(client_secret from 2 for 4) <> $1) +
		(select count(*) from vault.canary where substring(sealed from 2 for 4) <> $1)`, idB[:]).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d values still sealed with the old key after rotation", n)
	}
	if err := svc.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	// The old key can now be dropped; everything still opens.
	e.start(keyB)
	got, err := e.token(c.ConnectionID, intp(0))
	if err != nil || got.AccessToken != cred.AccessToken {
		t.Fatalf("after rotation: %v", err)
	}
	if got, err := e.token(sc.ConnectionID, nil); err != nil || got.Credentials["api_key"] != "rotated-key-value" {
		t.Fatalf("static credentials after rotation: %v", err)
	}
	var r messages.Credential
	e.mustCall(messages.SubjectTokensRefresh, messages.TokenRequest{ConnectionID: c.ConnectionID}, &r) // client secret and refresh token open
	// And the original key alone is refused now.
	if _, err := vault.Start(context.Background(), e.config(keyA), nil); err == nil || !strings.Contains(err.Error(), "ENCRYPTION_KEY") {
		t.Fatalf("old key alone: %v", err)
	}
}
