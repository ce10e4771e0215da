package pki

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOpenReopenKeepsCA(t *testing.T) {
	dir := t.TempDir()
	first, err := Open(dir, Options{DNSSuffix: testSuffix}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	second, err := Open(dir, Options{DNSSuffix: testSuffix}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.CAPEM(), second.CAPEM()) {
		t.Fatal("reopening created a different CA")
	}
	if first.CAFile() != filepath.Join(dir, CAFileName) {
		t.Errorf("CAFile = %s", first.CAFile())
	}
	onDisk, err := os.ReadFile(second.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, second.CAPEM()) {
		t.Error("CAPEM differs from the CA file")
	}
	// A leaf from the reopened authority verifies against the first pool.
	leaf, err := second.IssueLeaf([]string{"localhost"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyServerLeaf(leaf.Leaf, first.CertPool(), "localhost"); err != nil {
		t.Error(err)
	}
}

func TestOpenFilePermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix permission bits")
	}
	dir := filepath.Join(t.TempDir(), "data", "pki") // Open creates missing parents
	if _, err := Open(dir, Options{}, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{CAFileName: 0o644, CAKeyFileName: 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %v, want %v", name, got, want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{CAKeyFileName, CAFileName}; !slices.Equal(names, want) {
		t.Errorf("directory holds %v, want only %v (no temporary files)", names, want)
	}
}

func TestOpenConcurrentFirstStartAgreesOnOneCA(t *testing.T) {
	dir := t.TempDir()
	const openers = 16
	pems := make([][]byte, openers)
	errs := make([]error, openers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range openers {
		wg.Go(func() {
			<-start
			a, err := Open(dir, Options{}, nil)
			if err != nil {
				errs[i] = err
				return
			}
			pems[i] = a.CAPEM()
		})
	}
	close(start)
	wg.Wait()
	for i := range openers {
		if errs[i] != nil {
			t.Fatalf("opener %d: %v", i, errs[i])
		}
		if !bytes.Equal(pems[i], pems[0]) {
			t.Fatalf("opener %d got a different CA from opener 0", i)
		}
	}
}

// helperDirEnv makes the test binary open a directory and print the CA's
// hash, so TestOpenConcurrentProcesses can race real processes.
const helperDirEnv = "OUTPOST_PKI_TEST_OPEN_DIR"

func TestOpenConcurrentProcesses(t *testing.T) {
	if dir := os.Getenv(helperDirEnv); dir != "" {
		a, err := Open(dir, Options{}, nil)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Printf("ca-sha256=%x\n", sha256.Sum256(a.CAPEM()))
		os.Exit(0)
	}
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	const processes = 6
	cmds := make([]*exec.Cmd, processes)
	outs := make([]bytes.Buffer, processes)
	for i := range cmds {
		cmds[i] = exec.Command(os.Args[0], "-test.run=^TestOpenConcurrentProcesses$")
		cmds[i].Env = append(os.Environ(), helperDirEnv+"="+dir)
		cmds[i].Stdout, cmds[i].Stderr = &outs[i], &outs[i]
	}
	// Start them all before waiting so their first starts overlap.
	for _, cmd := range cmds {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	hashes := map[string]bool{}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("process %d: %v: %s", i, err, outs[i].String())
		}
		out := strings.TrimSpace(outs[i].String())
		if !strings.HasPrefix(out, "ca-sha256=") {
			t.Fatalf("process %d printed %q", i, out)
		}
		hashes[out] = true
	}
	a, err := Open(dir, Options{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	hashes[fmt.Sprintf("ca-sha256=%x", sha256.Sum256(a.CAPEM()))] = true
	if len(hashes) != 1 {
		t.Errorf("processes ended with %d different CAs: %v", len(hashes), hashes)
	}
}

func TestOpenCompletesKeyWithoutCertificate(t *testing.T) {
	// What a crash between writing the key and the certificate leaves.
	dir := t.TempDir()
	first, err := Open(dir, Options{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(first.CAFile()); err != nil {
		t.Fatal(err)
	}
	second, err := Open(dir, Options{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if !first.caKey.Equal(second.caKey) {
		t.Error("the CA key changed")
	}
}

func TestOpenRejectsBadFiles(t *testing.T) {
	otherCA, err := Open(t.TempDir(), Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		file    string
		content []byte
		want    string
	}{
		{name: "certificate of another CA", file: CAFileName, content: otherCA.CAPEM(), want: "does not match"},
		{name: "garbage certificate", file: CAFileName, content: []byte("not pem"), want: "no CERTIFICATE PEM block"},
		{name: "garbage key", file: CAKeyFileName, content: []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), want: "ca-key.pem"},
		{name: "empty key", file: CAKeyFileName, content: nil, want: "no PEM block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Open(dir, Options{}, nil); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, tt.file), tt.content, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(dir, Options{}, nil)
			if err == nil || !strings.HasPrefix(err.Error(), "pki: open: ") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want a pki: open: error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	valid := []Options{
		{},
		{DNSSuffix: "outpost.localhost", Names: []string{"example.test", "*.queue.outpost.localhost", "10.1.2.3", "fe80::1", "Single"}},
		{DNSSuffix: "Outpost.Localhost."},
	}
	for _, o := range valid {
		if err := o.Validate(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
	invalid := Options{DNSSuffix: "localhost", Names: []string{"*.test", "a..b", "under_score.test", "*", "fe80::1%eth0"}}
	err := invalid.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	if got := strings.Count(err.Error(), "\n") + 1; got != 6 {
		t.Errorf("reported %d problems, want 6 at once:\n%v", got, err)
	}
	if _, err := Open(t.TempDir(), invalid, nil); err == nil || !strings.HasPrefix(err.Error(), "pki: open: ") {
		t.Errorf("Open with invalid options: %v", err)
	}
}

// TestOpenDuration logs what Open costs on a first and a later start; the
// binary has a 300 ms cold-start budget. Nothing is asserted: machines vary.
func TestOpenDuration(t *testing.T) {
	dir := t.TempDir()
	for _, start := range []string{"first", "later"} {
		begin := time.Now()
		if _, err := Open(dir, Options{DNSSuffix: testSuffix}, nil); err != nil {
			t.Fatal(err)
		}
		t.Logf("Open on %s start: %v", start, time.Since(begin))
	}
}
