package outposttest_test

import (
	"bytes"
	"encoding/json"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const (
	modulePath = "github.com/outpost-iot/outpost"
	azureSDK   = "github.com/Azure/azure-sdk-for-go/"
	// exampleFile is the example this test runs outside the module.
	exampleFile = "example_test.go"
)

// goModule is what `go mod edit -json` prints, the parts read here.
type goModule struct {
	Go      string
	Require []struct {
		Path     string
		Version  string
		Indirect bool
	}
}

// TestExampleInFreshModule is the acceptance test of the package: the
// example passes with `go test` in a module of its own that requires only
// Outpost (replaced by this checkout) and the Azure SDK, and imports only
// outposttest, the Azure SDK and the standard library — what a team
// testing its own Azure IoT code would write.
func TestExampleInFreshModule(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the go tool is needed to build a fresh module: %v", err)
		}
		t.Skipf("the go tool is needed to build a fresh module: %v", err)
	}
	t.Parallel()
	// go test runs a package's tests in its directory: the checkout's root
	// is the parent.
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	checkExampleImports(t, src)

	var parent goModule
	if err := json.Unmarshal(goCommand(t, goTool, root, "mod", "edit", "-json"), &parent); err != nil {
		t.Fatalf("go mod edit -json: %v", err)
	}
	var gomod strings.Builder
	gomod.WriteString("module example.test/outpostconsumer\n\ngo " + parent.Go + "\n\nrequire (\n")
	gomod.WriteString("\t" + modulePath + " v0.0.0\n")
	for _, r := range parent.Require {
		if strings.HasPrefix(r.Path, azureSDK) {
			gomod.WriteString("\t" + r.Path + " " + r.Version + "\n")
		}
	}
	gomod.WriteString(")\n\nreplace " + modulePath + " => " + strconv.Quote(root) + "\n")

	dir := t.TempDir()
	// The checkout's go.sum already holds every checksum the module graph
	// needs, so nothing it verified is looked up again; tidy drops the rest.
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"go.mod": []byte(gomod.String()), "go.sum": sum, exampleFile: src} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	goCommand(t, goTool, dir, "mod", "tidy")
	var tidy goModule
	if err := json.Unmarshal(goCommand(t, goTool, dir, "mod", "edit", "-json"), &tidy); err != nil {
		t.Fatalf("go mod edit -json: %v", err)
	}
	for _, r := range tidy.Require {
		if !r.Indirect && r.Path != modulePath && !strings.HasPrefix(r.Path, azureSDK) {
			t.Errorf("the fresh module requires %s directly; it should need only Outpost and the Azure SDK", r.Path)
		}
	}
	args := []string{"test", "-count=1"}
	if raceEnabled {
		args = append(args, "-race")
	}
	out := goCommand(t, goTool, dir, append(args, "./...")...)
	t.Logf("go test in the fresh module:\n%s", out)
}

// checkExampleImports fails the test if the example imports anything but
// the standard library, the Azure SDK and outposttest.
func checkExampleImports(t *testing.T, src []byte) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), exampleFile, src, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		first, _, _ := strings.Cut(path, "/")
		std := !strings.Contains(first, ".")
		if !std && !strings.HasPrefix(path, azureSDK) && path != modulePath+"/outposttest" {
			t.Errorf("%s imports %s: the example may import only the standard library, the Azure SDK and outposttest", exampleFile, path)
		}
	}
}

// goCommand runs the go tool in dir with this process's environment (so
// GOFLAGS, GOPROXY and the module and build caches are the parent's) and
// returns its standard output, failing the test with everything it printed
// if the command fails.
func goCommand(t *testing.T, goTool, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(goTool, args...)
	cmd.Dir = dir
	// A go.work above the temporary directory must not pull it into
	// another workspace.
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go %s in %s: %v\n%s%s", strings.Join(args, " "), dir, err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes()
}
