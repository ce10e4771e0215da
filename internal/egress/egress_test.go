package egress_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/egress"
)

// The Azure SDK's transport interface (azcore policy.Transporter).
var _ interface {
	Do(*http.Request) (*http.Response, error)
} = (*egress.Client)(nil)

const token = "Bearer s3cret-token"

// testCA issues the certificates of the test servers, which the client
// trusts as it trusts Outpost's CA.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "egress test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// leaf is valid for the names the tests use and for ip.
func (ca *testCA) leaf(t testing.TB, ip net.IP) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: ip.String()},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"outpost.test", "*.outpost.test", "*.blob.outpost.test", "azurite.test", "evil.example"},
		IPAddresses:  []net.IP{ip},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// testServer counts what reaches it: connections accepted and requests
// served, with the last Authorization header.
type testServer struct {
	*httptest.Server
	Addr     string // ip:port
	Port     string
	conns    atomic.Int64
	hits     atomic.Int64
	lastAuth atomic.Pointer[string]
}

// startServer serves h (or "ok") over TLS (unless plain) on ip at a free
// port.
func startServer(t testing.TB, ca *testCA, ip string, plain bool, h http.HandlerFunc) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	ts := &testServer{}
	ts.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.hits.Add(1)
		auth := r.Header.Get("Authorization")
		ts.lastAuth.Store(&auth)
		if h != nil {
			h(w, r)
			return
		}
		io.WriteString(w, "ok")
	}))
	ts.Listener.Close()
	ts.Listener = ln
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are expected
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			ts.conns.Add(1)
		}
	}
	if plain {
		ts.Start()
	} else {
		ts.EnableHTTP2 = true
		ts.TLS = &tls.Config{Certificates: []tls.Certificate{ca.leaf(t, net.ParseIP(ip))}}
		ts.StartTLS()
	}
	t.Cleanup(ts.Close)
	ts.Addr = ln.Addr().String()
	_, ts.Port, _ = net.SplitHostPort(ts.Addr)
	return ts
}

func (ts *testServer) untouched(t testing.TB) {
	t.Helper()
	if n, h := ts.conns.Load(), ts.hits.Load(); n != 0 || h != 0 {
		t.Errorf("server %s saw %d connections and %d requests, want none", ts.Addr, n, h)
	}
}

// fakeResolver answers from a fixed table and counts lookups.
type fakeResolver struct {
	hosts map[string][]string
	calls atomic.Int64
}

func (r *fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	r.calls.Add(1)
	addrs, ok := r.hosts[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []net.IPAddr
	for _, a := range addrs {
		out = append(out, net.IPAddr{IP: net.ParseIP(a)}) // 16-byte form, as the system resolver returns
	}
	return out, nil
}

// logBuffer collects log output from concurrent connections.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type fixture struct {
	ca       *testCA
	self     *testServer // Outpost's HTTPS listener
	resolver *fakeResolver
	logs     *logBuffer
	client   *egress.Client
}

// newFixture starts Outpost's stand-in listener on 127.0.0.2, answering
// with selfHandler (nil: "ok"); connect then builds the client.
func newFixture(t testing.TB, selfHandler http.HandlerFunc) *fixture {
	t.Helper()
	f := &fixture{ca: newTestCA(t), resolver: &fakeResolver{hosts: map[string][]string{}}, logs: &logBuffer{}}
	f.self = startServer(t, f.ca, "127.0.0.2", false, selfHandler)
	return f
}

// connect builds the client: outpost.test served at the fixture's
// listener, public egress off, the fixture's CA trusted; mutate changes
// that.
func (f *fixture) connect(t testing.TB, mutate func(*egress.Config)) *fixture {
	t.Helper()
	cfg := egress.Config{
		ServedSuffixes: []string{"outpost.test"},
		SelfAddr:       f.self.Addr,
		TLS:            &tls.Config{RootCAs: f.ca.pool},
		Timeout:        5 * time.Second,
		Resolver:       f.resolver,
		Log:            slog.New(slog.NewJSONHandler(f.logs, nil)),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := egress.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	f.client = c
	return f
}

// get sends a GET with the bearer token and returns the body.
func (f *fixture) get(t testing.TB, rawURL string) (string, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", token)
	resp, err := f.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func mustOK(t testing.TB, ts *testServer, body string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("request failed: %v", err)
	}
	if body != "ok" {
		t.Fatalf("body %q, want ok", body)
	}
	if got := ts.lastAuth.Load(); got == nil || *got != token {
		t.Fatalf("server %s got Authorization %v, want the token", ts.Addr, got)
	}
}

func mustRefuse(t testing.TB, f *fixture, err error, wantInMessage ...string) *egress.RefusedError {
	t.Helper()
	var refused *egress.RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("err = %v (%T), want *egress.RefusedError", err, err)
	}
	msg := err.Error()
	for _, w := range wantInMessage {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not mention %q", msg, w)
		}
	}
	for _, secret := range []string{"s3cret", "SAS-SIG"} {
		if strings.Contains(msg, secret) || strings.Contains(refused.URL, secret) {
			t.Errorf("error %q leaks %q", msg, secret)
		}
		if strings.Contains(f.logs.String(), secret) {
			t.Errorf("log leaks %q: %s", secret, f.logs.String())
		}
	}
	if !strings.Contains(f.logs.String(), `"level":"WARN","msg":"egress refused"`) {
		t.Errorf("refusal not logged at Warn; log: %s", f.logs.String())
	}
	return refused
}

func TestServedNameIsDialedAtOutpost(t *testing.T) {
	f := newFixture(t, nil).connect(t, nil)
	// DNS sends the name elsewhere; egress must not go there.
	decoy := startServer(t, f.ca, "127.0.0.3", false, nil)
	f.resolver.hosts["acct.blob.outpost.test"] = []string{"127.0.0.3"}

	for _, u := range []string{
		"https://acct.blob.outpost.test/container/blob?sv=1&sig=SAS-SIG", // port 443 -> SelfAddr
		"https://ACCT.blob.outpost.test.:" + f.self.Port + "/container",  // the listener's own port
		"https://outpost.test/",
	} {
		body, err := f.get(t, u)
		mustOK(t, f.self, body, err)
	}
	decoy.untouched(t)
	if n := f.resolver.calls.Load(); n != 0 {
		t.Errorf("served names were looked up %d times; they must be dialed at SelfAddr without DNS", n)
	}
}

func TestServedNameOnExtraListener(t *testing.T) {
	f := newFixture(t, nil)
	blob := startServer(t, f.ca, "127.0.0.4", false, nil)
	f.connect(t, func(c *egress.Config) { c.ExtraSelf = []string{blob.Addr} })
	body, err := f.get(t, "https://acct.blob.outpost.test:"+blob.Port+"/c")
	mustOK(t, blob, body, err)
	body, err = f.get(t, "https://"+blob.Addr+"/devstoreaccount1/c") // path-style, by address
	mustOK(t, blob, body, err)
	if n := blob.hits.Load(); n != 2 {
		t.Errorf("extra listener served %d requests, want 2", n)
	}

	_, err = f.get(t, "https://acct.blob.outpost.test:6379/")
	mustRefuse(t, f, err, "Outpost does not listen on port 6379")
}

func TestAllowListed(t *testing.T) {
	f := newFixture(t, nil)
	azurite := startServer(t, f.ca, "127.0.0.1", false, nil)
	f.connect(t, func(c *egress.Config) {
		c.Allow = []string{azurite.Addr, "azurite.test:" + azurite.Port}
	})
	f.resolver.hosts["azurite.test"] = []string{"127.0.0.1"}

	body, err := f.get(t, "https://"+azurite.Addr+"/devstoreaccount1/c")
	mustOK(t, azurite, body, err)
	body, err = f.get(t, "https://azurite.test:"+azurite.Port+"/devstoreaccount1/c")
	mustOK(t, azurite, body, err)
}

func TestRefused(t *testing.T) {
	f := newFixture(t, nil).connect(t, func(c *egress.Config) {
		c.Allow = []string{"127.0.0.6"} // allowed, but only over https
	})
	victim := startServer(t, f.ca, "127.0.0.1", false, nil) // a port Outpost does not serve
	plain := startServer(t, f.ca, "127.0.0.6", true, nil)
	f.resolver.hosts["evil.example"] = []string{"127.0.0.1"}
	f.resolver.hosts["mapped.example"] = []string{"::ffff:127.0.0.1"}
	f.resolver.hosts["self.example"] = []string{"127.0.0.2"} // Outpost's address, but not its name

	cases := []struct {
		name, url string
		want      []string
	}{
		{"loopback port Outpost does not serve", "https://" + victim.Addr + "/",
			[]string{"egress to " + victim.Addr + " refused: loopback address not served by Outpost; add " + victim.Addr + " to --egress-allow to permit it"}},
		{"IPv4-mapped IPv6 loopback", "https://[::ffff:127.0.0.1]:" + victim.Port + "/", []string{"loopback"}},
		{"metadata service", "https://169.254.169.254/metadata/identity/oauth2/token?resource=x", []string{"link-local", "169.254.169.254:443"}},
		{"private 10/8", "https://10.0.0.1/", []string{"private address"}},
		{"private 192.168/16", "https://192.168.1.1/", []string{"private address"}},
		{"CGNAT", "https://100.64.0.1/", []string{"CGNAT"}},
		{"unspecified", "https://0.0.0.0:" + victim.Port + "/", []string{"unspecified"}},
		{"name resolving to loopback", "https://evil.example:" + victim.Port + "/?sig=SAS-SIG",
			[]string{"evil.example resolves to 127.0.0.1 (loopback address) and is not a name Outpost serves", "--egress-allow"}},
		{"name resolving to mapped loopback", "https://mapped.example:" + victim.Port + "/", []string{"loopback"}},
		{"foreign name resolving to Outpost", "https://self.example:" + f.self.Port + "/", []string{"not a name Outpost serves"}},
		{"plain http, even allow-listed", plain.URL + "/", []string{"plain http is refused"}},
		{"other scheme", "ftp://" + victim.Addr + "/", []string{`scheme "ftp"`}},
		{"public address with public egress off", "https://8.8.8.8/", []string{"public egress is turned off"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.get(t, tc.url)
			mustRefuse(t, f, err, tc.want...)
		})
	}
	victim.untouched(t)
	plain.untouched(t)
	f.self.untouched(t)
}

func TestIPv6LoopbackRefused(t *testing.T) {
	f := newFixture(t, nil).connect(t, nil)
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		// No IPv6 loopback to put a victim on: the refusal comes before any
		// dial, so it is still checked, just without counting hits.
		_, err := f.get(t, "https://[::1]:8443/")
		mustRefuse(t, f, err, "loopback address not served by Outpost")
		return
	}
	ln.Close()
	victim := startServer(t, f.ca, "::1", false, nil)
	_, err = f.get(t, "https://"+victim.Addr+"/")
	mustRefuse(t, f, err, "loopback address not served by Outpost")
	victim.untouched(t)
}

func TestRedirectIsNotFollowed(t *testing.T) {
	var target *testServer
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", target.URL+"/steal?from=server")
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
	target = startServer(t, f.ca, "127.0.0.7", false, nil)
	f.connect(t, func(c *egress.Config) {
		c.Allow = []string{target.Addr} // the Location is allowed too; still not followed
	})

	for _, status := range []string{"Do", "HTTPClient"} {
		req, _ := http.NewRequest(http.MethodGet, "https://acct.blob.outpost.test/c?sig=SAS-SIG", nil)
		req.Header.Set("Authorization", token)
		var err error
		if status == "Do" {
			_, err = f.client.Do(req)
		} else {
			var resp *http.Response
			resp, err = f.client.HTTPClient().Do(req)
			if resp != nil {
				resp.Body.Close()
			}
		}
		r := mustRefuse(t, f, err, "egress to acct.blob.outpost.test:443 refused: redirect (307 Temporary Redirect) to "+target.URL+"/steal not followed")
		if r.URL != "https://acct.blob.outpost.test/c" {
			t.Errorf("%s: RefusedError.URL = %q", status, r.URL)
		}
	}
	target.untouched(t)
}

func TestHTTPClientKeepsThePolicy(t *testing.T) {
	f := newFixture(t, nil).connect(t, nil)
	hc := f.client.HTTPClient()
	hc.CheckRedirect = nil
	if f.client.HTTPClient().CheckRedirect == nil {
		t.Fatal("changing one HTTPClient copy changed the Client's")
	}
	_, err := hc.Get("http://" + f.self.Addr + "/")
	mustRefuse(t, f, err, "plain http")
	resp, err := hc.Get("https://127.0.0.1:1/")
	if err == nil {
		resp.Body.Close()
	}
	var refused *egress.RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("err = %v, want a *RefusedError inside", err)
	}
	resp, err = hc.Get("https://acct.blob.outpost.test/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func TestConnectionsAreReused(t *testing.T) {
	f := newFixture(t, nil).connect(t, nil)
	for range 20 {
		body, err := f.get(t, "https://acct.blob.outpost.test/")
		mustOK(t, f.self, body, err)
	}
	if n := f.self.conns.Load(); n != 1 {
		t.Errorf("20 sequential requests opened %d connections, want 1", n)
	}
}

func TestErrorsDoNotCarryTheQuery(t *testing.T) {
	f := newFixture(t, nil).connect(t, func(c *egress.Config) { c.TLS = nil }) // system roots: Outpost's CA unknown
	_, err := f.get(t, "https://user:pa55@acct.blob.outpost.test/c?sig=SAS-SIG")
	if err == nil {
		t.Fatal("a certificate from an unknown CA was accepted")
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Fatalf("err = %T, want *url.Error", err)
	}
	if s := err.Error(); strings.Contains(s, "SAS-SIG") || strings.Contains(s, "pa55") {
		t.Fatalf("error leaks the query or password: %s", s)
	}
}

func TestCheck(t *testing.T) {
	cases := []struct {
		url         string
		allowPublic bool
		allow       []string
		refused     string // "" when allowed; else a part of the reason
	}{
		{"https://8.8.8.8/", true, nil, ""},
		{"https://8.8.8.8/", false, nil, "public egress is turned off"},
		{"https://203.0.114.7/", true, nil, "address of this machine"},
		{"https://[2a01:4f8::7]:8443/", true, nil, "address of this machine"},
		{"https://own.example/", true, nil, "own.example resolves to 203.0.114.7 (address of this machine not served by Outpost)"},
		{"https://203.0.114.7/", true, []string{"203.0.114.7:443"}, ""},
		{"https://[2606:4700:4700::1111]/", true, nil, ""},
		{"https://[64:ff9b::808:808]/", true, nil, ""},
		{"https://[64:ff9b::a00:1]/", true, nil, "NAT64 address of a private address"},
		{"https://[::ffff:10.0.0.1]/", true, nil, "private address"},
		{"https://[::127.0.0.1]/", true, nil, "IPv4-compatible"},
		{"https://[2002:7f00:1::1]/", true, nil, "6to4"},
		{"https://[2001::1]/", true, nil, "Teredo"},
		{"https://[fd00::1]/", true, nil, "unique local"},
		{"https://[fe80::1%25eth0]/", true, nil, "link-local"},
		{"https://[ff02::1]/", true, nil, "multicast"},
		{"https://[::]/", true, nil, "unspecified"},
		{"https://[5f00::1]/", true, nil, "reserved IPv6"},
		{"https://172.31.255.255/", true, nil, "private address"},
		{"https://172.32.0.1/", true, nil, ""},
		{"https://224.0.0.1/", true, nil, "multicast"},
		{"https://255.255.255.255/", true, nil, "reserved"},
		{"https://198.18.0.1/", true, nil, "benchmarking"},
		{"https://public.example/", true, nil, ""},
		{"https://public.example/", false, nil, "public egress is turned off"},
		{"https://mixed.example/", true, nil, "mixed.example resolves to 10.0.0.1"},
		{"https://10.1.2.3/", false, []string{"10.1.0.0/16"}, ""},
		{"https://10.2.0.1/", false, []string{"10.1.0.0/16"}, "private address"},
		{"https://[::ffff:10.1.2.3]:8443/", false, []string{"10.1.0.0/16"}, ""},
		{"https://internal.example:9000/", false, []string{"internal.example"}, ""},
		{"https://internal.example:9000/", false, []string{"internal.example:9001"}, "internal.example resolves to 10.9.9.9"},
		{"https://INTERNAL.example.:9001/", false, []string{"internal.example:9001"}, ""},
		{"https://internal.example/", false, []string{"10.9.9.9:443"}, ""},
		{"https://host.outpost.test:444/", true, nil, "Outpost does not listen on port 444"},
		{"https://evil-outpost.test/", true, nil, "not a name Outpost serves"},
		{"http://8.8.8.8/", true, nil, "plain http"},
	}
	for _, tc := range cases {
		t.Run(tc.url, func(t *testing.T) {
			c, err := egress.New(egress.Config{
				ServedSuffixes: []string{"outpost.test"},
				SelfAddr:       "127.0.0.2:443",
				Allow:          tc.allow,
				AllowPublic:    tc.allowPublic,
				Resolver: &fakeResolver{hosts: map[string][]string{
					"public.example":    {"20.60.1.1", "2603:1000::1"},
					"mixed.example":     {"20.60.1.1", "10.0.0.1"},
					"internal.example":  {"10.9.9.9"},
					"evil-outpost.test": {"127.0.0.1"},
					"own.example":       {"203.0.114.7"},
				}},
				InterfaceAddrs: func() ([]net.Addr, error) { // a machine with public addresses
					return []net.Addr{
						&net.IPNet{IP: net.ParseIP("127.0.0.1"), Mask: net.CIDRMask(8, 32)},
						&net.IPNet{IP: net.ParseIP("203.0.114.7"), Mask: net.CIDRMask(24, 32)},
						&net.IPNet{IP: net.ParseIP("2a01:4f8::7"), Mask: net.CIDRMask(64, 128)},
					}, nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Check(context.Background(), u)
			switch {
			case tc.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refused != "" && err == nil:
				t.Fatalf("allowed, want refused (%s)", tc.refused)
			case tc.refused != "":
				var refused *egress.RefusedError
				if !errors.As(err, &refused) || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("err = %v, want a *RefusedError mentioning %q", err, tc.refused)
				}
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := egress.Config{
		ServedSuffixes: []string{"outpost.test", "127.0.0.1"},
		ExtraSelf:      []string{"localhost:10000"},
		Allow:          []string{"10.0.0.0/99", "host:0"},
		TLS:            &tls.Config{InsecureSkipVerify: true},
		Timeout:        -1,
	}.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad config")
	}
	for _, want := range []string{"SelfAddr: required", "ServedSuffixes: \"127.0.0.1\"", "ExtraSelf", "10.0.0.0/99", "host:0", "InsecureSkipVerify", "Timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error does not mention %q:\n%v", want, err)
		}
	}
	if err := egress.DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig: %v", err)
	}
	if _, err := egress.New(egress.Config{SelfAddr: "[::]:443", ServedNames: []string{"localhost"}}); err != nil {
		t.Errorf("unspecified SelfAddr: %v", err)
	}
}

// FuzzCheckAddress feeds addresses and host names to the policy. Whatever
// the spelling, a non-public address is never allowed, an IPv4 address and
// its IPv4-mapped form get the same answer, and a name that resolves to
// loopback is allowed only when Outpost serves it.
func FuzzCheckAddress(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1", "::1", "::ffff:127.0.0.1", "::ffff:7f00:1", "169.254.169.254", "10.0.0.1",
		"192.168.1.1", "100.64.0.1", "0.0.0.0", "::", "fe80::1%eth0", "fd00::1", "64:ff9b::7f00:1",
		"64:ff9b::808:808", "2002:7f00:1::", "8.8.8.8", "2606:4700::1111", "255.255.255.255",
		"acct.blob.outpost.test", "ACCT.OUTPOST.TEST.", "evil.example", "outpost.test.evil", "127.1",
		"2130706433", "0x7f000001", "[::1]", "localhost",
	} {
		f.Add(s)
	}
	loopback := resolverFunc(func(context.Context, string) ([]net.IPAddr, error) {
		return []net.IPAddr{{IP: net.ParseIP("127.0.0.1")}}, nil
	})
	newClient := func(public bool) *egress.Client {
		c, err := egress.New(egress.Config{
			ServedSuffixes: []string{"outpost.test"},
			SelfAddr:       "127.0.0.2:443",
			AllowPublic:    public,
			Resolver:       loopback,
		})
		if err != nil {
			f.Fatal(err)
		}
		return c
	}
	public, private := newClient(true), newClient(false)
	self := netip.MustParseAddrPort("127.0.0.2:443")
	ctx := context.Background()
	check := func(c *egress.Client, host string) error {
		return c.Check(ctx, &url.URL{Scheme: "https", Host: host})
	}

	f.Fuzz(func(t *testing.T, s string) {
		if ip, err := netip.ParseAddr(s); err == nil {
			host := net.JoinHostPort(ip.String(), "443")
			isSelf := netip.AddrPortFrom(ip.Unmap(), 443) == self
			errPublic, errPrivate := check(public, host), check(private, host)
			for _, err := range []error{errPublic, errPrivate} {
				var refused *egress.RefusedError
				// A zone such as "]" makes the address unsplittable, an
				// ordinary error; only clean addresses must be refusals.
				if err != nil && ip.Zone() == "" && !errors.As(err, &refused) {
					t.Fatalf("%s: error %v is not a *RefusedError", s, err)
				}
			}
			if isSelf {
				if errPublic != nil || errPrivate != nil {
					t.Fatalf("%s is Outpost's listener but was refused: %v / %v", s, errPublic, errPrivate)
				}
				return
			}
			if errPrivate == nil {
				t.Fatalf("%s allowed with public egress off", s)
			}
			u := ip.Unmap()
			nonPublic := u.IsLoopback() || u.IsPrivate() || u.IsLinkLocalUnicast() || u.IsLinkLocalMulticast() ||
				u.IsInterfaceLocalMulticast() || u.IsMulticast() || u.IsUnspecified() || !u.IsGlobalUnicast()
			if nonPublic && errPublic == nil {
				t.Fatalf("%s (%s) is not public but was allowed", s, u)
			}
			if u.Is4() {
				mapped := netip.AddrFrom16(u.As16())
				errMapped := check(public, net.JoinHostPort(mapped.String(), "443"))
				if (errMapped == nil) != (errPublic == nil) {
					t.Fatalf("%s and %s judged differently: %v / %v", u, mapped, errPublic, errMapped)
				}
			}
			return
		}
		// A name: it resolves to loopback, so it may only pass as Outpost's.
		if strings.ContainsAny(s, "[]/?#@%\\") {
			return // not a URL host
		}
		h := (&url.URL{Host: s}).Hostname()
		if _, err := netip.ParseAddr(h); err == nil {
			return // an address with a port ("::ffff:100:0:" is [::ffff:100:0]:""), judged above
		}
		if err := check(public, s); err != nil {
			return
		}
		h = strings.TrimSuffix(strings.ToLower(h), ".")
		if h != "outpost.test" && !strings.HasSuffix(h, ".outpost.test") {
			t.Fatalf("host %q resolving to loopback was allowed", s)
		}
	})
}

type resolverFunc func(context.Context, string) ([]net.IPAddr, error)

func (r resolverFunc) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	return r(ctx, host)
}

func BenchmarkDo(b *testing.B) {
	f := newFixture(b, nil).connect(b, nil)
	run := func(b *testing.B, next func() bool) {
		for next() {
			req, _ := http.NewRequest(http.MethodGet, "https://acct.blob.outpost.test/c/b", nil)
			req.Header.Set("Authorization", token)
			resp, err := f.client.Do(req)
			if err != nil {
				b.Error(err) // Fatal may not be called from RunParallel's goroutines
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		run(b, b.Loop)
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) { run(b, pb.Next) })
	})
}
