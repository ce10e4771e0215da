package serviceapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/deviceauth"
	"github.com/outpost-iot/outpost/internal/hub/fileupload"
	"github.com/outpost-iot/outpost/internal/hub/registry"
	"github.com/outpost-iot/outpost/internal/hub/serviceapi"
	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/store/sqlstore"
)

// fakeFiles is a hand-written FileUploads recording what the HTTP layer
// passed (internal/hub/fileupload's own tests run the real service).
type fakeFiles struct {
	started, completed []string
	notification       *fileupload.Notification
	settled            []string
}

func (f *fakeFiles) Start(_ context.Context, h hub.Hub, deviceID, blobName string) (fileupload.StartResult, error) {
	if strings.Contains(blobName, "..") {
		return fileupload.StartResult{}, &registry.Error{Status: 400, Code: "ArgumentInvalid", Message: "bad name"}
	}
	f.started = append(f.started, h.Name+"/"+deviceID+"/"+blobName)
	return fileupload.StartResult{CorrelationID: "c1", HostName: "127.0.0.1:10000/acct", ContainerName: "c", BlobName: deviceID + "/" + blobName, SASToken: "?sv=x"}, nil
}

func (f *fakeFiles) Complete(_ context.Context, _ hub.Hub, deviceID, correlationID string, isSuccess bool, statusCode int, _ string) error {
	f.completed = append(f.completed, deviceID+"/"+correlationID+"/"+map[bool]string{true: "ok", false: "failed"}[isSuccess])
	return nil
}

func (f *fakeFiles) Receive(context.Context, hub.Hub, time.Duration) (*fileupload.Notification, string, error) {
	n := f.notification
	f.notification = nil
	if n == nil {
		return nil, "", nil
	}
	return n, "lock1", nil
}

func (f *fakeFiles) Settle(_ context.Context, lock string, how fileupload.Settlement) error {
	if lock != "lock1" {
		return fileupload.ErrLockLost
	}
	f.settled = append(f.settled, lock+map[fileupload.Settlement]string{fileupload.Complete: "/complete", fileupload.Abandon: "/abandon"}[how])
	return nil
}

const (
	policyKey = "cG9saWN5a2V5cG9saWN5a2V5cG9saWN5a2V5MTIzNA=="
	deviceKey = "ZGV2aWNla2V5ZGV2aWNla2V5ZGV2aWNla2V5MTIzNA=="
	hubHost   = "fhub.outpost.localhost"
)

func newFilesServer(t *testing.T) (*httptest.Server, *fakeFiles) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: t.TempDir() + "/db"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	id := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Devices/IotHubs/fhub"
	body := `{"properties":{"hostName":"` + hubHost + `","authorizationPolicies":[{"keyName":"service","primaryKey":"` + policyKey + `","secondaryKey":"` + policyKey + `","rights":"ServiceConnect"},{"keyName":"reader","primaryKey":"` + policyKey + `","secondaryKey":"` + policyKey + `","rights":"RegistryRead"}]}}`
	if _, _, err := st.Resources().Put(ctx, id, func(*store.Resource) (store.Resource, error) {
		return store.Resource{ID: id, Type: "Microsoft.Devices/IotHubs", Name: "fhub", Body: []byte(body)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	hubs := hub.NewDirectory(st.Resources(), "outpost.localhost", "")
	reg := registry.New(st.Devices(), nil, time.Now)
	if _, _, err := reg.PutIdentity(ctx, "fhub", "dev1", "", registry.Identity{DeviceID: "dev1",
		Authentication: registry.Authentication{Type: "sas", SymmetricKey: &registry.SymmetricKey{PrimaryKey: deviceKey, SecondaryKey: deviceKey}}}, ""); err != nil {
		t.Fatal(err)
	}
	files := &fakeFiles{}
	h := serviceapi.New(serviceapi.Config{Files: files, Hubs: hubs, Registry: reg, Devices: deviceauth.New(hubs, reg, nil, time.Now),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, files
}

func send(t *testing.T, srv *httptest.Server, method, path, auth, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path+"?api-version=2021-04-12", strings.NewReader(body))
	req.Host = hubHost
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestFileUploadEndpoints(t *testing.T) {
	srv, files := newFilesServer(t)
	devTok, _ := sas.Sign(hubHost+"/devices/dev1", deviceKey, "", time.Now().Add(time.Hour))
	svcTok, _ := sas.Sign(hubHost, policyKey, "service", time.Now().Add(time.Hour))
	readerTok, _ := sas.Sign(hubHost, policyKey, "reader", time.Now().Add(time.Hour))

	resp, body := send(t, srv, "POST", "/devices/dev1/files", devTok, `{"blobName":"test/file.txt"}`)
	var start fileupload.StartResult
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &start) != nil || start.BlobName != "dev1/test/file.txt" ||
		start.HostName != "127.0.0.1:10000/acct" || start.SASToken != "?sv=x" || start.CorrelationID != "c1" {
		t.Fatalf("start = %d %s", resp.StatusCode, body)
	}
	resp, body = send(t, srv, "POST", "/devices/dev1/files", devTok, `{"blobName":"../x"}`)
	if resp.StatusCode != 400 || !strings.Contains(body, `ErrorCode:ArgumentInvalid;`) {
		t.Fatalf("bad name = %d %s", resp.StatusCode, body)
	}
	// Another device's token, and a policy token, are not this device.
	resp, _ = send(t, srv, "POST", "/devices/dev2/files", devTok, `{"blobName":"a"}`)
	if resp.StatusCode != 401 {
		t.Fatalf("other device = %d", resp.StatusCode)
	}

	// Both completion forms.
	if resp, body = send(t, srv, "POST", "/devices/dev1/files/notifications", devTok,
		`{"correlationId":"c1","isSuccess":true,"statusCode":200,"statusDescription":"ok"}`); resp.StatusCode != 204 {
		t.Fatalf("notify (body form) = %d %s", resp.StatusCode, body)
	}
	if resp, body = send(t, srv, "POST", "/devices/dev1/files/notifications/c%2F2", devTok,
		`{"isSuccess":false,"statusCode":403,"statusDescription":"Failed"}`); resp.StatusCode != 204 {
		t.Fatalf("notify (node form) = %d %s", resp.StatusCode, body)
	}
	if strings.Join(files.completed, ",") != "dev1/c1/ok,dev1/c/2/failed" {
		t.Fatalf("completed = %v", files.completed)
	}

	// Service side.
	if resp, _ = send(t, srv, "GET", "/messages/servicebound/filenotifications", svcTok, ""); resp.StatusCode != 204 {
		t.Fatalf("empty receive = %d", resp.StatusCode)
	}
	files.notification = &fileupload.Notification{DeviceID: "dev1", BlobName: "dev1/test/file.txt", BlobSizeInBytes: 10, DeliveryCount: 1,
		BlobURI: "https://acct.blob.outpost.localhost/c/dev1/test/file.txt", EnqueuedTimeUTC: time.Now().UTC()}
	resp, body = send(t, srv, "GET", "/messages/servicebound/filenotifications", svcTok, "")
	var n map[string]any
	if resp.StatusCode != 200 || resp.Header.Get("ETag") != `"lock1"` || resp.Header.Get("iothub-messagelocktoken") != "lock1" ||
		json.Unmarshal([]byte(body), &n) != nil || n["blobSizeInBytes"] != float64(10) || n["deviceId"] != "dev1" {
		t.Fatalf("receive = %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if resp, _ = send(t, srv, "POST", "/messages/servicebound/filenotifications/lock1/abandon", svcTok, ""); resp.StatusCode != 204 {
		t.Fatalf("abandon = %d", resp.StatusCode)
	}
	if resp, _ = send(t, srv, "DELETE", "/messages/servicebound/filenotifications/%22lock1%22", svcTok, ""); resp.StatusCode != 204 {
		t.Fatalf("complete = %d", resp.StatusCode)
	}
	if resp, body = send(t, srv, "DELETE", "/messages/servicebound/filenotifications/nope", svcTok, ""); resp.StatusCode != 412 {
		t.Fatalf("complete with an unknown lock = %d %s", resp.StatusCode, body)
	}
	if strings.Join(files.settled, ",") != "lock1/abandon,lock1/complete" {
		t.Fatalf("settled = %v", files.settled)
	}
	// A policy without ServiceConnect, and a device token, are refused.
	if resp, _ = send(t, srv, "GET", "/messages/servicebound/filenotifications", readerTok, ""); resp.StatusCode != 401 {
		t.Fatalf("receive as RegistryRead = %d", resp.StatusCode)
	}
	if resp, _ = send(t, srv, "GET", "/messages/servicebound/filenotifications", devTok, ""); resp.StatusCode != 401 {
		t.Fatalf("receive as a device = %d", resp.StatusCode)
	}
}
