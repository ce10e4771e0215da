package e2e

import (
	"testing"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestNPMIoTHubRegistry runs the azure-iothub service SDK against a hub:
// registry, twins, query, ETags, and bearer tokens authorized by the IoT Hub
// data roles.
func TestNPMIoTHubRegistry(t *testing.T) {
	forEachTier(t, func(t *testing.T, s *testserver.Server) {
		h := createHub(t, s, "rg-npm-hub")
		assignRole(t, s, s.App.Operator().ObjectID, iotHubDataContributor, h.ID)
		runNodeTestEnv(t, s, "iothub-registry.test.mjs", map[string]string{
			"IOTHUB_CONNECTION_STRING": h.ServiceConnectionString(),
			"IOTHUB_HOST":              h.HostName,
		})
	})
}
