package e2e

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/testenv"
	"github.com/outpost-iot/outpost/internal/testenv/azurite"
)

// Azurite's well-known development account, which it serves when
// AZURITE_ACCOUNTS is not set.
const (
	azuriteAccount = azurite.Account
	azuriteKey     = azurite.Key
)

// blobSuite is the npm blob conformance suite in test/clients. It is
// configured only by the BLOB_* variables (see test/clients/lib/blob.mjs), so
// the same file runs against Azurite and against Outpost's blob service.
const blobSuite = "storage-blob.test.mjs"

// azuriteReadyTimeout bounds Azurite's start-up (node start and first listen).
const azuriteReadyTimeout = time.Minute

// startAzurite starts Azurite's blob service (the dev dependency in
// test/clients/node_modules) over HTTPS with a throwaway certificate, on a
// free loopback port, with its data in a temporary directory. It stops the
// process group when the test ends. It returns the path-style account URL
// (https://127.0.0.1:<port>/devstoreaccount1; the account is azuriteAccount
// with azuriteKey) and the PEM file of the certificate, which is its own CA:
// pass it as NODE_EXTRA_CA_CERTS, or add it to a Go client's root pool.
//
// Without node or the npm packages the test is skipped locally and fails
// under CI=true (testenv.Unavailable).
func startAzurite(t *testing.T, extraArgs ...string) (endpoint, caFile string) {
	t.Helper()
	dir := clientsDir(t)
	bin := filepath.Join(dir, "node_modules", ".bin", "azurite-blob")
	if _, err := os.Stat(bin); err != nil {
		testenv.Unavailable(t, "azurite is missing in %s: run `npm ci` there (.ci/run does)", dir)
	}

	tmp := t.TempDir()
	caFile, keyFile := azurite.WriteLoopbackCert(t, tmp)
	dataDir := filepath.Join(tmp, "data")
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}

	// The port is free when chosen, but another process may take it before
	// Azurite binds; start again on a new port when that happens.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := freeLoopbackPort(t)
		p, err := launchAzurite(dir, bin, port, dataDir, caFile, keyFile, extraArgs...)
		if err != nil {
			lastErr = err
			if p != nil && strings.Contains(p.out.String(), "EADDRINUSE") {
				continue
			}
			break
		}
		t.Cleanup(func() {
			p.stop()
			if t.Failed() {
				t.Logf("azurite output:\n%s", p.out.String())
			}
		})
		return "https://127.0.0.1:" + port + "/" + azuriteAccount, caFile
	}
	t.Fatalf("start azurite: %v", lastErr)
	return "", ""
}

// azuriteProcess is a running azurite-blob, leader of its own process group.
type azuriteProcess struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{} // closed when the process has been waited for
}

// launchAzurite starts azurite-blob and waits until it says it listens. On
// failure the process is gone and the returned process (if any) holds its
// output.
func launchAzurite(dir, bin, port, dataDir, certFile, keyFile string, extraArgs ...string) (*azuriteProcess, error) {
	args := []string{
		"--blobHost", "127.0.0.1",
		"--blobPort", port,
		"--location", dataDir,
		"--cert", certFile,
		"--key", keyFile,
		"--disableTelemetry", // otherwise it sends telemetry out
		"--loose",            // accept headers it does not know instead of failing
		"--skipApiVersionCheck",
	}
	cmd := exec.Command(bin, append(args, extraArgs...)...)
	cmd.Dir = dir
	// The default development account only.
	cmd.Env = azurite.Environ()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so that stop ends node and anything it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &azuriteProcess{cmd: cmd, out: out, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()

	deadline := time.NewTimer(azuriteReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.exited:
			return p, errors.New("azurite exited before listening: " + cmd.ProcessState.String() + "\n" + out.String())
		case <-deadline.C:
			p.stop()
			return p, errors.New("azurite did not listen within " + azuriteReadyTimeout.String() + "\n" + out.String())
		case <-tick.C:
			// "Azurite Blob service successfully listens on https://127.0.0.1:<port>"
			if strings.Contains(out.String(), "successfully listens on") {
				return p, nil
			}
		}
	}
}

// stop ends the process group: SIGTERM, then SIGKILL if it lingers.
func (p *azuriteProcess) stop() {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.exited
	}
}

// runBlobSuite runs the npm blob conformance suite (storage-blob.test.mjs) in
// test/clients with env (BLOB_ENDPOINT, BLOB_AUTH, ..., NODE_EXTRA_CA_CERTS),
// logs its output and fails the test when it fails. BLOB_* and AZURE_*
// variables of the caller's environment are not passed on, so only env
// configures the suite.
func runBlobSuite(t *testing.T, env map[string]string) {
	t.Helper()
	dir := clientsDir(t)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@azure", "storage-common")); err != nil {
		testenv.Unavailable(t, "@azure/storage-blob 12.31 is missing in %s: run `npm ci` there (.ci/run does)", dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "--test", "--test-reporter=spec", "--test-timeout=120000", blobSuite)
	cmd.Dir = dir
	cmd.Env = envWithout(os.Environ(), "BLOB_", "AZURE_", "NODE_EXTRA_CA_CERTS=")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("node --test %s (BLOB_AUTH=%s, %s):\n%s", blobSuite, env["BLOB_AUTH"], time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("node --test %s: %v", blobSuite, err)
	}
}

// envWithout returns environ less the entries whose "NAME=value" starts with
// one of prefixes.
func envWithout(environ []string, prefixes ...string) []string {
	var kept []string
next:
	for _, kv := range environ {
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				continue next
			}
		}
		kept = append(kept, kv)
	}
	return kept
}

// freeLoopbackPort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// syncBuffer is a bytes.Buffer safe for the process's writers and a reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
