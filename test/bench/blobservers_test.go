package bench

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/outpost-iot/outpost/internal/app"
	azuriteenv "github.com/outpost-iot/outpost/internal/testenv/azurite"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// blobServer is a running blob service and an azblob client for one of its
// accounts, addressed path-style (https://127.0.0.1:port/{account}) on both
// servers.
type blobServer struct {
	process  *process
	endpoint string
	// proto is the HTTP version the client negotiated ("HTTP/2.0" or
	// "HTTP/1.1").
	proto  string
	client *azblob.Client
}

// startOutpostBlob starts the built binary with a path-style blob port of
// its own, creates a storage account through the resource manager with the
// operator's credentials from the runtime record, and returns a Shared Key
// client for it that trusts Outpost's CA.
func startOutpostBlob(b *testing.B) *blobServer {
	b.Helper()
	dataDir := b.TempDir()
	srv := outpost(outpostBinary(b), dataDir)
	// The blob port is chosen with the main one, so that a retry after a
	// port was taken gets fresh ones. Logging at warn, like Azurite's
	// --silent, keeps per-request logs out of both.
	var blobAddr string
	command := srv.command
	srv.command = func(port string) *exec.Cmd {
		blobAddr = net.JoinHostPort("127.0.0.1", freePort(b))
		cmd := command(port)
		cmd.Args = append(cmd.Args, "--blob-listen", blobAddr, "--mqtt-listen", "127.0.0.1:0", "--log-level", "warn")
		return cmd
	}
	p, _ := start(b, srv)
	rt, err := app.ReadRuntime(dataDir)
	if err != nil {
		b.Fatal(err)
	}
	client := sdkHTTPClient(b, rt.CAFile)
	account, key := createStorageAccount(b, client, rt)
	return newBlobServer(b, p, "https://"+blobAddr+"/"+account, account, key, client)
}

// startAzuriteBlob starts Azurite's blob service over HTTPS with a
// throwaway certificate, keeping its data on disk in a temporary directory
// (as Outpost does), and returns a Shared Key client for the development
// account. It skips the benchmark when Azurite or node is missing.
func startAzuriteBlob(b *testing.B) *blobServer {
	b.Helper()
	node, entry := azuriteBlob(b)
	dir := b.TempDir()
	certFile, keyFile := azuriteenv.WriteLoopbackCert(b, dir)
	location := filepath.Join(dir, "data")
	if err := os.Mkdir(location, 0o700); err != nil {
		b.Fatal(err)
	}
	client := sdkHTTPClient(b, certFile)
	var blobPort string
	p, _ := start(b, server{
		command: func(port string) *exec.Cmd {
			blobPort = port
			cmd := exec.Command(node, entry, "--blobHost", "127.0.0.1", "--blobPort", port,
				"--location", location, "--cert", certFile, "--key", keyFile,
				"--silent", "--disableTelemetry", "--loose", "--skipApiVersionCheck")
			cmd.Dir = dir
			// The development account only.
			cmd.Env = azuriteenv.Environ()
			return cmd
		},
		prober: func(port string) func() bool {
			// Any HTTP answer (403 for an unsigned list) means it serves.
			url := "https://" + net.JoinHostPort("127.0.0.1", port) + "/" + azuriteenv.Account + "?comp=list"
			return func() bool { return get(client, url, 0) }
		},
	})
	endpoint := "https://" + net.JoinHostPort("127.0.0.1", blobPort) + "/" + azuriteenv.Account
	return newBlobServer(b, p, endpoint, azuriteenv.Account, azuriteenv.Key, client)
}

func newBlobServer(b *testing.B, p *process, endpoint, account, key string, client *http.Client) *blobServer {
	b.Helper()
	cred, err := azblob.NewSharedKeyCredential(account, key)
	if err != nil {
		b.Fatal(err)
	}
	c, err := azblob.NewClientWithSharedKeyCredential(endpoint, cred, &azblob.ClientOptions{
		ClientOptions: policy.ClientOptions{
			Transport: client,
			// A failed request fails the benchmark instead of hiding in
			// its time.
			Retry: policy.RetryOptions{MaxRetries: -1},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	resp, err := client.Get(endpoint + "?comp=list")
	if err != nil {
		b.Fatalf("probe %s: %v", endpoint, err)
	}
	io.Copy(io.Discard, resp.Body) //nolint:errcheck // only the protocol matters
	resp.Body.Close()
	return &blobServer{process: p, endpoint: endpoint, proto: resp.Proto, client: c}
}

// sdkHTTPClient is the HTTP client azcore uses when given none
// (sdk/internal/transport.DefaultHTTPClient: HTTP/2 when the server offers
// it, up to 10 idle connections per host), trusting only caFile.
func sdkHTTPClient(b testing.TB, caFile string) *http.Client {
	b.Helper()
	raw, err := os.ReadFile(caFile)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		b.Fatalf("%s holds no certificate", caFile)
	}
	return &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   10,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
}

const (
	groupAPI   = "2021-04-01"
	storageAPI = "2023-05-01"
)

// createStorageAccount creates resource group rg-bench and a StorageV2
// account in it, waits until it is provisioned and returns its name and
// first key.
func createStorageAccount(b testing.TB, client *http.Client, rt app.Runtime) (account, key string) {
	b.Helper()
	arm := armClient{b: b, client: client, endpoint: rt.Endpoint,
		token: testserver.ClientCredentialsToken(b, client, rt.Endpoint, rt.TenantID,
			rt.Operator.ClientID, rt.Operator.ClientSecret, testserver.ARMResource)}
	group := "/subscriptions/" + rt.SubscriptionID + "/resourcegroups/rg-bench"
	arm.call("PUT", group+"?api-version="+groupAPI, `{"location":"westus"}`, nil)
	account = "benchaccount"
	id := group + "/providers/Microsoft.Storage/storageAccounts/" + account
	arm.call("PUT", id+"?api-version="+storageAPI,
		`{"location":"westus","kind":"StorageV2","sku":{"name":"Standard_LRS"}}`, nil)
	for deadline := time.Now().Add(30 * time.Second); ; {
		var doc struct {
			Properties struct {
				ProvisioningState string `json:"provisioningState"`
			} `json:"properties"`
		}
		arm.call("GET", id+"?api-version="+storageAPI, "", &doc)
		if state := doc.Properties.ProvisioningState; state == "Succeeded" || state == "" {
			break
		} else if state == "Failed" || time.Now().After(deadline) {
			b.Fatalf("storage account %s: provisioning state %s", account, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var keys struct {
		Keys []struct {
			Value string `json:"value"`
		} `json:"keys"`
	}
	arm.call("POST", id+"/listKeys?api-version="+storageAPI, "", &keys)
	if len(keys.Keys) == 0 {
		b.Fatalf("storage account %s: listKeys returned no key", account)
	}
	return account, keys.Keys[0].Value
}

// armClient calls the resource manager as the operator.
type armClient struct {
	b        testing.TB
	client   *http.Client
	endpoint string
	token    string
}

// call sends the request and decodes a 2xx answer into out (when not nil);
// any other answer fails the benchmark.
func (c armClient) call(method, path, body string, out any) {
	c.b.Helper()
	req, err := http.NewRequest(method, c.endpoint+path, strings.NewReader(body))
	if err != nil {
		c.b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		c.b.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.b.Fatalf("%s %s: %v", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		c.b.Fatalf("%s %s: %s %s", method, path, resp.Status, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.b.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
}

// clockTicksPerSecond is USER_HZ, the unit of /proc/PID/stat's CPU times:
// 100 on every architecture Linux builds Go for.
const clockTicksPerSecond = 100

// readCPUTime is the user+system CPU a process has used (all its threads),
// in milliseconds, from /proc/PID/stat.
func readCPUTime(pid int) (float64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read cpu time: %w", err)
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// the fields after it start with the state (field 3), so utime and
	// stime (fields 14 and 15) are the 12th and 13th.
	i := bytes.LastIndexByte(raw, ')')
	fields := strings.Fields(string(raw[i+1:]))
	if i < 0 || len(fields) < 13 {
		return 0, fmt.Errorf("read cpu time: /proc/%d/stat: unexpected format", pid)
	}
	var ticks float64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("read cpu time: /proc/%d/stat: %w", pid, err)
		}
		ticks += float64(n)
	}
	return ticks * 1000 / clockTicksPerSecond, nil
}
