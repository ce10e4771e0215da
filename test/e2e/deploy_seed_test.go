package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/outpost-iot/outpost/internal/testenv"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// seedTemplates reads the ARM templates of the seed document ("IoT Hub
// support for managed identities") at run time — the document is the
// acceptance case and is never copied into the repository. A template is a
// block from a line that is exactly "{" to the next line that is exactly
// "}". Without the document the test skips locally and fails under CI=true.
func seedTemplates(t *testing.T) [][]byte {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "seed")
	matches, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
	if len(matches) == 0 {
		testenv.Unavailable(t, "the seed document is not in %s", dir)
	}
	var out [][]byte
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		var cur *bytes.Buffer
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			line := sc.Text()
			switch {
			case cur == nil && line == "{":
				cur = &bytes.Buffer{}
				cur.WriteString(line + "\n")
			case cur != nil:
				cur.WriteString(line + "\n")
				if line == "}" {
					out = append(out, cur.Bytes())
					cur = nil
				}
			}
		}
	}
	if len(out) < 2 {
		t.Fatalf("found %d templates in the seed document, want the system- and user-assigned ones", len(out))
	}
	return out
}

// TestSeedTemplatesWithAz deploys the seed document's templates verbatim
// with `az deployment group create`, exactly as the document says, and
// checks with `az resource show` that each hub has the identity the
// template asked for.
func TestSeedTemplatesWithAz(t *testing.T) {
	templates := seedTemplates(t)
	s := testserver.Start(t)
	env := s.Env()
	secret := env["AZURE_CLIENT_SECRET"]
	az := newAzCLI(t, s, secret)
	azRegisterCloud(az, s)
	az.ok("login", "--service-principal", "-u", env["AZURE_CLIENT_ID"], "-p", secret, "--tenant", env["AZURE_TENANT_ID"])
	const group = "rg-seed"
	az.ok("group", "create", "-n", group, "-l", "westus")
	for i, tpl := range templates {
		file := filepath.Join(t.TempDir(), "template.json")
		if err := os.WriteFile(file, tpl, 0o600); err != nil {
			t.Fatal(err)
		}
		user := bytes.Contains(tpl, []byte("userAssignedIdentities"))
		name := uniqueHubName("seedhub")
		az.ok("deployment", "group", "create", "--name", "seed-"+string(rune('a'+i)), "--resource-group", group,
			"--template-file", file, "--parameters", "iotHubName="+name, "skuName=S1", "skuTier=Standard", "location=westus")
		var hub struct {
			ID       string `json:"id"`
			Identity struct {
				Type                   string                     `json:"type"`
				PrincipalID            string                     `json:"principalId"`
				UserAssignedIdentities map[string]json.RawMessage `json:"userAssignedIdentities"`
			} `json:"identity"`
			Properties struct {
				ProvisioningState string `json:"provisioningState"`
			} `json:"properties"`
		}
		az.decode(&hub, "resource", "show", "--resource-type", "Microsoft.Devices/IotHubs", "--name", name, "--resource-group", group)
		if hub.Properties.ProvisioningState != "Succeeded" {
			t.Errorf("template %d: hub %s is %q", i, name, hub.Properties.ProvisioningState)
		}
		switch {
		case user:
			want := "/subscriptions/" + env["AZURE_SUBSCRIPTION_ID"] + "/resourceGroups/" + group + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + name + "-identity"
			found := false
			for id := range hub.Identity.UserAssignedIdentities {
				found = found || strings.EqualFold(id, want)
			}
			if hub.Identity.Type != "UserAssigned" || !found {
				t.Errorf("template %d (user-assigned): identity %+v, want %s", i, hub.Identity, want)
			}
		default:
			if hub.Identity.Type != "SystemAssigned" || !azGUIDPattern.MatchString(hub.Identity.PrincipalID) {
				t.Errorf("template %d (system-assigned): identity %+v", i, hub.Identity)
			}
		}
	}
}
