package bench

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// What a start-up sample measures: wall time from just before fork/exec
// (cmd.Start) to the moment the first ready answer has been read — a 200
// from Outpost's GET /readyz, or any HTTP answer from Azurite. The prober
// retries every millisecond, so a sample overstates the true time by up to
// about 1 ms plus one request. For Outpost the prober cannot trust the
// server before its CA exists, so reading DATA_DIR/pki/ca.pem and building
// the TLS client happens inside the window, once per start (well under a
// millisecond); the first successful request includes a full TLS handshake,
// as any real client's would.

const (
	pollInterval = time.Millisecond
	// startTimeout bounds one start; a start that takes this long is a
	// failure, not a sample.
	startTimeout = 60 * time.Second
	// idleFor is how long a server sits ready and unused before its memory
	// is read.
	idleFor = 2 * time.Second
)

// BenchmarkColdStartOutpost starts the binary on a fresh, empty data
// directory each iteration: a first start that creates the CA, the SQLite
// database and the JetStream directory.
func BenchmarkColdStartOutpost(b *testing.B) {
	bin := outpostBinary(b)
	samples := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	b.StopTimer()
	for range b.N {
		dataDir := b.TempDir()
		b.StartTimer()
		p, took := start(b, outpost(bin, dataDir))
		b.StopTimer()
		samples = append(samples, took)
		p.kill(b)
	}
	reportStartTimes(b, samples)
}

// BenchmarkWarmStartOutpost restarts one installation: the data directory
// is created by an untimed first start and reused by every iteration. The
// sub-benchmarks differ in how the previous run ended: a graceful SIGTERM
// stop (an ordinary restart) or SIGKILL (restart after a crash, which may
// recover the SQLite WAL and JetStream state).
func BenchmarkWarmStartOutpost(b *testing.B) {
	bin := outpostBinary(b)
	for _, stop := range []struct {
		name string
		stop func(*process, testing.TB)
	}{
		{"after-sigterm", (*process).terminate},
		{"after-sigkill", (*process).kill},
	} {
		b.Run(stop.name, func(b *testing.B) {
			dataDir := b.TempDir()
			p, _ := start(b, outpost(bin, dataDir))
			stop.stop(p, b)
			samples := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			b.StopTimer()
			for range b.N {
				b.StartTimer()
				p, took := start(b, outpost(bin, dataDir))
				b.StopTimer()
				samples = append(samples, took)
				stop.stop(p, b)
			}
			reportStartTimes(b, samples)
		})
	}
}

// BenchmarkColdStartAzurite starts Azurite's blob service with in-memory
// persistence each iteration — the emulator Outpost's storage surface
// replaces, measured the same way for comparison.
func BenchmarkColdStartAzurite(b *testing.B) {
	node, entry := azuriteBlob(b)
	samples := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	b.StopTimer()
	for range b.N {
		workDir := b.TempDir()
		b.StartTimer()
		p, took := start(b, azurite(node, entry, workDir))
		b.StopTimer()
		samples = append(samples, took)
		p.kill(b)
	}
	reportStartTimes(b, samples)
}

// BenchmarkIdleRSS starts a server, waits until it is ready, leaves it idle
// for idleFor and reads VmRSS and VmHWM (peak RSS) from /proc/PID/status.
// It reports the medians over iterations in MiB as MB-rss and MB-hwm;
// ns/op is meaningless here (it is mostly the idle wait).
func BenchmarkIdleRSS(b *testing.B) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Skip("needs /proc/PID/status (Linux)")
	}
	b.Run("outpost", func(b *testing.B) {
		bin := outpostBinary(b)
		measureIdleMemory(b, func() server { return outpost(bin, b.TempDir()) })
	})
	b.Run("azurite", func(b *testing.B) {
		node, entry := azuriteBlob(b)
		measureIdleMemory(b, func() server { return azurite(node, entry, b.TempDir()) })
	})
}

func measureIdleMemory(b *testing.B, newServer func() server) {
	var rss, hwm []float64
	for range b.N {
		p, _ := start(b, newServer())
		time.Sleep(idleFor)
		status, err := readMemoryStatus(p.cmd.Process.Pid)
		p.kill(b)
		if err != nil {
			b.Fatal(err)
		}
		rss = append(rss, status.rssMiB)
		hwm = append(hwm, status.hwmMiB)
	}
	b.ReportMetric(median(rss), "MB-rss")
	b.ReportMetric(median(hwm), "MB-hwm")
}

// server says how to run one kind of server on 127.0.0.1:port and how to
// tell that it is ready.
type server struct {
	command func(port string) *exec.Cmd
	// prober returns the readiness check for one start. It is called before
	// the timed window; the check it returns runs inside it.
	prober func(port string) func() bool
}

// outpost is the binary serving with dataDir on a port of its own, logging
// at the default level as an operator would run it.
func outpost(bin, dataDir string) server {
	return server{
		command: func(port string) *exec.Cmd {
			return exec.Command(bin, "serve", "--data-dir", dataDir,
				"--listen", net.JoinHostPort("127.0.0.1", port), "--fallback-port", "0")
		},
		prober: func(port string) func() bool {
			caFile := filepath.Join(dataDir, "pki", "ca.pem")
			url := "https://" + net.JoinHostPort("127.0.0.1", port) + "/readyz"
			var client *http.Client
			return func() bool {
				if client == nil {
					// The CA file appears during start-up; until it is
					// complete there is nothing to trust.
					pool := x509.NewCertPool()
					pem, err := os.ReadFile(caFile)
					if err != nil || !pool.AppendCertsFromPEM(pem) {
						return false
					}
					client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
						TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
					}}
				}
				return get(client, url, http.StatusOK)
			}
		},
	}
}

// azurite is Azurite's blob service keeping blobs in memory (it refuses
// --location with --inMemoryPersistence), run in workDir so that nothing it
// might write lands in the repository.
func azurite(node, entry, workDir string) server {
	return server{
		command: func(port string) *exec.Cmd {
			cmd := exec.Command(node, entry, "--blobHost", "127.0.0.1", "--blobPort", port,
				"--silent", "--inMemoryPersistence", "--disableTelemetry",
				"--skipApiVersionCheck")
			cmd.Dir = workDir
			return cmd
		},
		prober: func(port string) func() bool {
			// Any HTTP answer (403 for an unsigned list) means it serves.
			url := "http://" + net.JoinHostPort("127.0.0.1", port) + "/devstoreaccount1?comp=list"
			client := &http.Client{Timeout: 5 * time.Second}
			return func() bool { return get(client, url, 0) }
		},
	}
}

// get reports whether GET url answered with status, or with anything when
// status is 0.
func get(client *http.Client, url string, status int) bool {
	resp, err := client.Get(url)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body) //nolint:errcheck // only the status matters
	resp.Body.Close()
	return status == 0 || resp.StatusCode == status
}

// process is a started server.
type process struct {
	cmd    *exec.Cmd
	output *lockedBuffer
	exited chan struct{}
}

// start runs srv on a free loopback port and returns it once ready, with
// the time that took. A port taken between choosing and binding it (the
// machine is shared) costs a retry, not a sample.
func start(b testing.TB, srv server) (*process, time.Duration) {
	b.Helper()
	var err error
	for range 5 {
		port := freePort(b)
		var p *process
		var took time.Duration
		p, took, err = launch(srv.command(port), srv.prober(port))
		if err == nil {
			b.Cleanup(func() { p.kill(b) })
			return p, took
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	b.Fatal(err)
	return nil, 0
}

func launch(cmd *exec.Cmd, ready func() bool) (*process, time.Duration, error) {
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p := &process{cmd: cmd, output: out, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }() //nolint:errcheck // the exit is reported through output
	for {
		if ready() {
			return p, time.Since(begin), nil
		}
		select {
		case <-p.exited:
			return nil, 0, fmt.Errorf("%s exited before it was ready: %s", cmd.Path, out)
		default:
		}
		if time.Since(begin) > startTimeout {
			p.signal(syscall.SIGKILL)
			<-p.exited
			return nil, 0, fmt.Errorf("%s not ready after %v: %s", cmd.Path, startTimeout, out)
		}
		time.Sleep(pollInterval)
	}
}

// kill ends the process with SIGKILL and waits for it.
func (p *process) kill(t testing.TB) {
	p.signal(syscall.SIGKILL)
	<-p.exited
}

// terminate asks for a graceful stop with SIGTERM and waits for it.
func (p *process) terminate(t testing.TB) {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.signal(syscall.SIGKILL)
		<-p.exited
		t.Fatalf("%s did not stop within 30s of SIGTERM: %s", p.cmd.Path, p.output)
	}
}

func (p *process) signal(sig syscall.Signal) {
	select {
	case <-p.exited:
	default:
		p.cmd.Process.Signal(sig) //nolint:errcheck // it may have exited meanwhile
	}
}

func freePort(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// reportStartTimes adds the median and 90th percentile start time in
// milliseconds; the mean is ns/op.
func reportStartTimes(b *testing.B, samples []time.Duration) {
	ms := make([]float64, len(samples))
	for i, s := range samples {
		ms[i] = float64(s) / float64(time.Millisecond)
	}
	b.ReportMetric(median(ms), "ms/start-median")
	b.ReportMetric(percentile(ms, 0.9), "ms/start-p90")
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// percentile is the nearest-rank percentile (p in (0, 1]).
func percentile(xs []float64, p float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(i, 0)]
}

type memoryStatus struct{ rssMiB, hwmMiB float64 }

// readMemoryStatus reads VmRSS and VmHWM, which the kernel reports in KiB.
func readMemoryStatus(pid int) (memoryStatus, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memoryStatus{}, fmt.Errorf("read memory status: %w", err)
	}
	defer f.Close()
	var st memoryStatus
	found := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		kib, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 64)
		if err != nil {
			return memoryStatus{}, fmt.Errorf("read memory status: %s: %w", key, err)
		}
		if key == "VmRSS" {
			st.rssMiB = kib / 1024
		} else {
			st.hwmMiB = kib / 1024
		}
		found++
	}
	if err := sc.Err(); err != nil {
		return memoryStatus{}, fmt.Errorf("read memory status: %w", err)
	}
	if found != 2 {
		return memoryStatus{}, fmt.Errorf("read memory status: VmRSS or VmHWM missing from /proc/%d/status", pid)
	}
	return st, nil
}

// repoRoot is the module root, found from this file's location so the
// benchmarks work from any directory.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// buildDir holds the binary builtOutpost makes; TestMain creates and
// removes it.
var buildDir string

// builtOutpost builds ./cmd/outpost at most once per test binary run: a
// benchmark function runs more than once (b.N = 1 first, then the real
// count), and each link takes seconds.
var builtOutpost = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(buildDir, "outpost")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/outpost")
	cmd.Dir = repoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/outpost: %w\n%s", err, out)
	}
	return bin, nil
})

// outpostBinary is OUTPOST_BINARY when set, or the binary built from this
// checkout.
func outpostBinary(b testing.TB) string {
	b.Helper()
	if p := os.Getenv("OUTPOST_BINARY"); p != "" {
		return p
	}
	bin, err := builtOutpost()
	if err != nil {
		b.Fatal(err)
	}
	return bin
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "outpost-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// azuriteBlob returns node and the entry point of Azurite's blob service
// (its package.json "azurite-blob" bin) from test/clients/node_modules, or
// skips the benchmark.
func azuriteBlob(b testing.TB) (node, entry string) {
	b.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		b.Skip("node is not installed")
	}
	pkgDir := filepath.Join(repoRoot(), "test", "clients", "node_modules", "azurite")
	raw, err := os.ReadFile(filepath.Join(pkgDir, "package.json"))
	if errors.Is(err, os.ErrNotExist) {
		b.Skip("azurite is not installed (cd test/clients && npm ci)")
	}
	if err != nil {
		b.Fatal(err)
	}
	var pkg struct {
		Bin map[string]string `json:"bin"`
	}
	if err := json.Unmarshal(raw, &pkg); err != nil {
		b.Fatalf("azurite package.json: %v", err)
	}
	rel, ok := pkg.Bin["azurite-blob"]
	if !ok {
		b.Fatal(`azurite package.json has no "azurite-blob" bin`)
	}
	return node, filepath.Join(pkgDir, rel)
}

// lockedBuffer collects a process's output for error messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
