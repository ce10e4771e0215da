package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/testenv"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// azTimeout bounds one az invocation; az itself takes 1–2 s to start.
const azTimeout = 2 * time.Minute

// azCLI runs the real az as a subprocess against one Outpost. Its
// environment is built from scratch rather than inherited, so no proxy,
// AZURE_* setting or logged-in ~/.azure of the machine can send it to the
// public cloud, and each azCLI has a configuration directory of its own.
type azCLI struct {
	t      *testing.T
	env    []string
	redact []string // secrets to keep out of the test log
}

func newAzCLI(t *testing.T, s *testserver.Server, redact ...string) *azCLI {
	t.Helper()
	if _, err := exec.LookPath("az"); err != nil {
		testenv.Unavailable(t, "az is not installed (Debian: apt-get install azure-cli)")
	}
	home := t.TempDir()
	return &azCLI{t: t, redact: redact, env: []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"LANG=C.UTF-8",
		"AZURE_CONFIG_DIR=" + t.TempDir(),
		"REQUESTS_CA_BUNDLE=" + s.CAFile,
		"AZURE_CORE_COLLECT_TELEMETRY=false",
		"AZURE_CORE_NO_COLOR=true",
		"AZURE_CORE_SURVEY_MESSAGE=false",
	}}
}

// azResult is what one az invocation produced.
type azResult struct {
	Cmd    string
	Stdout string
	Stderr string
	Err    error // nil on exit code 0
}

func (r azResult) String() string {
	return r.Cmd + "\n--- stdout:\n" + r.Stdout + "\n--- stderr:\n" + r.Stderr
}

// run invokes az and returns whatever happened, failing nothing.
func (a *azCLI) run(args ...string) azResult {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), azTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "az", args...)
	cmd.Env = a.env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		err = errors.Join(err, ctx.Err())
	}
	res := azResult{Cmd: a.hide("az " + strings.Join(args, " ")), Stdout: a.hide(stdout.String()), Stderr: a.hide(stderr.String()), Err: err}
	a.t.Logf("%s (%.1fs, err=%v)", res.Cmd, time.Since(start).Seconds(), err)
	return res
}

func (a *azCLI) hide(s string) string {
	for _, secret := range a.redact {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "<redacted>")
		}
	}
	return s
}

// ok invokes az and fails the test on a non-zero exit.
func (a *azCLI) ok(args ...string) azResult {
	a.t.Helper()
	res := a.run(args...)
	if res.Err != nil {
		a.t.Fatalf("%v\n%s", res.Err, res)
	}
	return res
}

// decode invokes az with JSON output and decodes stdout into v.
func (a *azCLI) decode(v any, args ...string) azResult {
	a.t.Helper()
	res := a.ok(append(args, "--output", "json")...)
	if err := json.Unmarshal([]byte(res.Stdout), v); err != nil {
		a.t.Fatalf("decode az output: %v\n%s", err, res)
	}
	return res
}

// azTokenClaims decodes the payload of a JWT without checking its signature
// (what az itself does with the tokens it is given).
func azTokenClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("access token has %d segments, want 3", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("decode token payload: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatalf("token payload %s: %v", b, err)
	}
	return claims
}

// azNewGUID returns a random (version 4) GUID, as az picks for a new role
// assignment name.
func azNewGUID(t *testing.T) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
