package fileupload

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-iot/outpost/internal/bus"
)

// pendingBucketTTL keeps a device's entry at least as long as the longest
// SAS (24 h) it can hold; every write restarts it.
const pendingBucketTTL = 25 * time.Hour

// casAttempts bounds retries of a compare-and-set on one device's entry;
// only that device's own concurrent calls compete for it.
const casAttempts = 20

// upload is one started, not yet completed upload.
type upload struct {
	Container string    `json:"c"`
	BlobName  string    `json:"b"` // {deviceId}/{name}
	Expiry    time.Time `json:"x"`
}

// deviceUploads is a device's entry in the bucket: its pending uploads by
// correlation id.
type deviceUploads struct {
	Uploads map[string]upload `json:"u"`
}

// prune drops expired uploads.
func (d *deviceUploads) prune(now time.Time) {
	for id, u := range d.Uploads {
		if !now.Before(u.Expiry) {
			delete(d.Uploads, id)
		}
	}
}

var (
	errTooManyUploads = errors.New("fileupload: the device has the maximum number of uploads in progress")
	errUnknownUpload  = errors.New("fileupload: no such pending upload")
)

// pendingStore keeps pending uploads in a JetStream key-value bucket, one
// key per device ({hub}.{hex device id}) holding all of that device's
// uploads. One key per device rather than one per upload makes the
// concurrency limit exact across nodes: counting and adding are one
// compare-and-set on one key, where a key listing followed by a put lets two
// nodes both admit an eleventh upload (and a filtered listing costs an
// ordered consumer per call).
type pendingStore struct {
	bus *bus.Bus

	mu sync.Mutex
	kv jetstream.KeyValue // created on first use
}

func (p *pendingStore) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.kv != nil {
		return p.kv, nil
	}
	kv, err := p.bus.JetStream().CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      p.bus.Stream("fileupload-pending"),
		Description: "IoT Hub file uploads started and not yet completed, one key per device",
		TTL:         pendingBucketTTL,
		Storage:     jetstream.FileStorage,
		History:     1,
	})
	if err != nil {
		return nil, fmt.Errorf("fileupload: pending uploads bucket: %w", err)
	}
	p.kv = kv
	return kv, nil
}

func pendingKey(hubName, deviceID string) string {
	return strings.ToLower(hubName) + "." + hex.EncodeToString([]byte(deviceID))
}

func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

// update applies fn to the device's entry with compare-and-set, retrying
// on conflicts; fn sees expired uploads already pruned.
func (p *pendingStore) update(ctx context.Context, hubName, deviceID string, now time.Time, fn func(*deviceUploads) error) error {
	kv, err := p.bucket(ctx)
	if err != nil {
		return err
	}
	key := pendingKey(hubName, deviceID)
	for range casAttempts {
		var doc deviceUploads
		var rev uint64
		e, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("fileupload: read pending uploads of %s: %w", deviceID, err)
		default:
			rev = e.Revision()
			if err := json.Unmarshal(e.Value(), &doc); err != nil {
				return fmt.Errorf("fileupload: decode pending uploads of %s: %w", deviceID, err)
			}
		}
		if doc.Uploads == nil {
			doc.Uploads = map[string]upload{}
		}
		before := len(doc.Uploads)
		doc.prune(now)
		pruned := len(doc.Uploads) != before
		if err := fn(&doc); err != nil {
			if pruned && rev != 0 {
				// Best effort: keep the entry small; the error is what counts.
				_, _ = kv.Update(ctx, key, mustJSON(doc), rev)
			}
			return err
		}
		switch {
		case len(doc.Uploads) == 0 && rev == 0:
			return nil
		case len(doc.Uploads) == 0:
			err = kv.Delete(ctx, key, jetstream.LastRevision(rev))
		case rev == 0:
			_, err = kv.Create(ctx, key, mustJSON(doc))
		default:
			_, err = kv.Update(ctx, key, mustJSON(doc), rev)
		}
		if isConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("fileupload: write pending uploads of %s: %w", deviceID, err)
		}
		return nil
	}
	return fmt.Errorf("fileupload: pending uploads of %s kept changing; retry", deviceID)
}

// add records an upload unless the device already has limit in progress.
func (p *pendingStore) add(ctx context.Context, hubName, deviceID, correlationID string, u upload, limit int, now time.Time) error {
	return p.update(ctx, hubName, deviceID, now, func(d *deviceUploads) error {
		if len(d.Uploads) >= limit {
			return errTooManyUploads
		}
		d.Uploads[correlationID] = u
		return nil
	})
}

// get returns a pending upload. An expired one is errUnknownUpload with
// expired set.
func (p *pendingStore) get(ctx context.Context, hubName, deviceID, correlationID string, now time.Time) (u upload, expired bool, err error) {
	kv, err := p.bucket(ctx)
	if err != nil {
		return upload{}, false, err
	}
	e, err := kv.Get(ctx, pendingKey(hubName, deviceID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return upload{}, false, errUnknownUpload
	}
	if err != nil {
		return upload{}, false, fmt.Errorf("fileupload: read pending uploads of %s: %w", deviceID, err)
	}
	var doc deviceUploads
	if err := json.Unmarshal(e.Value(), &doc); err != nil {
		return upload{}, false, fmt.Errorf("fileupload: decode pending uploads of %s: %w", deviceID, err)
	}
	u, ok := doc.Uploads[correlationID]
	if !ok {
		return upload{}, false, errUnknownUpload
	}
	if !now.Before(u.Expiry) {
		return u, true, errUnknownUpload
	}
	return u, false, nil
}

// remove forgets an upload; it reports errUnknownUpload when another call
// removed it first, so one completion wins.
func (p *pendingStore) remove(ctx context.Context, hubName, deviceID, correlationID string, now time.Time) error {
	return p.update(ctx, hubName, deviceID, now, func(d *deviceUploads) error {
		if _, ok := d.Uploads[correlationID]; !ok {
			return errUnknownUpload
		}
		delete(d.Uploads, correlationID)
		return nil
	})
}

// removeHub purges every device entry of a hub.
func (p *pendingStore) removeHub(ctx context.Context, hubName string) error {
	kv, err := p.bucket(ctx)
	if err != nil {
		return err
	}
	lister, err := kv.ListKeysFiltered(ctx, strings.ToLower(hubName)+".*")
	if err != nil {
		return fmt.Errorf("fileupload: list pending uploads of hub %s: %w", hubName, err)
	}
	var errs []error
	for key := range lister.Keys() {
		if err := kv.Purge(ctx, key); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fileupload: purge pending uploads of hub %s: %w", hubName, err)
	}
	return nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only plain structs of strings and times are marshalled here.
		panic(fmt.Sprintf("fileupload: marshal %T: %v", v, err))
	}
	return b
}
