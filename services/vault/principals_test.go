package vault_test

import (
	"context"
	"testing"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/shared/apikey"
)

// TestPrincipals: every subject serves only its callers. The Gateway's key
// opens no internal subject, no service's key opens the Gateway's subjects
// nor another service's, and the answer is forbidden, not a partial
// success.
func TestPrincipals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.connect(workspace)
	keys := map[string]string{apikey.Gateway: apiKey, apikey.Handshake: handshakeKey, apikey.Admin: adminKey, apikey.Refresher: refresherKey}
	for _, subject := range append(allSubjects, messages.SubjectVaultRefreshClaim, messages.SubjectVaultRefreshRun,
		messages.SubjectVaultRefreshDefer, messages.SubjectVaultOutboxClaim, messages.SubjectVaultOutboxAck, messages.SubjectVaultKeysStatus,
		messages.SubjectVaultOperatorConnectionsGet, messages.SubjectVaultOperatorConnectionsList, messages.SubjectVaultOperatorConnectionsRevoke) {
		for principal, key := range keys {
			if principal == callerOf(subject) {
				continue
			}
			t.Run(subject+" as "+principal, func(t *testing.T) {
				body := mustJSON(t, map[string]any{"connection_id": c.ConnectionID})
				wantCode(t, raw(t, e, subject, []byte(body), key), messages.ErrForbidden)
			})
		}
	}
	if got := e.get(c.ConnectionID); got.Status != messages.StatusActive {
		t.Fatalf("refused requests changed the connection: %s", got.Status)
	}
	// Admin reads a connection in any workspace, on the operators' subject.
	var got messages.Connection
	if err := e.as[apikey.Admin].Request(context.Background(), messages.SubjectVaultOperatorConnectionsGet, messages.VaultConnectionRef{ConnectionID: c.ConnectionID}, &got); err != nil || got.ConnectionID != c.ConnectionID {
		t.Fatalf("vault.operator.connections.get as admin: %v %+v", err, got)
	}
}

// TestWorkspacesFailClosed: a Gateway key that is not a cross-workspace key
// must name the workspace; with it, it reaches only that workspace's
// connections, from the cache or not.
func TestWorkspacesFailClosed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	c := e.connect(workspace)
	if _, err := e.token(c.ConnectionID, nil); err != nil { // cached now
		t.Fatal(err)
	}
	call := func(subject string, body any) error {
		return raw(t, e, subject, []byte(mustJSON(t, body)), workspaceKey)
	}
	for _, subject := range []string{messages.SubjectConnectionsGet, messages.SubjectTokensGet, messages.SubjectTokensRefresh, messages.SubjectConnectionsRevoke} {
		wantCode(t, call(subject, map[string]any{"connection_id": c.ConnectionID}), messages.ErrForbidden)
		wantCode(t, call(subject, map[string]any{"connection_id": c.ConnectionID, "workspace_id": "ws-other"}), messages.ErrNotFound)
	}
	wantCode(t, call(messages.SubjectConnectionsList, map[string]any{}), messages.ErrForbidden)
	for _, subject := range []string{messages.SubjectConnectionsGet, messages.SubjectTokensGet} {
		if err := call(subject, map[string]any{"connection_id": c.ConnectionID, "workspace_id": workspace}); err != nil {
			t.Fatalf("%s in its own workspace: %v", subject, err)
		}
	}
	if err := call(messages.SubjectConnectionsList, map[string]any{"workspace_id": workspace}); err != nil {
		t.Fatalf("connections.list in its own workspace: %v", err)
	}
	if got := e.get(c.ConnectionID); got.Status != messages.StatusActive {
		t.Fatalf("refused requests changed the connection: %s", got.Status)
	}
}
