package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/outpost-iot/outpost/internal/sas"
)

// Data planes (a hub's service and device APIs, blob storage) answer on
// their own host names — {hub}.{dns suffix}, {account}.blob.{dns suffix} —
// which resolve only where `outpost env --hosts` was added to /etc/hosts.
// The client commands don't depend on that: a data-plane client dials every
// name under the service's DNS domain at the node's own address (what
// OUTPOST_ENDPOINT names), keeping the name for TLS and Host, exactly as a
// resolver entry would.

// hubDataAPI is the IoT Hub data-plane api-version the client commands
// speak (the service SDKs' and the azure-iot extension's).
const hubDataAPI = "2021-04-12"

// nodeHTTP is c.http dialling every host under domain at the node's
// address. domain is a data plane's parent domain: the hub host name
// without its first label, say, which also covers the storage accounts'
// blob hosts.
func (c *apiClient) nodeHTTP(domain string) (*http.Client, error) {
	u, err := url.Parse(c.endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("the endpoint %q is not a URL: %w", c.endpoint, err)
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	node := net.JoinHostPort(u.Hostname(), port)
	base, ok := c.http.Transport.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("the API client has no HTTP transport to copy")
	}
	tr := base.Clone()
	suffix := "." + strings.ToLower(strings.TrimPrefix(domain, "."))
	d := &net.Dialer{Timeout: 10 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, _, err := net.SplitHostPort(addr); err == nil && net.ParseIP(host) == nil && suffix != "." && strings.HasSuffix(strings.ToLower(host), suffix) {
			addr = node
		}
		return d.DialContext(ctx, network, addr)
	}
	return &http.Client{Timeout: c.http.Timeout, Transport: tr}, nil
}

// parentDomain is host without its first label ("h.example" → "example").
func parentDomain(host string) string {
	_, rest, _ := strings.Cut(host, ".")
	return rest
}

// hubTarget is a hub as the data-plane commands reach it: its host name and
// how requests to it are signed, the azure-iot extension's "target".
type hubTarget struct {
	Name     string
	HostName string
	// Policy and Key sign shared access signatures (--auth-type key).
	Policy, Key string
	// Bearer is an Entra token for IoT Hub's audience (--auth-type login).
	Bearer string
	http   *http.Client
}

// hubFlags are the flags the extension's hub-facing commands share.
type hubFlags struct {
	hubName, resourceGroup, login, authType, policyName string
}

func (f *hubFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&f.hubName, "hub-name", "n", "", "IoT hub name or host name")
	fs.StringVarP(&f.resourceGroup, "resource-group", "g", "", "the hub's resource group (default: the hub of that name in the subscription)")
	fs.StringVarP(&f.login, "login", "l", "", "a hub shared access policy connection string to use instead of looking the hub up")
	fs.StringVar(&f.authType, "auth-type", "key", "data-plane authorization: key (a shared access policy's key) or login (the signed-in principal's Entra token)")
	fs.StringVar(&f.policyName, "policy-name", "auto", "shared access policy to sign with (auto: the first with RegistryWrite, ServiceConnect and DeviceConnect)")
}

// resolveHub finds the hub the flags name, as the extension's
// IotHubDiscovery does: by connection string (--login), in the resource
// group, or by name across the subscription; then the policy key or token
// it signs with.
func (c *apiClient) resolveHub(ctx context.Context, f hubFlags) (*hubTarget, error) {
	t := &hubTarget{}
	switch strings.ToLower(f.authType) {
	case "key", "login":
	default:
		return nil, usageErrorf("argument --auth-type: invalid choice: %q (choose from 'key', 'login')", f.authType)
	}
	if f.login != "" {
		parts := parseConnectionString(f.login)
		t.HostName, t.Policy, t.Key = parts["hostname"], parts["sharedaccesskeyname"], parts["sharedaccesskey"]
		if t.HostName == "" || t.Policy == "" || t.Key == "" {
			return nil, usageErrorf("argument --login: a hub connection string needs HostName, SharedAccessKeyName and SharedAccessKey")
		}
		t.Name, _, _ = strings.Cut(t.HostName, ".")
	} else {
		if f.hubName == "" {
			return nil, usageErrorf("the following arguments are required: --hub-name/-n (or --login)")
		}
		hub, err := c.findHub(ctx, f.hubName, f.resourceGroup)
		if err != nil {
			return nil, err
		}
		props, _ := hub["properties"].(map[string]any)
		t.Name, _ = hub["name"].(string)
		t.HostName, _ = props["hostName"].(string)
		if t.HostName == "" {
			return nil, fmt.Errorf("IoT hub %s has no host name yet (provisioning state %v)", t.Name, props["provisioningState"])
		}
		if strings.EqualFold(f.authType, "key") {
			id, _ := hub["id"].(string)
			if err := c.hubPolicy(ctx, t, id, f.policyName); err != nil {
				return nil, err
			}
		}
	}
	if strings.EqualFold(f.authType, "login") {
		token, err := c.tokenFor(ctx, "https://iothubs.azure.net/.default")
		if err != nil {
			return nil, err
		}
		t.Bearer = token
	}
	h, err := c.nodeHTTP(parentDomain(t.HostName))
	if err != nil {
		return nil, err
	}
	t.http = h
	return t, nil
}

// findHub is the hub named name (or whose host name is name), in group rg
// when given.
func (c *apiClient) findHub(ctx context.Context, name, rg string) (map[string]any, error) {
	if rg != "" {
		hub, err := c.getJSON(ctx, c.resourcePath(rg, "Microsoft.Devices/IotHubs", name), apiIoTHub)
		if err != nil {
			return nil, err
		}
		return hub, nil
	}
	hubs, err := c.list(ctx, c.subscriptionPath()+"/providers/Microsoft.Devices/IotHubs", apiIoTHub)
	if err != nil {
		return nil, err
	}
	for _, h := range hubs {
		m, _ := h.(map[string]any)
		n, _ := m["name"].(string)
		props, _ := m["properties"].(map[string]any)
		host, _ := props["hostName"].(string)
		if strings.EqualFold(n, name) || strings.EqualFold(host, name) {
			return m, nil
		}
	}
	return nil, &apiError{Status: http.StatusNotFound, Code: "ResourceNotFound",
		Message: fmt.Sprintf("Unable to find IoT Hub: %s in current subscription %s.", name, c.subscription)}
}

// hubPolicy picks the shared access policy requests are signed with.
func (c *apiClient) hubPolicy(ctx context.Context, t *hubTarget, hubID, policy string) error {
	var keys struct {
		Value []struct {
			KeyName, PrimaryKey, Rights string
		} `json:"value"`
	}
	if err := c.post(ctx, hubID+"/listkeys", apiIoTHub, nil, &keys); err != nil {
		return err
	}
	for _, k := range keys.Value {
		if strings.EqualFold(policy, "auto") {
			rights := map[string]bool{}
			for _, r := range strings.Split(k.Rights, ",") {
				rights[strings.TrimSpace(r)] = true
			}
			if !rights["RegistryWrite"] || !rights["ServiceConnect"] || !rights["DeviceConnect"] {
				continue
			}
		} else if !strings.EqualFold(k.KeyName, policy) {
			continue
		}
		t.Policy, t.Key = k.KeyName, k.PrimaryKey
		return nil
	}
	if !strings.EqualFold(policy, "auto") {
		return &apiError{Status: http.StatusNotFound, Code: "KeyNameNotFound", Message: fmt.Sprintf("IoT hub %s has no shared access policy named %s.", t.Name, policy)}
	}
	return &apiError{Status: http.StatusNotFound, Code: "PolicyNotFound",
		Message: fmt.Sprintf("No policy of IoT hub %s has the rights RegistryWrite, ServiceConnect and DeviceConnect; name one with --policy-name or use --auth-type login.", t.Name)}
}

// parseConnectionString splits "K=V;K2=V2" into lower-cased keys (a value
// keeps any '=' after the first, as base64 keys end with them).
func parseConnectionString(s string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok {
			out[strings.ToLower(k)] = v
		}
	}
	return out
}

// serviceAuth is the Authorization header for the hub's service API.
func (t *hubTarget) serviceAuth() (string, error) {
	if t.Bearer != "" {
		return "Bearer " + t.Bearer, nil
	}
	return sas.Sign(t.HostName, t.Key, t.Policy, time.Now().Add(time.Hour))
}

// hubRequest is one call to a hub's data plane.
type hubRequest struct {
	method, path string
	query        url.Values
	header       http.Header
	body         any    // JSON-encoded unless raw is set
	raw          []byte // sent as is
	auth         string // Authorization; the service credential when ""
}

// do sends r to the hub and returns the response with its body read. Error
// answers become *apiError (IoT Hub's "ErrorCode:…" bodies included).
func (t *hubTarget) do(ctx context.Context, r hubRequest) (*http.Response, []byte, error) {
	q := url.Values{}
	for k, v := range r.query {
		q[k] = v
	}
	q.Set("api-version", hubDataAPI)
	var body io.Reader
	switch {
	case r.raw != nil:
		body = bytes.NewReader(r.raw)
	case r.body != nil:
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, "https://"+t.HostName+r.path+"?"+q.Encode(), body)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if r.body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	auth := r.auth
	if auth == "" {
		if auth, err = t.serviceAuth(); err != nil {
			return nil, nil, fmt.Errorf("sign the request: %w", err)
		}
	}
	req.Header.Set("Authorization", auth)
	resp, err := t.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("can't reach IoT hub %s: %w", t.HostName, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("read the answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		return nil, nil, errorFrom(resp.StatusCode, resp.Status, b)
	}
	return resp, b, nil
}

// doJSON sends r and decodes a JSON answer into out (when not nil).
func (t *hubTarget) doJSON(ctx context.Context, r hubRequest, out any) error {
	_, b, err := t.do(ctx, r)
	if err != nil {
		return err
	}
	if out != nil && len(bytes.TrimSpace(b)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(out); err != nil {
			return fmt.Errorf("decode the answer: %w", err)
		}
	}
	return nil
}
