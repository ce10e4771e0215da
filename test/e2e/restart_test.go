package e2e

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/testenv"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestKillAndRestartKeepsAcknowledgedWrites kills the outpost process with
// SIGKILL right after acknowledged writes and checks that a restarted
// process has every one of them — including a group delete that was only
// accepted (202) when the process died.
func TestKillAndRestartKeepsAcknowledgedWrites(t *testing.T) {
	bin := testserver.BuildBinary(t)
	for _, tier := range []struct {
		name string
		args func(t *testing.T) []string
	}{
		{"embedded", func(*testing.T) []string { return nil }},
		{"postgres-nats", func(t *testing.T) []string {
			return []string{"--store-driver", "postgres", "--store-dsn", testenv.PostgresDSN(t),
				"--nats-url", testenv.NATSURL(t), "--nats-stream-prefix", testenv.StreamPrefix(t)}
		}},
	} {
		t.Run(tier.name, func(t *testing.T) {
			t.Parallel()
			p := testserver.StartProcess(t, bin, tier.args(t)...)
			sub := p.Runtime(t).SubscriptionID
			c := p.HTTPClient(t)
			token := p.Token(t, testserver.ARMResource)
			do := func(method, path, body string) *http.Response {
				t.Helper()
				req, _ := http.NewRequest(method, p.Endpoint+path, strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := c.Do(req)
				if err != nil {
					t.Fatalf("%s %s: %v", method, path, err)
				}
				io.Copy(io.Discard, resp.Body) //nolint:errcheck
				resp.Body.Close()
				return resp
			}
			group := func(name string) string {
				return "/subscriptions/" + sub + "/resourcegroups/" + name + "?api-version=2021-04-01"
			}
			const n = 50
			for i := 0; i < n; i++ {
				if r := do("PUT", group("keep-"+itoa(i)), `{"location":"westus"}`); r.StatusCode != 201 {
					t.Fatalf("create: %s", r.Status)
				}
			}
			if r := do("PUT", group("doomed"), `{"location":"westus"}`); r.StatusCode != 201 {
				t.Fatalf("create: %s", r.Status)
			}
			if r := do("DELETE", group("doomed"), ""); r.StatusCode != 202 {
				t.Fatalf("delete: %s", r.Status)
			}
			p.Kill(t)
			p.Restart(t)
			c = p.HTTPClient(t)
			for i := 0; i < n; i++ {
				if r := do("GET", group("keep-"+itoa(i)), ""); r.StatusCode != 200 {
					t.Fatalf("group keep-%d after restart: %s", i, r.Status)
				}
			}
			deadline := time.Now().Add(20 * time.Second)
			for do("GET", group("doomed"), "").StatusCode != http.StatusNotFound {
				if time.Now().After(deadline) {
					t.Fatal("the accepted delete never completed after the restart")
				}
				time.Sleep(50 * time.Millisecond)
			}
			if t.Failed() {
				t.Log(p.Stderr())
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
