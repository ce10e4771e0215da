package testserver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/outpost-iot/outpost/internal/testenv"
)

// loopbackCandidates yields random loopback addresses 127.0.x.y, avoiding
// 127.0.0.1 (the machine's own services) and .0/.255.
func loopbackCandidate() string {
	return fmt.Sprintf("127.0.%d.%d", 1+rand.IntN(250), 2+rand.IntN(250))
}

// isRoot reports whether the process may bind ports below 1024 and edit
// /etc/hosts.
func isRoot() bool { return os.Geteuid() == 0 }

// privileged tries binding 443 once to learn whether this process may.
func canBind443(ip string) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "443"))
	if err != nil {
		return !errors.Is(err, syscall.EACCES)
	}
	ln.Close()
	return true
}

const hostsFile = "/etc/hosts"

// MapHosts adds "ip name" lines for names to /etc/hosts and removes them when
// the test ends. Tests that use it need root (CI runs as root); elsewhere
// they are skipped, or fail under CI=true.
func MapHosts(t testing.TB, ip string, names ...string) {
	t.Helper()
	if !isRoot() {
		testenv.Unavailable(t, "mapping host names needs root to edit %s", hostsFile)
	}
	// The tag names this call alone: tests sharing a server (and so an
	// ip), such as parallel subtests, each remove only their own lines.
	tag := fmt.Sprintf("# outpost-test pid=%d ip=%s map=%016x", os.Getpid(), ip, rand.Uint64())
	err := editHosts(func(lines []string) []string {
		for _, n := range names {
			lines = append(lines, fmt.Sprintf("%s %s %s", ip, n, tag))
		}
		return lines
	})
	if err != nil {
		t.Fatalf("map hosts: %v", err)
	}
	t.Cleanup(func() {
		if err := editHosts(func(lines []string) []string {
			out := lines[:0]
			for _, l := range lines {
				if !strings.HasSuffix(l, tag) {
					out = append(out, l)
				}
			}
			return out
		}); err != nil {
			t.Errorf("unmap hosts: %v", err)
		}
	})
}

// editHosts rewrites /etc/hosts under an exclusive lock, first dropping
// lines left behind by test processes that no longer exist.
func editHosts(edit func([]string) []string) error {
	f, err := os.OpenFile(hostsFile, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", hostsFile, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", hostsFile, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if pid, ok := testLinePID(l); ok && !processAlive(pid) {
			continue
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", hostsFile, err)
	}
	lines = edit(lines)
	var buf bytes.Buffer
	for _, l := range lines {
		buf.WriteString(l)
		buf.WriteByte('\n')
	}
	// /etc/hosts is often a bind mount (containers): rewrite in place rather
	// than rename over it. Write first, then cut the rest: resolvers read the
	// file without our lock, and truncating first would let one see an empty
	// file (a test's host name then fails with ENOTFOUND).
	if _, err := f.WriteAt(buf.Bytes(), 0); err != nil {
		return fmt.Errorf("write %s: %w", hostsFile, err)
	}
	if err := f.Truncate(int64(buf.Len())); err != nil {
		return fmt.Errorf("truncate %s: %w", hostsFile, err)
	}
	return nil
}

func testLinePID(line string) (int, bool) {
	_, rest, ok := strings.Cut(line, "# outpost-test pid=")
	if !ok {
		return 0, false
	}
	f, _, _ := strings.Cut(rest, " ")
	pid, err := strconv.Atoi(f)
	return pid, err == nil
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
