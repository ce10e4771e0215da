package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestServeLocalhostBySNI(t *testing.T) {
	a := newTestAuthority(t)
	srv, err := startTLSServer(t, a, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := dialTLS(srv.addr, "localhost", a.CertPool())
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.lastServerName(); got != "localhost" {
		t.Errorf("server saw SNI %q, want localhost", got)
	}
	if !isDefaultLeaf(leaf) {
		t.Errorf("served %v, want the default leaf", leaf.DNSNames)
	}
}

func TestServeLoopbackByIPWithoutSNI(t *testing.T) {
	a := newTestAuthority(t)
	for _, address := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(address, func(t *testing.T) {
			srv, err := startTLSServer(t, a, address)
			if err != nil {
				t.Skipf("cannot listen on %s: %v", address, err)
			}
			leaf, err := dialTLS(srv.addr, "", a.CertPool())
			if err != nil {
				t.Fatal(err)
			}
			if got := srv.lastServerName(); got != "" {
				t.Errorf("server saw SNI %q, want none", got)
			}
			if !isDefaultLeaf(leaf) {
				t.Errorf("served %v, want the default leaf", leaf.DNSNames)
			}
		})
	}
}

func TestServeOtherLoopbackAddress(t *testing.T) {
	a := newTestAuthority(t)
	srv, err := startTLSServer(t, a, "127.0.0.7:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.7 (only Linux routes all of 127/8 to lo): %v", err)
	}
	leaf, err := dialTLS(srv.addr, "", a.CertPool())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(leaf.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 7)) }) {
		t.Errorf("leaf IP addresses %v lack 127.0.0.7", leaf.IPAddresses)
	}
	// The same server still answers its names with a verifiable leaf.
	if _, err := dialTLS(srv.addr, "myhub."+testSuffix, a.CertPool()); err != nil {
		t.Error(err)
	}
}

func TestServeNames(t *testing.T) {
	a := newTestAuthority(t)
	srv, err := startTLSServer(t, a, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		minted bool // a leaf of its own rather than the default
	}{
		{name: testSuffix},
		{name: "myhub." + testSuffix},
		{name: "MyHub." + testSuffix},
		{name: "acct.blob." + testSuffix},
		{name: "ns.servicebus." + testSuffix},
		{name: "a.b.c." + testSuffix, minted: true},
		{name: "other.blob.c." + testSuffix, minted: true},
	}
	if host := hostName(); host != "" {
		tests = append(tests, struct {
			name   string
			minted bool
		}{name: host})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf, err := dialTLS(srv.addr, tt.name, a.CertPool())
			if err != nil {
				t.Fatal(err)
			}
			if tt.minted {
				if want := []string{normalizeName(tt.name)}; !slices.Equal(leaf.DNSNames, want) {
					t.Errorf("DNS names %v, want %v", leaf.DNSNames, want)
				}
			} else if !isDefaultLeaf(leaf) {
				t.Errorf("served %v, want the default leaf", leaf.DNSNames)
			}
		})
	}
}

func TestServeRefusedNameFailsVerification(t *testing.T) {
	tests := []struct {
		name       string
		allow      func(string) bool
		serverName string
	}{
		{name: "Allow refuses", allow: func(string) bool { return false }, serverName: "a.b.c." + testSuffix},
		{name: "no Allow", serverName: "a.b.c." + testSuffix},
		{name: "not a host name", allow: func(string) bool { return true }, serverName: "a.under_score." + testSuffix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAuthority(t, func(o *Options) { o.Allow = tt.allow })
			srv, err := startTLSServer(t, a, "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			_, err = dialTLS(srv.addr, tt.serverName, a.CertPool())
			var hostErr x509.HostnameError
			if !errors.As(err, &hostErr) {
				t.Fatalf("dial %s: got %v, want a hostname mismatch", tt.serverName, err)
			}
			if !isDefaultLeaf(hostErr.Certificate) {
				t.Errorf("served %v, want the default leaf", hostErr.Certificate.DNSNames)
			}
		})
	}
}

func TestServeIPAddressAsSNI(t *testing.T) {
	a := newTestAuthority(t)
	cert, err := a.getCertificate(&tls.ClientHelloInfo{ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if !isDefaultLeaf(cert.Leaf) {
		t.Errorf("served %v, want the default leaf", cert.Leaf.DNSNames)
	}
}

func TestServeMintsOncePerNameUnderConcurrentHandshakes(t *testing.T) {
	a := newTestAuthority(t)
	srv, err := startTLSServer(t, a, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const clients = 32
	name := "new.device." + testSuffix
	before := a.mints.Load()
	start := make(chan struct{})
	serials := make([]string, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			<-start
			leaf, err := dialTLS(srv.addr, name, a.CertPool())
			if err != nil {
				errs[i] = err
				return
			}
			serials[i] = leaf.SerialNumber.String()
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := a.mints.Load() - before; got != 1 {
		t.Errorf("minted %d leaves for %s, want 1", got, name)
	}
	slices.Sort(serials)
	if distinct := slices.Compact(serials); len(distinct) != 1 {
		t.Errorf("clients saw %d different leaves: %v", len(distinct), distinct)
	}
}

func TestServeHTTPS(t *testing.T) {
	a := newTestAuthority(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, r.Host)
		}),
		TLSConfig: a.ServerTLSConfig(),
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Error(err)
		}
	})

	// Names under the suffix do not resolve everywhere, so every request
	// goes to the listener, as /etc/hosts lines would send it.
	transport := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: a.CertPool()},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, ln.Addr().String())
		},
		ForceAttemptHTTP2: true,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	for _, host := range []string{"localhost", "127.0.0.1", "myhub." + testSuffix, "acct.blob." + testSuffix, "a.b.c." + testSuffix} {
		t.Run(host, func(t *testing.T) {
			resp, err := client.Get("https://" + net.JoinHostPort(host, port) + "/")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
				t.Errorf("got %s over %s, want 200 over HTTP/2", resp.Status, resp.Proto)
			}
			if want := net.JoinHostPort(host, port); string(body) != want {
				t.Errorf("server saw host %q, want %q", body, want)
			}
		})
	}
}

func TestLocalAddrUnmapsIPv4(t *testing.T) {
	conn := fakeConn{local: &net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.9"), Port: 443}}
	if got, want := localAddr(conn), netip.MustParseAddr("127.0.0.9"); got != want {
		t.Errorf("localAddr = %v, want %v", got, want)
	}
	if got := localAddr(nil); got.IsValid() {
		t.Errorf("localAddr(nil) = %v, want none", got)
	}
}

type fakeConn struct {
	net.Conn
	local net.Addr
}

func (c fakeConn) LocalAddr() net.Addr { return c.local }
