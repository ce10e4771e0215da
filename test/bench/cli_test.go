package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/outpost-iot/outpost/internal/cli"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// BenchmarkCLIRoundTrip times one `iot hub show` for a hub, as a person
// types it: a new process each iteration, which signs in (client
// credentials), GETs the hub and prints it as JSON. The same command runs
// with the real az (registered against the same Outpost, signed in once)
// in the same run, for the ratio. The goal for outpost is 50 ms.
//
//	go test -run x -bench CLIRoundTrip -benchtime 20x ./test/bench/
func BenchmarkCLIRoundTrip(b *testing.B) {
	bin := outpostBinary(b)
	s := testserver.Start(b)
	env := s.Env()
	base := append(os.Environ(), "OUTPOST_CONFIG_DIR="+b.TempDir())
	for k, v := range env {
		base = append(base, k+"="+v)
	}
	run := func(b *testing.B, name string, extra []string, args ...string) {
		b.Helper()
		cmd := exec.Command(name, args...)
		cmd.Env = append(append([]string(nil), base...), extra...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run(b, bin, nil, "group", "create", "-n", "rg-bench", "-l", "westus", "-o", "none")
	run(b, bin, nil, "iot", "hub", "create", "-n", "benchhub-cli", "-g", "rg-bench", "--sku", "S1", "-o", "none")
	show := []string{"iot", "hub", "show", "-n", "benchhub-cli", "-g", "rg-bench"}

	b.Run("outpost", func(b *testing.B) {
		for b.Loop() {
			run(b, bin, nil, show...)
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/cmd")
	})

	b.Run("az", func(b *testing.B) {
		if _, err := exec.LookPath("az"); err != nil {
			b.Skip("az is not installed (Debian: apt-get install azure-cli)")
		}
		azEnv := []string{"AZURE_CONFIG_DIR=" + b.TempDir(), "HOME=" + b.TempDir(), "REQUESTS_CA_BUNDLE=" + s.CAFile,
			"AZURE_CORE_COLLECT_TELEMETRY=false", "AZURE_CORE_SURVEY_MESSAGE=false"}
		rt := s.App.Runtime()
		script := filepath.Join(b.TempDir(), "login.sh")
		lines := "set -e\n"
		for _, l := range cli.AzLines(rt) {
			lines += l + " >/dev/null\n"
		}
		if err := os.WriteFile(script, []byte(lines), 0o600); err != nil {
			b.Fatal(err)
		}
		run(b, "bash", azEnv, script)
		for b.Loop() {
			run(b, "az", azEnv, show...)
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/cmd")
	})
}
