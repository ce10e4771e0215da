package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/cli"
	"github.com/outpost-iot/outpost/internal/config"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestBenchSoakShort runs `outpost bench soak` in process for 20 s against
// a server in process: it sets up identity-based routing to the four
// custom endpoint types and the built-in one, publishes over MQTT while
// draining every endpoint, and its verdict must find every acknowledged
// message at every endpoint (lost 0) and draw the plots. Memory and latency
// limits are off: 20 s says nothing about them.
func TestBenchSoakShort(t *testing.T) {
	s := testserver.Start(t, testserver.WithConfig(func(c *config.Config) { c.Hub.RoutingMinBatchFrequency = time.Second }))
	s.Require443(t)
	t.Setenv("HOME", t.TempDir()) // the CLI's token cache
	dir := t.TempDir()
	csvFile := filepath.Join(dir, "soak.csv")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out bytes.Buffer
	code := cli.Execute(ctx, []string{"bench", "soak", "--data-dir", s.Config.DataDir,
		"--devices", "4", "--rate", "80", "--duration", "20s", "--interval", "5s",
		"--batch-frequency", "1s", "--drain-timeout", "15s", "--csv", csvFile, "--plot", dir,
		"--max-rss-growth", "1000", "--max-heap-growth", "1000", "--max-p99-ratio", "1000"}, &out, &out)
	t.Log(out.String())
	if code != 0 {
		t.Fatalf("bench soak exited %d", code)
	}
	endpoint := regexp.MustCompile(`endpoint (\w+)\s+received (\d+), lost (\d+), duplicated (\d+)`)
	found := endpoint.FindAllStringSubmatch(out.String(), -1)
	if len(found) != 5 {
		t.Fatalf("%d endpoint lines in the verdict, want 5", len(found))
	}
	for _, m := range found {
		received, _ := strconv.Atoi(m[2])
		if received == 0 || m[3] != "0" {
			t.Errorf("endpoint %s: received %s, lost %s", m[1], m[2], m[3])
		}
	}
	for _, f := range []string{csvFile, filepath.Join(dir, "memory.png"), filepath.Join(dir, "latency.png"), filepath.Join(dir, "delivery.png")} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}
