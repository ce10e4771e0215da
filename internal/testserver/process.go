package testserver

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/app"
)

// BuildBinary compiles cmd/outpost into a temporary directory and returns
// its path. OUTPOST_BINARY, when set, names a prebuilt binary instead.
func BuildBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("OUTPOST_BINARY"); p != "" {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	bin := filepath.Join(t.TempDir(), "outpost")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/outpost")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/outpost: %v\n%s", err, out)
	}
	return bin
}

// Process is Outpost running as a subprocess.
type Process struct {
	Binary   string
	DataDir  string
	IP       string
	Listen   string
	Endpoint string
	Args     []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	stderr *lockedBuffer
	exited chan struct{}
}

// StartProcess runs the binary with `serve` on a loopback address of its
// own, waits for /readyz and kills it when the test ends. extraArgs are
// passed to serve (e.g. --store-driver postgres).
func StartProcess(t testing.TB, binary string, extraArgs ...string) *Process {
	t.Helper()
	return startProcess(t, binary, t.TempDir(), extraArgs)
}

// startProcess is StartProcess with a data directory prepared by the caller.
func startProcess(t testing.TB, binary, dataDir string, extraArgs []string) *Process {
	t.Helper()
	p := &Process{Binary: binary, DataDir: dataDir, Args: extraArgs}
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		p.IP = loopbackCandidate()
		port := "443"
		if !canBind443(p.IP) {
			port = freePort(t, p.IP)
		}
		p.Listen = net.JoinHostPort(p.IP, port)
		p.Endpoint = "https://" + p.Listen
		if port == "443" {
			p.Endpoint = "https://" + p.IP
		}
		if lastErr = p.start(); lastErr == nil {
			break
		}
		if !strings.Contains(lastErr.Error(), "address already in use") {
			t.Fatalf("start outpost process: %v", lastErr)
		}
	}
	if lastErr != nil {
		t.Fatalf("start outpost process: %v", lastErr)
	}
	t.Cleanup(func() {
		p.Kill(t)
		if t.Failed() {
			t.Logf("outpost stderr:\n%s", p.Stderr())
		}
	})
	return p
}

func freePort(t testing.TB, ip string) string {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// start launches the process and waits until it is ready or exits.
func (p *Process) start() error {
	args := append([]string{"serve", "--data-dir", p.DataDir, "--listen", p.Listen, "--fallback-port", "0", "--log-level", "info"}, p.Args...)
	cmd := exec.Command(p.Binary, args...)
	buf := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = buf, buf
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Binary, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() //nolint:errcheck
	p.mu.Lock()
	p.cmd, p.stderr, p.exited = cmd, buf, exited
	p.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("outpost exited before it was ready: %s", buf.String())
		default:
		}
		if c, err := p.client(); err == nil {
			if resp, err := c.Get(p.Endpoint + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill() //nolint:errcheck
	return fmt.Errorf("outpost not ready after 30s: %s", buf.String())
}

// Restart starts the process again with the same data directory and address.
func (p *Process) Restart(t testing.TB) {
	t.Helper()
	if err := p.start(); err != nil {
		t.Fatalf("restart outpost: %v", err)
	}
}

// Kill sends SIGKILL (kill -9) and waits for the process to exit.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	p.signal(t, syscall.SIGKILL)
}

// Stop sends SIGTERM and waits for a graceful exit.
func (p *Process) Stop(t testing.TB) {
	t.Helper()
	p.signal(t, syscall.SIGTERM)
}

func (p *Process) signal(t testing.TB, sig syscall.Signal) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Logf("signal outpost: %v", err)
	}
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Errorf("outpost did not exit within 20s of %v", sig)
		cmd.Process.Kill() //nolint:errcheck
	}
}

// PID is the current process id.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Stderr returns what the process logged.
func (p *Process) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stderr == nil {
		return ""
	}
	return p.stderr.String()
}

// Runtime reads the runtime record the process wrote.
func (p *Process) Runtime(t testing.TB) app.Runtime {
	t.Helper()
	rt, err := app.ReadRuntime(p.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// HTTPClient trusts the process's CA.
func (p *Process) HTTPClient(t testing.TB) *http.Client {
	t.Helper()
	c, err := p.client()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (p *Process) client() (*http.Client, error) {
	pem, err := os.ReadFile(filepath.Join(p.DataDir, "pki", "ca.pem"))
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file holds no certificate")
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true,
	}}, nil
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
