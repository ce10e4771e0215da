package blob

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing a file's range to disk
// now, without waiting: a large upload's data then goes to disk while the
// rest of it is still arriving, and the fsync that acknowledges it has
// little left to wait for. Errors are ignored — the fsync reports them.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
