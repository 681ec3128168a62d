package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// TestKeysStatus: operators get the vault's report on its keys, on NATS and
// HTTP, as the vault gave it; nobody else does; a vault that does not answer
// is unavailable.
func TestKeysStatus(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var got messages.KeysStatus
	if err := e.request(messages.SubjectKeysStatus, messages.KeysStatusRequest{}, &got); err != nil || !reflect.DeepEqual(got, keysStatus) {
		t.Fatalf("keys.status on NATS: %+v, %v", got, err)
	}
	status, body := e.api(http.MethodGet, "/v1/keys", nil)
	got = messages.KeysStatus{}
	if status != http.StatusOK || json.Unmarshal(body, &got) != nil || !reflect.DeepEqual(got, keysStatus) {
		t.Fatalf("GET /v1/keys: %d %s", status, body)
	}
	if status, body := e.api(http.MethodPost, "/v1/keys", []byte("{}")); status != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/keys: %d %s", status, body)
	}

	// Only operators.
	hs := &natsx.Client{NC: e.nc, Prefix: messages.DefaultPrefix, APIKey: handshakeKey}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Request(ctx, messages.SubjectKeysStatus, messages.KeysStatusRequest{}, nil); !errors.Is(err, messages.ErrForbidden) {
		t.Errorf("the handshake on keys.status: %v", err)
	}
	if status, _ := e.do(http.MethodGet, "/v1/keys", "", "Bearer "+handshakeKey, nil); status != http.StatusForbidden {
		t.Errorf("the handshake on GET /v1/keys: %d", status)
	}
	if status, _ := e.do(http.MethodGet, "/v1/keys", "", "", nil); status != http.StatusUnauthorized {
		t.Errorf("no key on GET /v1/keys: %d", status)
	}

	// The vault gone: unavailable, said so.
	if err := e.vault.svc.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.request(messages.SubjectKeysStatus, messages.KeysStatusRequest{}, nil); !errors.Is(err, messages.ErrUnavailable) {
		t.Fatalf("keys.status without a vault: %v", err)
	}
}
