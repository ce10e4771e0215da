package e2e

// The npm AMQP suites (test/clients/amqp-*.test.mjs): unmodified
// @azure/event-hubs, @azure/service-bus, azure-iothub, azure-iot-device-amqp
// and the generic rhea client against Outpost's AMQP 1.0 listener (5671).
// Each test creates what its suite needs, maps the host names and passes
// them in the environment the suite's header names.

import (
	"testing"

	"github.com/outpost-iot/outpost/internal/identity/authz"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestNPMAMQPEventHubs: @azure/event-hubs producer and consumer against an
// event hub, with the namespace key and with a token credential that holds
// Azure Event Hubs Data Owner on the namespace. On both tiers: sequence
// numbers and offsets come from the bus backend.
func TestNPMAMQPEventHubs(t *testing.T) {
	forEachTier(t, func(t *testing.T, s *testserver.Server) {
		e := createMessagingEntity(t, s, "rg-amqp-npm-eh", "Microsoft.EventHub", "eventhubs", "")
		assignRole(t, s, s.App.Operator().ObjectID, authz.EventHubsDataOwnerRoleID, e.NamespaceID)
		runNodeTestEnv(t, s, "amqp-eventhubs.test.mjs", map[string]string{
			"EVENTHUB_CONNECTION_STRING": e.ConnectionString(),
			"EVENTHUB_NAME":              e.Name,
			"EVENTHUB_HOST":              e.Host,
		})
	})
}

// TestNPMAMQPBuiltInEndpoint: telemetry a device sends over MQTT and over
// AMQP is read from the hub's built-in endpoint by @azure/event-hubs with the
// endpoint's connection string.
func TestNPMAMQPBuiltInEndpoint(t *testing.T) {
	s := testserver.Start(t)
	h := createHub(t, s, "rg-amqp-npm-builtin")
	key := createDevice(t, s, h, "amqp-telemetry")
	b := hubBuiltInEndpoint(t, s, h)
	// The token credential reads too once it holds the receive data action
	// on the hub.
	assignRole(t, s, s.App.Operator().ObjectID, authz.EventHubsDataReceiverRoleID, h.ID)
	runNodeTestEnv(t, s, "amqp-builtin-endpoint.test.mjs", map[string]string{
		"IOTHUB_EVENTHUB_HOST":              b.Host,
		"IOTHUB_EVENTHUB_NAME":              b.EntityPath,
		"IOTHUB_EVENTHUB_CONNECTION_STRING": b.ConnectionString(),
		"IOTHUB_DEVICE_CONNECTION_STRING":   "HostName=" + h.HostName + ";DeviceId=amqp-telemetry;SharedAccessKey=" + key,
	})
}

// TestNPMAMQPServiceBus: @azure/service-bus on a queue (peek-lock settlement,
// dead-letter sub-queue, receive-and-delete, lock renewal, peek) and on a
// topic subscription, in one namespace.
func TestNPMAMQPServiceBus(t *testing.T) {
	s := testserver.Start(t)
	q := createMessagingEntity(t, s, "rg-amqp-npm-sb", "Microsoft.ServiceBus", "queues", "")
	topic := uniqueName("topic", 12)
	putAndWait(t, s, q.NamespaceID+"/topics/"+topic, serviceBusAPI, `{"properties":{}}`)
	putAndWait(t, s, q.NamespaceID+"/topics/"+topic+"/subscriptions/all", serviceBusAPI, `{"properties":{}}`)
	runNodeTestEnv(t, s, "amqp-servicebus.test.mjs", map[string]string{
		"SERVICEBUS_CONNECTION_STRING": q.ConnectionString(),
		"SERVICEBUS_QUEUE":             q.Name,
		"SERVICEBUS_TOPIC":             topic,
		"SERVICEBUS_SUBSCRIPTION":      "all",
	})
}

// TestNPMAMQPIoTHubService: the azure-iothub service client over AMQP sends
// cloud-to-device messages with full acknowledgement to an MQTT and an AMQP
// device and gets their feedback; its file notification receiver gets the
// notification of a device's upload.
func TestNPMAMQPIoTHubService(t *testing.T) {
	s := testserver.Start(t)
	const group = "rg-amqp-npm-service"
	h := createHub(t, s, group)
	key := createDevice(t, s, h, "c2d-target")
	uploaderKey := createDevice(t, s, h, "uploader")
	acct := createStorageAccount(t, s, group, "", "")
	putAndWait(t, s, acct.ID+"/blobServices/default/containers/uploads", storageAPI, `{"properties":{}}`)
	conn := "DefaultEndpointsProtocol=https;AccountName=" + acct.Name + ";AccountKey=" + acct.Key + ";EndpointSuffix=" + s.Config.DNSSuffix
	if code, body := setHub(t, s, h, `{"type":"None"}`, `{"storageEndpoints":{"$default":{"connectionString":"`+conn+`","containerName":"uploads","sasTtlAsIso8601":"PT1H"}},"enableFileUploadNotifications":true}`); code >= 300 {
		t.Fatalf("file upload settings: %d %v", code, body)
	}
	runNodeTestEnv(t, s, "amqp-iothub-service.test.mjs", map[string]string{
		"IOTHUB_CONNECTION_STRING":               h.ServiceConnectionString(),
		"IOTHUB_DEVICE_ID":                       "c2d-target",
		"IOTHUB_DEVICE_CONNECTION_STRING":        "HostName=" + h.HostName + ";DeviceId=c2d-target;SharedAccessKey=" + key,
		"IOTHUB_UPLOAD_DEVICE_CONNECTION_STRING": "HostName=" + h.HostName + ";DeviceId=uploader;SharedAccessKey=" + uploaderKey,
	})
}

// TestNPMAMQPRhea: the generic rhea client with SASL PLAIN (key name and key)
// sends to and reads from an event hub, and is refused amqp:not-found for an
// entity that does not exist.
func TestNPMAMQPRhea(t *testing.T) {
	s := testserver.Start(t)
	e := createMessagingEntity(t, s, "rg-amqp-npm-rhea", "Microsoft.EventHub", "eventhubs", "")
	runNodeTestEnv(t, s, "amqp-rhea.test.mjs", map[string]string{
		"EVENTHUB_HOST":     e.Host,
		"EVENTHUB_NAME":     e.Name,
		"EVENTHUB_KEY_NAME": "RootManageSharedAccessKey",
		"EVENTHUB_KEY":      e.Key,
		"AMQP_PORT":         amqpPort,
	})
}

// TestNPMAMQPEventHubsCheckpoints: @azure/event-hubs with the blob
// checkpoint store keeping its checkpoints in Outpost's own blob service; a
// second consumer resumes after the first one's checkpoint.
func TestNPMAMQPEventHubsCheckpoints(t *testing.T) {
	s := testserver.Start(t)
	e := createMessagingEntity(t, s, "rg-amqp-npm-cp", "Microsoft.EventHub", "eventhubs", "")
	jobs := newJobsEnv(t, s, "rg-amqp-npm-cp")
	runNodeTestEnv(t, s, "amqp-eventhubs-checkpoint.test.mjs", map[string]string{
		"EVENTHUB_CONNECTION_STRING": e.ConnectionString(),
		"EVENTHUB_NAME":              e.Name,
		"CHECKPOINT_CONTAINER_URL":   jobs.outSAS,
	})
}
