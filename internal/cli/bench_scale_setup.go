package cli

// The resources `outpost bench scale` creates through the resource manager
// of the first node, and the bulk import of the loaded hub's devices.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	azsas "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/google/uuid"
)

const (
	scaleGroup          = "rg-scale"
	storageAPIVersion   = "2023-05-01"
	eventHubAPIVersion  = "2024-01-01"
	roleEventHubsSender = "2b629674-e913-4c01-ae53-ef4638d8f975" // Azure Event Hubs Data Sender
)

// scaleHub is a hub as the measurements reach it.
type scaleHub struct {
	name, host, ownerKey string
	endpoint             string // the routing endpoint's name
	eventHub             string // the event hub it routes to
}

// scaleEnv is what setUpScaleResources made.
type scaleEnv struct {
	subscription string
	suffix       string // DNS suffix
	seed         []byte // derives the loaded hub's device keys
	account      string
	accountKey   string
	blobEndpoint string
	empty        scaleHub
	loaded       scaleHub
}

// deviceKey is the primary (n=1) or secondary (n=2) key of an imported
// device: derived, so the client processes sign tokens without a registry
// read and the import file needs no key generation.
func deviceKey(seed []byte, id string, n int) string {
	m := hmac.New(sha256.New, seed)
	fmt.Fprintf(m, "%s/%d", id, n)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func setUpScaleResources(ctx context.Context, log *slog.Logger, d *scaleDeployment) (*scaleEnv, error) {
	c := d.nodes[0].api
	env := &scaleEnv{subscription: c.subscription, suffix: d.nodes[0].rt.DNSSuffix, seed: []byte(d.prefix)}
	groupID := "/subscriptions/" + env.subscription + "/resourceGroups/" + scaleGroup
	if err := c.do(ctx, http.MethodPut, "/subscriptions/"+env.subscription+"/resourcegroups/"+scaleGroup+"?api-version=2021-04-01",
		map[string]any{"location": "westus"}, nil); err != nil {
		return nil, fmt.Errorf("create resource group: %w", err)
	}

	// Storage for the import file.
	env.account = strings.ReplaceAll(d.prefix, "-", "")
	acctID := groupID + "/providers/Microsoft.Storage/storageAccounts/" + env.account
	doc, err := putProvisioned(ctx, c, acctID, storageAPIVersion, map[string]any{"location": "westus", "kind": "StorageV2", "sku": map[string]any{"name": "Standard_LRS"}})
	if err != nil {
		return nil, err
	}
	props, _ := doc["properties"].(map[string]any)
	eps, _ := props["primaryEndpoints"].(map[string]any)
	env.blobEndpoint, _ = eps["blob"].(string)
	var keys struct {
		Keys []struct {
			Value string `json:"value"`
		} `json:"keys"`
	}
	if err := c.do(ctx, http.MethodPost, acctID+"/listKeys?api-version="+storageAPIVersion, nil, &keys); err != nil || len(keys.Keys) == 0 || env.blobEndpoint == "" {
		return nil, fmt.Errorf("storage account %s: keys %v, blob endpoint %q: %w", env.account, keys.Keys, env.blobEndpoint, err)
	}
	env.accountKey = keys.Keys[0].Value

	// One event hub per hub, in one namespace.
	nsID := groupID + "/providers/Microsoft.EventHub/namespaces/" + d.prefix
	if _, err := putProvisioned(ctx, c, nsID, eventHubAPIVersion, map[string]any{"location": "westus", "sku": map[string]any{"name": "Standard", "tier": "Standard"}}); err != nil {
		return nil, err
	}
	for _, h := range []struct {
		hub *scaleHub
		tag string
	}{{&env.empty, "empty"}, {&env.loaded, "loaded"}} {
		ehID := nsID + "/eventhubs/eh-" + h.tag
		if _, err := putProvisioned(ctx, c, ehID, eventHubAPIVersion, map[string]any{"properties": map[string]any{"partitionCount": 4, "messageRetentionInDays": 1}}); err != nil {
			return nil, err
		}
		hub, err := createRoutedHub(ctx, c, env, groupID, "scale-"+h.tag, d.prefix, "eh-"+h.tag, ehID)
		if err != nil {
			return nil, err
		}
		*h.hub = hub
		log.Info("hub ready", "hub", hub.name, "routes to", ehID)
	}
	return env, nil
}

// createRoutedHub creates a hub with a system-assigned identity that holds
// Azure Event Hubs Data Sender on the event hub, and one route sending
// every device message to an identity-based endpoint on it.
func createRoutedHub(ctx context.Context, c *apiClient, env *scaleEnv, groupID, name, namespace, eventHub, ehID string) (scaleHub, error) {
	id := groupID + "/providers/Microsoft.Devices/IotHubs/" + name
	body := map[string]any{"location": "westus", "sku": map[string]any{"name": "S1", "capacity": 1}, "identity": map[string]any{"type": "SystemAssigned"}}
	doc, err := putProvisioned(ctx, c, id, hubAPIVersion, body)
	if err != nil {
		return scaleHub{}, err
	}
	ident, _ := doc["identity"].(map[string]any)
	principal, _ := ident["principalId"].(string)
	if principal == "" {
		return scaleHub{}, fmt.Errorf("hub %s has no system-assigned identity: %v", name, doc["identity"])
	}
	if err := c.do(ctx, http.MethodPut, ehID+"/providers/Microsoft.Authorization/roleAssignments/"+uuid.NewString()+"?api-version=2022-04-01",
		map[string]any{"properties": map[string]any{
			"roleDefinitionId": "/subscriptions/" + env.subscription + "/providers/Microsoft.Authorization/roleDefinitions/" + roleEventHubsSender,
			"principalId":      principal,
		}}, nil); err != nil {
		return scaleHub{}, fmt.Errorf("assign Event Hubs Data Sender to hub %s: %w", name, err)
	}
	const endpoint = "eh"
	body["properties"] = map[string]any{"routing": map[string]any{
		"endpoints": map[string]any{"eventHubs": []any{map[string]any{
			"name": endpoint, "authenticationType": "identityBased",
			"endpointUri": "sb://" + namespace + ".servicebus." + env.suffix, "entityPath": eventHub,
		}}},
		"routes": []any{map[string]any{"name": "all", "source": "DeviceMessages", "condition": "true", "endpointNames": []string{endpoint}, "isEnabled": true}},
	}}
	doc, err = putProvisioned(ctx, c, id, hubAPIVersion, body)
	if err != nil {
		return scaleHub{}, err
	}
	props, _ := doc["properties"].(map[string]any)
	host, _ := props["hostName"].(string)
	var keys struct {
		Value []struct {
			KeyName    string `json:"keyName"`
			PrimaryKey string `json:"primaryKey"`
		} `json:"value"`
	}
	if err := c.do(ctx, http.MethodPost, id+"/listkeys?api-version="+hubAPIVersion, nil, &keys); err != nil {
		return scaleHub{}, fmt.Errorf("hub %s keys: %w", name, err)
	}
	for _, k := range keys.Value {
		if k.KeyName == "iothubowner" {
			return scaleHub{name: name, host: host, ownerKey: k.PrimaryKey, endpoint: endpoint, eventHub: eventHub}, nil
		}
	}
	return scaleHub{}, fmt.Errorf("hub %s has no iothubowner key", name)
}

// putProvisioned PUTs a resource and polls it until it is provisioned.
func putProvisioned(ctx context.Context, c *apiClient, id, apiVersion string, body any) (map[string]any, error) {
	if err := c.do(ctx, http.MethodPut, id+"?api-version="+apiVersion, body, nil); err != nil {
		return nil, fmt.Errorf("PUT %s: %w", id, err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var doc map[string]any
		if err := c.do(ctx, http.MethodGet, id+"?api-version="+apiVersion, nil, &doc); err != nil {
			return nil, fmt.Errorf("GET %s: %w", id, err)
		}
		props, _ := doc["properties"].(map[string]any)
		state, _ := props["provisioningState"].(string)
		switch state {
		case "Succeeded", "":
			return doc, nil
		case "Failed", "Canceled":
			return nil, fmt.Errorf("%s: provisioning %s: %v", id, state, doc)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: not provisioned after 2 minutes (%s)", id, state)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// importResult is the bulk import's figures.
type importResult struct {
	devices         int
	fileBytes       int
	upload, elapsed time.Duration
	status          string
}

// importDevices writes devices.txt (n devices with derived keys) to the
// first node's storage account and imports it into the loaded hub with a
// key-based (SAS) import job, timing the job from create to completed.
func importDevices(ctx context.Context, log *slog.Logger, d *scaleDeployment, env *scaleEnv, n int) (importResult, error) {
	c := d.nodes[0].api
	var buf bytes.Buffer
	buf.Grow(n * 200)
	for i := range n {
		id := scaleDeviceID(i)
		fmt.Fprintf(&buf, `{"id":%q,"importMode":"create","status":"enabled","authentication":{"type":"sas","symmetricKey":{"primaryKey":%q,"secondaryKey":%q}}}`+"\n",
			id, deviceKey(env.seed, id, 1), deviceKey(env.seed, id, 2))
	}
	res := importResult{devices: n, fileBytes: buf.Len()}
	hc, err := c.nodeHTTP(env.suffix)
	if err != nil {
		return res, err
	}
	hc.Timeout = 0 // a large upload; the context bounds it
	cred, err := azblob.NewSharedKeyCredential(env.account, env.accountKey)
	if err != nil {
		return res, fmt.Errorf("account key: %w", err)
	}
	bc, err := azblob.NewClientWithSharedKeyCredential(env.blobEndpoint, cred,
		&azblob.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: hc, Retry: policy.RetryOptions{MaxRetries: 2}}})
	if err != nil {
		return res, fmt.Errorf("blob client: %w", err)
	}
	for _, ctr := range []string{"input", "output"} {
		if _, err := bc.CreateContainer(ctx, ctr, nil); err != nil {
			return res, fmt.Errorf("create container %s: %w", ctr, err)
		}
	}
	start := time.Now()
	if _, err := bc.UploadBuffer(ctx, "input", "devices.txt", buf.Bytes(), &azblob.UploadBufferOptions{BlockSize: 8 << 20, Concurrency: 4}); err != nil {
		return res, fmt.Errorf("upload devices.txt: %w", err)
	}
	res.upload = time.Since(start)
	buf = bytes.Buffer{}
	log.Info("import file uploaded", "devices", n, "bytes", res.fileBytes, "took", res.upload.Round(time.Millisecond))

	sasOf := func(ctr string) (string, error) {
		q, err := azsas.BlobSignatureValues{
			Protocol: azsas.ProtocolHTTPS, ExpiryTime: time.Now().Add(3 * time.Hour), ContainerName: ctr,
			Permissions: (&azsas.ContainerPermissions{Read: true, Write: true, Delete: true, List: true, Create: true, Add: true}).String(),
		}.SignWithSharedKey(cred)
		if err != nil {
			return "", fmt.Errorf("sign a SAS for %s: %w", ctr, err)
		}
		return strings.TrimSuffix(env.blobEndpoint, "/") + "/" + ctr + "?" + q.Encode(), nil
	}
	in, err := sasOf("input")
	if err != nil {
		return res, err
	}
	out, err := sasOf("output")
	if err != nil {
		return res, err
	}
	jobs := "/outpost/iothubs/" + url.PathEscape(env.loaded.name) + "/jobs"
	var job struct {
		JobID         string `json:"jobId"`
		Status        string `json:"status"`
		FailureReason string `json:"failureReason"`
		Progress      int    `json:"progress"`
	}
	start = time.Now()
	if err := c.do(ctx, http.MethodPost, jobs+"/create", map[string]any{"type": "import", "inputBlobContainerUri": in,
		"outputBlobContainerUri": out, "storageAuthenticationType": "keyBased"}, &job); err != nil {
		return res, fmt.Errorf("create the import job: %w", err)
	}
	lastLog := time.Now()
	for job.Status != "completed" {
		switch job.Status {
		case "failed", "cancelled":
			return res, fmt.Errorf("import job %s %s: %s", job.JobID, job.Status, job.FailureReason)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		if err := c.do(ctx, http.MethodGet, jobs+"/"+url.PathEscape(job.JobID), nil, &job); err != nil {
			return res, fmt.Errorf("import job: %w", err)
		}
		if time.Since(lastLog) > 10*time.Second {
			log.Info("import", "status", job.Status, "progress", job.Progress, "elapsed", time.Since(start).Round(time.Second))
			lastLog = time.Now()
		}
	}
	res.elapsed, res.status = time.Since(start), job.Status
	log.Info("import job completed", "devices", n, "took", res.elapsed.Round(time.Millisecond))
	if res.elapsed <= 0 {
		return res, errors.New("import took no time")
	}
	return res, nil
}
