package engine_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/hamba/avro/v2/ocf"

	"github.com/outpost-iot/outpost/internal/routing/engine"
)

// blobs reads every blob of a container with the account key.
func (f *fixture) blobs(account, key, containerName string) map[string][]byte {
	f.t.Helper()
	cred, err := container.NewSharedKeyCredential(account, key)
	if err != nil {
		f.t.Fatal(err)
	}
	c, err := container.NewClientWithSharedKeyCredential("https://"+account+".blob."+suffix+"/"+containerName, cred,
		&container.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: f.egress, Retry: policy.RetryOptions{MaxRetries: -1}}})
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string][]byte{}
	pager := c.NewListBlobsFlatPager(nil)
	for pager.More() {
		page, err := pager.NextPage(f.ctx)
		if err != nil {
			f.t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			resp, err := c.NewBlobClient(*b.Name).DownloadStream(f.ctx, nil)
			if err != nil {
				f.t.Fatal(err)
			}
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			out[*b.Name] = data
		}
	}
	return out
}

// TestStorageAvroAndJSON routes to two containers: Avro with the hub's
// system-assigned identity, JSON lines with the account key; blob names
// follow fileNameFormat, one blob per partition and window.
func TestStorageAvroAndJSON(t *testing.T) {
	f := newFixture(t)
	accountID, key := f.storageAccount("routedata", "avro")
	f.call("PUT", accountID+"/blobServices/default/containers/json?api-version=2023-05-01", `{}`, 201)
	routing := fmt.Sprintf(`{
	  "endpoints": {"storageContainers": [
	    {"name": "avro", "authenticationType": "identityBased", "endpointUri": "https://routedata.blob.%[1]s/", "containerName": "avro",
	     "fileNameFormat": "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}", "encoding": "avro", "batchFrequencyInSeconds": 1, "maxChunkSizeInBytes": 10485760},
	    {"name": "json", "connectionString": "DefaultEndpointsProtocol=https;AccountName=routedata;AccountKey=%[2]s;EndpointSuffix=%[1]s", "containerName": "json",
	     "fileNameFormat": "{iothub}/{YYYY}-{MM}-{DD}/{HH}{mm}/{partition}.json", "encoding": "JSON", "batchFrequencyInSeconds": 1, "maxChunkSizeInBytes": 10485760}],
	   "eventHubs": [], "serviceBusQueues": [], "serviceBusTopics": []},
	  "routes": [{"name": "a", "source": "DeviceMessages", "condition": "true", "endpointNames": ["avro"], "isEnabled": true},
	             {"name": "j", "source": "DeviceMessages", "condition": "true", "endpointNames": ["json"], "isEnabled": true}],
	  "enrichments": [{"key": "tier", "value": "cold", "endpointNames": ["avro", "json"]}]}`, suffix, key)
	p := f.hub(hubSpec{name: "hubst", system: true, routing: routing})
	f.assign(p, roleBlobContributor, accountID+"/blobServices/default/containers/avro")

	const n = 10
	for i := 0; i < n; i++ {
		f.publish("hubst", 2, fmt.Sprintf("dev%d", i%4), fmt.Sprintf(`{"i":%d}`, i), map[string]string{"k": fmt.Sprint(i)})
	}
	waitFor(t, 15*time.Second, "both containers written", func() bool {
		return f.health("hubst", "avro").Delivered == n && f.health("hubst", "json").Delivered == n
	})

	// Avro, read back with hamba/avro's OCF decoder.
	got := 0
	for name, data := range f.blobs("routedata", key, "avro") {
		if !strings.HasPrefix(name, "hubst/") || strings.Count(name, "/") != 6 {
			t.Fatalf("blob name %q does not follow {iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}", name)
		}
		dec, err := ocf.NewDecoder(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s is not an Avro container file: %v", name, err)
		}
		if string(dec.Metadata()["avro.codec"]) != "null" {
			t.Fatalf("codec %q", dec.Metadata()["avro.codec"])
		}
		for dec.HasNext() {
			var rec engine.AvroRecord
			if err := dec.Decode(&rec); err != nil {
				t.Fatal(err)
			}
			got++
			if rec.Body == nil || !strings.HasPrefix(string(*rec.Body), `{"i":`) || rec.Properties["tier"] != "cold" || rec.Properties["k"] == "" {
				t.Fatalf("record %+v", rec)
			}
			sp := rec.SystemProperties
			if !strings.HasPrefix(sp["connectionDeviceId"], "dev") || sp["contentType"] != "application/json" || sp["enqueuedTime"] == "" ||
				sp["connectionAuthMethod"] == "" || sp["messageId"] == "" {
				t.Fatalf("system properties %v", sp)
			}
			if _, err := time.Parse("2006-01-02T15:04:05.0000000Z", rec.EnqueuedTimeUtc); err != nil {
				t.Fatalf("EnqueuedTimeUtc %q: %v", rec.EnqueuedTimeUtc, err)
			}
		}
		if err := dec.Error(); err != nil {
			t.Fatal(err)
		}
	}
	if got != n {
		t.Fatalf("%d Avro records, want %d", got, n)
	}

	// JSON lines: the body embedded (application/json, utf-8).
	got = 0
	for name, data := range f.blobs("routedata", key, "json") {
		if !strings.HasSuffix(name, ".json") {
			t.Fatalf("blob name %q", name)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			var rec struct {
				EnqueuedTimeUtc  string
				Properties       map[string]string
				SystemProperties map[string]string
				Body             map[string]int
			}
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			if rec.Properties["k"] != fmt.Sprint(rec.Body["i"]) || rec.SystemProperties["connectionDeviceId"] == "" {
				t.Fatalf("record %+v", rec)
			}
			got++
		}
	}
	if got != n {
		t.Fatalf("%d JSON records, want %d", got, n)
	}
}

// TestStorageRefusedThenGranted: without a role the blob service's 403 is
// the endpoint's last error and the window is kept; granting the role
// delivers it.
func TestStorageRefusedThenGranted(t *testing.T) {
	f := newFixture(t)
	accountID, key := f.storageAccount("refused", "routed")
	routing := fmt.Sprintf(`{
	  "endpoints": {"storageContainers": [{"name": "st", "authenticationType": "identityBased", "endpointUri": "https://refused.blob.%s",
	     "containerName": "routed", "encoding": "avro", "batchFrequencyInSeconds": 1, "maxChunkSizeInBytes": 10485760}],
	   "eventHubs": [], "serviceBusQueues": [], "serviceBusTopics": []},
	  "routes": [{"name": "a", "source": "DeviceMessages", "condition": "true", "endpointNames": ["st"], "isEnabled": true}]}`, suffix)
	p := f.hub(hubSpec{name: "hubrefused", system: true, routing: routing})
	for i := 0; i < 5; i++ {
		f.publish("hubrefused", 2, "dev1", fmt.Sprintf(`{"i":%d}`, i), nil)
	}
	waitFor(t, 10*time.Second, "unhealthy", func() bool { return f.health("hubrefused", "st").Status == engine.StatusUnhealthy })
	h := f.health("hubrefused", "st")
	if want := "403 from https://refused.blob." + suffix + "/routed: AuthorizationPermissionMismatch"; !strings.HasPrefix(h.LastKnownError, want) {
		t.Fatalf("last error %q, want prefix %q", h.LastKnownError, want)
	}
	f.assign(p, roleBlobContributor, accountID)
	waitFor(t, 10*time.Second, "delivery", func() bool { return f.health("hubrefused", "st").Delivered == 5 })
	if blobs := f.blobs("refused", key, "routed"); len(blobs) != 1 {
		t.Fatalf("%d blobs, want 1 (one window, one partition)", len(blobs))
	}
}
