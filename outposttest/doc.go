// Package outposttest starts Outpost — a self-hosted, Azure-compatible IoT
// hub with a resource manager, an Entra-like token issuer, managed
// identities, RBAC and blob storage — inside a Go test, the way
// net/http/httptest starts an HTTP server. Code written against the Azure
// SDK for Go (azidentity, armresources, armiothub, armauthorization, azblob…)
// runs against it unmodified: only the credential and the client options
// change.
//
//	o := outposttest.Start(t)
//	hubs, err := armiothub.NewResourceClient(o.SubscriptionID, o.Credential(), o.ARMClientOptions())
//	…
//	dev := o.Device(t, "myhub", "sensor-1")
//	err = dev.Send(ctx, outposttest.Message{Body: []byte(`{"temp":30}`)})
//
// Each Start gets an installation of its own: a fresh data directory, an
// embedded SQLite store and an in-process NATS JetStream, a local CA, a
// tenant, a subscription and an operator service principal that owns the
// subscription. Credential authenticates as that operator against
// Outpost's real token endpoint. Everything stops, and the data directory
// is removed, when the test ends (t.Cleanup).
//
// Outpost listens on a loopback address of its own (127.0.x.y), on port 443
// when the process may bind it (as root, or with CAP_NET_BIND_SERVICE), on
// a random port otherwise. Host names under DNSSuffix — {hub}.{suffix},
// {account}.blob.{suffix} — need no DNS: the HTTP client handed out by
// HTTPClient, ClientOptions and ARMClientOptions dials them at Outpost's
// address itself and trusts its CA only.
//
// Devices: DeviceConnectionString and Device register a device through the
// hub's public registry API (creating it when it does not exist) and Device
// sends telemetry over IoT Hub's HTTPS device API, so a test can drive
// routing without a device SDK.
//
// Storage routing endpoints deliver in batches no more often than
// batchFrequencyInSeconds, which Azure bounds below at 60 s; tests that wait
// for routed blobs start Outpost with WithMinRoutingBatchFrequency to allow
// shorter batches.
package outposttest
