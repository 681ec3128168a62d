package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/services/admin/internal/secretdigest"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// TestClientSecretDigest: admin keeps a digest of the client secret it
// last handed the vault, for operators to compare with a secret they hold;
// it changes with the secret only, is the broker's to set, and the
// handshake never sees it.
func TestClientSecretDigest(t *testing.T) {
	t.Parallel()
	e := setup(t)
	p := e.create(oauth2Provider("github", "digest-secret-1-0123456789"))
	if !secretdigest.Matches(p.ClientSecretDigest, "digest-secret-1-0123456789") {
		t.Fatalf("after create: digest %q is not the secret's", p.ClientSecretDigest)
	}
	update := func(patch string) (messages.Provider, error) {
		var out messages.Provider
		err := e.request(messages.SubjectProvidersUpdate, messages.ProviderUpdate{Provider: "github", Patch: json.RawMessage(patch)}, &out)
		return out, err
	}
	kept, err := update(`{"scopes": ["repo"]}`)
	if err != nil || kept.ClientSecretDigest != p.ClientSecretDigest {
		t.Fatalf("an update without a secret changed the digest: %v, %q", err, kept.ClientSecretDigest)
	}
	rotated, err := update(`{"client_secret": "digest-secret-2-0123456789"}`)
	if err != nil || !secretdigest.Matches(rotated.ClientSecretDigest, "digest-secret-2-0123456789") ||
		secretdigest.Matches(rotated.ClientSecretDigest, "digest-secret-1-0123456789") {
		t.Fatalf("after a new secret: %v, %q", err, rotated.ClientSecretDigest)
	}
	if _, err := update(`{"client_secret_digest": "argon2id$v=19$m=8,t=1,p=1$AAAA$AAAA"}`); !errors.Is(err, messages.ErrInvalidRequest) {
		t.Errorf("a patch setting the digest: %v, want invalid_request", err)
	}
	if same, err := update(`{"client_secret_digest": "` + rotated.ClientSecretDigest + `"}`); err != nil || same.ClientSecretDigest != rotated.ClientSecretDigest {
		t.Errorf("a patch sending the digest back as it is: %v", err)
	}
	hs := &natsx.Client{NC: e.nc, Prefix: messages.DefaultPrefix, APIKey: handshakeKey}
	var forHandshake messages.Provider
	if err := hs.Request(context.Background(), messages.SubjectProvidersGet, messages.ProviderRef{Provider: "github"}, &forHandshake); err != nil {
		t.Fatal(err)
	}
	if forHandshake.ID != p.ID || forHandshake.ClientSecretDigest != "" {
		t.Errorf("the handshake's read carries the digest: %q", forHandshake.ClientSecretDigest)
	}
}
