package e2e

// Helpers of the AMQP 1.0 conformance tests (amqp_*_test.go): Outpost serves
// AMQP over TLS on port 5671 of the same loopback address as HTTPS on 443,
// with the same certificate, so the Azure clients reach an event hub or queue
// by its namespace host name, and an IoT hub's built-in endpoint by the host
// name in the hub's properties.eventHubEndpoints.events.endpoint.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// amqpPort is where Outpost listens for AMQP over TLS (what every Azure
// messaging SDK dials for amqps://host).
const amqpPort = "5671"

// amqpAddr is the server's AMQP listener.
func amqpAddr(s *testserver.Server) string { return net.JoinHostPort(s.IP, amqpPort) }

// amqpTLS trusts the server's CA and checks its certificate for host. The Go
// SDKs dial the server's address (CustomEndpoint), not the host name: Go's
// resolver caches /etc/hosts, so a name MapHosts just added may not resolve
// yet in this process.
func amqpTLS(s *testserver.Server, host string) *tls.Config {
	return &tls.Config{RootCAs: s.CertPool(), ServerName: host, MinVersion: tls.VersionTLS12}
}

// amqpRetry keeps SDK retries few and short: a server that answers wrongly
// should fail a test, not stall it for a minute of back-off.
var (
	ehRetry = azeventhubs.RetryOptions{MaxRetries: 2, RetryDelay: 200 * time.Millisecond, MaxRetryDelay: time.Second}
	sbRetry = azservicebus.RetryOptions{MaxRetries: 2, RetryDelay: 200 * time.Millisecond, MaxRetryDelay: time.Second}
)

// ConnectionString is the namespace's RootManageSharedAccessKey connection
// string without EntityPath, as the portal shows it.
func (e testEntity) ConnectionString() string {
	return "Endpoint=sb://" + e.Host + "/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=" + e.Key
}

// builtInEndpoint is an IoT hub's Event Hub-compatible endpoint.
type builtInEndpoint struct {
	// Host is the namespace host of properties.eventHubEndpoints.events.endpoint.
	Host string
	// EntityPath is properties.eventHubEndpoints.events.path.
	EntityPath string
	Partitions int
	ownerKey   string
}

// ConnectionString is the built-in endpoint's connection string with the
// iothubowner key, as the portal's "Built-in endpoints" blade shows it.
func (b builtInEndpoint) ConnectionString() string {
	return "Endpoint=sb://" + b.Host + "/;SharedAccessKeyName=iothubowner;SharedAccessKey=" + b.ownerKey + ";EntityPath=" + b.EntityPath
}

// hubBuiltInEndpoint reads a hub's built-in endpoint from the resource
// manager and maps its host name to the server.
func hubBuiltInEndpoint(t *testing.T, s *testserver.Server, h testHub) builtInEndpoint {
	t.Helper()
	_, doc := armCall{t, s, s.Token(t, testserver.ARMResource)}.do("GET", h.ID+"?api-version=2023-06-30", "")
	props, _ := doc["properties"].(map[string]any)
	endpoints, _ := props["eventHubEndpoints"].(map[string]any)
	events, _ := endpoints["events"].(map[string]any)
	endpoint, _ := events["endpoint"].(string)
	path, _ := events["path"].(string)
	partitions, _ := events["partitionCount"].(float64)
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "sb" || u.Host == "" || path == "" || partitions < 1 {
		t.Fatalf("hub %s: built-in endpoint %v", h.Name, events)
	}
	testserver.MapHosts(t, s.IP, u.Host)
	return builtInEndpoint{Host: u.Host, EntityPath: path, Partitions: int(partitions), ownerKey: h.OwnerKey}
}

// ehProducerOptions and ehConsumerOptions are what a user passes to reach
// this server: its CA, its address, few retries.
func ehProducerOptions(s *testserver.Server, host string) *azeventhubs.ProducerClientOptions {
	return &azeventhubs.ProducerClientOptions{TLSConfig: amqpTLS(s, host), CustomEndpoint: s.IP, RetryOptions: ehRetry}
}

func ehConsumerOptions(s *testserver.Server, host string) *azeventhubs.ConsumerClientOptions {
	return &azeventhubs.ConsumerClientOptions{TLSConfig: amqpTLS(s, host), CustomEndpoint: s.IP, RetryOptions: ehRetry}
}

// closeOnCleanup closes an SDK client when the test ends.
func closeOnCleanup(t *testing.T, c interface{ Close(context.Context) error }) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
}

// receiveEvents reads from a partition client until n events arrived or the
// time is up, and fails the test on any error but the deadline.
func receiveEvents(t *testing.T, pc *azeventhubs.PartitionClient, n int, within time.Duration) []*azeventhubs.ReceivedEventData {
	t.Helper()
	deadline := time.Now().Add(within)
	var out []*azeventhubs.ReceivedEventData
	for len(out) < n && time.Now().Before(deadline) {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		events, err := pc.ReceiveEvents(ctx, n-len(out), nil)
		cancel()
		out = append(out, events...)
		if err != nil && !errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			t.Fatalf("ReceiveEvents after %d of %d events: %v", len(out), n, err)
		}
	}
	return out
}

// noMoreEvents checks that a partition client gets nothing more for a while.
func noMoreEvents(t *testing.T, pc *azeventhubs.PartitionClient, wait time.Duration, what string) {
	t.Helper()
	if extra := receiveEvents(t, pc, 1, wait); len(extra) != 0 {
		t.Errorf("%s: an extra event, sequence number %d, properties %v", what, extra[0].SequenceNumber, extra[0].Properties)
	}
}

// propString is an application property as text, whatever integer or string
// type the wire used.
func propString(props map[string]any, key string) string {
	v, ok := props[key]
	if !ok {
		return "<missing>"
	}
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return fmt.Sprint(v)
}
