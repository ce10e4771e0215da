package blob

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests drive Disk directly: they look at the files, which the
// handler tests through azblob cannot see.

const (
	testAccount   = "acct"
	testContainer = "data"
)

func newTestDisk(t *testing.T) *Disk {
	t.Helper()
	d, err := NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func testBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func testBlobDir(t *testing.T, d *Disk, name string) string {
	t.Helper()
	dir, err := d.blobDir(testAccount, testContainer, name)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// stage puts an uncommitted block and returns its file's identity.
func stage(t *testing.T, d *Disk, name, id string, data []byte) os.FileInfo {
	t.Helper()
	path, _, _, err := d.spool(testAccount, testContainer, bytes.NewReader(data), MaxBlockBytes, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.putBlock(testAccount, testContainer, name, []byte(id), path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(blockFile(testBlobDir(t, d, name), []byte(id)))
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func entry(kind, id string) listEntry {
	return listEntry{Kind: kind, ID: base64.StdEncoding.EncodeToString([]byte(id)), raw: []byte(id)}
}

func latest(ids ...string) []listEntry {
	var out []listEntry
	for _, id := range ids {
		out = append(out, entry("Latest", id))
	}
	return out
}

func commitList(d *Disk, name string, list []listEntry) error {
	now := time.Now()
	m := &blobMeta{Name: name, Created: now, Modified: now, ETag: d.newETag(now)}
	return d.putBlockList(testAccount, testContainer, m, list, func(*blobMeta) error { return nil })
}

func mustCommitList(t *testing.T, d *Disk, name string, list []listEntry) *blobMeta {
	t.Helper()
	if err := commitList(d, name, list); err != nil {
		t.Fatal(err)
	}
	m, err := d.stat(testAccount, testContainer, name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func putWhole(t *testing.T, d *Disk, name string, data []byte) {
	t.Helper()
	path, n, _, err := d.spool(testAccount, testContainer, bytes.NewReader(data), MaxPutBlobBytes, true)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	m := &blobMeta{Name: name, Type: "BlockBlob", Size: n, Created: now, Modified: now, ETag: d.newETag(now)}
	if err := d.putBlob(testAccount, testContainer, m, path, func(*blobMeta) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func readContent(t *testing.T, c content, size int64) []byte {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(c, 0, size))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// read returns a blob's content as Get Blob reads it.
func read(t *testing.T, d *Disk, name string) []byte {
	t.Helper()
	m, c, err := d.open(testAccount, testContainer, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return readContent(t, c, m.Size)
}

// contentDirs lists what a blob directory holds besides meta.json.
func contentNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Name() != "meta.json" {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestPutBlockListMovesBlocksWithoutCopying(t *testing.T) {
	d := newTestDisk(t)
	a, b, c := testBytes(t, 1000), testBytes(t, 5), testBytes(t, 3000)
	staged := []os.FileInfo{stage(t, d, "x", "a", a), stage(t, d, "x", "b", b), stage(t, d, "x", "c", c)}
	// A block staged but not listed is discarded by the commit.
	stage(t, d, "x", "z", testBytes(t, 10))

	m := mustCommitList(t, d, "x", latest("a", "b", "c"))
	dir := testBlobDir(t, d, "x")
	if m.Extents == "" || m.Data != "" || m.Size != 4005 {
		t.Fatalf("meta = %+v, want extents of 4005 bytes", m)
	}
	wantBlocks := []committedBlock{{entry("", "a").ID, 0, 1000}, {entry("", "b").ID, 1000, 5}, {entry("", "c").ID, 1005, 3000}}
	for i, blk := range m.Blocks {
		if blk != wantBlocks[i] {
			t.Fatalf("block %d = %+v, want %+v", i, blk, wantBlocks[i])
		}
		fi, err := os.Stat(extentFile(dir, m.Extents, i))
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(fi, staged[i]) {
			t.Errorf("extent %d is not the staged block file (copied, not moved)", i)
		}
	}
	if got := contentNames(t, dir); len(got) != 1 || got[0] != m.Extents {
		t.Errorf("blob directory holds %v, want only %s (blocks/ removed)", got, m.Extents)
	}
	if got := read(t, d, "x"); !bytes.Equal(got, bytes.Join([][]byte{a, b, c}, nil)) {
		t.Fatal("content differs")
	}
}

func TestExtentReadsAcrossBoundaries(t *testing.T) {
	d := newTestDisk(t)
	// An empty block in the middle: it ends where it starts, so no read may
	// stop at it.
	parts := [][]byte{testBytes(t, 7), testBytes(t, 1), {}, testBytes(t, 8), testBytes(t, 3)}
	for i, p := range parts {
		stage(t, d, "x", string(rune('a'+i)), p)
	}
	m := mustCommitList(t, d, "x", latest("a", "b", "c", "d", "e"))
	want := bytes.Join(parts, nil)
	_, c, err := d.open(testAccount, testContainer, "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*extentReader); !ok || m.Extents == "" {
		t.Fatalf("content is %T, want extents", c)
	}
	size := int64(len(want))
	for off := int64(0); off <= size+1; off++ {
		for n := 0; n <= len(want)+2; n++ {
			p := make([]byte, n)
			got, err := c.ReadAt(p, off)
			wantN := int(max(0, min(int64(n), size-off)))
			if got != wantN || !bytes.Equal(p[:got], want[min(off, size):min(off, size)+int64(wantN)]) {
				t.Fatalf("ReadAt(%d bytes, %d) = %d %q, want %d bytes", n, off, got, p[:got], wantN)
			}
			switch {
			case got < n && err != io.EOF:
				t.Fatalf("ReadAt(%d bytes, %d): short read with %v, want io.EOF", n, off, err)
			case got == n && n > 0 && err != nil:
				t.Fatalf("ReadAt(%d bytes, %d): %v", n, off, err)
			}
		}
	}
	if _, err := c.ReadAt(make([]byte, 1), -1); err == nil {
		t.Error("ReadAt at a negative offset succeeded")
	}
	// A section inside one extent and one across all of them.
	for _, r := range [][2]int64{{8, 0}, {9, 3}, {2, 15}} {
		got, err := io.ReadAll(io.NewSectionReader(c, r[0], r[1]))
		if err != nil || !bytes.Equal(got, want[r[0]:r[0]+r[1]]) {
			t.Errorf("section %v = %q %v", r, got, err)
		}
	}
}

// TestOverwriteWhileReading replaces a blob, in both layouts, while a reader
// holds the old content open: the reader keeps the old bytes, and the old
// content is gone from disk.
func TestOverwriteWhileReading(t *testing.T) {
	d := newTestDisk(t)
	dir := testBlobDir(t, d, "x")
	v1a, v1b := testBytes(t, 100), testBytes(t, 50)
	stage(t, d, "x", "a", v1a)
	stage(t, d, "x", "b", v1b)
	m1 := mustCommitList(t, d, "x", latest("a", "b"))
	_, r1, err := d.open(testAccount, testContainer, "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()

	// Put Blob over the extents.
	v2 := testBytes(t, 70)
	putWhole(t, d, "x", v2)
	if got := readContent(t, r1, m1.Size); !bytes.Equal(got, append(v1a, v1b...)) {
		t.Fatal("reader of the block list lost its content to Put Blob")
	}
	if _, err := os.Stat(filepath.Join(dir, m1.Extents)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("old extents after Put Blob: %v, want removed", err)
	}
	if got := read(t, d, "x"); !bytes.Equal(got, v2) {
		t.Fatal("Put Blob content differs")
	}

	// A block list over the single file.
	m2, r2, err := d.open(testAccount, testContainer, "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	v3 := testBytes(t, 33)
	stage(t, d, "x", "c", v3)
	m3 := mustCommitList(t, d, "x", latest("c"))
	if got := readContent(t, r2, m2.Size); !bytes.Equal(got, v2) {
		t.Fatal("reader of Put Blob content lost it to a block list")
	}
	if _, err := os.Stat(filepath.Join(dir, m2.Data)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("old data file after the block list: %v, want removed", err)
	}

	// A second block list over the first.
	_, r3, err := d.open(testAccount, testContainer, "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r3.Close()
	v4 := testBytes(t, 44)
	stage(t, d, "x", "d", v4)
	m4 := mustCommitList(t, d, "x", latest("d"))
	if got := readContent(t, r3, m3.Size); !bytes.Equal(got, v3) {
		t.Fatal("reader of a block list lost its content to the next block list")
	}
	if got := contentNames(t, dir); len(got) != 1 || got[0] != m4.Extents {
		t.Errorf("blob directory holds %v, want only %s", got, m4.Extents)
	}
	if got := read(t, d, "x"); !bytes.Equal(got, v4) {
		t.Fatal("second block list content differs")
	}
}

// TestPutBlockListCopiesWhatNoBlockFileHolds lists committed blocks again
// and one block twice: the content is built by copying, from either layout.
func TestPutBlockListCopiesWhatNoBlockFileHolds(t *testing.T) {
	d := newTestDisk(t)
	dir := testBlobDir(t, d, "x")
	a, b, c := testBytes(t, 10), testBytes(t, 20), testBytes(t, 30)
	stage(t, d, "x", "a", a)
	stage(t, d, "x", "b", b)
	m1 := mustCommitList(t, d, "x", latest("a", "b"))

	// Committed blocks of an extents blob, around a new one.
	stage(t, d, "x", "c", c)
	m2 := mustCommitList(t, d, "x", []listEntry{entry("Committed", "b"), entry("Uncommitted", "c"), entry("Latest", "a")})
	if m2.Data == "" || m2.Extents != "" {
		t.Fatalf("meta = %+v, want one data file", m2)
	}
	if got := read(t, d, "x"); !bytes.Equal(got, bytes.Join([][]byte{b, c, a}, nil)) {
		t.Fatal("content from committed extents differs")
	}
	if got := contentNames(t, dir); len(got) != 1 || got[0] != m2.Data {
		t.Errorf("blob directory holds %v, want only %s (old extents %s removed)", got, m2.Data, m1.Extents)
	}
	if m2.Blocks[1] != (committedBlock{entry("", "c").ID, 20, 30}) {
		t.Errorf("blocks = %+v", m2.Blocks)
	}

	// Committed blocks of a single-file blob.
	mustCommitList(t, d, "x", []listEntry{entry("Committed", "a"), entry("Latest", "c")})
	if got := read(t, d, "x"); !bytes.Equal(got, append(append([]byte{}, a...), c...)) {
		t.Fatal("content from a committed data file differs")
	}

	// One uncommitted block twice.
	stage(t, d, "x", "d", b)
	m4 := mustCommitList(t, d, "x", latest("d", "d"))
	if m4.Data == "" || m4.Size != 40 {
		t.Fatalf("meta = %+v, want one data file of 40 bytes", m4)
	}
	if got := read(t, d, "x"); !bytes.Equal(got, append(append([]byte{}, b...), b...)) {
		t.Fatal("content of a block listed twice differs")
	}
}

// TestInvalidBlockListMovesNothing: a list naming a block that is not there
// leaves the old blob and the staged blocks as they were.
func TestInvalidBlockListMovesNothing(t *testing.T) {
	d := newTestDisk(t)
	dir := testBlobDir(t, d, "x")
	old := testBytes(t, 64)
	stage(t, d, "x", "a", old)
	m1 := mustCommitList(t, d, "x", latest("a"))
	staged := stage(t, d, "x", "b", testBytes(t, 16))

	for _, list := range [][]listEntry{
		latest("b", "n"),
		{entry("Uncommitted", "b"), entry("Uncommitted", "a")}, // a is committed, not uncommitted
		{entry("Committed", "b")},
	} {
		err := commitList(d, "x", list)
		var e *Error
		if !errors.As(err, &e) || e.Code != "InvalidBlockList" {
			t.Fatalf("commit %v: %v, want InvalidBlockList", list, err)
		}
	}
	m, err := d.stat(testAccount, testContainer, "x")
	if err != nil || m.ETag != m1.ETag || m.Extents != m1.Extents {
		t.Fatalf("meta after refused lists = %+v %v, want the old one", m, err)
	}
	if got := read(t, d, "x"); !bytes.Equal(got, old) {
		t.Fatal("old content changed")
	}
	fi, err := os.Stat(blockFile(dir, []byte("b")))
	if err != nil || !os.SameFile(fi, staged) {
		t.Fatalf("staged block after refused lists: %v", err)
	}
	if names := contentNames(t, dir); len(names) != 2 || !strings.HasPrefix(strings.Join(names, ","), "blocks,ext-") {
		t.Errorf("blob directory holds %v, want blocks and one extents directory", names)
	}
}

func TestRemoveExtentBlobWhileReading(t *testing.T) {
	d := newTestDisk(t)
	a, b := testBytes(t, 10), testBytes(t, 20)
	stage(t, d, "x", "a", a)
	stage(t, d, "x", "b", b)
	mustCommitList(t, d, "x", latest("a", "b"))
	m, c, err := d.open(testAccount, testContainer, "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := d.remove(testAccount, testContainer, "x", func(*blobMeta) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(testBlobDir(t, d, "x")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("blob directory after delete: %v, want removed", err)
	}
	if _, _, err := d.open(testAccount, testContainer, "x", nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("open after delete: %v, want not found", err)
	}
	if got := readContent(t, c, m.Size); !bytes.Equal(got, append(a, b...)) {
		t.Fatal("reader lost its content to the delete")
	}
}

// TestCommitExtentsUndoesAFailedMove: when a rename fails halfway, the
// blocks already moved go back where they were staged.
func TestCommitExtentsUndoesAFailedMove(t *testing.T) {
	d := newTestDisk(t)
	dir := testBlobDir(t, d, "x")
	staged := stage(t, d, "x", "a", testBytes(t, 10))
	srcs := []blockSource{
		{id: entry("", "a").ID, file: blockFile(dir, []byte("a")), size: 10},
		{id: entry("", "b").ID, file: blockFile(dir, []byte("b")), size: 10}, // never staged
	}
	now := time.Now()
	m := &blobMeta{Name: "x", Type: "BlockBlob", Created: now, Modified: now, ETag: d.newETag(now)}
	if err := commitExtents(dir, m, nil, srcs); err == nil {
		t.Fatal("commit of a missing block file succeeded")
	}
	fi, err := os.Stat(srcs[0].file)
	if err != nil || !os.SameFile(fi, staged) {
		t.Fatalf("staged block after the failed commit: %v", err)
	}
	if names := contentNames(t, dir); len(names) != 1 || names[0] != "blocks" {
		t.Errorf("blob directory holds %v, want only blocks", names)
	}
	if _, err := d.stat(testAccount, testContainer, "x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat after the failed commit: %v, want no blob", err)
	}
}

// TestOpenSpanOpensOnlyItsExtents: a ranged read opens the extent files of
// its bytes, reads them right, and nothing outside them.
func TestOpenSpanOpensOnlyItsExtents(t *testing.T) {
	d := newTestDisk(t)
	parts := [][]byte{testBytes(t, 4), testBytes(t, 4), testBytes(t, 4), testBytes(t, 4)}
	for i, p := range parts {
		stage(t, d, "x", string(rune('a'+i)), p)
	}
	mustCommitList(t, d, "x", latest("a", "b", "c", "d"))
	want := bytes.Join(parts, nil)
	for _, tc := range []struct {
		off, n    int64
		first, nf int
	}{
		{0, 16, 0, 4},
		{0, 4, 0, 1},
		{3, 2, 0, 2},
		{4, 4, 1, 1},
		{5, 8, 1, 3},
		{15, 1, 3, 1},
		{6, 0, 0, 0},
	} {
		_, c, err := d.open(testAccount, testContainer, "x", func(*blobMeta) (int64, int64, error) { return tc.off, tc.n, nil })
		if err != nil {
			t.Fatal(err)
		}
		r := c.(*extentReader)
		if len(r.files) != tc.nf || (tc.nf > 0 && r.first != tc.first) {
			t.Errorf("span %d+%d opened %d files from %d, want %d from %d", tc.off, tc.n, len(r.files), r.first, tc.nf, tc.first)
		}
		got, err := io.ReadAll(io.NewSectionReader(c, tc.off, tc.n))
		if err != nil || !bytes.Equal(got, want[tc.off:tc.off+tc.n]) {
			t.Errorf("span %d+%d read %x %v, want %x", tc.off, tc.n, got, err, want[tc.off:tc.off+tc.n])
		}
		if tc.off > 0 {
			if _, err := c.ReadAt(make([]byte, 1), 0); tc.first > 0 && !errors.Is(err, errNotOpened) {
				t.Errorf("span %d+%d: read before it: %v, want errNotOpened", tc.off, tc.n, err)
			}
		}
		c.Close()
	}
	// A span function's error is open's.
	refused := errors.New("refused")
	if _, _, err := d.open(testAccount, testContainer, "x", func(*blobMeta) (int64, int64, error) { return 0, 0, refused }); err != refused {
		t.Errorf("open with a refusing span: %v", err)
	}
}

func TestEmptyBlockList(t *testing.T) {
	d := newTestDisk(t)
	m := mustCommitList(t, d, "x", nil)
	if m.Size != 0 || m.Extents == "" {
		t.Fatalf("meta = %+v, want an empty extents blob", m)
	}
	if got := read(t, d, "x"); len(got) != 0 {
		t.Fatalf("content = %x, want none", got)
	}
}

// TestDiskFullError: a write that finds no space answers 507
// InsufficientStorage saying so, not an opaque 500 (test/e2e's
// TestFaultBlobDiskFull fills a real tmpfs).
func TestDiskFullError(t *testing.T) {
	err := fmt.Errorf("blob: receive body: %w", &os.PathError{Op: "write", Path: "/x/.tmp/up-1", Err: syscall.ENOSPC})
	e := asError(err)
	if e.Status != 507 || e.Code != "InsufficientStorage" || !strings.Contains(e.Message, "full") {
		t.Errorf("asError(ENOSPC) = %d %s %q", e.Status, e.Code, e.Message)
	}
}
