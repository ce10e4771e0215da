package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
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
	bin := testserver.BuildBinary(t)
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
		for _, tool := range []string{"az", "outpost"} {
			name := uniqueHubName("seedhub")
			args := []string{"deployment", "group", "create", "--name", "seed-" + tool + "-" + string(rune('a'+i)), "--resource-group", group,
				"--template-file", file, "--parameters", "iotHubName=" + name, "skuName=S1", "skuTier=Standard", "location=westus"}
			show := []string{"resource", "show", "--resource-type", "Microsoft.Devices/IotHubs", "--name", name, "--resource-group", group}
			var out []byte
			if tool == "az" {
				az.ok(args...)
				out = []byte(az.ok(append(show, "--output", "json")...).Stdout)
			} else {
				runOutpost(t, s, bin, args...)
				out = runOutpost(t, s, bin, show...)
			}
			checkSeedHub(t, env, group, name, user, out)
		}
	}
}

// runOutpost runs the outpost binary against s and returns its stdout.
func runOutpost(t *testing.T, s *testserver.Server, bin string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = os.Environ()
	for k, v := range s.Env() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("outpost %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// checkSeedHub checks a hub the seed template created, from the JSON of
// `az resource show` or `outpost resource show`.
func checkSeedHub(t *testing.T, env map[string]string, group, name string, user bool, out []byte) {
	t.Helper()
	var hub struct {
		Identity struct {
			Type                   string                     `json:"type"`
			PrincipalID            string                     `json:"principalId"`
			TenantID               string                     `json:"tenantId"`
			UserAssignedIdentities map[string]json.RawMessage `json:"userAssignedIdentities"`
		} `json:"identity"`
		Properties struct {
			ProvisioningState string `json:"provisioningState"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(out, &hub); err != nil {
		t.Fatalf("resource show: %v\n%s", err, out)
	}
	if hub.Properties.ProvisioningState != "Succeeded" {
		t.Errorf("hub %s is %q", name, hub.Properties.ProvisioningState)
	}
	if user {
		want := "/subscriptions/" + env["AZURE_SUBSCRIPTION_ID"] + "/resourceGroups/" + group + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + name + "-identity"
		found := false
		for id := range hub.Identity.UserAssignedIdentities {
			found = found || strings.EqualFold(id, want)
		}
		if hub.Identity.Type != "UserAssigned" || !found {
			t.Errorf("hub %s (user-assigned template): identity %+v, want %s", name, hub.Identity, want)
		}
		return
	}
	if hub.Identity.Type != "SystemAssigned" || !azGUIDPattern.MatchString(hub.Identity.PrincipalID) || hub.Identity.TenantID != env["AZURE_TENANT_ID"] {
		t.Errorf("hub %s (system-assigned template): identity %+v", name, hub.Identity)
	}
}
