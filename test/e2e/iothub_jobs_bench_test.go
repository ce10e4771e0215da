package e2e

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
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
	s := testserver.Start(t)
	s.Require443(t)
	env := newJobsEnv(t, s, "rg-jobs-bench")
	h := createHubWith(t, s, "rg-jobs-bench", "")
	var buf bytes.Buffer
	for i := range n {
		fmt.Fprintf(&buf, `{"id":"bench-%08d","status":"enabled","tags":{"floor":%d}}`+"\n", i, i%10)
	}
	env.put(t, "input", "devices.txt", buf.Bytes())
	start := time.Now()
	j := runJob(t, s, h, map[string]any{"type": "import", "inputBlobContainerUri": env.inSAS, "outputBlobContainerUri": env.outSAS})
	imp := time.Since(start)
	start = time.Now()
	j2 := runJob(t, s, h, map[string]any{"type": "export", "outputBlobContainerUri": env.outSAS})
	exp := time.Since(start)
	t.Logf("import of %d: %s (%s, %.0f devices/s); export: %s (%s, %.0f devices/s)", n, imp, j.Status, float64(n)/imp.Seconds(), exp, j2.Status, float64(n)/exp.Seconds())
}
