package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	azsas "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/outpost-iot/outpost/internal/testenv"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestJobsKillDuringImport kills Outpost with SIGKILL while it imports
// 20,000 devices, restarts it, and checks that the job's final state says
// exactly what the registry holds.
func TestJobsKillDuringImport(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "the hub and account host names need /etc/hosts entries and port 443 (run as root)")
	}
	bin := testserver.BuildBinary(t)
	p := testserver.StartProcess(t, bin)
	hubName, host, ownerKey := processHub(t, p)
	h := testHub{Name: hubName, HostName: host, OwnerKey: ownerKey}
	rt := p.Runtime(t)
	c := p.HTTPClient(t)
	c.Timeout = 30 * time.Second
	arm := func(method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, p.Endpoint+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+p.Token(t, testserver.ARMResource))
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	acct := uniqueName("kill", 20)
	acctID := "/subscriptions/" + rt.SubscriptionID + "/resourceGroups/rg-kill/providers/Microsoft.Storage/storageAccounts/" + acct
	arm("PUT", acctID+"?api-version="+storageAPI, `{"location":"westus","kind":"StorageV2","sku":{"name":"Standard_LRS"}}`)
	var blobEndpoint string
	for deadline := time.Now().Add(30 * time.Second); blobEndpoint == ""; time.Sleep(100 * time.Millisecond) {
		_, doc := arm("GET", acctID+"?api-version="+storageAPI, "")
		if props, _ := doc["properties"].(map[string]any); props["provisioningState"] == "Succeeded" {
			blobEndpoint = props["primaryEndpoints"].(map[string]any)["blob"].(string)
		}
		if time.Now().After(deadline) {
			t.Fatalf("account not provisioned: %v", doc)
		}
	}
	for _, ctr := range []string{"input", "output"} {
		if code, doc := arm("PUT", acctID+"/blobServices/default/containers/"+ctr+"?api-version="+storageAPI, `{"properties":{}}`); code >= 300 {
			t.Fatalf("container %s: %d %v", ctr, code, doc)
		}
	}
	_, keys := arm("POST", acctID+"/listKeys?api-version="+storageAPI, "")
	key := keys["keys"].([]any)[0].(map[string]any)["value"].(string)
	testserver.MapHosts(t, p.IP, host, acct+".blob."+strings.TrimPrefix(host, hubName+"."))
	cred, _ := azblob.NewSharedKeyCredential(acct, key)
	blobs, err := azblob.NewClientWithSharedKeyCredential(blobEndpoint, cred, &azblob.ClientOptions{ClientOptions: policy.ClientOptions{Transport: c}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	if _, err := blobs.UploadBuffer(context.Background(), "input", "devices.txt", []byte(strings.Join(deviceLines(n, "kill"), "\n")), nil); err != nil {
		t.Fatal(err)
	}
	sasOf := func(ctr string) string {
		q, err := azsas.BlobSignatureValues{Protocol: azsas.ProtocolHTTPS, ExpiryTime: time.Now().Add(time.Hour), ContainerName: ctr,
			Permissions: ptr(azsas.ContainerPermissions{Read: true, Write: true, Delete: true, List: true}).String()}.SignWithSharedKey(cred)
		if err != nil {
			t.Fatal(err)
		}
		return blobEndpoint + ctr + "?" + q.Encode()
	}
	code, raw := hubCallWith(t, c, h, "POST", "/jobs/create", map[string]any{"type": "import", "inputBlobContainerUri": sasOf("input"), "outputBlobContainerUri": sasOf("output")})
	var j jobView
	if code != 200 || json.Unmarshal(raw, &j) != nil {
		t.Fatalf("create: %d %s", code, raw)
	}
	// Kill once some batches are committed.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		_, raw := hubCallWith(t, c, h, "GET", "/jobs/"+j.JobID, nil)
		_ = json.Unmarshal(raw, &j)
		if j.Status == "running" && j.Progress > 0 || j.Status == "completed" || time.Now().After(deadline) {
			break
		}
	}
	p.Kill(t)
	t.Logf("killed at %+v", j)
	p.Restart(t)
	c = p.HTTPClient(t)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		_, raw := hubCallWith(t, c, h, "GET", "/jobs/"+j.JobID, nil)
		_ = json.Unmarshal(raw, &j)
		if j.Status == "completed" || j.Status == "failed" || j.Status == "cancelled" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job after restart: %s", raw)
		}
	}
	code, raw = hubCallWith(t, c, h, "GET", "/statistics/devices", nil)
	var stats struct{ TotalDeviceCount int }
	if code != 200 || json.Unmarshal(raw, &stats) != nil {
		t.Fatalf("statistics: %d %s", code, raw)
	}
	t.Logf("final: %+v; registry holds %d devices", j, stats.TotalDeviceCount)
	switch j.Status {
	case "completed":
		if stats.TotalDeviceCount != n {
			t.Fatalf("completed, but the registry holds %d of %d", stats.TotalDeviceCount, n)
		}
	case "failed":
		m := regexp.MustCompile(`lines 1–(\d+) of devices.txt were applied`).FindStringSubmatch(j.FailureReason)
		if m == nil {
			if strings.Contains(j.FailureReason, "none of devices.txt was applied") {
				m = []string{"", "0"}
			} else {
				t.Fatalf("reason: %s", j.FailureReason)
			}
		}
		applied, _ := strconv.Atoi(m[1])
		upTo := applied
		if f := regexp.MustCompile(`lines (\d+)–(\d+) were being written`).FindStringSubmatch(j.FailureReason); f != nil {
			upTo, _ = strconv.Atoi(f[2])
		}
		if stats.TotalDeviceCount < applied || stats.TotalDeviceCount > upTo {
			t.Fatalf("the job says lines 1–%d applied (up to %d in flight); the registry holds %d", applied, upTo, stats.TotalDeviceCount)
		}
	default:
		t.Fatalf("final state %+v", j)
	}
	_ = io.Discard
}
