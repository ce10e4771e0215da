package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/testenv"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// clientsDir is test/clients, the npm project of real Azure JS clients.
func clientsDir(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "clients")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "azure-iot-device-mqtt")); err != nil {
		testenv.Unavailable(t, "npm packages missing in %s: run `npm ci` there (.ci/run does)", dir)
	}
	if _, err := exec.LookPath("node"); err != nil {
		testenv.Unavailable(t, "node is not installed")
	}
	return dir
}

// runNodeTest runs one node:test file of test/clients against s with the
// environment `outpost env` would print.
func runNodeTest(t *testing.T, s *testserver.Server, file string) {
	t.Helper()
	runNodeTestEnv(t, s, file, nil)
}

// runNodeTestEnv is runNodeTest with extra variables.
func runNodeTestEnv(t *testing.T, s *testserver.Server, file string, extra map[string]string) {
	t.Helper()
	dir := clientsDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// --test-force-exit: the SDKs sometimes leave a reconnect timer or a
	// keep-alive socket behind after their tests passed and were closed;
	// node would then wait out the whole timeout for the event loop.
	cmd := exec.CommandContext(ctx, "node", "--test", "--test-reporter=spec", "--test-timeout=90000", "--test-force-exit", file)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	for k, v := range s.Env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	for k, v := range extra {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	t.Logf("node --test %s:\n%s", file, out)
	if err != nil {
		t.Fatalf("node --test %s: %v", file, err)
	}
}

// TestNPMResourceGroups runs @azure/arm-resources against Outpost.
func TestNPMResourceGroups(t *testing.T) {
	forEachTier(t, func(t *testing.T, s *testserver.Server) {
		runNodeTest(t, s, "arm-resources.test.mjs")
	})
}

// TestNPMManagedIdentities runs @azure/arm-msi (user-assigned identities)
// against Outpost with a real token from its issuer.
func TestNPMManagedIdentities(t *testing.T) {
	forEachTier(t, func(t *testing.T, s *testserver.Server) {
		runNodeTest(t, s, "arm-msi.test.mjs")
	})
}
