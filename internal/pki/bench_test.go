package pki

import (
	"crypto/tls"
	"net"
	"testing"
)

// BenchmarkHandshake measures a full TLS handshake served from the cache.
func BenchmarkHandshake(b *testing.B) {
	a := newTestAuthority(b)
	serverCfg := a.ServerTLSConfig()
	clientCfg := &tls.Config{RootCAs: a.CertPool(), ServerName: "hub." + testSuffix}
	handshake := func() {
		c, s := net.Pipe()
		serverErr := make(chan error, 1)
		go func() { serverErr <- tls.Server(s, serverCfg).Handshake() }()
		if err := tls.Client(c, clientCfg).Handshake(); err != nil {
			b.Fatal(err)
		}
		if err := <-serverErr; err != nil {
			b.Fatal(err)
		}
		c.Close()
		s.Close()
	}
	handshake() // mint outside the measurement
	for b.Loop() {
		handshake()
	}
}

func BenchmarkMintLeaf(b *testing.B) {
	a := newTestAuthority(b)
	for b.Loop() {
		if _, err := a.IssueLeaf([]string{"hub." + testSuffix}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenFirstStart(b *testing.B) {
	for b.Loop() {
		if _, err := Open(b.TempDir(), Options{DNSSuffix: testSuffix}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenLaterStart(b *testing.B) {
	dir := b.TempDir()
	if _, err := Open(dir, Options{DNSSuffix: testSuffix}, nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Open(dir, Options{DNSSuffix: testSuffix}, nil); err != nil {
			b.Fatal(err)
		}
	}
}
