package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/config"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestJobsSSRF: container URIs are user input. Every one pointing at
// loopback, link-local, the metadata address, a name resolving to
// loopback, plain http or a redirect is refused before anything carrying
// a SAS or token is sent there, and the job fails with the egress reason.
func TestJobsSSRF(t *testing.T) {
	// A trap on a loopback port Outpost does not serve: nothing may reach it.
	trap, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var trapped atomic.Int64
	go func() {
		for {
			c, err := trap.Accept()
			if err != nil {
				return
			}
			trapped.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { trap.Close() })
	trapPort := trap.Addr().(*net.TCPAddr).Port

	// A redirecting server the operator allowed (--egress-allow): the
	// redirect to the trap must not be followed.
	redirLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var redirected atomic.Int64
	s := testserver.Start(t, testserver.WithConfig(func(c *config.Config) {
		c.Egress.Allow = append(c.Egress.Allow, redirLn.Addr().String())
	}))
	s.Require443(t)
	redir := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirected.Add(1)
		http.Redirect(w, r, fmt.Sprintf("https://127.0.0.1:%d%s", trapPort, r.URL.RequestURI()), http.StatusTemporaryRedirect)
	})}
	go func() { _ = redir.Serve(tls.NewListener(redirLn, s.App.CA().ServerTLSConfig())) }()
	t.Cleanup(func() { redir.Close() })

	rebind := fmt.Sprintf("rebind%d.example.org", rand.IntN(1e9))
	testserver.MapHosts(t, "127.0.0.1", rebind)
	// Go's resolver rereads /etc/hosts only every few seconds: wait until the
	// name really resolves to loopback, as a rebinding DNS server would make it.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		addrs, err := net.DefaultResolver.LookupHost(context.Background(), rebind)
		if err == nil && len(addrs) > 0 && addrs[0] == "127.0.0.1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s resolves to %v, %v; want 127.0.0.1 from /etc/hosts", rebind, addrs, err)
		}
	}
	h := createHubWith(t, s, "rg-jobs-ssrf", `{"type":"SystemAssigned"}`)
	const q = "?sv=2020-08-04&sp=rwd&sig=SECRET"
	for _, tc := range []struct{ name, uri, want string }{
		{"loopback port", fmt.Sprintf("https://127.0.0.1:%d/acct/out", trapPort), "refused"},
		{"localhost", fmt.Sprintf("https://localhost:%d/acct/out", trapPort), "refused"},
		{"metadata", "https://169.254.169.254/metadata/out", "refused"},
		{"ipv6 loopback", fmt.Sprintf("https://[::1]:%d/acct/out", trapPort), "refused"},
		{"name resolving to loopback", fmt.Sprintf("https://%s:%d/acct/out", rebind, trapPort), "refused"},
		{"plain http", fmt.Sprintf("http://127.0.0.1:%d/acct/out", trapPort), "refused"},
		{"redirect", "https://" + redirLn.Addr().String() + "/acct/out", "redirect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, auth := range []string{"keyBased", "identityBased"} {
				uri := tc.uri
				if auth == "keyBased" {
					uri += q
				}
				j := runJob(t, s, h, map[string]any{"type": "export", "outputBlobContainerUri": uri, "storageAuthenticationType": auth})
				if j.Status != "failed" || !strings.Contains(strings.ToLower(j.FailureReason), tc.want) || strings.Contains(j.FailureReason, "SECRET") {
					t.Fatalf("%s: %+v", auth, j)
				}
				t.Logf("%s: %s", auth, j.FailureReason)
			}
		})
	}
	if n := trapped.Load(); n != 0 {
		t.Fatalf("%d connections reached the loopback trap", n)
	}
	if redirected.Load() == 0 {
		t.Fatal("the allowed redirecting server was never asked (test is not testing the redirect)")
	}
}
