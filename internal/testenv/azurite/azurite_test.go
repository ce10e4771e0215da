package azurite_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"

	"github.com/outpost-iot/outpost/internal/testenv/azurite"
)

// TestLoopbackCertServesLoopback: the pair loads, and the certificate, as
// its own root, verifies for every loopback name Azurite may be dialled by.
func TestLoopbackCertServesLoopback(t *testing.T) {
	certFile, keyFile := azurite.WriteLoopbackCert(t, t.TempDir())
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(raw) {
		t.Fatal("cert.pem holds no certificate")
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"127.0.0.1", "::1", "localhost"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
}

func TestEnvironDropsAzuriteVariables(t *testing.T) {
	t.Setenv("AZURITE_ACCOUNTS", "other:a2V5")
	for _, kv := range azurite.Environ() {
		if strings.HasPrefix(kv, "AZURITE_") {
			t.Errorf("Environ kept %s", kv)
		}
	}
}
