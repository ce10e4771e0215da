package e2e

import (
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestNPMAMQPIoTHubTwinMethods: twins and direct methods over the AMQP
// device transports (Amqp and AmqpWs), driven by azure-iothub.
func TestNPMAMQPIoTHubTwinMethods(t *testing.T) {
	s := testserver.Start(t)
	h := createHub(t, s, "rg-amqp-twin")
	key := createDevice(t, s, h, "twin-dev")
	runNodeTestEnv(t, s, "amqp-iothub-twin-methods.test.mjs", map[string]string{
		"SERVICE_CS": h.ServiceConnectionString(),
		"DEVICE_ID":  "twin-dev",
		"DEVICE_CS":  "HostName=" + h.HostName + ";DeviceId=twin-dev;SharedAccessKey=" + key,
	})
}

// TestNPMAMQPIoTHubWebSocketAndX509: cloud-to-device with feedback over
// AmqpWs (service and device), and for a self-signed X.509 device over AMQP.
func TestNPMAMQPIoTHubWebSocketAndX509(t *testing.T) {
	s := testserver.Start(t)
	h := createHub(t, s, "rg-amqp-ws-x509")
	key := createDevice(t, s, h, "ws-dev")
	cert, k := leaf(t, "thumb-dev", nil, nil)
	sum := sha1.Sum(cert.Raw)
	registerDevice(t, s, h, `{"deviceId":"thumb-dev","authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"`+strings.ToUpper(hex.EncodeToString(sum[:]))+`"}}}`, "thumb-dev")
	dir := t.TempDir()
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{
		"cert.pem": {Type: "CERTIFICATE", Bytes: cert.Raw},
		"key.pem":  {Type: "EC PRIVATE KEY", Bytes: kb},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	runNodeTestEnv(t, s, "amqp-iothub-ws-x509.test.mjs", map[string]string{
		"SERVICE_CS": h.ServiceConnectionString(),
		"DEVICE_ID":  "ws-dev",
		"DEVICE_CS":  "HostName=" + h.HostName + ";DeviceId=ws-dev;SharedAccessKey=" + key,
		"X509_CS":    "HostName=" + h.HostName + ";DeviceId=thumb-dev;x509=true",
		"X509_CERT":  filepath.Join(dir, "cert.pem"),
		"X509_KEY":   filepath.Join(dir, "key.pem"),
	})
}
