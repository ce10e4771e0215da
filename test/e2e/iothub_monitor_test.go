package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestMonitorEventsCLI: messages a device sends over HTTPS (with
// application properties and a message id) are printed by `outpost iot hub
// monitor-events`, and a 300 KB message is refused with IoT Hub's error.
func TestMonitorEventsCLI(t *testing.T) {
	bin := testserver.BuildBinary(t)
	s := testserver.Start(t)
	h := createHub(t, s, "rg-monitor")
	key := createDevice(t, s, h, "mon-dev")
	token, _ := sas.Sign(h.HostName+"/devices/mon-dev", key, "", time.Now().Add(time.Hour))
	send := func(i int, body string) int {
		req, _ := http.NewRequest("POST", "https://"+h.HostName+"/devices/mon-dev/messages/events?api-version=2021-04-12", strings.NewReader(body))
		req.Header.Set("Authorization", token)
		req.Header.Set("iothub-app-seq", fmt.Sprint(i))
		req.Header.Set("iothub-messageid", fmt.Sprint("m-", i))
		req.Header.Set("iothub-contenttype", "application/json")
		resp, err := s.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := 0; i < 3; i++ {
		if code := send(i, fmt.Sprintf(`{"i":%d}`, i)); code != http.StatusNoContent {
			t.Fatalf("send %d: %d", i, code)
		}
	}
	if code := send(9, strings.Repeat("x", 300<<10)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a 300 KB message: %d, want 413", code)
	}

	hostsCmd := exec.Command(bin, "env", "--hosts", "--data-dir", s.Config.DataDir)
	hostsCmd.Env = os.Environ()
	for k, v := range s.Env() {
		hostsCmd.Env = append(hostsCmd.Env, k+"="+v)
	}
	// The hub and its built-in Event Hubs-compatible endpoint.
	wantHosts := s.IP + " " + h.HostName + "\n" + s.IP + " iothub-ns-" + h.Name + ".servicebus." + s.Config.DNSSuffix
	if out, err := hostsCmd.Output(); err != nil || strings.TrimSpace(string(out)) != wantHosts {
		t.Errorf("outpost env --hosts = %q, %v; want %q", out, err, wantHosts)
	}

	cmd := exec.Command(bin, "iot", "hub", "monitor-events", "-n", h.Name, "--from-start", "--count", "3", "--timeout", "20s")
	cmd.Env = os.Environ()
	for k, v := range s.Env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("monitor-events: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 3 {
		t.Fatalf("monitor-events printed %d lines: %s", len(lines), out)
	}
	for i, l := range lines {
		var ev struct {
			Event struct {
				Origin     string
				Payload    map[string]int
				Properties struct{ System, Application map[string]string }
			}
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		e := ev.Event
		if e.Origin != "mon-dev" || e.Payload["i"] != i || e.Properties.Application["seq"] != fmt.Sprint(i) ||
			e.Properties.System["message-id"] != fmt.Sprint("m-", i) || !strings.Contains(e.Properties.System["iothub-connection-auth-method"], `"sas"`) {
			t.Errorf("event %d = %s", i, l)
		}
	}
}
