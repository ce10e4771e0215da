package e2e

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestJobsThroughput imports OUTPOST_JOBS_THROUGHPUT devices into a hub on
// SQLite and exports them again, logging devices per second. It measures,
// never asserts, and runs only when the variable is set. (It is a test, not
// a Benchmark, because the e2e fixtures take *testing.T.)
func TestJobsThroughput(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv("OUTPOST_JOBS_THROUGHPUT"))
	if err != nil || n <= 0 {
		t.Skip("set OUTPOST_JOBS_THROUGHPUT=<devices> to measure")
	}
	var opts []testserver.Option
	if os.Getenv("OUTPOST_JOBS_POSTGRES") != "" { // measure on PostgreSQL + external NATS too
		opts = append(opts, testserver.WithPostgres(), testserver.WithExternalNATS())
	}
	s := testserver.Start(t, opts...)
	s.Require443(t)
	env := newJobsEnv(t, s, "rg-jobs-bench")
	h := createHubWith(t, s, "rg-jobs-bench", "")
	var buf bytes.Buffer
	for i := range n {
		fmt.Fprintf(&buf, `{"id":"bench-%08d","status":"enabled","tags":{"floor":%d}}`+"\n", i, i%10)
	}
	env.put(t, "input", "devices.txt", buf.Bytes())
	buf = bytes.Buffer{}
	runtime.GC()
	debug.FreeOSMemory()
	// Sample this process's RSS while the jobs run (the in-process server
	// and blob service; the test's own input file is freed above).
	var peak atomic.Int64
	stop := make(chan struct{})
	go func() {
		for {
			if rss := vmRSS(); rss > peak.Load() {
				peak.Store(rss)
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	defer close(stop)
	start := time.Now()
	j := runJob(t, s, h, map[string]any{"type": "import", "inputBlobContainerUri": env.inSAS, "outputBlobContainerUri": env.outSAS})
	imp := time.Since(start)
	start = time.Now()
	j2 := runJob(t, s, h, map[string]any{"type": "export", "outputBlobContainerUri": env.outSAS})
	exp := time.Since(start)
	t.Logf("import of %d: %s (%s, %.0f devices/s); export: %s (%s, %.0f devices/s)", n, imp, j.Status, float64(n)/imp.Seconds(), exp, j2.Status, float64(n)/exp.Seconds())
	t.Logf("peak RSS of the process while the jobs ran (server, blob service, test): %d MiB", peak.Load()>>20)
}

// vmRSS is this process's resident set size in bytes (0 if unknown).
func vmRSS() int64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
