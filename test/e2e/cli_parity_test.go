package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// outpostRun is one run of the outpost binary.
type outpostRun struct {
	stdout, stderr string
	code           int
}

// runOutpostCode runs the outpost binary against s (env from `outpost env`,
// plus extra) and returns its output and exit code, failing nothing.
func runOutpostCode(t *testing.T, s *testserver.Server, bin string, extra []string, args ...string) outpostRun {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "OUTPOST_CONFIG_DIR="+t.TempDir())
	for k, v := range s.Env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, extra...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("outpost %s: %v", strings.Join(args, " "), err)
	}
	return outpostRun{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// TestCLIMatchesAz runs the same read commands with the real az and with
// outpost against the same resources and wants the same bytes on stdout:
// -o json, table and tsv, with and without --query (the acceptance point
// "outpost … -o table and --query match az's shape on the same data").
func TestCLIMatchesAz(t *testing.T) {
	t.Parallel()
	bin := testserver.BuildBinary(t)
	s := testserver.Start(t)
	env := s.Env()
	az := newAzCLI(t, s, env["AZURE_CLIENT_SECRET"])
	azRegisterCloud(az, s)
	az.ok("login", "--service-principal", "-u", env["AZURE_CLIENT_ID"], "-p", env["AZURE_CLIENT_SECRET"], "--tenant", env["AZURE_TENANT_ID"])

	// The data, made with outpost: two groups (one tagged), two identities.
	for _, args := range [][]string{
		{"group", "create", "-n", "rg-par1", "-l", "westus"},
		{"group", "create", "-n", "rg-par2", "-l", "eastus", "--tags", "env=test", "team"},
		{"identity", "create", "-n", "id-par1", "-g", "rg-par1"},
		{"identity", "create", "-n", "id-par2", "-g", "rg-par1", "-l", "eastus"},
	} {
		if r := runOutpostCode(t, s, bin, nil, append(args, "-o", "none")...); r.code != 0 {
			t.Fatalf("outpost %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}

	cases := [][]string{
		{"group", "list"},
		{"group", "show", "-n", "rg-par2"},
		{"identity", "list", "-g", "rg-par1"},
		{"identity", "show", "-n", "id-par1", "-g", "rg-par1"},
		{"resource", "list", "-g", "rg-par1"},
		{"resource", "list", "--resource-type", "Microsoft.ManagedIdentity/userAssignedIdentities"},
		{"resource", "show", "-g", "rg-par1", "-n", "id-par2", "--resource-type", "Microsoft.ManagedIdentity/userAssignedIdentities"},
	}
	// Each case in every format, then one query of several kinds (az takes
	// 1–2 s a run, so not every combination).
	queries := []string{"[].{Name:name, Where:location}", "[0]", "[?location=='eastus'].name", "length(@)"}
	for i, c := range cases {
		for _, q := range []string{"", queries[i%len(queries)]} {
			if q != "" && c[1] == "show" {
				q = "{n:name, id:id, t:tags}" // a single object: a hash of it
			}
			formats := []string{"json", "table", "tsv"}
			if q != "" {
				formats = formats[1:]
			}
			for _, format := range formats {
				args := append(append([]string(nil), c...), "-o", format)
				if q != "" {
					args = append(args, "--query", q)
				}
				want := az.run(args...)
				got := runOutpostCode(t, s, bin, nil, args...)
				if (want.Err == nil) != (got.code == 0) {
					t.Errorf("%s: az err %v, outpost exit %d (%s)", strings.Join(args, " "), want.Err, got.code, got.stderr)
					continue
				}
				if got.stdout != want.Stdout {
					t.Errorf("%s:\noutpost printed\n%s\naz printed\n%s", strings.Join(args, " "), got.stdout, want.Stdout)
				}
			}
		}
	}
}

// TestCLIBadInput: every mistake is one line on stderr that says what to
// do, with az's exit codes (2 for the command line, 3 for a missing
// resource, 1 otherwise).
func TestCLIBadInput(t *testing.T) {
	t.Parallel()
	bin := testserver.BuildBinary(t)
	s := testserver.Start(t)
	bad := filepath.Join(t.TempDir(), "params.json")
	if err := os.WriteFile(bad, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	tpl := filepath.Join(t.TempDir(), "t.json")
	if err := os.WriteFile(tpl, []byte(`{"$schema":"https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#","contentVersion":"1.0.0.0","resources":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args  []string
		extra []string
		code  int
		says  string
	}{
		{[]string{"group", "list", "--bogus"}, nil, 2, "unknown flag: --bogus"},
		{[]string{"group", "show"}, nil, 2, "the following arguments are required: --name/-n"},
		{[]string{"group", "list", "-o", "xml"}, nil, 2, "invalid choice"},
		{[]string{"group", "list", "--query", "[?"}, nil, 2, "invalid jmespath query"},
		{[]string{"deployment", "group", "create", "-g", "rg", "--template-file", tpl, "--parameters", "novalue"}, nil, 2, "use name=value or @file.json"},
		{[]string{"deployment", "group", "create", "-g", "rg", "--template-file", tpl, "--parameters", "@" + bad}, nil, 2, "is not JSON"},
		{[]string{"group", "show", "-n", "no-such-group"}, nil, 3, "(ResourceGroupNotFound)"},
		{[]string{"group", "list"}, []string{"OUTPOST_ENDPOINT=https://127.0.0.1:1"}, 1, "can't reach Outpost at https://127.0.0.1:1"},
	}
	for _, c := range cases {
		r := runOutpostCode(t, s, bin, c.extra, c.args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != c.code || len(lines) != 1 || !strings.HasPrefix(lines[0], "ERROR: ") || !strings.Contains(lines[0], c.says) {
			t.Errorf("outpost %s: exit %d, stderr %q; want exit %d and one ERROR line saying %q",
				strings.Join(c.args, " "), r.code, r.stderr, c.code, c.says)
		}
		if r.stdout != "" {
			t.Errorf("outpost %s printed %q on stdout", strings.Join(c.args, " "), r.stdout)
		}
	}
}
