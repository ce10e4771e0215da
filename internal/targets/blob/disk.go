package blob

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Disk keeps blobs under a root directory:
//
//	{root}/{account}/{container}/{sha256(blob name)}/meta.json   properties, committed blocks
//	                                                 /data-{gen}  committed content in one file
//	                                                 /ext-{gen}/{i}  or: committed block i in a file of its own
//	                                                 /blocks/{hex(block id)}  uncommitted blocks
//	{root}/{account}/{container}/.tmp/                uploads in flight
//
// Account and container names are validated to [a-z0-9-] before they reach
// a path; blob names (any characters, up to 1024) only ever appear hashed,
// so no name can point outside the root.
//
// Writes stream to .tmp, then under the blob's lock are renamed into place
// and made visible by renaming a new meta.json over the old one: a reader
// sees the old blob or the new one, never a mix. Uploads stream outside the
// lock, so parallel Put Block calls on one blob (how SDKs upload) overlap.
// Files are fsynced before a write is acknowledged; a meta.json is renamed
// in only after the data and the names it refers to are durable.
//
// Content has two layouts. Put Blob, append blobs and a block list that
// needs bytes no block file holds (committed blocks listed again, a block
// listed twice) have one data file. Any other block list is committed
// without copying: its block files, synced when they were staged, are
// renamed into a new ext-{gen} directory, one extent each, and meta.json
// records where each starts (Blocks). Content files are never rewritten
// while a meta.json names them (an append blob's grows past the size
// readers were given), only unlinked once a new meta.json names other
// content; readers open every file of a blob's content under its lock
// (open), so they keep reading what they opened.
//
// A crash can leave an upload in .tmp or content no meta.json names; Sweep,
// run once at start, removes them.
//
// Lock order: Disk.mu (the lock table) is only held to find a blob's lock,
// never while waiting on one.
type Disk struct {
	root string

	mu    sync.Mutex
	locks map[string]*blobLock

	lastTag atomic.Int64
}

type blobLock struct {
	sync.Mutex
	refs int
}

// NewDisk returns a store rooted at dir (created if missing).
func NewDisk(dir string) (*Disk, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("blob: create %s: %w", dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	return &Disk{root: abs, locks: map[string]*blobLock{}}, nil
}

// blobMeta is a blob's sidecar.
type blobMeta struct {
	Name               string            `json:"name"`
	Type               string            `json:"type"` // BlockBlob or AppendBlob
	Size               int64             `json:"size"`
	ContentType        string            `json:"contentType,omitempty"`
	ContentEncoding    string            `json:"contentEncoding,omitempty"`
	ContentLanguage    string            `json:"contentLanguage,omitempty"`
	ContentDisposition string            `json:"contentDisposition,omitempty"`
	CacheControl       string            `json:"cacheControl,omitempty"`
	ContentMD5         []byte            `json:"contentMD5,omitempty"`
	ETag               string            `json:"etag"`
	Created            time.Time         `json:"created"`
	Modified           time.Time         `json:"modified"`
	Metadata           map[string]string `json:"metadata,omitempty"`
	// Data is the content file; Extents, when set instead, the directory
	// of one file per committed block (Blocks).
	Data    string           `json:"data"`
	Extents string           `json:"extents,omitempty"`
	Blocks  []committedBlock `json:"blocks,omitempty"`
	// AppendCount is the number of committed append blocks.
	AppendCount int `json:"appendCount,omitempty"`
}

type committedBlock struct {
	ID     string `json:"id"` // base64, as the client sent it
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
}

// blobHeaders are the settable HTTP properties of a blob.
type blobHeaders struct {
	ContentType, ContentEncoding, ContentLanguage, ContentDisposition, CacheControl string
	ContentMD5                                                                      []byte
}

func (m *blobMeta) setHeaders(h blobHeaders) {
	m.ContentType, m.ContentEncoding, m.ContentLanguage = h.ContentType, h.ContentEncoding, h.ContentLanguage
	m.ContentDisposition, m.CacheControl = h.ContentDisposition, h.CacheControl
	if h.ContentMD5 != nil {
		m.ContentMD5 = h.ContentMD5
	}
}

func (d *Disk) containerDir(account, container string) (string, error) {
	if !safeSegment(account) || !safeSegment(container) {
		return "", fmt.Errorf("blob: unsafe account or container name %q/%q", account, container)
	}
	return filepath.Join(d.root, account, container), nil
}

// safeSegment admits the characters account and container names may have.
func safeSegment(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func blobKey(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

func (d *Disk) blobDir(account, container, name string) (string, error) {
	cd, err := d.containerDir(account, container)
	if err != nil {
		return "", err
	}
	return filepath.Join(cd, blobKey(name)), nil
}

// lock takes the blob's lock; the returned func releases it.
func (d *Disk) lock(account, container, name string) func() {
	k := account + "/" + container + "/" + name
	d.mu.Lock()
	l := d.locks[k]
	if l == nil {
		l = &blobLock{}
		d.locks[k] = l
	}
	l.refs++
	d.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		d.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(d.locks, k)
		}
		d.mu.Unlock()
	}
}

// newETag returns a quoted ETag that differs from every earlier one of this
// process, shaped like Azure's ("0x8DC…").
func (d *Disk) newETag(now time.Time) string {
	// Azure's ETags are FILETIME-like; 100 ns ticks since 1601.
	t := now.UnixNano()/100 + 116444736000000000
	for {
		last := d.lastTag.Load()
		if t <= last {
			t = last + 1
		}
		if d.lastTag.CompareAndSwap(last, t) {
			return fmt.Sprintf("\"0x%X\"", t)
		}
	}
}

func randomName(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// errTooLarge is returned when an upload exceeds its limit.
var errTooLarge = errors.New("body exceeds the limit")

// spool streams r into a new temporary file of the container, at most limit
// bytes, fsynced. It returns the file's path, size and, when withMD5, the
// content's MD5. Writeback starts every spoolWriteback bytes, so the final
// fsync mostly finds the data on disk already.
func (d *Disk) spool(account, container string, r io.Reader, limit int64, withMD5 bool) (string, int64, []byte, error) {
	cd, err := d.containerDir(account, container)
	if err != nil {
		return "", 0, nil, err
	}
	tmpDir := filepath.Join(cd, ".tmp")
	if err := os.MkdirAll(tmpDir, 0o750); err != nil {
		return "", 0, nil, fmt.Errorf("blob: %w", err)
	}
	path := filepath.Join(tmpDir, randomName("up-"))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return "", 0, nil, fmt.Errorf("blob: %w", err)
	}
	sw := &spoolWriter{f: f}
	var w io.Writer = sw
	var h hash.Hash
	if withMD5 {
		h = md5.New()
		w = io.MultiWriter(sw, h)
	}
	n, err := io.CopyBuffer(w, io.LimitReader(r, limit+1), make([]byte, spoolBuffer))
	if err == nil && n > limit {
		err = errTooLarge
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return "", 0, nil, err
	}
	var sum []byte
	if h != nil {
		sum = h.Sum(nil)
	}
	return path, n, sum, nil
}

const (
	// spoolBuffer is the read size of an upload: large enough that a 4 MiB
	// block takes a few dozen writes, not hundreds.
	spoolBuffer = 256 << 10
	// spoolWriteback is how much an upload writes between writeback starts.
	spoolWriteback = 256 << 10
)

// spoolWriter writes to a file and starts writeback every spoolWriteback
// bytes.
type spoolWriter struct {
	f              *os.File
	written, flush int64
}

func (s *spoolWriter) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	s.written += int64(n)
	if s.written-s.flush >= spoolWriteback {
		startWriteback(s.f, s.flush, s.written-s.flush)
		s.flush = s.written
	}
	return n, err
}

// readMeta reads a blob's sidecar; fs.ErrNotExist when there is no blob.
func readMeta(dir string) (*blobMeta, error) {
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return nil, err
	}
	var m blobMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("blob: decode %s/meta.json: %w", dir, err)
	}
	return &m, nil
}

// writeMeta replaces a blob's sidecar atomically and durably. published
// says whether the new meta.json was renamed in: once it was, readers see
// it even when err says the directory could not be synced, so the caller
// must not undo anything it names.
func writeMeta(dir string, m *blobMeta) (published bool, err error) {
	b, err := json.Marshal(m)
	if err != nil {
		return false, fmt.Errorf("blob: encode meta: %w", err)
	}
	tmp := filepath.Join(dir, randomName("meta-"))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return false, fmt.Errorf("blob: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, "meta.json"))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return false, fmt.Errorf("blob: write meta: %w", err)
	}
	return true, syncDir(dir)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("blob: sync %s: %w", dir, err)
	}
	return nil
}

// stat returns a blob's properties.
func (d *Disk) stat(account, container, name string) (*blobMeta, error) {
	dir, err := d.blobDir(account, container, name)
	if err != nil {
		return nil, err
	}
	return readMeta(dir)
}

// open returns a blob's properties and its content, opened under the lock so
// the pair is consistent; the content stays readable, unchanged, after a
// later overwrite or delete. span, given the properties, says which bytes
// will be read (n = 0 for none; an error it returns is open's); nil means
// all of them.
func (d *Disk) open(account, container, name string, span func(m *blobMeta) (off, n int64, err error)) (*blobMeta, content, error) {
	dir, err := d.blobDir(account, container, name)
	if err != nil {
		return nil, nil, err
	}
	unlock := d.lock(account, container, name)
	defer unlock()
	m, err := readMeta(dir)
	if err != nil {
		return nil, nil, err
	}
	off, n := int64(0), m.Size
	if span != nil {
		if off, n, err = span(m); err != nil {
			return nil, nil, err
		}
	}
	c, err := openContent(dir, m, off, n)
	if err != nil {
		return nil, nil, fmt.Errorf("blob: open content of %q: %w", name, err)
	}
	return m, c, nil
}

// commit makes a new content file (already in the blob's directory or in
// .tmp) the blob's content with meta, then removes what is no longer
// referenced. Called with the blob's lock held.
func (d *Disk) commit(dir, dataPath string, m *blobMeta, old *blobMeta) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	m.Data, m.Extents = randomName("data-"), ""
	if err := os.Rename(dataPath, filepath.Join(dir, m.Data)); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	if published, err := writeMeta(dir, m); err != nil {
		if !published {
			_ = os.Remove(filepath.Join(dir, m.Data))
		}
		return err
	}
	removeContent(dir, old, m)
	return nil
}

// putBlob replaces a blob with uploaded content; check runs under the lock
// with the current blob (nil when absent) and may refuse the write.
func (d *Disk) putBlob(account, container string, m *blobMeta, spooled string, check func(old *blobMeta) error) error {
	dir, err := d.blobDir(account, container, m.Name)
	if err != nil {
		return err
	}
	unlock := d.lock(account, container, m.Name)
	defer unlock()
	old, err := readMeta(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := check(old); err != nil {
		return err
	}
	if old != nil {
		m.Created = old.Created
	}
	if err := d.commit(dir, spooled, m, old); err != nil {
		return err
	}
	// A new blob discards uncommitted blocks, as Azure does.
	_ = os.RemoveAll(filepath.Join(dir, "blocks"))
	return nil
}

// blockFile is where an uncommitted block lives.
func blockFile(dir string, id []byte) string {
	return filepath.Join(dir, "blocks", hex.EncodeToString(id))
}

// putBlock stores an uncommitted block (replacing one with the same id).
func (d *Disk) putBlock(account, container, name string, id []byte, spooled string) error {
	dir, err := d.blobDir(account, container, name)
	if err != nil {
		return err
	}
	unlock := d.lock(account, container, name)
	defer unlock()
	if err := d.checkBlockIDLength(dir, len(id)); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "blocks"), 0o750); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	if err := os.Rename(spooled, blockFile(dir, id)); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	return syncDir(filepath.Join(dir, "blocks"))
}

// checkBlockIDLength refuses a block id whose length differs from the
// blob's other blocks (Azure: all block ids of a blob have one length).
func (d *Disk) checkBlockIDLength(dir string, n int) error {
	entries, err := os.ReadDir(filepath.Join(dir, "blocks"))
	if err == nil && len(entries) > 0 && len(entries[0].Name()) != 2*n {
		return errorf(400, "InvalidBlobOrBlock",
			"The specified blob or block content is invalid: block ids of one blob must all have the same length (this one decodes to %d bytes, the blob's other uncommitted blocks to %d).", n, len(entries[0].Name())/2)
	}
	return nil
}

// blockInfo is one block of Get Block List.
type blockInfo struct {
	ID   string
	Size int64
}

// blocks returns a blob's committed blocks (nil when no blob) and its
// uncommitted ones.
func (d *Disk) blocks(account, container, name string) (*blobMeta, []blockInfo, error) {
	dir, err := d.blobDir(account, container, name)
	if err != nil {
		return nil, nil, err
	}
	unlock := d.lock(account, container, name)
	defer unlock()
	m, err := readMeta(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	entries, err := os.ReadDir(filepath.Join(dir, "blocks"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("blob: %w", err)
	}
	var unc []blockInfo
	for _, e := range entries {
		raw, err := hex.DecodeString(e.Name())
		if err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		unc = append(unc, blockInfo{ID: base64.StdEncoding.EncodeToString(raw), Size: info.Size()})
	}
	return m, unc, nil
}

// listEntry names which block a Put Block List entry takes.
type listEntry struct {
	Kind string // Latest, Committed, Uncommitted
	ID   string // base64
	raw  []byte
}

// putBlockList commits a block list. When every entry is an uncommitted
// block, each listed once, the block files become the content's extents
// (commitExtents); otherwise the content is copied into one new file
// (commitCopy). The list is checked in full before anything moves, and on
// any error the old blob is untouched.
func (d *Disk) putBlockList(account, container string, m *blobMeta, list []listEntry, check func(old *blobMeta) error) error {
	dir, err := d.blobDir(account, container, m.Name)
	if err != nil {
		return err
	}
	cd, _ := d.containerDir(account, container)
	unlock := d.lock(account, container, m.Name)
	defer unlock()
	old, err := readMeta(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := check(old); err != nil {
		return err
	}
	srcs, movable, err := resolveBlockList(dir, old, list)
	if err != nil {
		return err
	}
	m.Type = "BlockBlob"
	if old != nil {
		m.Created = old.Created
	}
	if movable {
		err = commitExtents(dir, m, old, srcs)
	} else {
		err = d.commitCopy(cd, dir, m, old, srcs)
	}
	if err != nil {
		return err
	}
	_ = os.RemoveAll(filepath.Join(dir, "blocks"))
	return nil
}

// blockSource is where one block of a block list being committed comes
// from: an uncommitted block's file, or a block of the current content.
type blockSource struct {
	id        string // base64
	file      string // the uncommitted block's file; "" for a committed block
	committed committedBlock
	size      int64
}

// resolveBlockList finds every entry's block, or refuses the list.
// movable says whether each is a distinct uncommitted block file.
func resolveBlockList(dir string, old *blobMeta, list []listEntry) ([]blockSource, bool, error) {
	committed := map[string]committedBlock{}
	if old != nil && old.Type == "BlockBlob" {
		for _, b := range old.Blocks {
			committed[b.ID] = b
		}
	}
	srcs := make([]blockSource, 0, len(list))
	files := make(map[string]bool, len(list))
	movable := true
	for _, e := range list {
		bf := blockFile(dir, e.raw)
		fi, statErr := os.Stat(bf)
		cb, isCommitted := committed[e.ID]
		switch {
		case statErr == nil && (e.Kind == "Uncommitted" || e.Kind == "Latest"):
			if files[bf] {
				movable = false
			}
			files[bf] = true
			srcs = append(srcs, blockSource{id: e.ID, file: bf, size: fi.Size()})
		case isCommitted && e.Kind != "Uncommitted":
			movable = false
			srcs = append(srcs, blockSource{id: e.ID, committed: cb, size: cb.Size})
		default:
			return nil, false, errorf(400, "InvalidBlockList",
				"The specified block list is invalid: block '%s' (listed as %s) is not among the blob's %s. Stage it with Put Block first.", e.ID, e.Kind, whichBlocks(e.Kind))
		}
	}
	return srcs, movable, nil
}

// layout returns the committed blocks of content made of srcs in order,
// and its size.
func layout(srcs []blockSource) ([]committedBlock, int64) {
	blocks := make([]committedBlock, len(srcs))
	var offset int64
	for i, s := range srcs {
		blocks[i] = committedBlock{ID: s.id, Offset: offset, Size: s.size}
		offset += s.size
	}
	return blocks, offset
}

// commitExtents makes the distinct uncommitted block files srcs the
// content of the blob, without copying: they are renamed, in list order,
// into a new extents directory, which is synced (the data was synced by
// Put Block) before meta.json names it. Called with the blob's lock held.
func commitExtents(dir string, m, old *blobMeta, srcs []blockSource) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	ext := randomName("ext-")
	if err := os.Mkdir(filepath.Join(dir, ext), 0o750); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	moved := 0
	// undo puts the blocks back, so that the old blob and its uncommitted
	// blocks are as they were and the client can retry.
	undo := func() {
		for i := range moved {
			_ = os.Rename(extentFile(dir, ext, i), srcs[i].file)
		}
		_ = os.RemoveAll(filepath.Join(dir, ext))
	}
	for i, s := range srcs {
		if err := os.Rename(s.file, extentFile(dir, ext, i)); err != nil {
			undo()
			return fmt.Errorf("blob: commit block %d: %w", i, err)
		}
		moved++
	}
	// The extents' names and the directory holding them must be durable
	// before a durable meta.json names them.
	err := syncDir(filepath.Join(dir, ext))
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		undo()
		return err
	}
	m.Data, m.Extents = "", ext
	m.Blocks, m.Size = layout(srcs)
	if published, err := writeMeta(dir, m); err != nil {
		if !published {
			undo()
		}
		return err
	}
	removeContent(dir, old, m)
	return nil
}

// commitCopy builds the content of srcs in one new file (uncommitted
// blocks from their files, committed ones from the current content, in
// either layout) and commits it. Called with the blob's lock held.
func (d *Disk) commitCopy(containerDir, dir string, m, old *blobMeta, srcs []blockSource) error {
	if err := os.MkdirAll(filepath.Join(containerDir, ".tmp"), 0o750); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	tmp := filepath.Join(containerDir, ".tmp", randomName("list-"))
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	fail := func(err error) error {
		out.Close()
		_ = os.Remove(tmp)
		return err
	}
	var oldContent content
	defer func() {
		if oldContent != nil {
			oldContent.Close()
		}
	}()
	for _, s := range srcs {
		if s.file != "" {
			err = copyFile(out, s.file, s.size)
		} else {
			if oldContent == nil {
				if oldContent, err = openContent(dir, old, 0, old.Size); err != nil {
					return fail(fmt.Errorf("blob: open content: %w", err))
				}
			}
			_, err = io.CopyN(out, io.NewSectionReader(oldContent, s.committed.Offset, s.size), s.size)
		}
		if err != nil {
			return fail(fmt.Errorf("blob: build content: %w", err))
		}
	}
	if err := out.Sync(); err != nil {
		return fail(fmt.Errorf("blob: %w", err))
	}
	if err := out.Close(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("blob: %w", err)
	}
	m.Blocks, m.Size = layout(srcs)
	if err := d.commit(dir, tmp, m, old); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// copyFile appends the size bytes of the file at path to out.
func copyFile(out io.Writer, path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyN(out, f, size)
	return err
}

// appendBlock appends spooled content to an append blob. The content file
// grows in place, but readers stop at the size in meta.json, so an append
// becomes visible only when the new meta is renamed in.
func (d *Disk) appendBlock(account, container, name string, spooled string, size int64, now time.Time, check func(m *blobMeta) error) (*blobMeta, int64, error) {
	defer os.Remove(spooled)
	dir, err := d.blobDir(account, container, name)
	if err != nil {
		return nil, 0, err
	}
	unlock := d.lock(account, container, name)
	defer unlock()
	m, err := readMeta(dir)
	if err != nil {
		return nil, 0, err
	}
	if err := check(m); err != nil {
		return nil, 0, err
	}
	in, err := os.Open(spooled)
	if err != nil {
		return nil, 0, fmt.Errorf("blob: %w", err)
	}
	defer in.Close()
	f, err := os.OpenFile(filepath.Join(dir, m.Data), os.O_WRONLY, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("blob: %w", err)
	}
	defer f.Close()
	offset := m.Size
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, 0, fmt.Errorf("blob: %w", err)
	}
	if _, err := io.Copy(f, in); err != nil {
		_ = f.Truncate(offset)
		return nil, 0, fmt.Errorf("blob: append: %w", err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Truncate(offset)
		return nil, 0, fmt.Errorf("blob: %w", err)
	}
	next := *m
	next.Size, next.AppendCount, next.Modified, next.ETag = offset+size, m.AppendCount+1, now, d.newETag(now)
	if published, err := writeMeta(dir, &next); err != nil {
		if !published {
			_ = f.Truncate(offset)
		}
		return nil, 0, err
	}
	return &next, offset, nil
}

// update changes a blob's properties (metadata, headers) under its lock.
func (d *Disk) update(account, container, name string, change func(m *blobMeta) error) (*blobMeta, error) {
	dir, err := d.blobDir(account, container, name)
	if err != nil {
		return nil, err
	}
	unlock := d.lock(account, container, name)
	defer unlock()
	m, err := readMeta(dir)
	if err != nil {
		return nil, err
	}
	if err := change(m); err != nil {
		return nil, err
	}
	if _, err := writeMeta(dir, m); err != nil {
		return nil, err
	}
	return m, nil
}

// remove deletes a blob with its uncommitted blocks; check may refuse.
func (d *Disk) remove(account, container, name string, check func(m *blobMeta) error) error {
	dir, err := d.blobDir(account, container, name)
	if err != nil {
		return err
	}
	unlock := d.lock(account, container, name)
	defer unlock()
	m, err := readMeta(dir)
	if err != nil {
		return err
	}
	if err := check(m); err != nil {
		return err
	}
	// meta.json goes first: from then on the blob does not exist.
	if err := os.Remove(filepath.Join(dir, "meta.json")); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	return os.RemoveAll(dir)
}

// list returns the container's blobs whose names start with prefix, sorted
// by name.
func (d *Disk) list(account, container, prefix string) ([]*blobMeta, error) {
	cd, err := d.containerDir(account, container)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(cd)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	var out []*blobMeta
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		m, err := readMeta(filepath.Join(cd, e.Name()))
		if err != nil {
			continue // uncommitted-only blob, or removed meanwhile
		}
		if strings.HasPrefix(m.Name, prefix) {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// RemoveContainer deletes every blob of a container (storage.BlobStore).
// The directory is renamed away first, so readers see all or nothing.
func (d *Disk) RemoveContainer(_ context.Context, account, container string) error {
	cd, err := d.containerDir(account, container)
	if err != nil {
		return err
	}
	return d.removeTree(cd, filepath.Join(d.root, account))
}

// RemoveAccount deletes every blob of an account (storage.BlobStore).
func (d *Disk) RemoveAccount(_ context.Context, account string) error {
	if !safeSegment(account) {
		return fmt.Errorf("blob: unsafe account name %q", account)
	}
	return d.removeTree(filepath.Join(d.root, account), d.root)
}

func (d *Disk) removeTree(dir, parent string) error {
	trash := filepath.Join(parent, randomName(".trash-"))
	if err := os.Rename(dir, trash); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("blob: remove %s: %w", dir, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("blob: remove %s: %w", dir, err)
	}
	return nil
}

func whichBlocks(kind string) string {
	switch kind {
	case "Committed":
		return "committed blocks"
	case "Uncommitted":
		return "uncommitted blocks"
	}
	return "uncommitted or committed blocks"
}
