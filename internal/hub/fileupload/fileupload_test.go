package fileupload_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/fileupload"
	"github.com/outpost-iot/outpost/internal/hub/registry"
)

func keyBased(account, key, container string) func(*hub.FileUploadSettings) {
	return func(s *hub.FileUploadSettings) {
		s.ConnectionString = "DefaultEndpointsProtocol=https;AccountName=" + account + ";AccountKey=" + key + ";EndpointSuffix=" + suffix
		s.ContainerName = container
		s.AuthenticationType = fileupload.KeyBased
	}
}

func identityBased(account, container string) func(*hub.FileUploadSettings) {
	return func(s *hub.FileUploadSettings) {
		s.ConnectionString = "DefaultEndpointsProtocol=https;AccountName=" + account + ";EndpointSuffix=" + suffix
		s.ContainerName = container
		s.AuthenticationType = fileupload.IdentityBased
	}
}

func wantHubError(t *testing.T, err error, status int, code string, inMessage ...string) {
	t.Helper()
	var e *registry.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v, want *registry.Error %d %s", err, status, code)
	}
	if e.Status != status || e.Code != code {
		t.Fatalf("error = %d %s %q, want %d %s", e.Status, e.Code, e.Message, status, code)
	}
	for _, s := range inMessage {
		if !strings.Contains(e.Message, s) {
			t.Fatalf("message %q does not mention %q", e.Message, s)
		}
	}
}

// receiveOne takes the next notification and fails without one.
func receiveOne(t *testing.T, f *fixture, h hub.Hub) (*fileupload.Notification, string) {
	t.Helper()
	n, lock, err := f.svc.Receive(context.Background(), h, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if n == nil {
		t.Fatal("no notification")
	}
	return n, lock
}

func wantNoNotification(t *testing.T, f *fixture, h hub.Hub, wait time.Duration) {
	t.Helper()
	n, _, err := f.svc.Receive(context.Background(), h, wait)
	if err != nil {
		t.Fatal(err)
	}
	if n != nil {
		t.Fatalf("unexpected notification %+v (delivery %d)", n, n.DeliveryCount)
	}
}

// TestKeyBasedUploadAndNotification: Start → a 10 MB upload with the SAS
// as the device SDK does it → Complete → a notification with the blob's
// size and URI, read with the hub's key → complete it.
func TestKeyBasedUploadAndNotification(t *testing.T) {
	f := newFixture(t)
	key := f.account(t, "acct1", "", "uploads")
	h := f.hub(t, keyBased("acct1", key, "uploads"))
	ctx := context.Background()

	if err := f.svc.Check(ctx, mustSettings(t, h), h.ResourceID); err != nil {
		t.Fatalf("check: %v", err)
	}
	r, err := f.svc.Start(ctx, h, "dev1", "dir/file.bin")
	if err != nil {
		t.Fatal(err)
	}
	if r.HostName != "acct1.blob."+suffix || r.ContainerName != "uploads" || r.BlobName != "dev1/dir/file.bin" {
		t.Fatalf("start = %+v", r)
	}
	q, err := url.ParseQuery(strings.TrimPrefix(r.SASToken, "?"))
	if !strings.HasPrefix(r.SASToken, "?") || err != nil || q.Get("sr") != "b" || q.Get("sp") != "rw" || q.Get("spr") != "https" || q.Has("skoid") {
		t.Fatalf("sasToken = %q", r.SASToken)
	}
	data := bytes.Repeat([]byte("0123456789"), 1<<20) // 10 MB
	if err := f.deviceUpload(t, r, data); err != nil {
		t.Fatalf("device upload: %v", err)
	}
	if err := f.svc.Complete(ctx, h, "dev1", r.CorrelationID, true, 201, ""); err != nil {
		t.Fatalf("complete: %v", err)
	}
	n, lock := receiveOne(t, f, h)
	if n.DeviceID != "dev1" || n.BlobName != "dev1/dir/file.bin" || n.BlobSizeInBytes != int64(len(data)) ||
		n.BlobURI != "https://acct1.blob."+suffix+"/uploads/dev1/dir/file.bin" || n.DeliveryCount != 1 {
		t.Fatalf("notification = %+v", n)
	}
	if n.LastUpdatedTime.IsZero() || time.Since(n.EnqueuedTimeUTC) > time.Minute {
		t.Fatalf("notification times = %v / %v", n.LastUpdatedTime, n.EnqueuedTimeUTC)
	}
	if err := f.svc.Settle(ctx, lock, fileupload.Complete); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Settle(ctx, lock, fileupload.Complete); !errors.Is(err, fileupload.ErrLockLost) {
		t.Fatalf("second settle = %v", err)
	}
	wantNoNotification(t, f, h, 200*time.Millisecond)

	// The correlation id is spent.
	err = f.svc.Complete(ctx, h, "dev1", r.CorrelationID, true, 201, "")
	wantHubError(t, err, http.StatusBadRequest, "ArgumentInvalid", "already completed")

	// The SAS is for that one blob: it does not write a sibling.
	other := r
	other.BlobName = "dev1/other.bin"
	if err := f.deviceUpload(t, other, []byte("x")); !bloberror.HasCode(err, bloberror.AuthenticationFailed) {
		t.Fatalf("SAS used on another blob: %v", err)
	}
}

// TestPathStyleEndpoint: a BlobEndpoint with the account in the path (as
// Azurite and --blob-listen serve) gives the device a hostName with port and
// path that works verbatim, key-based and identity-based.
func TestPathStyleEndpoint(t *testing.T) {
	f := newFixture(t)
	key := f.account(t, "acct2", "", "uploads")
	hostPort := f.pathSrv.Listener.Addr().String()
	endpoint := "https://" + hostPort + "/acct2"
	for _, auth := range []string{fileupload.KeyBased, fileupload.IdentityBased} {
		t.Run(auth, func(t *testing.T) {
			h := f.hub(t, func(s *hub.FileUploadSettings) {
				s.ConnectionString = "DefaultEndpointsProtocol=https;AccountName=acct2;BlobEndpoint=" + endpoint + "/"
				if auth == fileupload.KeyBased {
					s.ConnectionString += ";AccountKey=" + key
				}
				s.ContainerName = "uploads"
				s.AuthenticationType = auth
			})
			if auth == fileupload.IdentityBased {
				f.systemIdentity(t, h, "acct2", blobDataContributor)
			}
			ctx := context.Background()
			r, err := f.svc.Start(ctx, h, "dev-p", "f.txt")
			if err != nil {
				t.Fatal(err)
			}
			if r.HostName != hostPort+"/acct2" {
				t.Fatalf("hostName = %q", r.HostName)
			}
			if err := f.deviceUpload(t, r, []byte("path style")); err != nil {
				t.Fatalf("device upload: %v", err)
			}
			if err := f.svc.Complete(ctx, h, "dev-p", r.CorrelationID, true, 201, ""); err != nil {
				t.Fatal(err)
			}
			n, lock := receiveOne(t, f, h)
			if n.BlobURI != endpoint+"/uploads/dev-p/f.txt" || n.BlobSizeInBytes != 10 {
				t.Fatalf("notification = %+v", n)
			}
			if err := f.svc.Settle(ctx, lock, fileupload.Complete); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestIdentityBasedWithoutSharedKey: an account with allowSharedKeyAccess
// false; the hub's system-assigned identity gets a user delegation key and
// signs a user delegation SAS; the hub reads the blob with its token. Before
// the role assignment, Check says what to grant.
func TestIdentityBasedWithoutSharedKey(t *testing.T) {
	f := newFixture(t)
	f.account(t, "acct3", `{"allowSharedKeyAccess":false}`, "uploads")
	h := f.hub(t, identityBased("acct3", "uploads"))
	p := f.systemIdentity(t, h, "acct3", "")
	ctx := context.Background()
	st := mustSettings(t, h)

	err := f.svc.Check(ctx, st, h.ResourceID)
	var ce *fileupload.CheckError
	if !errors.As(err, &ce) || !strings.Contains(ce.Message, "Storage Blob Data Contributor") || !strings.Contains(ce.Message, p.ObjectID) ||
		!strings.Contains(ce.Message, "AuthorizationPermissionMismatch") {
		t.Fatalf("check without a role = %v", err)
	}
	_, err = f.svc.Start(ctx, h, "dev1", "a.txt")
	wantHubError(t, err, http.StatusInternalServerError, "ServerError", "Storage Blob Data Contributor")

	f.assign(t, p, "acct3", blobDataContributor)
	if err := f.svc.Check(ctx, st, h.ResourceID); err != nil {
		t.Fatalf("check with the role: %v", err)
	}
	r, err := f.svc.Start(ctx, h, "dev1", "a.txt")
	if err != nil {
		t.Fatal(err)
	}
	q, _ := url.ParseQuery(strings.TrimPrefix(r.SASToken, "?"))
	if q.Get("skoid") != p.ObjectID || q.Get("sr") != "b" || q.Get("sp") != "rw" {
		t.Fatalf("sasToken = %q", r.SASToken)
	}
	if err := f.deviceUpload(t, r, []byte("hello identity")); err != nil {
		t.Fatalf("device upload: %v", err)
	}
	if err := f.svc.Complete(ctx, h, "dev1", r.CorrelationID, true, 201, ""); err != nil {
		t.Fatal(err)
	}
	n, lock := receiveOne(t, f, h)
	if n.BlobSizeInBytes != int64(len("hello identity")) || n.BlobURI != "https://acct3.blob."+suffix+"/uploads/dev1/a.txt" {
		t.Fatalf("notification = %+v", n)
	}
	if err := f.svc.Settle(ctx, lock, fileupload.Complete); err != nil {
		t.Fatal(err)
	}

	// The delegation key is cached: more SAS URIs cost no token or key request.
	before := f.tokens.Calls()
	for range 5 {
		if _, err := f.svc.Start(ctx, h, "dev2", "b.txt"); err != nil {
			t.Fatal(err)
		}
	}
	after := f.tokens.Calls()
	if after != before {
		t.Fatalf("token requests while the delegation key is cached: %d", after-before)
	}

	// Key-based settings on this account fail the check, saying why.
	key := f.account(t, "acct3", `{"allowSharedKeyAccess":false}`, "")
	kh := f.hub(t, keyBased("acct3", key, "uploads"))
	if err := f.svc.Check(ctx, mustSettings(t, kh), kh.ResourceID); err == nil || !strings.Contains(err.Error(), "does not allow shared key access") {
		t.Fatalf("key-based check on a no-shared-key account = %v", err)
	}
}

func TestCheckNamesTheMissingContainer(t *testing.T) {
	f := newFixture(t)
	key := f.account(t, "acct4", "", "")
	h := f.hub(t, keyBased("acct4", key, "nope"))
	err := f.svc.Check(context.Background(), mustSettings(t, h), h.ResourceID)
	if err == nil || !strings.Contains(err.Error(), "container 'nope' not found") {
		t.Fatalf("check = %v", err)
	}
}

// TestRefusals: the bad inputs a device can send, each with IoT Hub's
// error body.
func TestRefusals(t *testing.T) {
	f := newFixture(t)
	key := f.account(t, "acct5", "", "uploads")
	h := f.hub(t, keyBased("acct5", key, "uploads"))
	ctx := context.Background()

	for name, blobName := range map[string]string{
		"dotdot":   "a/../../etc/passwd",
		"absolute": "/etc/passwd",
		"too long": strings.Repeat("x", 1100),
		"empty":    "",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f.svc.Start(ctx, h, "dev1", blobName)
			wantHubError(t, err, http.StatusBadRequest, "ArgumentInvalid")
		})
	}
	if _, err := f.svc.Start(ctx, h, "dev1", strings.Repeat("x", 1024-len("dev1/"))); err != nil {
		t.Fatalf("a name of exactly 1024 characters: %v", err)
	}

	err := f.svc.Complete(ctx, h, "dev1", "never-issued", true, 200, "")
	wantHubError(t, err, http.StatusBadRequest, "ArgumentInvalid", "never issued")

	// An upload that never happened: the hub finds no blob and says so; the
	// upload stays pending, so the device can still report it.
	r, err := f.svc.Start(ctx, h, "dev2", "ghost.bin")
	if err != nil {
		t.Fatal(err)
	}
	err = f.svc.Complete(ctx, h, "dev2", r.CorrelationID, true, 201, "")
	wantHubError(t, err, http.StatusBadRequest, "ArgumentInvalid", "found no blob")
	wantNoNotification(t, f, h, 100*time.Millisecond)
	if err := f.svc.Complete(ctx, h, "dev2", r.CorrelationID, false, 500, "gave up"); err != nil {
		t.Fatalf("failure report: %v", err)
	}
	wantNoNotification(t, f, h, 100*time.Millisecond)

	// Another device cannot complete dev3's upload.
	r3, err := f.svc.Start(ctx, h, "dev3", "mine.bin")
	if err != nil {
		t.Fatal(err)
	}
	err = f.svc.Complete(ctx, h, "dev4", r3.CorrelationID, false, 500, "")
	wantHubError(t, err, http.StatusBadRequest, "ArgumentInvalid")
}

// TestConcurrentUploadLimit: the eleventh upload in progress is refused;
// completing one frees a slot; expired uploads do not count.
func TestConcurrentUploadLimit(t *testing.T) {
	f := newFixture(t)
	key := f.account(t, "acct6", "", "uploads")
	now := time.Now()
	clock := func() time.Time { return now }
	var err error
	f.svc, err = fileupload.New(fileupload.Config{Bus: f.bus, Egress: f.egress, Tokens: f.tokens, Now: func() time.Time { return clock() }})
	if err != nil {
		t.Fatal(err)
	}
	h := f.hub(t, keyBased("acct6", key, "uploads"))
	ctx := context.Background()
	var ids []string
	for i := range fileupload.MaxConcurrentUploads {
		r, err := f.svc.Start(ctx, h, "dev1", "f"+string(rune('a'+i)))
		if err != nil {
			t.Fatalf("upload %d: %v", i+1, err)
		}
		ids = append(ids, r.CorrelationID)
	}
	_, err = f.svc.Start(ctx, h, "dev1", "eleventh")
	wantHubError(t, err, http.StatusForbidden, "DeviceMaximumActiveFileUploadLimitExceeded")
	if _, err := f.svc.Start(ctx, h, "dev2", "other device"); err != nil {
		t.Fatalf("another device: %v", err)
	}
	if err := f.svc.Complete(ctx, h, "dev1", ids[0], false, 500, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Start(ctx, h, "dev1", "eleventh"); err != nil {
		t.Fatalf("after one completed: %v", err)
	}

	// Past the SAS TTL every upload has expired: its correlation id is
	// refused and it no longer counts.
	now = now.Add(h.FileUpload.SASTTL + time.Second)
	err = f.svc.Complete(ctx, h, "dev1", ids[1], true, 201, "")
	wantHubError(t, err, http.StatusBadRequest, "ArgumentInvalid", "expired")
	for i := range fileupload.MaxConcurrentUploads {
		if _, err := f.svc.Start(ctx, h, "dev1", "later"+string(rune('a'+i))); err != nil {
			t.Fatalf("upload %d after expiry: %v", i+1, err)
		}
	}
}

// TestLockExpiryRedeliveryAndDeadLetter: a notification not completed
// within its lock is delivered again; abandon redelivers at once; after
// maxDeliveryCount deliveries it is dropped.
func TestLockExpiryRedeliveryAndDeadLetter(t *testing.T) {
	f := newFixture(t)
	key := f.account(t, "acct7", "", "uploads")
	h := f.hub(t, func(s *hub.FileUploadSettings) {
		keyBased("acct7", key, "uploads")(s)
		s.LockDuration = 500 * time.Millisecond
		s.MaxDeliveryCount = 3
	})
	ctx := context.Background()
	r, err := f.svc.Start(ctx, h, "dev1", "f.bin")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.deviceUpload(t, r, []byte("data")); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Complete(ctx, h, "dev1", r.CorrelationID, true, 201, ""); err != nil {
		t.Fatal(err)
	}
	n, lock1 := receiveOne(t, f, h)
	if n.DeliveryCount != 1 {
		t.Fatalf("first delivery count %d", n.DeliveryCount)
	}
	// Not settled: after the lock it comes again, and the old lock is lost.
	n, lock2 := receiveOne(t, f, h)
	if n.DeliveryCount != 2 {
		t.Fatalf("redelivery count %d", n.DeliveryCount)
	}
	if err := f.svc.Settle(ctx, lock1, fileupload.Complete); !errors.Is(err, fileupload.ErrLockLost) {
		t.Fatalf("settle with the expired lock = %v", err)
	}
	if err := f.svc.Settle(ctx, lock2, fileupload.Abandon); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n, _ = receiveOne(t, f, h)
	if n.DeliveryCount != 3 || time.Since(start) > 400*time.Millisecond {
		t.Fatalf("after abandon: delivery %d after %v", n.DeliveryCount, time.Since(start))
	}
	// The third delivery was the last: once its lock runs out it is dead-lettered.
	wantNoNotification(t, f, h, 1500*time.Millisecond)
	info, err := f.bus.JetStream().Stream(ctx, f.bus.Stream("filenotifications-"+h.Name))
	if err != nil {
		t.Fatal(err)
	}
	if si, err := info.Info(ctx); err != nil || si.State.Msgs != 0 {
		t.Fatalf("stream after dead-letter: %+v %v", si.State, err)
	}
}

// TestNotificationTTL: a notification older than ttlAsIso8601 is not
// delivered.
func TestNotificationTTL(t *testing.T) {
	f := newFixture(t)
	key := f.account(t, "acct8", "", "uploads")
	now := time.Now()
	var err error
	f.svc, err = fileupload.New(fileupload.Config{Bus: f.bus, Egress: f.egress, Tokens: f.tokens, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	h := f.hub(t, func(s *hub.FileUploadSettings) {
		keyBased("acct8", key, "uploads")(s)
		s.TTL = time.Minute
	})
	ctx := context.Background()
	r, err := f.svc.Start(ctx, h, "dev1", "f.bin")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.deviceUpload(t, r, []byte("data")); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Complete(ctx, h, "dev1", r.CorrelationID, true, 201, ""); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	wantNoNotification(t, f, h, 300*time.Millisecond)
}

func TestNotConfigured(t *testing.T) {
	f := newFixture(t)
	h := f.hub(t, func(s *hub.FileUploadSettings) { s.ConnectionString = "" })
	_, err := f.svc.Start(context.Background(), h, "dev1", "a")
	wantHubError(t, err, http.StatusBadRequest, "FileUploadNotConfigured", "az iot hub update")
}

func mustSettings(t testing.TB, h hub.Hub) fileupload.Settings {
	t.Helper()
	s, err := fileupload.ParseSettings(h)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
