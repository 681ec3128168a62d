package natsx

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/nexus-broker/nexus/messages"
)

// general is what Decode does for a body decodeFast leaves to it.
func general(data []byte) (messages.TokenRequest, error) {
	var v messages.TokenRequest
	err := jsonv2.Unmarshal(data, &v, jsonv2.RejectUnknownMembers(true))
	return v, err
}

func TestDecodeFastTakesThePlainForm(t *testing.T) {
	ten := 10
	sent, _ := json.Marshal(messages.TokenRequest{ConnectionID: "01a23164-90e4-7b9e-9415-a2a74b385532", WorkspaceID: "ws-1", MinValidSeconds: &ten})
	for _, in := range []string{
		string(sent), // what the Gateway's client sends
		`{"connection_id":"c"}`,
		`{}`,
		" {\n\t\"workspace_id\" : \"w\" ,\r\n \"connection_id\":\"c\", \"min_valid_seconds\": 0 } ",
		`{"connection_id":"","min_valid_seconds":999999999}`,
	} {
		var fast messages.TokenRequest
		if !decodeFast([]byte(in), &fast) {
			t.Errorf("decodeFast(%q) left a plain body to the general decoder", in)
			continue
		}
		want, err := general([]byte(in))
		if err != nil || !reflect.DeepEqual(fast, want) {
			t.Errorf("decodeFast(%q) = %+v, the decoder says %+v (%v)", in, fast, want, err)
		}
	}
}

func TestDecodeFastLeavesTheRest(t *testing.T) {
	for _, in := range []string{
		`{"connection_id":"a","connection_id":"b"}`, // twice: refused, by the decoder
		`{"connection_id":"a\u0062"}`,               // an escape
		`{"connection_id":"a\"b"}`,
		"{\"connection_id\":\"caf\xc3\xa9\"}", // not ASCII
		"{\"connection_id\":\"a\tb\"}",        // a control character
		`{"Connection_ID":"a"}`,               // names match exactly
		`{"connection_id":"a","extra":1}`,
		`{"min_valid_seconds":null}`,
		`{"min_valid_seconds":-1}`,
		`{"min_valid_seconds":1.5}`,
		`{"min_valid_seconds":1e2}`,
		`{"min_valid_seconds":01}`,
		`{"min_valid_seconds":1234567890}`, // more digits than it reads
		`{"min_valid_seconds":"10"}`,
		`{"connection_id":7}`,
		`{"connection_id":"a",}`,
		`{"connection_id":"a"} {}`,
		`{"connection_id":"a"`,
		`{"connection_id" "a"}`,
		`null`,
		`[]`,
		``,
	} {
		fast := messages.TokenRequest{ConnectionID: "untouched"}
		if decodeFast([]byte(in), &fast) {
			t.Errorf("decodeFast(%q) read it: %+v", in, fast)
		}
		if fast.ConnectionID != "untouched" {
			t.Errorf("decodeFast(%q) wrote into its target before giving up", in)
		}
	}
	// And Decode still answers for them as the general decoder does.
	var v messages.TokenRequest
	if err := Decode([]byte(`{"connection_id":"a","connection_id":"b"}`), &v); err == nil {
		t.Fatal("a duplicated name passed Decode")
	}
	if err := Decode([]byte(`{"connection_id":"a\u0062"}`), &v); err != nil || v.ConnectionID != "ab" {
		t.Fatalf("an escaped body: %+v, %v", v, err)
	}
}

// FuzzDecodeFast holds the fast path to the general decoder: whatever it
// reads, the decoder reads the same way; whatever it leaves, it leaves
// untouched.
func FuzzDecodeFast(f *testing.F) {
	for _, s := range []string{`{"connection_id":"a","workspace_id":"w","min_valid_seconds":5}`, `{}`, ` { "connection_id" : "x" } `,
		`{"connection_id":"a","connection_id":"a"}`, `{"min_valid_seconds":00}`, `{"workspace_id":"\u0041"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		data = bytes.TrimSpace(data) // as Decode does first
		var fast messages.TokenRequest
		if !decodeFast(data, &fast) {
			if !reflect.DeepEqual(fast, messages.TokenRequest{}) {
				t.Fatalf("decodeFast(%q) gave up after writing %+v", data, fast)
			}
			return
		}
		want, err := general(data)
		if err != nil {
			t.Fatalf("decodeFast(%q) read what the decoder refuses (%v)", data, err)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("decodeFast(%q) = %+v, the decoder reads %+v", data, fast, want)
		}
	})
}
