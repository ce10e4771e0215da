package outposttest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/iothub/armiothub"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
)

// TestOutpostEndpointsAndTrust checks what Start hands out without an IoT
// hub: the CA file and the cert pool each trust the server (and the HTTP
// client trusts nothing else), Env matches the fields, and the credential
// gets resource-manager tokens from Outpost.
func TestOutpostEndpointsAndTrust(t *testing.T) {
	o := Start(t)
	ctx := t.Context()

	pem, err := os.ReadFile(o.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	fromFile := x509.NewCertPool()
	if !fromFile.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", o.CAFile)
	}
	for name, c := range map[string]*http.Client{
		"HTTPClient": o.HTTPClient(),
		"CAFile":     {Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: fromFile}}},
		"CertPool":   {Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: o.CertPool()}}},
	} {
		resp, err := c.Get(o.ResourceManagerEndpoint + "/readyz")
		if err != nil {
			t.Fatalf("%s: GET /readyz: %v", name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: GET /readyz = %s", name, resp.Status)
		}
	}

	env := o.Env()
	for k, want := range map[string]string{
		"OUTPOST_ENDPOINT": o.ResourceManagerEndpoint, "SSL_CERT_FILE": o.CAFile, "AZURE_TENANT_ID": o.TenantID,
		"AZURE_SUBSCRIPTION_ID": o.SubscriptionID, "AZURE_CLIENT_ID": o.OperatorClientID,
		"AZURE_AUTHORITY_HOST": o.Cloud().ActiveDirectoryAuthorityHost,
	} {
		if env[k] != want {
			t.Errorf("Env()[%s] = %q, want %q", k, env[k], want)
		}
	}

	tok, err := o.Credential().GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{ResourceManagerAudience + ".default"}})
	if err != nil || strings.Count(tok.Token, ".") != 2 || time.Until(tok.ExpiresOn) < 30*time.Minute {
		t.Fatalf("operator token for the resource manager: %v, expires %v", err, tok.ExpiresOn)
	}
	// A client whose cloud is Cloud() reaches Outpost's resource manager.
	groups, err := armresources.NewResourceGroupsClient(o.SubscriptionID, o.Credential(), o.ARMClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := groups.CreateOrUpdate(ctx, "trust", armresources.ResourceGroup{Location: to.Ptr("westus")}, nil); err != nil {
		t.Fatalf("create a resource group through ARMClientOptions: %v", err)
	}
}

// TestDevices checks the device helpers against a hub: a device is created
// once and found again with the same key, its connection string names the
// hub, Send surfaces the hub's refusal, and an unknown hub is an error that
// says what to do.
func TestDevices(t *testing.T) {
	o := Start(t)
	ctx := t.Context()
	groups, err := armresources.NewResourceGroupsClient(o.SubscriptionID, o.Credential(), o.ARMClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := groups.CreateOrUpdate(ctx, "devices", armresources.ResourceGroup{Location: to.Ptr("westus")}, nil); err != nil {
		t.Fatal(err)
	}
	hubs, err := armiothub.NewResourceClient(o.SubscriptionID, o.Credential(), o.ARMClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	p, err := hubs.BeginCreateOrUpdate(ctx, "devices", "Device-Hub", armiothub.Description{
		Location: to.Ptr("westus"), SKU: &armiothub.SKUInfo{Name: to.Ptr(armiothub.IotHubSKUS1), Capacity: to.Ptr[int64](1)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 250 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}

	// Hub names are case-insensitive, as in Azure.
	conn := o.DeviceConnectionString(t, "device-hub", "thermostat")
	if want := "HostName=device-hub." + o.DNSSuffix + ";DeviceId=thermostat;SharedAccessKey="; !strings.HasPrefix(conn, want) || len(conn) == len(want) {
		t.Fatalf("connection string %q, want %s{key}", conn, want)
	}
	dev := o.Device(t, "Device-Hub", "thermostat")
	if dev.ConnectionString != conn {
		t.Errorf("the existing device came back as %q, want %q", dev.ConnectionString, conn)
	}
	if err := dev.Send(ctx, Message{Body: []byte("21.5"), MessageID: "m-1", Properties: map[string]string{"unit": "C"}}); err != nil {
		t.Fatalf("send: %v", err)
	}
	err = dev.Send(ctx, Message{Body: bytes.Repeat([]byte("x"), 256<<10+1)})
	if err == nil || !strings.Contains(err.Error(), "413") || !strings.Contains(err.Error(), "MessageTooLarge") {
		t.Errorf("sending 256 KB + 1 byte: %v, want the hub's 413 MessageTooLarge", err)
	}
	impostor := *dev
	impostor.key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	if err := impostor.Send(ctx, Message{Body: []byte("x")}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("sending with a wrong key: %v, want 401", err)
	}

	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := o.device(ctx, "no-such-hub", "thermostat"); err == nil || !strings.Contains(err.Error(), "create it first") {
		t.Errorf("a device of a missing hub: %v", err)
	}
}
