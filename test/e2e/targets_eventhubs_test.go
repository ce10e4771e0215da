package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestEventHubsBatchAndReadCLI: a REST batch sent with a namespace SAS is
// read back by `outpost eventhubs read` — every event once, with its
// properties, in per-partition sequence order, one partition per key.
func TestEventHubsBatchAndReadCLI(t *testing.T) {
	bin := testserver.BuildBinary(t)
	s := testserver.Start(t)
	e := createMessagingEntity(t, s, "rg-eh-read", "Microsoft.EventHub", "eventhubs", "")
	token := sas.SignRawKey("https://"+e.Host+"/"+e.Name, e.Key, "RootManageSharedAccessKey", time.Now().Add(time.Hour))
	var batch []map[string]any
	for i := range 30 {
		key := []string{"red", "green", "blue"}[i%3]
		batch = append(batch, map[string]any{
			"Body": `{"i":` + itoa(i) + `}`, "UserProperties": map[string]any{"color": key, "n": i},
			"BrokerProperties": map[string]any{"PartitionKey": key},
		})
	}
	body, _ := json.Marshal(batch)
	req, _ := http.NewRequest("POST", e.URL(), strings.NewReader(string(body)))
	req.Header.Set("Authorization", token)
	req.Header.Set("Content-Type", "application/vnd.microsoft.servicebus.json")
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("batch send: %d %s", resp.StatusCode, b)
	}

	cmd := exec.Command(bin, "eventhubs", "read", "--namespace", e.Namespace, "--name", e.Name, "--count", "100")
	cmd.Env = os.Environ()
	for k, v := range s.Env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("outpost eventhubs read: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 30 {
		t.Fatalf("read %d events, want 30:\n%s", len(lines), out)
	}
	partitionOf := map[string]string{}
	lastSeq := map[string]int64{}
	seen := map[float64]bool{}
	for _, l := range lines {
		var ev struct {
			PartitionID    string         `json:"partitionId"`
			SequenceNumber int64          `json:"sequenceNumber"`
			PartitionKey   string         `json:"partitionKey"`
			Body           string         `json:"body"`
			Properties     map[string]any `json:"properties"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		if p, ok := partitionOf[ev.PartitionKey]; ok && p != ev.PartitionID {
			t.Errorf("key %s on partitions %s and %s", ev.PartitionKey, p, ev.PartitionID)
		}
		partitionOf[ev.PartitionKey] = ev.PartitionID
		if last, ok := lastSeq[ev.PartitionID]; ok && ev.SequenceNumber != last+1 {
			t.Errorf("partition %s: sequence %d after %d", ev.PartitionID, ev.SequenceNumber, last)
		}
		lastSeq[ev.PartitionID] = ev.SequenceNumber
		n, _ := ev.Properties["n"].(float64)
		if ev.Properties["color"] != ev.PartitionKey || seen[n] || ev.Body != `{"i":`+itoa(int(n))+`}` {
			t.Errorf("event %s", l)
		}
		seen[n] = true
	}
}
