package outposttest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/iothub/armiothub"

	"github.com/outpost-iot/outpost/internal/sas"
)

// The IoT Hub data-plane API versions this package speaks: the registry's
// and the HTTPS device transport's, as the Azure IoT SDKs send them.
const (
	registryAPIVersion = "2021-04-12"
	deviceAPIVersion   = "2020-09-30"
)

// tokenLifetime is how long the SAS tokens this package signs are valid.
const tokenLifetime = time.Hour

// Device is a device identity of a hub, able to send telemetry over IoT
// Hub's HTTPS device API (POST /devices/{id}/messages/events, a SAS token
// signed with the device key) — the transport the Azure IoT device SDKs
// use for HTTP.
type Device struct {
	// ID is the device id.
	ID string
	// HostName is the hub's host name, {hub}.{suffix}.
	HostName string
	// ConnectionString is the device connection string
	// (HostName=…;DeviceId=…;SharedAccessKey=…) a device SDK takes.
	ConnectionString string

	key     string
	baseURL string // https://{HostName}[:port]
	client  *http.Client
}

// Message is a device-to-cloud message.
type Message struct {
	// Body is the payload.
	Body []byte
	// Properties are the application properties, which route conditions
	// read by name (level = 'critical').
	Properties map[string]string
	// MessageID and CorrelationID are the message's system properties of
	// the same names; empty ones are not sent.
	MessageID, CorrelationID string
	// ContentType and ContentEncoding tell the hub how to read Body: route
	// conditions can query $body, and storage endpoints embed the body as
	// JSON, only for "application/json" with "utf-8".
	ContentType, ContentEncoding string
}

// DeviceConnectionString returns the connection string of a device of
// the named hub, registering the device first when it does not exist. It
// uses the public APIs a service would — the hub's iothubowner key from the
// resource manager, then the hub's registry — and fails the test on error.
func (o *Outpost) DeviceConnectionString(t testing.TB, hub, deviceID string) string {
	t.Helper()
	return o.Device(t, hub, deviceID).ConnectionString
}

// Device returns a device of the named hub, registering it first when it
// does not exist (see DeviceConnectionString). It fails the test on error.
func (o *Outpost) Device(t testing.TB, hub, deviceID string) *Device {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	d, err := o.device(ctx, hub, deviceID)
	if err != nil {
		t.Fatalf("outposttest: device %s of hub %s: %v", deviceID, hub, err)
	}
	return d
}

func (o *Outpost) device(ctx context.Context, hub, deviceID string) (*Device, error) {
	hostName, ownerKey, err := o.hubOwner(ctx, hub)
	if err != nil {
		return nil, err
	}
	d := &Device{ID: deviceID, HostName: hostName, baseURL: "https://" + hostName + o.portSuffix(), client: o.client}
	if d.key, err = d.register(ctx, ownerKey); err != nil {
		return nil, err
	}
	d.ConnectionString = "HostName=" + hostName + ";DeviceId=" + deviceID + ";SharedAccessKey=" + d.key
	return d, nil
}

// hubOwner finds a hub by name in the subscription and returns its host
// name and iothubowner primary key.
func (o *Outpost) hubOwner(ctx context.Context, name string) (hostName, key string, err error) {
	hubs, err := armiothub.NewResourceClient(o.SubscriptionID, o.Credential(), o.ARMClientOptions())
	if err != nil {
		return "", "", fmt.Errorf("iot hub client: %w", err)
	}
	var found *armiothub.Description
	for pager := hubs.NewListBySubscriptionPager(nil); pager.More() && found == nil; {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return "", "", fmt.Errorf("list iot hubs: %w", err)
		}
		for _, h := range page.Value {
			if h.Name != nil && strings.EqualFold(*h.Name, name) {
				found = h
				break
			}
		}
	}
	if found == nil || found.ID == nil {
		return "", "", fmt.Errorf("no IoT hub named %q in subscription %s: create it first", name, o.SubscriptionID)
	}
	if found.Properties == nil || found.Properties.HostName == nil {
		return "", "", fmt.Errorf("IoT hub %s has no host name yet: wait for its creation to finish", name)
	}
	id, err := arm.ParseResourceID(*found.ID)
	if err != nil {
		return "", "", fmt.Errorf("iot hub id %q: %w", *found.ID, err)
	}
	owner, err := hubs.GetKeysForKeyName(ctx, id.ResourceGroupName, id.Name, "iothubowner", nil)
	if err != nil {
		return "", "", fmt.Errorf("iothubowner key: %w", err)
	}
	if owner.PrimaryKey == nil {
		return "", "", errors.New("the hub's iothubowner policy has no primary key")
	}
	return *found.Properties.HostName, *owner.PrimaryKey, nil
}

// deviceIdentity is the part of the registry's device document this
// package reads.
type deviceIdentity struct {
	Authentication struct {
		Type         string `json:"type"`
		SymmetricKey struct {
			PrimaryKey string `json:"primaryKey"`
		} `json:"symmetricKey"`
	} `json:"authentication"`
}

// register reads the device from the hub's registry, creating it with
// generated keys when it is absent, and returns its primary key.
func (d *Device) register(ctx context.Context, ownerKey string) (string, error) {
	token, err := sas.Sign(d.HostName, ownerKey, "iothubowner", time.Now().Add(tokenLifetime))
	if err != nil {
		return "", fmt.Errorf("sign registry token: %w", err)
	}
	path := "/devices/" + url.PathEscape(d.ID) + "?api-version=" + registryAPIVersion
	status, body, err := d.call(ctx, http.MethodGet, path, token, nil, nil)
	if err != nil {
		return "", err
	}
	if status == http.StatusNotFound {
		create, _ := json.Marshal(map[string]string{"deviceId": d.ID})
		status, body, err = d.call(ctx, http.MethodPut, path, token, create, http.Header{"Content-Type": {"application/json"}})
		if err != nil {
			return "", err
		}
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("registry: %d %s", status, body)
	}
	var dev deviceIdentity
	if err := json.Unmarshal(body, &dev); err != nil {
		return "", fmt.Errorf("registry: device document %s: %w", body, err)
	}
	if dev.Authentication.SymmetricKey.PrimaryKey == "" {
		return "", fmt.Errorf("device %s authenticates with %q, not a symmetric key: it has no connection string", d.ID, dev.Authentication.Type)
	}
	return dev.Authentication.SymmetricKey.PrimaryKey, nil
}

// Send sends one device-to-cloud message and returns once the hub has
// stored it durably (204), or the hub's error (status and IoT Hub's error
// body).
func (d *Device) Send(ctx context.Context, m Message) error {
	token, err := sas.Sign(d.HostName+"/devices/"+d.ID, d.key, "", time.Now().Add(tokenLifetime))
	if err != nil {
		return fmt.Errorf("outposttest: sign device token: %w", err)
	}
	// Header names are set as the device SDKs write them, not canonicalized.
	h := http.Header{}
	for k, v := range m.Properties {
		h["iothub-app-"+k] = []string{v}
	}
	for name, v := range map[string]string{
		"iothub-messageid": m.MessageID, "iothub-correlationid": m.CorrelationID,
		"iothub-contenttype": m.ContentType, "iothub-contentencoding": m.ContentEncoding,
	} {
		if v != "" {
			h[name] = []string{v}
		}
	}
	status, body, err := d.call(ctx, http.MethodPost, "/devices/"+url.PathEscape(d.ID)+"/messages/events?api-version="+deviceAPIVersion, token, m.Body, h)
	if err != nil {
		return fmt.Errorf("outposttest: send as %s: %w", d.ID, err)
	}
	if status != http.StatusNoContent {
		return fmt.Errorf("outposttest: send as %s: %d %s", d.ID, status, body)
	}
	return nil
}

// call makes one request to the hub and returns its status and body.
func (d *Device) call(ctx context.Context, method, path, token string, body []byte, h http.Header) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, d.baseURL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	req.Header.Set("Authorization", token)
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	return resp.StatusCode, b, nil
}
