package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	azsas "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// jobsEnv is a storage account with an input and an output container.
type jobsEnv struct {
	acct   testAccount
	blobs  *azblob.Client
	in     string // container URLs without SAS
	out    string
	inSAS  string // the same with a container SAS
	outSAS string
}

// newJobsEnv creates an account with containers in and out.
func newJobsEnv(t *testing.T, s *testserver.Server, group string) jobsEnv {
	t.Helper()
	acct := createStorageAccount(t, s, group, "", "")
	for _, c := range []string{"input", "output"} {
		putAndWait(t, s, acct.ID+"/blobServices/default/containers/"+c, storageAPI, `{"properties":{}}`)
	}
	cred, err := azblob.NewSharedKeyCredential(acct.Name, acct.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := azblob.NewClientWithSharedKeyCredential(acct.BlobEndpoint, cred, blobOptions(s))
	if err != nil {
		t.Fatal(err)
	}
	sasOf := func(container string) string {
		q, err := azsas.BlobSignatureValues{
			Protocol: azsas.ProtocolHTTPS, ExpiryTime: time.Now().Add(time.Hour), ContainerName: container,
			Permissions: ptr(azsas.ContainerPermissions{Read: true, Write: true, Delete: true, List: true, Create: true, Add: true}).String(),
		}.SignWithSharedKey(cred)
		if err != nil {
			t.Fatal(err)
		}
		return acct.BlobEndpoint + container + "?" + q.Encode()
	}
	return jobsEnv{acct: acct, blobs: c, in: acct.BlobEndpoint + "input", out: acct.BlobEndpoint + "output", inSAS: sasOf("input"), outSAS: sasOf("output")}
}

func (e jobsEnv) put(t *testing.T, container, name string, body []byte) {
	t.Helper()
	if _, err := e.blobs.UploadBuffer(context.Background(), container, name, body, nil); err != nil {
		t.Fatal(err)
	}
}

func (e jobsEnv) get(t *testing.T, container, name string) []byte {
	t.Helper()
	resp, err := e.blobs.DownloadStream(context.Background(), container, name, nil)
	if err != nil {
		t.Fatalf("download %s/%s: %v", container, name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// createHubWith creates a hub with an identity block ("" for none).
func createHubWith(t *testing.T, s *testserver.Server, group, identity string) testHub {
	t.Helper()
	ensureGroup(t, s, group)
	name := uniqueName("jobhub", 20)
	id := "/subscriptions/" + s.App.Installation().SubscriptionID + "/resourceGroups/" + group + "/providers/Microsoft.Devices/IotHubs/" + name
	body := `{"location":"westus","sku":{"name":"S1","capacity":1}`
	if identity != "" {
		body += `,"identity":` + identity
	}
	doc := putAndWait(t, s, id, "2023-06-30", body+"}")
	host := doc["properties"].(map[string]any)["hostName"].(string)
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	code, keys := op.do("POST", id+"/listkeys?api-version=2023-06-30", "")
	if code != 200 {
		t.Fatalf("listkeys: %d %v", code, keys)
	}
	h := testHub{Name: name, ID: id, HostName: host}
	for _, k := range keys["value"].([]any) {
		if m := k.(map[string]any); m["keyName"] == "iothubowner" {
			h.OwnerKey = m["primaryKey"].(string)
		}
	}
	testserver.MapHosts(t, s.IP, host)
	return h
}

// principalOf reads a resource's system-assigned principal id.
func principalOf(t *testing.T, s *testserver.Server, id, api string) string {
	t.Helper()
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	_, doc := op.do("GET", id+"?api-version="+api, "")
	if ident, ok := doc["identity"].(map[string]any); ok {
		if p, _ := ident["principalId"].(string); p != "" {
			return p
		}
	}
	if props, ok := doc["properties"].(map[string]any); ok {
		if p, _ := props["principalId"].(string); p != "" {
			return p
		}
	}
	t.Fatalf("%s has no principal: %v", id, doc)
	return ""
}

// hubCall sends a service API request signed with iothubowner.
func hubCall(t *testing.T, s *testserver.Server, h testHub, method, path string, body any) (int, []byte) {
	t.Helper()
	return hubCallWith(t, s.HTTPClient(), h, method, path, body)
}

func hubCallWith(t *testing.T, c *http.Client, h testHub, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	req, _ := http.NewRequest(method, "https://"+h.HostName+path+sep+"api-version=2021-04-12", rd)
	req.Header.Set("Authorization", ownerSAS(t, h))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

type jobView struct {
	JobID, Type, Status, FailureReason string
	Progress                           int
	StorageAuthenticationType          string
	OutputBlobContainerURI             string `json:"outputBlobContainerUri"`
}

// startJob posts /jobs/create and returns the job.
func startJob(t *testing.T, s *testserver.Server, h testHub, body any) jobView {
	t.Helper()
	code, raw := hubCall(t, s, h, "POST", "/jobs/create", body)
	if code != 200 {
		t.Fatalf("jobs/create: %d %s", code, raw)
	}
	var j jobView
	if err := json.Unmarshal(raw, &j); err != nil || j.JobID == "" || j.Status == "" {
		t.Fatalf("jobs/create answer %s: %v", raw, err)
	}
	return j
}

// waitJob polls GET /jobs/{id} until the job is final.
func waitJob(t *testing.T, s *testserver.Server, h testHub, id string) jobView {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, raw := hubCall(t, s, h, "GET", "/jobs/"+id, nil)
		var j jobView
		_ = json.Unmarshal(raw, &j)
		if code != 200 {
			t.Fatalf("GET job: %d %s", code, raw)
		}
		switch j.Status {
		case "completed", "failed", "cancelled":
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s", id, raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func runJob(t *testing.T, s *testserver.Server, h testHub, body any) jobView {
	t.Helper()
	return waitJob(t, s, h, startJob(t, s, h, body).JobID)
}

// registrySnapshot is what export → import must carry: id, keys, status, tags.
type registryEntry struct {
	Status, Primary, Secondary string
	Tags                       string
}

func readExport(t *testing.T, raw []byte) map[string]registryEntry {
	t.Helper()
	out := map[string]registryEntry{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct {
			ID             string
			Status         string
			Authentication struct {
				SymmetricKey *struct{ PrimaryKey, SecondaryKey *string }
			}
			Tags map[string]any
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("export line %s: %v", sc.Bytes(), err)
		}
		e := registryEntry{Status: l.Status}
		if k := l.Authentication.SymmetricKey; k != nil && k.PrimaryKey != nil {
			e.Primary, e.Secondary = *k.PrimaryKey, *k.SecondaryKey
		}
		tags, _ := json.Marshal(l.Tags)
		e.Tags = string(tags)
		out[l.ID] = e
	}
	return out
}

// seedDevices imports n devices (with tags, every third disabled) into h
// through the job API, then returns the lines.
func deviceLines(n int, prefix string) []string {
	lines := make([]string, n)
	for i := range n {
		status := "enabled"
		if i%3 == 0 {
			status = "disabled"
		}
		lines[i] = fmt.Sprintf(`{"id":"%s-%05d","importMode":"createOrUpdate","status":"%s","tags":{"floor":%d,"site":"s%d"},"properties":{"desired":{"rate":%d}}}`, prefix, i, status, i%7, i%3, i)
	}
	return lines
}

// TestJobsExportImportKeyBased: devices imported into one hub, exported
// with a SAS, imported into a second hub: the registries match (ids, keys,
// status, tags); excludeKeysInExport writes null keys.
func TestJobsExportImportKeyBased(t *testing.T) {
	s := testserver.Start(t)
	s.Require443(t)
	env := newJobsEnv(t, s, "rg-jobs-key")
	h1 := createHubWith(t, s, "rg-jobs-key", "")
	h2 := createHubWith(t, s, "rg-jobs-key", "")
	env.put(t, "input", "devices.txt", []byte(strings.Join(deviceLines(500, "dev"), "\n")+"\n"))

	j := runJob(t, s, h1, map[string]any{"type": "import", "inputBlobContainerUri": env.inSAS, "outputBlobContainerUri": env.outSAS})
	if j.Status != "completed" || j.Progress != 100 {
		t.Fatalf("import: %+v", j)
	}
	j = runJob(t, s, h1, map[string]any{"type": "export", "outputBlobContainerUri": env.outSAS, "excludeKeysInExport": false})
	if j.Status != "completed" {
		t.Fatalf("export: %+v", j)
	}
	exported := env.get(t, "output", "devices.txt")
	first := readExport(t, exported)
	if len(first) != 500 || first["dev-00003"].Status != "disabled" || first["dev-00004"].Tags != `{"floor":4,"site":"s1"}` || first["dev-00004"].Primary == "" {
		t.Fatalf("export of hub 1: %d devices, dev-00003 %+v dev-00004 %+v", len(first), first["dev-00003"], first["dev-00004"])
	}

	// Into the second hub, as the seed's C# snippet sends it (ImportDevices
	// spelling, explicit keyBased).
	env.put(t, "input", "devices.txt", exported)
	j = runJob(t, s, h2, map[string]any{"type": "ImportDevices", "storageAuthenticationType": "KeyBased", "inputBlobContainerUri": env.inSAS, "outputBlobContainerUri": env.outSAS})
	if j.Status != "completed" {
		t.Fatalf("import into hub 2: %+v", j)
	}
	j = runJob(t, s, h2, map[string]any{"type": "exportDevices", "outputBlobContainerUri": env.outSAS})
	if j.Status != "completed" {
		t.Fatalf("export of hub 2: %+v", j)
	}
	second := readExport(t, env.get(t, "output", "devices.txt"))
	if len(second) != len(first) {
		t.Fatalf("hub 2 has %d devices, hub 1 %d", len(second), len(first))
	}
	for id, e := range first {
		if second[id] != e {
			t.Fatalf("device %s: hub 1 %+v, hub 2 %+v", id, e, second[id])
		}
	}
	// A device key from the export authenticates on hub 2: the registry
	// holds it, not just the file.
	code, raw := hubCall(t, s, h2, "GET", "/devices/dev-00004", nil)
	if code != 200 || !strings.Contains(string(raw), first["dev-00004"].Primary) {
		t.Fatalf("GET dev-00004 on hub 2: %d %s", code, raw)
	}

	j = runJob(t, s, h2, map[string]any{"type": "Export", "outputBlobContainerUri": env.outSAS, "outputBlobName": "nokeys.txt", "excludeKeysInExport": true})
	if j.Status != "completed" {
		t.Fatalf("export without keys: %+v", j)
	}
	raw = env.get(t, "output", "nokeys.txt")
	if !bytes.Contains(raw, []byte(`"symmetricKey":{"primaryKey":null,"secondaryKey":null}`)) || bytes.Contains(raw, []byte(first["dev-00004"].Primary)) {
		t.Fatalf("export with excludeKeysInExport: %.300s", raw)
	}

	// GET /jobs lists them all; a job id of another hub is not found.
	code, raw = hubCall(t, s, h2, "GET", "/jobs", nil)
	var list []jobView
	if code != 200 || json.Unmarshal(raw, &list) != nil || len(list) != 3 {
		t.Fatalf("GET /jobs: %d %s", code, raw)
	}
	if code, raw := hubCall(t, s, h1, "GET", "/jobs/"+list[0].JobID, nil); code != 404 || !strings.Contains(string(raw), "JobNotFound") {
		t.Fatalf("another hub's job: %d %s", code, raw)
	}
}

// TestJobsImportErrors: a devices.txt with 10% bad lines applies the good
// ones and lists every bad one, with its line number and reason, in
// importErrors.log; every import mode is exercised.
func TestJobsImportErrors(t *testing.T) {
	s := testserver.Start(t)
	s.Require443(t)
	env := newJobsEnv(t, s, "rg-jobs-err")
	h := createHubWith(t, s, "rg-jobs-err", "")
	var lines []string
	bad := map[int]string{} // line number → expected code
	for i := 1; i <= 200; i++ {
		switch {
		case i%10 == 3:
			lines = append(lines, `{"id":"broken-`+fmt.Sprint(i)+`", "status": `) // not JSON
			bad[i] = "InvalidDeviceFormat"
		case i%10 == 7 && i%20 == 7:
			lines = append(lines, fmt.Sprintf(`{"id":"bad id %d"}`, i))
			bad[i] = "ArgumentInvalid"
		case i%10 == 7:
			lines = append(lines, fmt.Sprintf(`{"id":"ghost-%d","importMode":"update"}`, i))
			bad[i] = "DeviceNotFound"
		default:
			lines = append(lines, fmt.Sprintf(`{"id":"good-%03d","tags":{"n":%d}}`, i, i))
		}
	}
	env.put(t, "input", "devices.txt", []byte(strings.Join(lines, "\n")))
	j := runJob(t, s, h, map[string]any{"type": "import", "inputBlobContainerUri": env.inSAS, "outputBlobContainerUri": env.outSAS})
	if j.Status != "completed" {
		t.Fatalf("import: %+v", j)
	}
	logged := map[int]string{}
	sc := bufio.NewScanner(bytes.NewReader(env.get(t, "output", "importErrors.log")))
	for sc.Scan() {
		var e struct {
			Line        int
			ErrorCode   string
			ErrorStatus string
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.ErrorStatus == "" {
			t.Fatalf("log line %s: %v", sc.Bytes(), err)
		}
		logged[e.Line] = e.ErrorCode
	}
	if fmt.Sprint(logged) != fmt.Sprint(bad) {
		t.Fatalf("importErrors.log lines %v, want %v", logged, bad)
	}
	code, raw := hubCall(t, s, h, "GET", "/statistics/devices", nil)
	if code != 200 || !strings.Contains(string(raw), fmt.Sprintf(`"totalDeviceCount":%d`, 200-len(bad))) {
		t.Fatalf("statistics after import: %d %s", code, raw)
	}

	// The other modes against what is there now.
	code, raw = hubCall(t, s, h, "GET", "/devices/good-001", nil)
	var dev struct{ ETag string }
	_ = json.Unmarshal(raw, &dev)
	code, raw = hubCall(t, s, h, "GET", "/twins/good-002", nil)
	var twin struct{ ETag string }
	_ = json.Unmarshal(raw, &twin)
	modes := []string{
		`{"id":"good-001","importMode":"updateIfMatchETag","eTag":"` + dev.ETag + `","status":"disabled"}`,     // ok
		`{"id":"good-002","importMode":"updateTwinIfMatchETag","twinETag":"` + twin.ETag + `","tags":{"x":1}}`, // ok
		`{"id":"good-004","importMode":"updateIfMatchETag","eTag":"stale"}`,                                    // 412
		`{"id":"good-005","importMode":"create"}`,                                                              // 409
		`{"id":"new-1","importMode":"create"}`,                                                                 // ok
		`{"id":"new-2","importMode":"createOrUpdateIfMatchETag"}`,                                              // ok (absent)
		`{"id":"good-006","importMode":"delete"}`,                                                              // ok
		`{"id":"good-008","importMode":"deleteIfMatchETag","eTag":"stale"}`,                                    // 412
		`{"id":"good-009","importMode":"updateTwin","tags":{"y":2}}`,                                           // ok
		`{"id":"good-010","importMode":"sideways"}`,                                                            // bad mode
		`{"id":"new-1","moduleId":"m1"}`,                                                                       // module ok
	}
	env.put(t, "input", "devices.txt", []byte(strings.Join(modes, "\n")))
	j = runJob(t, s, h, map[string]any{"type": "import", "inputBlobContainerUri": env.inSAS, "outputBlobContainerUri": env.outSAS})
	if j.Status != "completed" {
		t.Fatalf("modes import: %+v", j)
	}
	logged = map[int]string{}
	sc = bufio.NewScanner(bytes.NewReader(env.get(t, "output", "importErrors.log")))
	for sc.Scan() {
		var e struct {
			Line      int
			ErrorCode string
		}
		_ = json.Unmarshal(sc.Bytes(), &e)
		logged[e.Line] = e.ErrorCode
	}
	want := map[int]string{3: "PreconditionFailed", 4: "DeviceAlreadyExists", 8: "PreconditionFailed", 10: "ArgumentInvalid"}
	if fmt.Sprint(logged) != fmt.Sprint(want) {
		t.Fatalf("modes: importErrors.log %v, want %v", logged, want)
	}
	checks := map[string]string{"/devices/good-001": `"status":"disabled"`, "/twins/good-002": `"x":1`, "/twins/good-009": `"y":2`, "/devices/new-1/modules/m1": `"moduleId":"m1"`}
	for path, want := range checks {
		if code, raw := hubCall(t, s, h, "GET", path, nil); code != 200 || !strings.Contains(string(raw), want) {
			t.Errorf("GET %s: %d %s (want %s)", path, code, raw, want)
		}
	}
	if code, _ := hubCall(t, s, h, "GET", "/devices/good-006", nil); code != 404 {
		t.Errorf("good-006 after delete: %d", code)
	}
}

// TestJobsRequests: bad requests get IoT Hub errors a person can act on,
// and a hub runs one job at a time.
func TestJobsRequests(t *testing.T) {
	s := testserver.Start(t)
	s.Require443(t)
	env := newJobsEnv(t, s, "rg-jobs-req")
	h := createHubWith(t, s, "rg-jobs-req", "")
	for _, tc := range []struct {
		body, want string
	}{
		{`{"type":"backup","outputBlobContainerUri":"` + env.outSAS + `"}`, "import and export"},
		{`{"type":"export"}`, "outputBlobContainerUri is required"},
		{`{"type":"import","outputBlobContainerUri":"` + env.outSAS + `"}`, "inputBlobContainerUri is required"},
		{`{"type":"export","outputBlobContainerUri":"` + env.out + `"}`, "has no SAS"},
		{`{"type":"export","outputBlobContainerUri":"` + env.out + `","storageAuthenticationType":"magic"}`, "keyBased or identityBased"},
		{`{"type":"export","outputBlobContainerUri":"` + env.outSAS + `","identity":{"userAssignedIdentity":"/x"}}`, "only used with storageAuthenticationType identityBased"},
	} {
		code, raw := hubCall(t, s, h, "POST", "/jobs/create", tc.body)
		if code != 400 || !strings.Contains(string(raw), tc.want) || strings.Contains(string(raw), "sig=") {
			t.Errorf("%s: %d %s (want 400 with %q)", tc.body, code, raw, tc.want)
		}
	}
	// One active job per hub: a big import holds the hub.
	env.put(t, "input", "devices.txt", []byte(strings.Join(deviceLines(20000, "big"), "\n")))
	first := startJob(t, s, h, map[string]any{"type": "import", "inputBlobContainerUri": env.inSAS, "outputBlobContainerUri": env.outSAS})
	code, raw := hubCall(t, s, h, "POST", "/jobs/create", map[string]any{"type": "export", "outputBlobContainerUri": env.outSAS})
	if code != 409 || !strings.Contains(string(raw), "JobQuotaExceeded") || !strings.Contains(string(raw), first.JobID) {
		t.Fatalf("second job while one runs: %d %s", code, raw)
	}
	// Cancel stops it cleanly and says how far it got.
	code, raw = hubCall(t, s, h, "DELETE", "/jobs/"+first.JobID, nil)
	if code != 200 {
		t.Fatalf("cancel: %d %s", code, raw)
	}
	j := waitJob(t, s, h, first.JobID)
	if j.Status != "cancelled" || !strings.Contains(j.FailureReason, "Cancelled") {
		t.Fatalf("cancelled job: %+v", j)
	}
	t.Logf("cancel: %s", j.FailureReason)
	// The hub is free again.
	if j := runJob(t, s, h, map[string]any{"type": "export", "outputBlobContainerUri": env.outSAS}); j.Status != "completed" {
		t.Fatalf("export after cancel: %+v", j)
	}
}

// ownerSAS is an iothubowner token for the hub.
func ownerSAS(t *testing.T, h testHub) string {
	t.Helper()
	tok, err := sas.Sign(h.HostName, h.OwnerKey, "iothubowner", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
