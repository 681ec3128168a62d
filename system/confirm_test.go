package system_test

import (
	"errors"
	"io"
	"testing"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/system/systemtest"
	"github.com/nexus-broker/nexus/testing/oidcprovider"
)

// TestConsentConfirmation: a Gateway that requires confirmation gets its
// connection only when it confirms, as the app does for the user it started
// the consent for, with the value the browser brought back. A phished link
// opened by someone else ends at the app with a value the app never
// confirms for them, and the connection stays pending, then fails.
func TestConsentConfirmation(t *testing.T) {
	b := startBroker(t, oidcprovider.Options{})
	ctx := ctxT(t)
	if _, err := b.RegisterOIDC(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	var begin messages.BeginReply
	if err := b.Gateway.Request(ctx, messages.SubjectHandshakeBegin, messages.BeginRequest{
		Provider: "acme", WorkspaceID: "ws-1", ReturnURL: b.Agent.URL + "/return", RequireConfirmation: true,
	}, &begin); err != nil {
		t.Fatal(err)
	}
	resp, err := systemtest.NewBrowser().Get(begin.AuthURL)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	q := resp.Request.URL.Query()
	value := q.Get("confirmation")
	if resp.Request.URL.Path != "/return" || q.Get("status") != "pending" || q.Get("connection_id") != begin.ConnectionID || len(value) < 40 {
		t.Fatalf("the browser came back to %s", resp.Request.URL.Redacted())
	}
	confirm := func(workspace, v string) (messages.Connection, error) {
		var c messages.Connection
		err := b.Gateway.Request(ctx, messages.SubjectConnectionsConfirm, messages.ConfirmRequest{ConnectionID: begin.ConnectionID, WorkspaceID: workspace, Confirmation: v}, &c)
		return c, err
	}
	status := func() messages.ConnectionStatus {
		var c messages.Connection
		if err := b.Gateway.Request(ctx, messages.SubjectConnectionsGet, messages.ConnectionRef{ConnectionID: begin.ConnectionID, WorkspaceID: "ws-1"}, &c); err != nil {
			t.Fatal(err)
		}
		return c.Status
	}
	if st := status(); st != messages.StatusPending {
		t.Fatalf("before confirmation the connection is %s", st)
	}
	if err := b.Gateway.Request(ctx, messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: begin.ConnectionID, WorkspaceID: "ws-1"}, nil); !errors.Is(err, messages.ErrNotActive) {
		t.Fatalf("tokens.get before confirmation: %v, want not_active", err)
	}
	for _, tc := range []struct {
		name, workspace, value string
		want                   error
	}{
		{"wrong value", "ws-1", "not-the-value-the-browser-was-given-0123", messages.ErrForbidden},
		{"another workspace", "ws-2", value, messages.ErrNotFound},
	} {
		if _, err := confirm(tc.workspace, tc.value); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	c, err := confirm("ws-1", value)
	if err != nil || c.Status != messages.StatusActive {
		t.Fatalf("confirm: %+v %v", c, err)
	}
	var cred messages.Credential
	if err := b.Gateway.Request(ctx, messages.SubjectTokensGet, messages.TokenRequest{ConnectionID: begin.ConnectionID, WorkspaceID: "ws-1"}, &cred); err != nil || cred.AccessToken == "" {
		t.Fatalf("tokens.get after confirmation: %v", err)
	}
	if _, err := confirm("ws-1", value); !errors.Is(err, messages.ErrNotActive) {
		t.Fatalf("a replayed confirmation: %v, want not_active", err)
	}
}
