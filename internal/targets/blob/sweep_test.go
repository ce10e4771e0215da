package blob

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSweepRemovesCrashLeftovers: an upload left in .tmp and content files
// no meta.json names (as a crash between a commit's steps leaves them) are
// removed; the blob's content, staged blocks and anything newer than the
// sweep's start stay.
func TestSweepRemovesCrashLeftovers(t *testing.T) {
	d := newTestDisk(t)
	data := testBytes(t, 10_000)
	putWhole(t, d, "kept.bin", data)
	stage(t, d, "staged.bin", "AAAA", testBytes(t, 100))
	dir := testBlobDir(t, d, "kept.bin")
	// Leftovers: an unfinished upload, an old data file, an orphan extent
	// directory.
	orphans := []string{filepath.Join(dir, "data-orphan"), filepath.Join(dir, "ext-orphan", "0")}
	tmp, _, _, err := d.spool(testAccount, testContainer, bytes.NewReader([]byte("half")), MaxBlockBytes, false)
	if err != nil {
		t.Fatal(err)
	}
	orphans = append(orphans, tmp)
	for _, p := range orphans[:2] {
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-time.Minute)
	for _, p := range append(orphans, filepath.Join(dir, "ext-orphan")) {
		if err := os.Chtimes(p, past, past); err != nil {
			t.Fatal(err)
		}
	}
	// Made after the sweep's start: an upload in flight, to be left alone.
	before := time.Now()
	fresh, _, _, err := d.spool(testAccount, testContainer, bytes.NewReader([]byte("in flight")), MaxBlockBytes, false)
	if err != nil {
		t.Fatal(err)
	}
	removed, err := d.Sweep(context.Background(), before.Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if removed != 3 {
		t.Errorf("removed %d entries, want 3 (the old upload, data-orphan, ext-orphan)", removed)
	}
	for _, p := range []string{orphans[0], filepath.Join(dir, "ext-orphan"), tmp} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived the sweep", p)
		}
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("the upload in flight was removed: %v", err)
	}
	if got := read(t, d, "kept.bin"); !bytes.Equal(got, data) {
		t.Error("the committed blob changed")
	}
	if _, err := os.Stat(filepath.Join(testBlobDir(t, d, "staged.bin"), "blocks")); err != nil {
		t.Errorf("staged blocks were removed: %v", err)
	}
}
