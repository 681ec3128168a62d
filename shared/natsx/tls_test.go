package natsx_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/nexus-broker/nexus/shared/config"
	"github.com/nexus-broker/nexus/shared/logging"
	"github.com/nexus-broker/nexus/shared/natsx"
)

// pki is a test CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type pki struct {
	dir                   string
	pool                  *x509.CertPool
	server                tls.Certificate
	caFile, certFile, key string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(name string, usage x509.ExtKeyUsage, ip bool) (tls.Certificate, []byte, []byte) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		if ip {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(k)
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return c, certPEM, keyPEM
	}
	p := pki{dir: dir, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.server, _, _ = issue("nats", x509.ExtKeyUsageServerAuth, true)
	_, certPEM, keyPEM := issue("vault", x509.ExtKeyUsageClientAuth, false)
	write := func(name string, b []byte) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	p.caFile = write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	p.certFile, p.key = write("client.pem", certPEM), write("client-key.pem", keyPEM)
	return p
}

// TestTLS: a tls:// NATS URL with NATS_CA_FILE verifies the server, and
// NATS_CERT_FILE / NATS_KEY_FILE give the client certificate a server that
// verifies clients asks for; without them the connection is refused.
func TestTLS(t *testing.T) {
	p := newPKI(t)
	opts := &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{p.server}, ClientCAs: p.pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
		TLSVerify: true, TLS: true}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(s.Shutdown)
	url := strings.Replace(s.ClientURL(), "nats://", "tls://", 1)
	load := func(env map[string]string) config.Common {
		t.Helper()
		env["NATS_URL"] = url
		l := config.FromMap(env)
		c := l.Common(":0")
		if err := l.Err(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	full := load(map[string]string{"NATS_CA_FILE": p.caFile, "NATS_CERT_FILE": p.certFile, "NATS_KEY_FILE": p.key})
	nc, err := natsx.Connect(full.NATSURL, "vault", logging.Discard(), natsx.TLS(full)...)
	if err != nil {
		t.Fatalf("with the CA and a client certificate: %v", err)
	}
	if !nc.TLSRequired() {
		t.Error("the connection is not TLS")
	}
	nc.Close()
	for name, env := range map[string]map[string]string{
		"no CA (the system's roots do not know it)": {"NATS_CERT_FILE": p.certFile, "NATS_KEY_FILE": p.key},
		"no client certificate":                     {"NATS_CA_FILE": p.caFile},
	} {
		c := load(env)
		if nc, err := natsx.Connect(c.NATSURL, "vault", logging.Discard(), natsx.TLS(c)...); err == nil {
			nc.Close()
			t.Errorf("%s: connected", name)
		}
	}
	// The loader names what is wrong.
	l := config.FromMap(map[string]string{"NATS_CA_FILE": filepath.Join(p.dir, "missing.pem"), "NATS_CERT_FILE": p.certFile})
	l.Common(":0")
	if err := l.Err(); err == nil || !strings.Contains(err.Error(), "NATS_CA_FILE") || !strings.Contains(err.Error(), "NATS_KEY_FILE") {
		t.Fatalf("problems: %v", err)
	}
}
