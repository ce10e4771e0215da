package blob

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// content is a blob's committed bytes, opened. It keeps reading the same
// bytes after the blob is overwritten or deleted: content files are never
// rewritten once a meta.json names them, only unlinked (an append blob's
// file grows, but past the size its readers were given).
type content interface {
	io.ReaderAt
	io.Closer
}

// openContent opens the content m names for reads of the n bytes at off:
// its one file, or each extent file those bytes are in. Everything a read
// may need is opened now, so that a later commit that unlinks the files
// changes nothing for this reader; opening only the span keeps a ranged
// read of a blob of many blocks to the few files it reads. The caller
// holds the blob's lock.
func openContent(dir string, m *blobMeta, off, n int64) (content, error) {
	if m.Extents == "" {
		f, err := os.Open(filepath.Join(dir, m.Data))
		if err != nil {
			return nil, err
		}
		return f, nil
	}
	r := &extentReader{blocks: m.Blocks, size: m.Size}
	if n <= 0 {
		return r, nil
	}
	r.first = firstExtentAfter(m.Blocks, off)
	end := r.first
	for end < len(m.Blocks) && m.Blocks[end].Offset < off+n {
		end++
	}
	r.files = make([]*os.File, 0, end-r.first)
	for i := r.first; i < end; i++ {
		f, err := os.Open(extentFile(dir, m.Extents, i))
		if err != nil {
			_ = r.Close()
			return nil, err
		}
		r.files = append(r.files, f)
	}
	return r, nil
}

// firstExtentAfter is the index of the first block that ends after off;
// empty blocks end where they start, so one is never picked for a read.
func firstExtentAfter(blocks []committedBlock, off int64) int {
	return sort.Search(len(blocks), func(i int) bool { return blocks[i].Offset+blocks[i].Size > off })
}

// extentFile is the file of a block blob's index-th committed block.
func extentFile(dir, extents string, index int) string {
	return filepath.Join(dir, extents, strconv.Itoa(index))
}

// removeContent deletes the content old names once a new meta.json names
// other content (next). Readers that opened it keep their open files.
func removeContent(dir string, old, next *blobMeta) {
	if old == nil {
		return
	}
	if old.Data != "" && old.Data != next.Data {
		_ = os.Remove(filepath.Join(dir, old.Data))
	}
	if old.Extents != "" && old.Extents != next.Extents {
		_ = os.RemoveAll(filepath.Join(dir, old.Extents))
	}
}

// extentReader reads a block blob whose committed blocks are files of
// their own, at blocks[i].Offset in the blob; files holds those of
// blocks[first:], as many as openContent opened. ReadAt is safe for
// concurrent use (it only preads).
type extentReader struct {
	blocks []committedBlock
	first  int
	files  []*os.File
	size   int64
}

var (
	errNegativeOffset = errors.New("blob: negative offset")
	errNotOpened      = errors.New("blob: read outside the span the content was opened for")
)

func (r *extentReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errNegativeOffset
	}
	if off >= r.size {
		return 0, io.EOF
	}
	n := 0
	for i := firstExtentAfter(r.blocks, off); n < len(p) && i < len(r.blocks); i++ {
		b := r.blocks[i]
		within := off - b.Offset
		want := int(min(int64(len(p)-n), b.Size-within))
		if want == 0 {
			continue
		}
		if i < r.first || i >= r.first+len(r.files) {
			return n, errNotOpened
		}
		got, err := r.files[i-r.first].ReadAt(p[n:n+want], within)
		n += got
		off += int64(got)
		if err == io.EOF && got < want {
			return n, fmt.Errorf("blob: extent %d is shorter than its %d bytes: %w", i, b.Size, io.ErrUnexpectedEOF)
		}
		if err != nil && err != io.EOF {
			return n, err
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (r *extentReader) Close() error {
	var first error
	for _, f := range r.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
