package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/outpost-iot/outpost/internal/config"

	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// setHub PUTs a hub's sku, identity and the given properties (members it
// omits keep their stored values) and waits for the update; it returns the
// status and body of the PUT.
func setHub(t *testing.T, s *testserver.Server, h testHub, identity, properties string) (int, map[string]any) {
	t.Helper()
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	code, body := op.do("PUT", h.ID+"?api-version=2023-06-30",
		`{"location":"westus","sku":{"name":"S1","capacity":1},"identity":`+identity+`,"properties":`+properties+`}`)
	if code >= 300 {
		return code, body
	}
	waitProvisioned(t, s, h.ID, "2023-06-30")
	return code, body
}

// fileNotification receives one file upload notification through the
// service REST surface and completes it.
func fileNotification(t *testing.T, s *testserver.Server, h testHub) map[string]any {
	t.Helper()
	token, _ := sas.Sign(h.HostName, h.OwnerKey, "iothubowner", time.Now().Add(time.Hour))
	url := "https://" + h.HostName + "/messages/servicebound/filenotifications?api-version=2021-04-12"
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", token)
		resp, err := s.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusNoContent {
			continue
		}
		if resp.StatusCode != 200 {
			t.Fatalf("receive file notification: %d %s", resp.StatusCode, b)
		}
		var n map[string]any
		if err := json.Unmarshal(b, &n); err != nil {
			t.Fatalf("notification %s: %v", b, err)
		}
		lock := strings.Trim(resp.Header.Get("ETag"), `"`)
		del, _ := http.NewRequest("DELETE", "https://"+h.HostName+"/messages/servicebound/filenotifications/"+lock+"?api-version=2021-04-12", nil)
		del.Header.Set("Authorization", token)
		dr, err := s.HTTPClient().Do(del)
		if err != nil {
			t.Fatal(err)
		}
		dr.Body.Close()
		if dr.StatusCode != http.StatusNoContent {
			t.Fatalf("complete notification: %d", dr.StatusCode)
		}
		return n
	}
	t.Fatal("no file notification within 20 s")
	return nil
}

func uploadContent(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// TestFileUploadKeyBased: the npm device SDK's uploadToBlob over MQTT and
// over HTTP lands a 10 MB file in a storage account Outpost serves, with
// key-based settings, and each upload yields a file notification with the
// blob's size and URI.
func TestFileUploadKeyBased(t *testing.T) {
	forEachTier(t, func(t *testing.T, s *testserver.Server) {
		h := createHub(t, s, "rg-fu-key")
		key := createDevice(t, s, h, "uploader")
		acct := createStorageAccount(t, s, "rg-fu-key", "", "")
		putAndWait(t, s, acct.ID+"/blobServices/default/containers/uploads", storageAPI, `{"properties":{}}`)
		conn := "DefaultEndpointsProtocol=https;AccountName=" + acct.Name + ";AccountKey=" + acct.Key + ";EndpointSuffix=" + s.Config.DNSSuffix
		if code, body := setHub(t, s, h, `{"type":"None"}`, `{"storageEndpoints":{"$default":{"connectionString":"`+conn+`","containerName":"uploads","sasTtlAsIso8601":"PT1H"}},"enableFileUploadNotifications":true}`); code >= 300 {
			t.Fatalf("file upload settings: %d %v", code, body)
		}
		const size = 10 << 20
		runNodeTestEnv(t, s, "iothub-fileupload.test.mjs", map[string]string{
			"IOTHUB_DEVICE_CONNECTION_STRING": "HostName=" + h.HostName + ";DeviceId=uploader;SharedAccessKey=" + key,
			"UPLOAD_TRANSPORTS":               "mqtt,http", "UPLOAD_BYTES": strconv.Itoa(size),
			"UPLOAD_PREFIX": "logs", "UPLOAD_EXPECT": "ok",
		})
		cred, _ := azblob.NewSharedKeyCredential(acct.Name, acct.Key)
		blobs, _ := azblob.NewClientWithSharedKeyCredential(acct.BlobEndpoint, cred, blobOptions(s))
		want := uploadContent(size)
		seen := map[string]bool{}
		for range 2 {
			n := fileNotification(t, s, h)
			name, _ := n["blobName"].(string)
			if n["deviceId"] != "uploader" || n["blobSizeInBytes"] != float64(size) ||
				n["blobUri"] != acct.BlobEndpoint+"uploads/"+name || !strings.HasPrefix(name, "uploader/logs/") {
				t.Errorf("notification %v", n)
			}
			seen[name] = true
			resp, err := blobs.DownloadStream(context.Background(), "uploads", name, nil)
			if err != nil {
				t.Fatalf("download %s: %v", name, err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Equal(got, want) {
				t.Errorf("blob %s: %d bytes, content differs", name, len(got))
			}
		}
		if !seen["uploader/logs/mqtt.bin"] || !seen["uploader/logs/http.bin"] {
			t.Errorf("notified blobs %v", seen)
		}
	})
}

// TestFileUploadIdentityBased: identity-based settings on an account that
// refuses shared keys. With only Storage Blob Data Reader the settings are
// refused when saved, naming the role to grant; with the Contributor role
// the device uploads with a user delegation SAS minted through the hub's
// identity; once the role is removed, storage refuses the device's next
// upload and the SDK surfaces it.
func TestFileUploadIdentityBased(t *testing.T) {
	s := testserver.Start(t)
	h := createHub(t, s, "rg-fu-mi")
	key := createDevice(t, s, h, "uploader")
	code, body := setHub(t, s, h, `{"type":"SystemAssigned"}`, `{}`)
	if code >= 300 {
		t.Fatalf("enable identity: %d %v", code, body)
	}
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	principal := hubPrincipal(t, s, h)
	acct := createStorageAccount(t, s, "rg-fu-mi", `{"allowSharedKeyAccess":false}`, "")
	putAndWait(t, s, acct.ID+"/blobServices/default/containers/uploads", storageAPI, `{"properties":{}}`)
	const storageBlobDataReader = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
	assignRole(t, s, principal, storageBlobDataReader, acct.ID)

	settings := `{"storageEndpoints":{"$default":{"connectionString":"DefaultEndpointsProtocol=https;AccountName=` + acct.Name + `;EndpointSuffix=` + s.Config.DNSSuffix +
		`","containerName":"uploads","authenticationType":"identityBased"}},"enableFileUploadNotifications":true}`
	code, body = setHub(t, s, h, `{"type":"SystemAssigned"}`, settings)
	if msg := fmt.Sprint(body); code != 400 || !strings.Contains(msg, "Storage Blob Data Contributor") || !strings.Contains(msg, principal) {
		t.Fatalf("settings with only the Reader role: %d %v", code, body)
	}
	assignmentID := acct.ID + "/providers/Microsoft.Authorization/roleAssignments/1d9a4c55-5a2e-4f0e-9a6c-0f4c2e7b8a10"
	if c, b := op.do("PUT", assignmentID+"?api-version=2022-04-01", `{"properties":{"roleDefinitionId":"/providers/Microsoft.Authorization/roleDefinitions/`+storageBlobDataContributor+`","principalId":"`+principal+`"}}`); c != 201 {
		t.Fatalf("assign Contributor: %d %v", c, b)
	}
	if code, body = setHub(t, s, h, `{"type":"SystemAssigned"}`, settings); code >= 300 {
		t.Fatalf("settings with the Contributor role: %d %v", code, body)
	}
	deviceCS := "HostName=" + h.HostName + ";DeviceId=uploader;SharedAccessKey=" + key
	runNodeTestEnv(t, s, "iothub-fileupload.test.mjs", map[string]string{
		"IOTHUB_DEVICE_CONNECTION_STRING": deviceCS, "UPLOAD_TRANSPORTS": "http",
		"UPLOAD_BYTES": strconv.Itoa(1 << 20), "UPLOAD_PREFIX": "mi", "UPLOAD_EXPECT": "ok",
	})
	if n := fileNotification(t, s, h); n["blobName"] != "uploader/mi/http.bin" || n["blobSizeInBytes"] != float64(1<<20) {
		t.Fatalf("notification %v", n)
	}
	if c, b := op.do("DELETE", assignmentID+"?api-version=2022-04-01", ""); c != 200 {
		t.Fatalf("remove Contributor: %d %v", c, b)
	}
	runNodeTestEnv(t, s, "iothub-fileupload.test.mjs", map[string]string{
		"IOTHUB_DEVICE_CONNECTION_STRING": deviceCS, "UPLOAD_TRANSPORTS": "http",
		"UPLOAD_BYTES": "1024", "UPLOAD_PREFIX": "revoked", "UPLOAD_EXPECT": "refused",
	})
}

// TestFileUploadIntoAzurite: key-based file upload settings naming an
// Azurite (path-style, its own CA): the hub's check and notification reach
// it through the egress allow-list, and the device SDK uploads into it.
// (Identity-based settings can't target Azurite: it refuses the user
// delegation SAS Go signs — see docs/architecture.md.)
func TestFileUploadIntoAzurite(t *testing.T) {
	endpoint, caFile := startAzurite(t)
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	s := testserver.Start(t, testserver.WithConfig(func(c *config.Config) {
		c.Egress.Allow = []string{u.Host}
		c.Egress.CAFiles = []string{caFile}
	}))
	h := createHub(t, s, "rg-fu-azurite")
	key := createDevice(t, s, h, "uploader")
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	caPEM, _ := os.ReadFile(caFile)
	pool.AppendCertsFromPEM(caPEM)
	azurite := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	cred, _ := azblob.NewSharedKeyCredential(azuriteAccount, azuriteKey)
	blobs, err := azblob.NewClientWithSharedKeyCredential(endpoint+"/", cred, &azblob.ClientOptions{ClientOptions: policy.ClientOptions{Transport: azurite}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.CreateContainer(context.Background(), "uploads", nil); err != nil {
		t.Fatalf("create container in Azurite: %v", err)
	}
	conn := "DefaultEndpointsProtocol=https;AccountName=" + azuriteAccount + ";AccountKey=" + azuriteKey + ";BlobEndpoint=" + endpoint + ";"
	if code, body := setHub(t, s, h, `{"type":"None"}`, `{"storageEndpoints":{"$default":{"connectionString":"`+conn+`","containerName":"uploads"}},"enableFileUploadNotifications":true}`); code >= 300 {
		t.Fatalf("file upload settings: %d %v", code, body)
	}
	// Node must trust both Outpost (the hub) and Azurite (the upload).
	bundle := filepath.Join(t.TempDir(), "cas.pem")
	outpostCA, _ := os.ReadFile(s.App.CAFile())
	if err := os.WriteFile(bundle, append(append(outpostCA, '\n'), caPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	runNodeTestEnv(t, s, "iothub-fileupload.test.mjs", map[string]string{
		"IOTHUB_DEVICE_CONNECTION_STRING": "HostName=" + h.HostName + ";DeviceId=uploader;SharedAccessKey=" + key,
		"UPLOAD_TRANSPORTS":               "mqtt", "UPLOAD_BYTES": strconv.Itoa(1 << 20),
		"UPLOAD_PREFIX": "azurite", "UPLOAD_EXPECT": "ok", "NODE_EXTRA_CA_CERTS": bundle,
	})
	n := fileNotification(t, s, h)
	if n["blobName"] != "uploader/azurite/mqtt.bin" || n["blobSizeInBytes"] != float64(1<<20) || n["blobUri"] != endpoint+"/uploads/uploader/azurite/mqtt.bin" {
		t.Fatalf("notification %v", n)
	}
	props, err := blobs.ServiceClient().NewContainerClient("uploads").NewBlobClient("uploader/azurite/mqtt.bin").GetProperties(context.Background(), nil)
	if err != nil || *props.ContentLength != 1<<20 {
		t.Fatalf("the blob in Azurite: %v", err)
	}
}

// TestFileUploadPrivateStorage: storage closed to the public with the
// trusted-services bypass. The hub's own calls (the settings check, the
// notification's blob read) go through with its system-assigned identity,
// but the device's upload with the SAS comes from the device's address and
// is refused by the network rule — the honest consequence Azure documents.
func TestFileUploadPrivateStorage(t *testing.T) {
	s := testserver.Start(t)
	h := createHub(t, s, "rg-fu-private")
	key := createDevice(t, s, h, "uploader")
	if code, body := setHub(t, s, h, `{"type":"SystemAssigned"}`, `{}`); code >= 300 {
		t.Fatalf("enable identity: %d %v", code, body)
	}
	principal := hubPrincipal(t, s, h)
	acct := createStorageAccount(t, s, "rg-fu-private", `{"publicNetworkAccess":"Disabled","networkAcls":{"bypass":"AzureServices","defaultAction":"Deny"}}`, "")
	putAndWait(t, s, acct.ID+"/blobServices/default/containers/uploads", storageAPI, `{"properties":{}}`)
	assignRole(t, s, principal, storageBlobDataContributor, acct.ID)
	settings := `{"storageEndpoints":{"$default":{"connectionString":"DefaultEndpointsProtocol=https;AccountName=` + acct.Name + `;EndpointSuffix=` + s.Config.DNSSuffix +
		`","containerName":"uploads","authenticationType":"identityBased"}}}`
	if code, body := setHub(t, s, h, `{"type":"SystemAssigned"}`, settings); code >= 300 {
		t.Fatalf("settings on private storage (the hub's check goes through the trusted bypass): %d %v", code, body)
	}
	runNodeTestEnv(t, s, "iothub-fileupload.test.mjs", map[string]string{
		"IOTHUB_DEVICE_CONNECTION_STRING": "HostName=" + h.HostName + ";DeviceId=uploader;SharedAccessKey=" + key,
		"UPLOAD_TRANSPORTS":               "http", "UPLOAD_BYTES": "1024", "UPLOAD_PREFIX": "private", "UPLOAD_EXPECT": "refused",
	})
}
