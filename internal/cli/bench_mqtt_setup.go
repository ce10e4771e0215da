package cli

// Setting up a bench mqtt run: the hub and devices on Outpost, the broker address, TLS, source addresses and file limits.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/outpost-iot/outpost/internal/app"
	"github.com/outpost-iot/outpost/internal/sas"
)

// prepareOutpost creates (or reuses) the hub and its devices through the
// resource manager and the hub's service API, and signs each device a SAS token.
func prepareOutpost(ctx context.Context, cmd *cobra.Command, o mqttBenchOptions) (benchTarget, error) {
	c, err := newAPIClient(cmd)
	if err != nil {
		return benchTarget{}, err
	}
	subscription := os.Getenv("AZURE_SUBSCRIPTION_ID")
	caFile := o.caFile
	serverPID := o.serverPID
	if rt, err := app.ReadRuntime(dataDir(cmd)); err == nil && (os.Getenv("OUTPOST_ENDPOINT") == "" || rt.Endpoint == c.endpoint) {
		if subscription == "" {
			subscription = rt.SubscriptionID
		}
		if caFile == "" {
			caFile = rt.CAFile
		}
		if serverPID == 0 && processExists(rt.PID) {
			serverPID = rt.PID
		}
	}
	if caFile == "" {
		caFile = os.Getenv("OUTPOST_CA_FILE")
	}
	if subscription == "" {
		return benchTarget{}, errors.New("no subscription: set AZURE_SUBSCRIPTION_ID (eval \"$(outpost env)\") or use --data-dir of a running node")
	}
	u, err := url.Parse(c.endpoint)
	if err != nil {
		return benchTarget{}, fmt.Errorf("endpoint %q: %w", c.endpoint, err)
	}
	httpsAddr := u.Host
	if u.Port() == "" {
		httpsAddr = net.JoinHostPort(u.Hostname(), "443")
	}
	broker := o.broker
	if broker == "" {
		broker = net.JoinHostPort(u.Hostname(), "8883")
	}

	start := time.Now()
	host, ownerKey, err := ensureBenchHub(ctx, c, subscription, o.resourceGroup, o.hub)
	if err != nil {
		return benchTarget{}, err
	}
	hubTime := time.Since(start)
	start = time.Now()
	ids := benchDeviceIDs(o.devicePrefix, o.devices)
	keys, created, err := ensureBenchDevices(ctx, c, httpsAddr, host, ownerKey, ids)
	if err != nil {
		return benchTarget{}, err
	}
	expiry := time.Now().Add(24 * time.Hour)
	devices := make([]benchDevice, len(ids))
	for i, id := range ids {
		token, err := sas.Sign(host+"/devices/"+id, keys[i], "", expiry)
		if err != nil {
			return benchTarget{}, fmt.Errorf("sign a token for %s: %w", id, err)
		}
		devices[i] = benchDevice{id: id, username: host + "/" + id + "/?api-version=" + mqttDeviceAPIVersion, password: token}
	}
	addr, err := resolveBroker(ctx, broker)
	if err != nil {
		return benchTarget{}, err
	}
	cfg, err := benchTLSConfig(caFile, firstNonEmpty(o.serverName, host))
	if err != nil {
		return benchTarget{}, err
	}
	return benchTarget{
		describe: "outpost hub " + host, addr: addr, tls: cfg, devices: devices, serverPID: serverPID,
		setupNotes: []string{fmt.Sprintf("setup: hub %s ready in %s; %d devices ready in %s (%d created, %d reused)",
			o.hub, hubTime.Round(time.Millisecond), len(ids), time.Since(start).Round(time.Millisecond), created, len(ids)-created)},
	}, nil
}

// preparePlainBroker targets a broker without authentication (Mosquitto with
// allow_anonymous): same client ids and topics, no user name or password.
func preparePlainBroker(o mqttBenchOptions) (benchTarget, error) {
	addr, err := resolveBroker(context.Background(), o.broker)
	if err != nil {
		return benchTarget{}, err
	}
	host, _, _ := net.SplitHostPort(o.broker)
	cfg, err := benchTLSConfig(o.caFile, firstNonEmpty(o.serverName, host))
	if err != nil {
		return benchTarget{}, err
	}
	ids := benchDeviceIDs(o.devicePrefix, o.devices)
	devices := make([]benchDevice, len(ids))
	for i, id := range ids {
		devices[i] = benchDevice{id: id}
	}
	return benchTarget{describe: "plain MQTT broker", addr: addr, tls: cfg, devices: devices, serverPID: o.serverPID}, nil
}

func benchDeviceIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s%05d", prefix, i)
	}
	return ids
}

// ensureBenchHub creates the hub unless it is already provisioned and returns
// its host name and iothubowner key.
func ensureBenchHub(ctx context.Context, c *apiClient, subscription, group, name string) (string, string, error) {
	id := "/subscriptions/" + subscription + "/resourceGroups/" + group + "/providers/Microsoft.Devices/IotHubs/" + name
	var hub struct {
		Properties struct {
			ProvisioningState string `json:"provisioningState"`
			HostName          string `json:"hostName"`
		} `json:"properties"`
	}
	if err := c.do(ctx, http.MethodGet, id+"?api-version="+hubAPIVersion, nil, &hub); err != nil || hub.Properties.ProvisioningState != "Succeeded" {
		if err := c.do(ctx, http.MethodPut, "/subscriptions/"+subscription+"/resourcegroups/"+group+"?api-version=2021-04-01",
			map[string]any{"location": "westus"}, nil); err != nil {
			return "", "", fmt.Errorf("create resource group %s: %w", group, err)
		}
		if err := c.do(ctx, http.MethodPut, id+"?api-version="+hubAPIVersion,
			map[string]any{"location": "westus", "sku": map[string]any{"name": "S1", "capacity": 1}}, nil); err != nil {
			return "", "", fmt.Errorf("create hub %s: %w", name, err)
		}
		deadline := time.Now().Add(time.Minute)
		for hub.Properties.ProvisioningState != "Succeeded" {
			if time.Now().After(deadline) {
				return "", "", fmt.Errorf("hub %s: not provisioned after a minute (state %q)", name, hub.Properties.ProvisioningState)
			}
			time.Sleep(100 * time.Millisecond)
			if err := c.do(ctx, http.MethodGet, id+"?api-version="+hubAPIVersion, nil, &hub); err != nil {
				return "", "", fmt.Errorf("hub %s: %w", name, err)
			}
		}
	}
	var keys struct {
		Value []struct {
			KeyName    string `json:"keyName"`
			PrimaryKey string `json:"primaryKey"`
		} `json:"value"`
	}
	if err := c.do(ctx, http.MethodPost, id+"/listkeys?api-version="+hubAPIVersion, nil, &keys); err != nil {
		return "", "", fmt.Errorf("hub %s keys: %w", name, err)
	}
	for _, k := range keys.Value {
		if k.KeyName == "iothubowner" {
			return hub.Properties.HostName, k.PrimaryKey, nil
		}
	}
	return "", "", fmt.Errorf("hub %s has no iothubowner key", name)
}

// ensureBenchDevices creates the devices that don't exist yet and returns
// every device's primary key and how many were created.
func ensureBenchDevices(ctx context.Context, c *apiClient, httpsAddr, host, ownerKey string, ids []string) ([]string, int, error) {
	const workers = 8
	tr := c.http.Transport.(*http.Transport).Clone()
	// The hub's host name needn't resolve: every request goes to the node.
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, httpsAddr)
	}
	tr.MaxIdleConnsPerHost = workers
	hc := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	defer tr.CloseIdleConnections()
	token, err := sas.Sign(host, ownerKey, "iothubowner", time.Now().Add(time.Hour))
	if err != nil {
		return nil, 0, fmt.Errorf("sign a service token: %w", err)
	}
	call := func(method, id string, body io.Reader) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, method, "https://"+host+"/devices/"+url.PathEscape(id)+"?api-version="+mqttDeviceAPIVersion, body)
		if err != nil {
			return 0, "", err
		}
		req.Header.Set("Authorization", token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return 0, "", fmt.Errorf("device %s: %w", id, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusConflict {
			return resp.StatusCode, "", nil
		}
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, "", fmt.Errorf("%s device %s: %s %s", method, id, resp.Status, strings.TrimSpace(string(b)))
		}
		var dev struct {
			Authentication struct {
				SymmetricKey struct {
					PrimaryKey string `json:"primaryKey"`
				} `json:"symmetricKey"`
			} `json:"authentication"`
		}
		if err := json.Unmarshal(b, &dev); err != nil || dev.Authentication.SymmetricKey.PrimaryKey == "" {
			return resp.StatusCode, "", fmt.Errorf("device %s: no symmetric key in the answer", id)
		}
		return resp.StatusCode, dev.Authentication.SymmetricKey.PrimaryKey, nil
	}
	keys := make([]string, len(ids))
	var (
		next, created atomic.Int64
		errOnce       sync.Once
		firstErr      error
		wg            sync.WaitGroup
	)
	for range min(workers, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ids) {
					return
				}
				status, key, err := call(http.MethodPut, ids[i], strings.NewReader(`{"deviceId":"`+ids[i]+`"}`))
				if err == nil && status == http.StatusConflict {
					_, key, err = call(http.MethodGet, ids[i], nil)
				} else if err == nil {
					created.Add(1)
				}
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					next.Store(int64(len(ids))) // stop the other workers
					return
				}
				keys[i] = key
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, 0, firstErr
	}
	return keys, int(created.Load()), nil
}

// resolveBroker resolves the broker once, preferring IPv4 so the loopback
// source addresses apply, instead of once per connection.
func resolveBroker(ctx context.Context, hostport string) (*net.TCPAddr, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("--broker %q: %w", hostport, err)
	}
	p, err := net.LookupPort("tcp", port)
	if err != nil {
		return nil, fmt.Errorf("--broker %q: %w", hostport, err)
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(ips) == 0 {
		return nil, fmt.Errorf("--broker %q: resolve %s: %w", hostport, host, err)
	}
	ip := ips[0].IP
	for _, a := range ips {
		if a.IP.To4() != nil {
			ip = a.IP
			break
		}
	}
	return &net.TCPAddr{IP: ip, Port: p}, nil
}

func benchTLSConfig(caFile, serverName string) (*tls.Config, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read the CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
		}
	}
	// No session cache: every simulated device makes a full handshake, as
	// separate real devices would.
	return &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}, nil
}

// sourceAddresses are the local addresses connections to ip start from: for
// a loopback broker 127.0.0.2–127.0.0.9, which gives each its own range of
// ephemeral ports (a connection bound to a chosen source address takes a port
// of that address's range, whatever the destination).
func sourceAddresses(ip net.IP) []*net.TCPAddr {
	if v4 := ip.To4(); v4 == nil || !v4.IsLoopback() {
		return nil
	}
	addrs := make([]*net.TCPAddr, 8)
	for i := range addrs {
		addrs[i] = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}
	}
	return addrs
}

func describeSources(addrs []*net.TCPAddr) string {
	if len(addrs) == 0 {
		return "the default source address"
	}
	return fmt.Sprintf("%s–%s", addrs[0].IP, addrs[len(addrs)-1].IP)
}

// raiseFileLimit sets the soft RLIMIT_NOFILE to the hard limit, or to what
// the devices need when that is higher and the process may raise it (root).
func raiseFileLimit(devices int) string {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return "note: can't read RLIMIT_NOFILE: " + err.Error()
	}
	need := uint64(devices) + 256
	if lim.Max < need {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: need, Max: need}); err == nil {
			return ""
		}
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		return fmt.Sprintf("note: the open-file limit is %d; %d devices need about %d (raise the hard limit: ulimit -Hn)", lim.Max, devices, need)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return "note: can't raise RLIMIT_NOFILE: " + err.Error()
		}
	}
	return ""
}
