package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// execResult is one run of the outpost binary.
type execResult struct {
	stdout, stderr string
	code           int
}

// execOutpost runs the binary with the environment `outpost env` prints for
// s (and nothing that would find the server another way).
func execOutpost(t *testing.T, bin string, s *testserver.Server, args ...string) execResult {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = envWithout(os.Environ(), "OUTPOST_", "AZURE_")
	for k, v := range s.Env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := execResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("outpost %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// execOutpostOK runs the binary, fails the test unless it succeeds, and decodes
// its JSON output into out (when not nil).
func execOutpostOK(t *testing.T, bin string, s *testserver.Server, out any, args ...string) string {
	t.Helper()
	r := execOutpost(t, bin, s, args...)
	if r.code != 0 {
		t.Fatalf("outpost %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(r.stdout), out); err != nil {
			t.Fatalf("outpost %s printed %q: %v", strings.Join(args, " "), r.stdout, err)
		}
	}
	return r.stdout
}

// execOutpostFails runs the binary and checks it exits with code, printing one
// "ERROR: …" line that contains want.
func execOutpostFails(t *testing.T, bin string, s *testserver.Server, code int, want string, args ...string) {
	t.Helper()
	r := execOutpost(t, bin, s, args...)
	line := strings.TrimSuffix(r.stderr, "\n")
	if r.code != code || strings.Contains(line, "\n") || !strings.HasPrefix(line, "ERROR: ") || !strings.Contains(line, want) {
		t.Errorf("outpost %s: exit %d, stderr %q; want exit %d and one ERROR line with %q", strings.Join(args, " "), r.code, r.stderr, code, want)
	}
}

type cliDevice struct {
	DeviceID       string `json:"deviceId"`
	Status         string `json:"status"`
	StatusReason   string `json:"statusReason"`
	Hub            string `json:"hub"`
	Authentication struct {
		Type         string `json:"type"`
		SymmetricKey struct {
			PrimaryKey, SecondaryKey string
		} `json:"symmetricKey"`
		X509Thumbprint struct {
			PrimaryThumbprint string
		} `json:"x509Thumbprint"`
	} `json:"authentication"`
}

// TestCLIDevices drives `outpost iot hub device-identity` and the device
// simulation commands against a real hub, as the azure-iot extension's
// commands are used: registry CRUD, the connection string, telemetry seen by
// monitor-events, and a file upload that lands in storage and is notified.
func TestCLIDevices(t *testing.T) {
	bin := testserver.BuildBinary(t)
	forEachTier(t, func(t *testing.T, s *testserver.Server) {
		h := createHub(t, s, "rg-cli-devices")

		var dev cliDevice
		out := execOutpostOK(t, bin, s, &dev, "iot", "hub", "device-identity", "create", "-n", h.Name, "-d", "cli-dev")
		if dev.DeviceID != "cli-dev" || dev.Status != "enabled" || dev.Authentication.Type != "sas" || dev.Authentication.SymmetricKey.PrimaryKey == "" {
			t.Fatalf("created %+v", dev)
		}
		// Printed through the extension's Device model: every attribute,
		// null where the registry has none.
		if !strings.Contains(out, `"statusReason": null`) || !strings.Contains(out, `"deviceScope": null`) || !strings.Contains(out, `"lastActivityTime": "0001-01-01T00:00:00+00:00"`) {
			t.Errorf("create printed %s", out)
		}
		const thumb = "9F3E2C7B5A1D4E6F8091A2B3C4D5E6F708192A3B"
		var x509 cliDevice
		execOutpostOK(t, bin, s, &x509, "iot", "hub", "device-identity", "create", "--hub-name", h.Name, "--device-id", "cli-x509",
			"--am", "x509_thumbprint", "--ptp", thumb, "--sta", "disabled", "--star", "not yet")
		if x509.Authentication.Type != "selfSigned" || !strings.EqualFold(x509.Authentication.X509Thumbprint.PrimaryThumbprint, thumb) ||
			x509.Status != "disabled" || x509.StatusReason != "not yet" {
			t.Errorf("x509 device %+v", x509)
		}

		var shown cliDevice
		execOutpostOK(t, bin, s, &shown, "iot", "hub", "device-identity", "show", "-n", h.Name, "-d", "cli-dev")
		if shown.Hub != h.HostName || shown.Authentication.SymmetricKey != dev.Authentication.SymmetricKey {
			t.Errorf("show %+v, want hub %s and the created keys", shown, h.HostName)
		}
		var cs map[string]string
		execOutpostOK(t, bin, s, &cs, "iot", "hub", "device-identity", "connection-string", "show", "-n", h.Name, "-d", "cli-dev")
		if want := "HostName=" + h.HostName + ";DeviceId=cli-dev;SharedAccessKey=" + dev.Authentication.SymmetricKey.PrimaryKey; cs["connectionString"] != want {
			t.Errorf("connection string %v, want %s", cs, want)
		}
		execOutpostOK(t, bin, s, &cs, "iot", "hub", "device-identity", "connection-string", "show", "-n", h.Name, "-d", "cli-x509", "--kt", "secondary")
		if want := "HostName=" + h.HostName + ";DeviceId=cli-x509;x509=true"; cs["connectionString"] != want {
			t.Errorf("x509 connection string %v, want %s", cs, want)
		}
		// With the hub's connection string instead of a lookup (--login).
		execOutpostOK(t, bin, s, &shown, "iot", "hub", "device-identity", "show", "--login", h.ServiceConnectionString(), "-d", "cli-dev")
		if shown.DeviceID != "cli-dev" {
			t.Errorf("show with --login: %+v", shown)
		}

		// With the operator's Entra token instead of a policy key: refused
		// until it holds an IoT Hub data role.
		r := execOutpost(t, bin, s, "iot", "hub", "device-identity", "show", "-n", h.Name, "-d", "cli-dev", "--auth-type", "login")
		if r.code == 0 {
			t.Errorf("show with --auth-type login and no data role succeeded: %s", r.stdout)
		}
		assignRole(t, s, s.App.Operator().ObjectID, iotHubDataContributor, h.ID)
		execOutpostOK(t, bin, s, &shown, "iot", "hub", "device-identity", "show", "-n", h.Name, "-d", "cli-dev", "--auth-type", "login")
		if shown.DeviceID != "cli-dev" || shown.Authentication.SymmetricKey != dev.Authentication.SymmetricKey {
			t.Errorf("show with --auth-type login: %+v", shown)
		}

		var twins []map[string]any
		execOutpostOK(t, bin, s, &twins, "iot", "hub", "device-identity", "list", "-n", h.Name)
		ids := map[any]bool{}
		for _, tw := range twins {
			ids[tw["deviceId"]] = true
		}
		if len(twins) != 2 || !ids["cli-dev"] || !ids["cli-x509"] {
			t.Errorf("list: %v", twins)
		}
		execOutpostOK(t, bin, s, &twins, "iot", "hub", "device-identity", "list", "-n", h.Name, "--top", "1")
		if len(twins) != 1 {
			t.Errorf("list --top 1: %d devices", len(twins))
		}
		if out := execOutpostOK(t, bin, s, nil, "iot", "hub", "device-identity", "list", "-n", h.Name, "--query", "[].deviceId", "-o", "tsv"); out != "cli-dev\ncli-x509\n" && out != "cli-x509\ncli-dev\n" {
			t.Errorf("list --query -o tsv: %q", out)
		}

		var updated cliDevice
		execOutpostOK(t, bin, s, &updated, "iot", "hub", "device-identity", "update", "-n", h.Name, "-d", "cli-x509", "--sta", "enabled", "--set", "statusReason=ready")
		if updated.Status != "enabled" || updated.StatusReason != "ready" || updated.Authentication.Type != "selfSigned" {
			t.Errorf("update: %+v", updated)
		}

		// Telemetry as the device, seen on the built-in endpoint.
		execOutpostOK(t, bin, s, nil, "iot", "device", "send-d2c-message", "-n", h.Name, "-d", "cli-dev",
			"--data", `{"temp":21}`, "--props", "site=lab;$.mid=m-cli;$.ct=application/json;$.ce=utf-8", "--msg-count", "2", "--qos", "0")
		out = execOutpostOK(t, bin, s, nil, "iot", "hub", "monitor-events", "-n", h.Name, "--from-start", "--count", "2", "--timeout", "20s")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			t.Fatalf("monitor-events printed %q", out)
		}
		for _, l := range lines {
			var ev struct {
				Event struct {
					Origin     string
					Payload    map[string]int
					Properties struct{ System, Application map[string]string }
				}
			}
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("event %q: %v", l, err)
			}
			e := ev.Event
			if e.Origin != "cli-dev" || e.Payload["temp"] != 21 || e.Properties.Application["site"] != "lab" ||
				e.Properties.System["message-id"] != "m-cli" || e.Properties.Application["$.mid"] != "" {
				t.Errorf("event %s", l)
			}
		}

		// A file upload as the device lands in the hub's storage and is
		// notified.
		acct := createStorageAccount(t, s, "rg-cli-devices", "", "")
		putAndWait(t, s, acct.ID+"/blobServices/default/containers/uploads", storageAPI, `{"properties":{}}`)
		conn := "DefaultEndpointsProtocol=https;AccountName=" + acct.Name + ";AccountKey=" + acct.Key + ";EndpointSuffix=" + s.Config.DNSSuffix
		if code, body := setHub(t, s, h, `{"type":"None"}`, `{"storageEndpoints":{"$default":{"connectionString":"`+conn+`","containerName":"uploads","sasTtlAsIso8601":"PT1H"}},"enableFileUploadNotifications":true}`); code >= 300 {
			t.Fatalf("file upload settings: %d %v", code, body)
		}
		file := filepath.Join(t.TempDir(), "reading.csv")
		content := []byte("t,temp\n1,21\n2,22\n")
		if err := os.WriteFile(file, content, 0o600); err != nil {
			t.Fatal(err)
		}
		if out := execOutpostOK(t, bin, s, nil, "iot", "device", "upload-file", "-n", h.Name, "-d", "cli-dev", "--fp", file, "--ct", "text/csv"); out != "" {
			t.Errorf("upload-file printed %q", out)
		}
		n := fileNotification(t, s, h)
		if n["deviceId"] != "cli-dev" || n["blobName"] != "cli-dev/reading.csv" || n["blobSizeInBytes"] != float64(len(content)) {
			t.Errorf("notification %v", n)
		}
		cred, _ := azblob.NewSharedKeyCredential(acct.Name, acct.Key)
		blobs, _ := azblob.NewClientWithSharedKeyCredential(acct.BlobEndpoint, cred, blobOptions(s))
		resp, err := blobs.DownloadStream(context.Background(), "uploads", "cli-dev/reading.csv", nil)
		if err != nil {
			t.Fatalf("download the uploaded blob: %v", err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Equal(got, content) || resp.ContentType == nil || *resp.ContentType != "text/csv" {
			t.Errorf("blob %q (content type %v), want %q as text/csv", got, resp.ContentType, content)
		}

		// Errors: az's exit codes and one line each.
		execOutpostFails(t, bin, s, 3, "(DeviceNotFound)", "iot", "hub", "device-identity", "show", "-n", h.Name, "-d", "nobody")
		execOutpostFails(t, bin, s, 3, "(DeviceNotFound)", "iot", "device", "send-d2c-message", "-n", h.Name, "-d", "nobody")
		execOutpostFails(t, bin, s, 2, "--device-id/-d", "iot", "hub", "device-identity", "create", "-n", h.Name)
		execOutpostFails(t, bin, s, 2, "--hub-name/-n", "iot", "hub", "device-identity", "show", "-d", "cli-dev")
		execOutpostFails(t, bin, s, 2, "--file-path", "iot", "device", "upload-file", "-n", h.Name, "-d", "cli-dev", "--ct", "text/plain")
		execOutpostFails(t, bin, s, 2, "IoT Edge", "iot", "hub", "device-identity", "create", "-n", h.Name, "-d", "edge1", "--ee")
		execOutpostFails(t, bin, s, 2, "x509_thumbprint", "iot", "hub", "device-identity", "create", "-n", h.Name, "-d", "d2", "--am", "password")
		execOutpostFails(t, bin, s, 2, "simulate a device with its symmetric key", "iot", "device", "send-d2c-message", "-n", h.Name, "-d", "cli-x509")
		execOutpostFails(t, bin, s, 3, "Unable to find IoT Hub", "iot", "hub", "device-identity", "list", "-n", "no-such-hub")

		execOutpostOK(t, bin, s, nil, "iot", "hub", "device-identity", "delete", "-n", h.Name, "-d", "cli-x509")
		execOutpostFails(t, bin, s, 3, "(DeviceNotFound)", "iot", "hub", "device-identity", "delete", "-n", h.Name, "-d", "cli-x509")
	})
}
