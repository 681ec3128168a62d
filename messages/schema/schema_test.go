package schema_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/messages"
	"github.com/nexus-broker/nexus/messages/schema"
	"github.com/nexus-broker/nexus/messages/schema/internal/gen"
)

// TestSchemasInSync: the checked-in schemas are what the messages types
// generate now, file for file; a change to messages without `make
// schemas` fails here.
func TestSchemasInSync(t *testing.T) {
	want, err := gen.Files("..")
	if err != nil {
		t.Fatal(err)
	}
	have, err := fs.Glob(os.DirFS("."), "*.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range have {
		if _, ok := want[f]; !ok {
			t.Errorf("%s is checked in but no contract type generates it: run make schemas", f)
		}
	}
	for name, b := range want {
		got, err := os.ReadFile(name)
		if err != nil {
			t.Errorf("%s is not checked in: run make schemas", name)
			continue
		}
		if !bytes.Equal(got, b) {
			t.Errorf("%s is out of date with the messages types: run make schemas", name)
		}
	}
}

// TestIndexCoversTheContract: every Gateway subject of messages has a
// request and a reply schema, and every event subject a body schema.
func TestIndexCoversTheContract(t *testing.T) {
	idx, err := schema.ReadIndex()
	if err != nil {
		t.Fatal(err)
	}
	v, err := schema.NewValidator()
	if err != nil {
		t.Fatalf("the schemas do not compile: %v", err)
	}
	for _, s := range []string{messages.SubjectHandshakeBegin, messages.SubjectConnectionsGet, messages.SubjectConnectionsList, messages.SubjectConnectionsRevoke, messages.SubjectConnectionsConfirm, messages.SubjectTokensGet, messages.SubjectTokensRefresh} {
		p, ok := idx.Subjects[s]
		if !ok || p.Principal != "gateway" {
			t.Errorf("index: %s = %+v, want a gateway subject", s, p)
		}
	}
	for s, p := range idx.Subjects {
		for _, f := range []string{p.Request, p.Reply} {
			if err := v.Validate(f, []byte("{}")); err != nil && strings.HasPrefix(err.Error(), "no schema") {
				t.Errorf("%s names %s, which is not there", s, f)
			}
		}
	}
	if idx.Events[messages.EventSubjectPrefix+">"] != "Event.json" || idx.Events[messages.ProviderEventSubjectPrefix+">"] != "ProviderEvent.json" || idx.Error != "ErrorBody.json" {
		t.Errorf("index events/error: %+v %q", idx.Events, idx.Error)
	}
}

// TestSchemasHoldTheContract: what the Go types write validates, and what
// the contract refuses does not: a missing required field, a field the
// type does not have, a status, code or event type messages does not
// define, a time that is not RFC 3339.
func TestSchemasHoldTheContract(t *testing.T) {
	v, err := schema.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	encode := func(x any) string {
		b, err := json.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tc := range []struct {
		name, file, doc string
		ok              bool
	}{
		{"a token request", "TokenRequest.json", `{"connection_id":"c1","workspace_id":"ws-1","min_valid_seconds":0}`, true},
		{"a token request without its connection", "TokenRequest.json", `{"workspace_id":"ws-1"}`, false},
		{"a token request with a field it lacks", "TokenRequest.json", `{"connection_id":"c1","min_valid":5}`, false},
		{"a zero connection (nil slices and maps as null)", "Connection.json", encode(messages.Connection{ConnectionID: "c1", Status: messages.StatusActive, CreatedAt: at, UpdatedAt: at}), true},
		{"every status", "ListConnectionsReply.json", encode(messages.ListConnectionsReply{Connections: statuses(at)}), true},
		{"a status messages does not define", "Connection.json", strings.Replace(encode(messages.Connection{Status: messages.StatusActive, CreatedAt: at, UpdatedAt: at}), `"active"`, `"paused"`, 1), false},
		{"a time that is not RFC 3339", "BeginReply.json", `{"connection_id":"c1","auth_url":"http://x","expires_at":"tomorrow"}`, false},
		{"a rate_limited error", "ErrorBody.json", encode(messages.ErrorBody{Error: &messages.Error{Code: messages.CodeRateLimited, Message: "slow down", RetryAfterSeconds: 3}}), true},
		{"an error code messages does not define", "ErrorBody.json", `{"error":{"code":"teapot","message":"short and stout"}}`, false},
		{"an error reply without its error", "ErrorBody.json", `{"error":null}`, false},
		{"a lifecycle event", "Event.json", encode(messages.Event{ID: "e1", Type: messages.EventRevoked.FullType(), ConnectionID: "c1", Provider: "p", WorkspaceID: "ws-1", OccurredAt: at}), true},
		{"an event type messages does not define", "Event.json", encode(messages.Event{ID: "e1", Type: "nexus.connection.paused.v1", ConnectionID: "c1", Provider: "p", WorkspaceID: "ws-1", OccurredAt: at}), false},
		{"a credential with an unknown strategy", "Credential.json", encode(messages.Credential{ConnectionID: "c1", AuthType: messages.AuthStatic, Strategy: messages.Strategy{Type: "carrier_pigeon"}}), false},
		{"an empty request", "Empty.json", `{}`, true},
		{"a provider document as an operator writes it", "ProviderCreate.json", `{"name":"github","type":"oauth2","client_id":"x","client_secret":"y","scopes":["repo"]}`, true},
		{"a provider document with an id", "ProviderCreate.json", `{"id":"p1","name":"github","type":"oauth2"}`, false},
		{"a provider document with the zero id a Go client sends", "ProviderCreate.json", `{"id":"","name":"github","type":"oauth2"}`, true},
	} {
		err := v.Validate(tc.file, []byte(tc.doc))
		if tc.ok && err != nil || !tc.ok && err == nil {
			t.Errorf("%s (%s): valid = %v, want %v: %v", tc.name, tc.file, err == nil, tc.ok, err)
		}
	}
	for _, c := range messages.ErrorCodes {
		if err := v.Validate("ErrorBody.json", []byte(encode(messages.ErrorBody{Error: messages.Errorf(c, "why")}))); err != nil {
			t.Errorf("an error reply with code %s: %v", c, err)
		}
	}
}

func statuses(at time.Time) []messages.Connection {
	var out []messages.Connection
	for _, s := range messages.ConnectionStatuses {
		out = append(out, messages.Connection{ConnectionID: "c-" + string(s), Status: s, Scopes: []string{}, CreatedAt: at, UpdatedAt: at})
	}
	return out
}
