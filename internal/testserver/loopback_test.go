package testserver

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/outpost-iot/outpost/internal/testenv"
)

// TestMapHosts checks that mapped names resolve through the system resolver
// (what node and az use) and are gone after cleanup. Go's own resolver
// caches /etc/hosts for up to 5 s, so this asks libc through getent.
func TestMapHosts(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "MapHosts needs root")
	}
	if _, err := exec.LookPath("getent"); err != nil {
		testenv.Unavailable(t, "getent is not installed")
	}
	ip := loopbackCandidate()
	name := "maphosts-" + strings.ReplaceAll(ip, ".", "-") + ".outpost.localhost"
	t.Run("mapped", func(t *testing.T) {
		MapHosts(t, ip, name)
		out, err := exec.Command("getent", "hosts", name).Output()
		if err != nil || !strings.HasPrefix(string(out), ip+" ") {
			t.Fatalf("getent hosts %s = %q, %v; want %s", name, out, err, ip)
		}
	})
	if out, err := exec.Command("getent", "hosts", name).Output(); err == nil {
		t.Errorf("%s still resolves after cleanup: %q", name, out)
	}
	b, _ := os.ReadFile(hostsFile)
	if strings.Contains(string(b), name) {
		t.Errorf("%s left a line in %s", name, hostsFile)
	}

	// Two mappings to the same ip (parallel subtests of one server): the
	// one that ends first removes its own name only.
	kept := "kept-" + name
	MapHosts(t, ip, kept)
	t.Run("same ip", func(t *testing.T) { MapHosts(t, ip, "other-"+name) })
	if out, err := exec.Command("getent", "hosts", kept).Output(); err != nil || !strings.HasPrefix(string(out), ip+" ") {
		t.Errorf("getent hosts %s after another mapping to %s ended = %q, %v; want it still mapped", kept, ip, out, err)
	}
}
