package jobs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"time"

	"github.com/outpost-iot/outpost/internal/hub/registry"
	"github.com/outpost-iot/outpost/internal/store"
)

const (
	// maxLineBytes bounds one line of devices.txt.
	maxLineBytes = 1 << 20
	// maxErrorLogBytes bounds importErrors.log in memory; past it, errors
	// are counted and the log ends with how many were left out.
	maxErrorLogBytes = 32 << 20
)

// importError is one line of importErrors.log.
type importError struct {
	Line        int64  `json:"line"`
	DeviceID    string `json:"deviceId,omitempty"`
	ModuleID    string `json:"moduleId,omitempty"`
	ErrorCode   string `json:"errorCode"`
	ErrorStatus string `json:"errorStatus"`
}

// errorLog collects importErrors.log.
type errorLog struct {
	buf     bytes.Buffer
	count   int64
	dropped int64
}

func (l *errorLog) add(e importError) {
	l.count++
	if l.buf.Len() >= maxErrorLogBytes {
		l.dropped++
		return
	}
	b, _ := json.Marshal(e)
	l.buf.Write(b)
	l.buf.WriteByte('\n')
}

func (l *errorLog) bytes() []byte {
	if l.dropped > 0 {
		b, _ := json.Marshal(importError{ErrorCode: "LogTruncated", ErrorStatus: sprintf("%d more errors were not logged: the log is capped at %d MiB.", l.dropped, maxErrorLogBytes>>20)})
		return append(append(l.buf.Bytes(), b...), '\n')
	}
	return l.buf.Bytes()
}

// pending is a line waiting for its batch.
type pending struct {
	line int64
	dev  registry.BulkDevice
	mode registry.ImportMode
}

// runImport streams devices.txt into the registry in batches, logging bad
// lines to importErrors.log in the output container.
func (r *Runner) runImport(ctx context.Context, rec record, log *slog.Logger) (*jobProgress, error) {
	progress := &jobProgress{}
	creds, err := r.resolveCredentials(ctx, rec)
	if err != nil {
		return progress, err
	}
	in := newContainerRef("inputBlobContainerUri", rec.InputBlobContainerURI)
	out := newContainerRef("outputBlobContainerUri", rec.OutputBlobContainerURI)
	inClient, err := r.open(ctx, in, creds)
	if err != nil {
		return progress, err
	}
	outClient, err := r.open(ctx, out, creds)
	if err != nil {
		return progress, err
	}
	body, size, err := download(ctx, inClient, rec.InputBlobName)
	if err != nil {
		return progress, storageFailure(in, creds, "read blob "+rec.InputBlobName, err)
	}
	defer body.Close()
	counted := &countingReader{r: body}
	sc := bufio.NewScanner(counted)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes)
	var (
		errs  errorLog
		batch []pending
		line  int64
	)
	flush := func() error {
		last := line
		if len(batch) > 0 {
			if _, err := r.checkpoint(ctx, rec, func(c *record) { c.InFlight = last }); err != nil {
				return err
			}
			if err := r.applyBatch(ctx, rec.Hub, batch, &errs); err != nil {
				return err
			}
		}
		progress.applied = last
		pct := 0
		if size > 0 {
			pct = int(min(99, counted.n*100/size))
		}
		cancelled, err := r.checkpoint(ctx, rec, func(c *record) {
			c.Checkpoint, c.InFlight, c.Progress, c.Lines, c.Errors = last, 0, pct, last, errs.count
		})
		if err != nil {
			return err
		}
		if cancelled {
			r.cancelLocal(rec, errCancelled)
		}
		batch = batch[:0]
		return ctx.Err()
	}
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		var d registry.BulkDevice
		if err := json.Unmarshal(raw, &d); err != nil {
			errs.add(importError{Line: line, ErrorCode: "InvalidDeviceFormat", ErrorStatus: sprintf("Line %d is not an ExportImportDevice JSON object: %v.", line, err)})
		} else if mode, err := registry.PrepareImport(&d); err != nil {
			code, msg := errorCode(err)
			errs.add(importError{Line: line, DeviceID: d.ID, ModuleID: d.ModuleID, ErrorCode: code, ErrorStatus: msg})
		} else {
			batch = append(batch, pending{line: line, dev: d, mode: mode})
		}
		if len(batch) >= r.cfg.BatchSize {
			if err := flush(); err != nil {
				return progress, r.stopped(ctx, err, &errs, outClient, out, creds, progress)
			}
		}
	}
	if err := sc.Err(); err != nil {
		if err == bufio.ErrTooLong {
			err = failf("Line %d of %s is longer than %d KiB; split it or fix the file.", line+1, rec.InputBlobName, maxLineBytes>>10)
		} else {
			err = storageFailure(in, creds, "read blob "+rec.InputBlobName, err)
		}
		return progress, r.stopped(ctx, err, &errs, outClient, out, creds, progress)
	}
	if err := flush(); err != nil {
		return progress, r.stopped(ctx, err, &errs, outClient, out, creds, progress)
	}
	if errs.count > 0 {
		if err := upload(ctx, outClient, ImportErrorsBlob, bytes.NewReader(errs.bytes())); err != nil {
			return progress, storageFailure(out, creds, "write "+ImportErrorsBlob, err)
		}
		progress.errorLog = true
	}
	log.Info("import applied", "lines", line, "errors", errs.count)
	r.afterBulkLoad(ctx, line, log)
	return progress, nil
}

// bulkLoadLines is the import size from which the registry's storage is
// tidied after the import: below it the planner's picture of the table
// changes little.
const bulkLoadLines = 1000

// afterBulkLoad runs the store's maintenance after a large import, so the
// registry reads fast at once rather than after the database's next
// autovacuum (or never, where that is off): on PostgreSQL the measured
// count of a fresh 1,000,000-device registry went from 774 ms to 100 ms.
// A failure is logged, not the job's: every line is already applied.
func (r *Runner) afterBulkLoad(ctx context.Context, lines int64, log *slog.Logger) {
	if lines < bulkLoadLines {
		return
	}
	start := time.Now()
	if err := r.cfg.Devices.AfterBulkLoad(ctx); err != nil {
		log.Warn("registry maintenance after the import failed; reads may be slow until the database analyzes the table itself", "err", err)
		return
	}
	log.Info("registry maintenance after the import", "took", time.Since(start).Round(time.Millisecond))
}

// stopped uploads what importErrors.log holds so far (the lines it names
// are among those applied or refused) and returns err.
func (r *Runner) stopped(ctx context.Context, err error, errs *errorLog, cc containerClient, out containerRef, creds credentials, progress *jobProgress) error {
	if errs.count == 0 {
		return err
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if uerr := upload(uctx, cc, ImportErrorsBlob, bytes.NewReader(errs.bytes())); uerr == nil {
		progress.errorLog = true
	} else {
		r.cfg.Log.Warn("write partial import error log", "err", storageFailure(out, creds, "write "+ImportErrorsBlob, uerr))
	}
	return err
}

// applyBatch writes one batch in one registry transaction; lines the
// registry refuses go to the log.
func (r *Runner) applyBatch(ctx context.Context, hub string, batch []pending, errs *errorLog) error {
	keys := make([]store.DeviceKey, len(batch))
	for i, p := range batch {
		keys[i] = store.DeviceKey{DeviceID: p.dev.ID, ModuleID: p.dev.ModuleID}
	}
	results, err := r.cfg.Devices.PutMany(ctx, hub, keys, func(i int, current *store.Device) (*store.Device, error) {
		return r.cfg.Registry.ApplyImport(hub, batch[i].dev, batch[i].mode, current)
	})
	if err != nil {
		return err
	}
	for i, e := range results {
		if e != nil {
			code, msg := errorCode(e)
			errs.add(importError{Line: batch[i].line, DeviceID: batch[i].dev.ID, ModuleID: batch[i].dev.ModuleID, ErrorCode: code, ErrorStatus: msg})
		}
	}
	return nil
}

func (r *Runner) cancelLocal(rec record, cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cancel := r.running[jobKey(rec.Hub, rec.JobID)]; cancel != nil {
		cancel(cause)
	}
}

// countingReader counts bytes for progress.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
