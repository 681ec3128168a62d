package egress_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/egress"
)

// These tests run real servers on loopback aliases: Linux routes all of
// 127.0.0.0/8 to lo, so 127.0.0.1 plays an allowed provider network and
// 127.0.0.2 one the guard must refuse.

// counting is a server on addr that counts the connections it accepts.
type counting struct {
	*httptest.Server
	conns atomic.Int32
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s (Linux routes 127.0.0.0/8 to lo): %v", addr, err)
	}
	return ln
}

func serve(t *testing.T, addr string, h http.HandlerFunc) *counting {
	t.Helper()
	c := &counting{Server: httptest.NewUnstartedServer(h)}
	c.Listener.Close()
	c.Listener = listen(t, addr)
	c.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			c.conns.Add(1)
		}
	}
	c.Start()
	t.Cleanup(c.Close)
	return c
}

// closedPort is a port on host nothing listens on.
func closedPort(t *testing.T, host string) string {
	ln := listen(t, host+":0")
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	return port
}

func ok(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"ok":true}`)) }

var loopback1 = "127.0.0.1/32"

func get(c *egress.Client, u string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return c.Do(req)
}

// refusal is the guard's own error, without the URL http.Client puts
// around it.
func refusal(t *testing.T, err error) *egress.RefusedError {
	t.Helper()
	var re *egress.RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a refusal", err)
	}
	return re
}

// TestRefusedBeforeConnecting: a URL at a refused address is refused
// without a connection, with the same words whether the port is open or
// closed, over http and https.
func TestRefusedBeforeConnecting(t *testing.T) {
	target := serve(t, "127.0.0.2:0", ok)
	_, open, _ := net.SplitHostPort(target.Listener.Addr().String())
	closed := closedPort(t, "127.0.0.2")
	c := egress.New(egress.Options{Private: networks(t, loopback1)})
	for _, scheme := range []string{"http", "https"} {
		var msgs []string
		for _, port := range []string{open, closed} {
			_, err := get(c, scheme+"://127.0.0.2:"+port+"/token")
			msgs = append(msgs, refusal(t, err).Error())
		}
		if msgs[0] != msgs[1] {
			t.Errorf("%s: open and closed ports answer differently:\n%s\n%s", scheme, msgs[0], msgs[1])
		}
		if want := "127.0.0.2 is a loopback address; add its network to PROVIDER_PRIVATE_NETWORKS to allow it"; msgs[0] != want {
			t.Errorf("%s: %s\nwant %s", scheme, msgs[0], want)
		}
	}
	if n := target.conns.Load(); n != 0 {
		t.Errorf("the refused listener saw %d connection(s)", n)
	}
}

// TestAllowedNetwork: what PROVIDER_PRIVATE_NETWORKS lists is reached,
// over plain http too; with nothing listed, loopback is refused.
func TestAllowedNetwork(t *testing.T) {
	srv := serve(t, "127.0.0.1:0", ok)
	resp, err := get(egress.New(egress.Options{Private: networks(t, loopback1)}), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != `{"ok":true}` {
		t.Errorf("HTTP %d %s", resp.StatusCode, body)
	}
	_, err = get(egress.New(egress.Options{}), srv.URL)
	refusal(t, err)
	if srv.conns.Load() != 1 {
		t.Errorf("connections = %d, want 1 (the allowed request only)", srv.conns.Load())
	}
}

// TestHTTPS: https is checked by address like http; the certificate is
// checked against the URL's host.
func TestHTTPS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(ok)) // on 127.0.0.1
	t.Cleanup(srv.Close)
	pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	c := egress.New(egress.Options{Private: networks(t, loopback1), RootCAs: pool})
	resp, err := get(c, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, err = get(egress.New(egress.Options{RootCAs: pool}), srv.URL)
	refusal(t, err)
}

// resolver answers names from a table, counting lookups.
type resolver struct {
	mu      sync.Mutex
	answers map[string][][]netip.Addr // successive answers; the last repeats
	lookups map[string]int
}

func (r *resolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seq, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	i := min(r.lookups[host], len(seq)-1)
	r.lookups[host]++
	return seq[i], nil
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

// TestNames: a name is judged by what it resolves to, and the connection
// goes to the address that was checked.
func TestNames(t *testing.T) {
	refused := serve(t, "127.0.0.2:0", ok)
	allowed := serve(t, "127.0.0.1:0", ok)
	_, rport, _ := net.SplitHostPort(refused.Listener.Addr().String())
	_, aport, _ := net.SplitHostPort(allowed.Listener.Addr().String())
	r := &resolver{lookups: map[string]int{}, answers: map[string][][]netip.Addr{
		"internal.example.test": {addrs("127.0.0.2")},
		"mixed.example.test":    {addrs("127.0.0.2", "127.0.0.1")},
		// Rebinding: allowed at the first lookup, refused afterwards.
		"rebind.example.test": {addrs("127.0.0.1"), addrs("127.0.0.2")},
	}}
	c := egress.New(egress.Options{Private: networks(t, loopback1), Resolver: r})

	_, err := get(c, "http://internal.example.test:"+rport+"/")
	if got, want := refusal(t, err).Error(), "internal.example.test resolves to 127.0.0.2, a loopback address; add its network to PROVIDER_PRIVATE_NETWORKS to allow it"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}

	// Of several addresses, only those that pass are dialled.
	resp, err := get(c, "http://mixed.example.test:"+aport+"/")
	if err != nil {
		t.Fatalf("mixed: %v", err)
	}
	resp.Body.Close()

	// Each connection uses the answer it checked: the second lookup
	// (after the idle connection is gone) says 127.0.0.2 and is refused.
	resp, err = get(c, "http://rebind.example.test:"+aport+"/")
	if err != nil {
		t.Fatalf("rebind, first: %v", err)
	}
	resp.Body.Close()
	c.CloseIdleConnections()
	_, err = get(c, "http://rebind.example.test:"+aport+"/")
	refusal(t, err)

	if n := refused.conns.Load(); n != 0 {
		t.Errorf("the refused listener saw %d connection(s)", n)
	}
	if n := allowed.conns.Load(); n != 2 {
		t.Errorf("the allowed listener saw %d connection(s), want 2", n)
	}

	// localhost through the system's resolver: loopback, refused when not listed.
	_, err = get(egress.New(egress.Options{Private: networks(t, "127.0.0.2/32")}), "http://localhost:"+aport+"/")
	if re := refusal(t, err); re.Host != "localhost" || !re.Addr.IsLoopback() {
		t.Errorf("localhost: %v", re)
	}
	if n := allowed.conns.Load(); n != 2 {
		t.Errorf("localhost reached the listener: %d connection(s)", n)
	}
}

// TestRedirectsNotFollowed: a 3xx comes back as it is; its Location is
// never requested, whether it points at a refused address or an allowed one.
func TestRedirectsNotFollowed(t *testing.T) {
	refused := serve(t, "127.0.0.2:0", ok)
	elsewhere := serve(t, "127.0.0.1:0", ok)
	for _, target := range []*counting{refused, elsewhere} {
		from := serve(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/token", http.StatusTemporaryRedirect)
		})
		c := egress.New(egress.Options{Private: networks(t, loopback1)})
		req, _ := http.NewRequest(http.MethodPost, from.URL+"/token", strings.NewReader("grant_type=refresh_token&refresh_token=secret"))
		req.SetBasicAuth("client", "client-secret")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTemporaryRedirect {
			t.Errorf("status = %d, want the 307 itself", resp.StatusCode)
		}
	}
	if refused.conns.Load() != 0 || elsewhere.conns.Load() != 0 {
		t.Errorf("a redirect was followed: %d, %d connection(s)", refused.conns.Load(), elsewhere.conns.Load())
	}
}

// TestBodyCap: past the cap, reading fails; a document is never handed on
// cut short.
func TestBodyCap(t *testing.T) {
	const limit = 1000
	srv := serve(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscan(r.URL.Query().Get("n"), &n)
		// A JSON document of n bytes: {"k":"xxx...x"}
		_, _ = io.WriteString(w, `{"k":"`+strings.Repeat("x", n-8)+`"}`)
	})
	c := egress.New(egress.Options{Private: networks(t, loopback1), MaxBody: limit})
	read := func(n int) ([]byte, error) {
		resp, err := get(c, fmt.Sprintf("%s/?n=%d", srv.URL, n))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return io.ReadAll(resp.Body)
	}
	if b, err := read(limit); err != nil || len(b) != limit {
		t.Errorf("exactly the cap: %d bytes, %v", len(b), err)
	}
	_, err := read(limit + 1)
	var be *egress.BodyTooLargeError
	if !errors.As(err, &be) || !errors.Is(err, egress.ErrBodyTooLarge) {
		t.Fatalf("one byte past the cap: %v", err)
	}
	if want := "the response from 127.0.0.1 is larger than 1000 bytes, the most the broker reads from a provider"; err.Error() != want {
		t.Errorf("err = %q", err)
	}
	// A decoder reading through it fails instead of seeing a short document.
	resp, err := get(c, fmt.Sprintf("%s/?n=%d", srv.URL, 100000))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if !egress.IsBodyTooLarge(err) {
		t.Errorf("decode: %v", err)
	}
	// Flattened into another library's text, it is still recognised.
	if !egress.IsBodyTooLarge(fmt.Errorf("oauth2: cannot fetch token: %v", be)) || egress.IsBodyTooLarge(errors.New("other")) {
		t.Error("IsBodyTooLarge")
	}
}

// TestTimeouts: an endpoint that never answers, never completes the TLS
// handshake, or trickles its body forever is given up on.
func TestTimeouts(t *testing.T) {
	const timeout = 300 * time.Millisecond
	hang := listen(t, "127.0.0.1:0") // accepts (the kernel does) and never speaks
	t.Cleanup(func() { hang.Close() })
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	trickle := serve(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		for {
			select {
			case <-stop:
				return
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
				_, _ = w.Write([]byte(" "))
				w.(http.Flusher).Flush()
			}
		}
	})
	c := egress.New(egress.Options{Private: networks(t, loopback1), Timeout: timeout})
	for name, u := range map[string]string{
		"no response header": "http://" + hang.Addr().String() + "/",
		"no TLS handshake":   "https://" + hang.Addr().String() + "/",
		"endless body":       trickle.URL + "/",
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			resp, err := get(c, u)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("err = %v, want a timeout", err)
			}
			if d := time.Since(start); d > 10*timeout {
				t.Errorf("gave up after %v", d)
			}
		})
	}
}

// TestLoad: PROVIDER_PRIVATE_NETWORKS is read with the service's other
// variables, and its problems are reported with theirs.
func TestLoad(t *testing.T) {
	l := config.FromMap(map[string]string{egress.Variable: "127.0.0.0/8, ::1/128"})
	if n := egress.Load(l); n.String() != "127.0.0.0/8,::1/128" || l.Err() != nil {
		t.Errorf("Load = %s, %v", n, l.Err())
	}
	l = config.FromMap(map[string]string{egress.Variable: "10.0.0.0/8,banana,8.8.8.8/32"})
	egress.Load(l)
	l.Required("OTHER", "another variable")
	err := l.Err()
	if err == nil || strings.Count(err.Error(), egress.Variable+": ") != 2 || !strings.Contains(err.Error(), "OTHER") {
		t.Errorf("problems: %v", err)
	}
	if n := egress.Load(config.FromMap(nil)); len(n) != 0 {
		t.Errorf("unset: %v", n)
	}
}
