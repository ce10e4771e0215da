package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/testenv"
)

func TestCACertificate(t *testing.T) {
	a := newTestAuthority(t)
	ca := a.caCert
	if !ca.IsCA || !ca.BasicConstraintsValid || ca.MaxPathLen != 0 || !ca.MaxPathLenZero {
		t.Errorf("basic constraints: IsCA=%v valid=%v MaxPathLen=%d zero=%v, want a CA with pathlen 0",
			ca.IsCA, ca.BasicConstraintsValid, ca.MaxPathLen, ca.MaxPathLenZero)
	}
	if ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Error("CA cannot sign certificates")
	}
	if key, ok := ca.PublicKey.(*ecdsa.PublicKey); !ok || key.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", ca.PublicKey)
	}
	if err := ca.CheckSignatureFrom(ca); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}
	if len(ca.SubjectKeyId) == 0 {
		t.Error("CA has no subject key id; strict OpenSSL clients reject it")
	}
	if life := ca.NotAfter.Sub(ca.NotBefore); life < 9*365*24*time.Hour || life > 11*365*24*time.Hour {
		t.Errorf("CA lifetime %v, want about ten years", life)
	}
	subject := ca.Subject.String()
	if !strings.Contains(subject, "Outpost") || !strings.Contains(subject, hostName()) {
		t.Errorf("CA subject %q should name Outpost and the host %q", subject, hostName())
	}
}

func TestLeafVerifiesAgainstCAFile(t *testing.T) {
	a := newTestAuthority(t)
	// Like openssl verify -CAfile ca.pem: the roots come from the file alone.
	pemBytes, err := os.ReadFile(a.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemBytes) {
		t.Fatal("ca.pem holds no certificate")
	}
	defaultCert, err := a.getCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	mintedCert, err := a.getCertificate(&tls.ClientHelloInfo{ServerName: "a.b.c." + testSuffix})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		leaf *x509.Certificate
		name string
	}{
		{defaultCert.Leaf, "localhost"},
		{defaultCert.Leaf, "127.0.0.1"},
		{defaultCert.Leaf, "::1"},
		{defaultCert.Leaf, testSuffix},
		{defaultCert.Leaf, "hub." + testSuffix},
		{defaultCert.Leaf, "acct.blob." + testSuffix},
		{defaultCert.Leaf, "ns.servicebus." + testSuffix},
		{mintedCert.Leaf, "a.b.c." + testSuffix},
	}
	for _, tt := range tests {
		if err := verifyServerLeaf(tt.leaf, roots, tt.name); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	// One label per wildcard: deeper names are not covered by the default.
	if err := defaultCert.Leaf.VerifyHostname("a.b.c." + testSuffix); err == nil {
		t.Error("default leaf covers a.b.c under the suffix")
	}
	for _, leaf := range []*x509.Certificate{defaultCert.Leaf, mintedCert.Leaf} {
		checkLeafProfile(t, leaf, a.caCert, x509.ExtKeyUsageServerAuth)
	}
}

// verifyServerLeaf verifies leaf for name as a TLS client does.
func verifyServerLeaf(leaf *x509.Certificate, roots *x509.CertPool, name string) error {
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:     roots,
		DNSName:   name,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err
}

// checkLeafProfile checks what strict clients demand of a leaf.
func checkLeafProfile(t *testing.T, leaf, ca *x509.Certificate, usage x509.ExtKeyUsage) {
	t.Helper()
	if leaf.IsCA {
		t.Error("leaf is a CA")
	}
	if key, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || key.Curve != elliptic.P256() {
		t.Errorf("leaf key is %T, want ECDSA P-256", leaf.PublicKey)
	}
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != usage {
		t.Errorf("extended key usage %v, want only %v", leaf.ExtKeyUsage, usage)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage %v, want digital signature only", leaf.KeyUsage)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life > 397*24*time.Hour {
		t.Errorf("leaf lifetime %v exceeds 397 days", life)
	}
	if skew := time.Since(leaf.NotBefore); skew < time.Minute || skew > time.Hour {
		t.Errorf("leaf NotBefore is %v ago, want backdated by a few minutes", skew)
	}
	if !bytes.Equal(leaf.AuthorityKeyId, ca.SubjectKeyId) {
		t.Error("leaf authority key id does not name the CA")
	}
}

// TestOpenSSLVerifyStrict runs the verifier behind Python's requests and
// Node in its strictest mode (Python 3.13 turns on VERIFY_X509_STRICT).
func TestOpenSSLVerifyStrict(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		testenv.Unavailable(t, "openssl is not installed")
	}
	a := newTestAuthority(t)
	defaultCert, err := a.getCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	mintedCert, err := a.getCertificate(&tls.ClientHelloInfo{ServerName: "a.b.c." + testSuffix})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cert  *tls.Certificate
		check []string
	}{
		{defaultCert, []string{"-verify_hostname", "acct.blob." + testSuffix}},
		{defaultCert, []string{"-verify_ip", "127.0.0.1"}},
		{mintedCert, []string{"-verify_hostname", "a.b.c." + testSuffix}},
	}
	for _, tt := range tests {
		leafFile := filepath.Join(t.TempDir(), "leaf.pem")
		if err := os.WriteFile(leafFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tt.cert.Certificate[0]}), 0o644); err != nil {
			t.Fatal(err)
		}
		args := append([]string{"verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", a.CAFile()}, tt.check...)
		out, err := exec.Command(openssl, append(args, leafFile)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), ": OK") {
			t.Errorf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestIssueLeaf(t *testing.T) {
	a := newTestAuthority(t)
	cert, err := a.IssueLeaf([]string{"svc.example.test", "*.example.test", "10.0.0.1"}, []net.IP{net.ParseIP("fd00::1")})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"svc.example.test", "other.example.test", "10.0.0.1", "fd00::1"} {
		if err := verifyServerLeaf(cert.Leaf, a.CertPool(), name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	checkLeafProfile(t, cert.Leaf, a.caCert, x509.ExtKeyUsageServerAuth)

	for _, bad := range [][]string{nil, {"bad name"}, {"*.test"}} {
		if _, err := a.IssueLeaf(bad, nil); err == nil || !strings.HasPrefix(err.Error(), "pki: issue leaf: ") {
			t.Errorf("IssueLeaf(%q): %v, want a pki: issue leaf: error", bad, err)
		}
	}
}

func TestClientCertMutualTLS(t *testing.T) {
	a := newTestAuthority(t)
	serverCfg := a.ServerTLSConfig()
	serverCfg.ClientAuth = tls.RequireAndVerifyClientCert
	serverCfg.ClientCAs = a.CertPool()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peers := make(chan string)
	go func() {
		defer close(peers)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			tc := conn.(*tls.Conn)
			_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
			peer := "error: "
			if err := tc.Handshake(); err != nil {
				peer += err.Error()
			} else {
				peer = tc.ConnectionState().PeerCertificates[0].Subject.CommonName
			}
			tc.Close() // before reporting: the client waits for it on its read
			peers <- peer
		}
	}()

	device, err := a.IssueClientCert("device-1")
	if err != nil {
		t.Fatal(err)
	}
	checkLeafProfile(t, device.Leaf, a.caCert, x509.ExtKeyUsageClientAuth)
	serverOnly, err := a.IssueLeaf([]string{"localhost"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		cert tls.Certificate
		want string
	}{
		{device, "device-1"},
		{serverOnly, "error: "}, // no client authentication usage
	} {
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
			RootCAs: a.CertPool(), ServerName: "localhost", Certificates: []tls.Certificate{tt.cert},
		})
		if err == nil {
			// In TLS 1.3 the client learns of a refused certificate on its first read.
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if got := <-peers; !strings.HasPrefix(got, tt.want) {
			t.Errorf("server saw %q (client: %v), want %q", got, err, tt.want)
		}
	}

	if _, err := a.IssueClientCert(""); err == nil || !strings.HasPrefix(err.Error(), "pki: issue client cert: ") {
		t.Errorf("IssueClientCert(\"\"): %v", err)
	}
}
