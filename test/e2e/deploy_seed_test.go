package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

// seedAzCommands reads the seed document's az command lines at run time,
// each split into its words, with the document's <placeholders> replaced by
// values; a placeholder without a value fails the test, so a new command in
// the document can't pass by accident.
func seedAzCommands(t *testing.T, values map[string]string) [][]string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "seed")
	matches, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
	if len(matches) == 0 {
		testenv.Unavailable(t, "the seed document is not in %s", dir)
	}
	seen := map[string]bool{}
	var out [][]string
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if !strings.HasPrefix(line, "az ") || seen[line] {
				continue
			}
			seen[line] = true
			words := strings.Fields(line)[1:]
			for i, w := range words {
				words[i] = seedPlaceholder.ReplaceAllStringFunc(w, func(p string) string {
					v, ok := values[p]
					if !ok {
						t.Fatalf("the seed's command %q has placeholder %s with no test value", line, p)
					}
					return v
				})
			}
			out = append(out, words)
		}
	}
	if len(out) == 0 {
		t.Fatal("found no az command lines in the seed document")
	}
	return out
}

var seedPlaceholder = regexp.MustCompile(`<[^<>]+>`)

// TestSeedTemplatesWithAz runs the seed document's own command lines —
// `az deployment group create` with its templates, then `az resource show`
// — with az and, word for word, with outpost. Each hub must have the
// identity its template asked for, and `outpost resource show` must print
// exactly what `az resource show` prints for the same hub.
func TestSeedTemplatesWithAz(t *testing.T) {
	t.Parallel() // az and the CLI spend most of their time starting up: overlap them
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
			cmds := seedAzCommands(t, map[string]string{
				"<deployment-name>": "seed-" + tool + "-" + string(rune('a'+i)), "<resource-group-name>": group,
				"<template-file.json>": file, "<valid-iothub-name>": name, "<iot-hub-resource-name>": name,
				"<sku-name>": "S1", "<sku-tier>": "Standard", "<any-of-supported-regions>": "westus",
			})
			var shown []byte
			for _, args := range cmds {
				var out []byte
				if tool == "az" {
					out = []byte(az.ok(args...).Stdout)
				} else {
					out = runOutpost(t, s, bin, args...)
				}
				if args[0] == "resource" && args[1] == "show" {
					shown = out
					if tool == "az" { // the same hub through outpost: the same bytes
						if ours := runOutpost(t, s, bin, args...); !bytes.Equal(ours, out) {
							t.Errorf("outpost %s printed\n%s\naz printed\n%s", strings.Join(args, " "), ours, out)
						}
					}
				}
			}
			if shown == nil {
				t.Fatal("the seed's commands include no resource show")
			}
			checkSeedHub(t, env, group, name, user, shown)
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
