package jobs

import (
	"bufio"
	"context"
	"io"
	"log/slog"

	"github.com/outpost-iot/outpost/internal/store"
)

// exportPage is how many devices one store read returns.
const exportPage = 1000

// runExport streams the registry into devices.txt in the output container.
// The blob is committed only when every device is written, so a failed or
// cancelled export leaves no partial file behind.
func (r *Runner) runExport(ctx context.Context, rec record, log *slog.Logger) (*jobProgress, error) {
	progress := &jobProgress{}
	creds, err := r.resolveCredentials(ctx, rec)
	if err != nil {
		return progress, err
	}
	out := newContainerRef("outputBlobContainerUri", rec.OutputBlobContainerURI)
	outClient, err := r.open(ctx, out, creds)
	if err != nil {
		return progress, err
	}
	counts, err := r.cfg.Devices.Count(ctx, rec.Hub)
	if err != nil {
		return progress, err
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(r.writeDevices(ctx, rec, pw, counts.Total, progress))
	}()
	err = upload(ctx, outClient, rec.OutputBlobName, pr)
	pr.CloseWithError(io.ErrClosedPipe) // stops the writer if the upload gave up
	if err != nil {
		return progress, storageFailure(out, creds, "write "+rec.OutputBlobName, err)
	}
	log.Info("export written", "devices", progress.written)
	return progress, nil
}

// writeDevices writes every device of the hub as one line each.
func (r *Runner) writeDevices(ctx context.Context, rec record, w io.Writer, total int64, progress *jobProgress) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	after := ""
	var written int64
	for {
		page, err := r.cfg.Devices.List(ctx, store.DeviceFilter{Hub: rec.Hub, After: after, Limit: exportPage})
		if err != nil {
			return err
		}
		for _, d := range page {
			if _, err := bw.Write(r.cfg.Registry.ExportEntry(d, rec.ExcludeKeysInExport)); err != nil {
				return err
			}
			if err := bw.WriteByte('\n'); err != nil {
				return err
			}
		}
		written += int64(len(page))
		progress.written = written
		if len(page) < exportPage {
			break
		}
		after = page[len(page)-1].DeviceID
		if total > 0 && written%(10*exportPage) == 0 {
			cancelled, err := r.checkpoint(ctx, rec, func(c *record) { c.Progress = int(min(99, written*100/total)) })
			if err != nil {
				return err
			}
			if cancelled {
				r.cancelLocal(rec, errCancelled)
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return bw.Flush()
}
