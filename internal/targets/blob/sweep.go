package blob

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Sweep removes what a crash can leave behind: uploads that were still
// arriving in a container's .tmp, and content files (data-… files, ext-…
// directories) that no meta.json names — written by a commit that never
// published, or replaced by one that published but didn't get to unlink
// them. Only entries older than before are touched, so uploads and commits
// that start while it runs are left alone; each blob's content is checked
// under the blob's lock. It returns how many entries it removed.
func (d *Disk) Sweep(ctx context.Context, before time.Time) (int, error) {
	accounts, err := os.ReadDir(d.root)
	if err != nil {
		return 0, fmt.Errorf("blob: sweep: %w", err)
	}
	removed := 0
	var errs []error
	for _, a := range accounts {
		if !a.IsDir() || !safeSegment(a.Name()) {
			continue
		}
		containers, err := os.ReadDir(filepath.Join(d.root, a.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, c := range containers {
			if ctx.Err() != nil {
				return removed, ctx.Err()
			}
			if !c.IsDir() || !safeSegment(c.Name()) {
				continue
			}
			n, err := d.sweepContainer(a.Name(), c.Name(), before)
			removed += n
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("blob: sweep: %w", err)
	}
	return removed, nil
}

func (d *Disk) sweepContainer(account, container string, before time.Time) (int, error) {
	cd := filepath.Join(d.root, account, container)
	removed, err := removeOlder(filepath.Join(cd, ".tmp"), before, func(string) bool { return true })
	if err != nil {
		return removed, err
	}
	blobs, err := os.ReadDir(cd)
	if err != nil {
		return removed, err
	}
	for _, b := range blobs {
		if !b.IsDir() || strings.HasPrefix(b.Name(), ".") {
			continue
		}
		dir := filepath.Join(cd, b.Name())
		m, err := readMeta(dir)
		if err != nil {
			continue // no committed blob (only staged blocks), or just deleted
		}
		n, err := d.sweepBlob(account, container, m.Name, dir, before)
		removed += n
		if err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// sweepBlob removes a blob's content files its meta.json doesn't name,
// under the blob's lock (a commit swaps them under it).
func (d *Disk) sweepBlob(account, container, name, dir string, before time.Time) (int, error) {
	unlock := d.lock(account, container, name)
	defer unlock()
	m, err := readMeta(dir)
	if err != nil {
		return 0, nil // deleted meanwhile
	}
	return removeOlder(dir, before, func(entry string) bool {
		content := strings.HasPrefix(entry, "data-") || strings.HasPrefix(entry, "ext-")
		return content && entry != m.Data && entry != m.Extents
	})
}

// removeOlder removes the entries of dir that match and were last
// modified before before.
func removeOlder(dir string, before time.Time, match func(name string) bool) (int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, e := range entries {
		if !match(e.Name()) {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(before) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return removed, err
		}
		removed++
	}
	return removed, nil
}
