package pki

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

const testSuffix = "outpost.localhost"

// newTestAuthority opens an authority in a fresh directory. By default it
// has testSuffix and allows every name under it; edit changes the options.
func newTestAuthority(t testing.TB, edit ...func(*Options)) *Authority {
	t.Helper()
	opts := Options{
		DNSSuffix: testSuffix,
		Allow:     func(name string) bool { return strings.HasSuffix(name, "."+testSuffix) },
	}
	for _, e := range edit {
		e(&opts)
	}
	a, err := Open(t.TempDir(), opts, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func testLogger(t testing.TB) *slog.Logger {
	if _, ok := t.(*testing.B); ok {
		return nil
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testServer is a real TLS listener serving a's certificates. It completes
// each handshake and hangs up, recording the SNI it was sent.
type testServer struct {
	addr string

	mu          sync.Mutex
	serverNames []string
}

// startTLSServer listens on address; the error lets callers skip when the
// machine lacks the address (IPv6 disabled, no 127.0.0.7 outside Linux).
func startTLSServer(t *testing.T, a *Authority, address string) (*testServer, error) {
	t.Helper()
	srv := &testServer{}
	cfg := a.ServerTLSConfig()
	get := cfg.GetCertificate
	cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		srv.mu.Lock()
		srv.serverNames = append(srv.serverNames, hello.ServerName)
		srv.mu.Unlock()
		return get(hello)
	}
	ln, err := tls.Listen("tcp", address, cfg)
	if err != nil {
		return nil, err
	}
	srv.addr = ln.Addr().String()
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				_ = conn.(*tls.Conn).Handshake() // a client refusing our certificate is a test outcome, not a server error
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return srv, nil
}

func (s *testServer) lastServerName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.serverNames) == 0 {
		return "<no handshake>"
	}
	return s.serverNames[len(s.serverNames)-1]
}

// dialTLS handshakes with addr as a client trusting only roots and returns
// the leaf the server presented. An empty serverName verifies the address
// itself, and sends no SNI when it is an IP address.
func dialTLS(addr, serverName string, roots *x509.CertPool) (*x509.Certificate, error) {
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(dialer, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: serverName})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// isDefaultLeaf tells the default leaf from one minted for a single name.
func isDefaultLeaf(leaf *x509.Certificate) bool {
	return len(leaf.DNSNames) > 0 && leaf.DNSNames[0] == "localhost"
}
