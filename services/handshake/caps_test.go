package handshake_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The callback reads at most 8 KiB of query: a longer one is refused before
// anything else happens, and leaves the consent to the genuine callback.
// (The hosted form's 64 KiB body cap is TestStaticFormRefusals'; request
// lines and headers beyond 64 KiB are refused by shared/httpserver.Serve.)
func TestCallbackQueryCap(t *testing.T) {
	e := newEnv(t)
	rep := e.mustBegin("oidc")
	b := e.browser()
	st := e.connect(b, rep.AuthURL).Query().Get("state")
	long := url.Values{"code": {"the-code"}, "state": {st}, "pad": {strings.Repeat("p", 8<<10)}}
	resp, body := e.callback(b, long)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a 8 KiB callback query: HTTP %d: %s", resp.StatusCode, body)
	}
	if _, _, n := e.fakes.counts(); n != 0 || len(e.fakes.failures()) != 0 {
		t.Fatalf("an over-long callback reached the vault (%d exchanges, %d failures)", n, len(e.fakes.failures()))
	}
	resp, body = e.callback(b, url.Values{"code": {"the-code"}, "state": {st}})
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "status=active") {
		t.Fatalf("the genuine callback after it: HTTP %d: %s", resp.StatusCode, body)
	}
}
