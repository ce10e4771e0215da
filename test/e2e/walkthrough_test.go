package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/outpost-iot/outpost/internal/config"
	"github.com/outpost-iot/outpost/internal/testenv"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// The walkthrough (docs/walkthrough.md) is run, not just read. Its rules:
//
//   - A fenced block whose info string is exactly "sh" is a shell command
//     block; every one is run, in document order, with bash and
//     `set -euo pipefail`.
//   - "sh norun" is shown and not run. There is one: starting the node,
//     which the test does itself (testserver.Start with the same setting).
//   - "json file=NAME" is a file the reader saves; the test writes it as
//     NAME into each session's working directory before the shell starts.
//   - The blocks under "## Before you start" are the prelude. Each level-3
//     section is one session: the prelude, the blocks at the top of its
//     level-2 section (before the first "### "), then its own blocks, in one
//     bash process, so variables and functions carry from block to block.
//     Sessions run in parallel, each in a temporary directory of its own,
//     against one server.
//   - Every level-2 section after the prelude that has sessions has exactly
//     two: one whose title starts "System-assigned" and one "User-assigned".
//   - A session sets RG=… and HUB=…, the hub it builds; after the session
//     the test checks, with Go clients and not with the commands the
//     document uses, what that hub left behind with that kind of identity.
//
// The shell's environment is built from scratch: PATH holds a freshly built
// outpost and the real az, HOME and AZURE_CONFIG_DIR are empty temporary
// directories, and OUTPOST_DATA_DIR is the test server's, so the document's
// own `eval "$(outpost env)"` is what points the tools at the server.

// walkthroughBlock is one fenced block of the document.
type walkthroughBlock struct {
	info string // the fence's info string
	line int    // line of the opening fence, for messages
	body string
}

// walkthroughSession is a level-3 section: one tool, one kind of identity.
type walkthroughSession struct {
	section, title string // the level-2 and level-3 titles
	identity       string // SystemAssigned or UserAssigned
	blocks         []walkthroughBlock
}

const walkthroughPrelude = "Before you start"

// readWalkthrough splits the document into its sessions (each with the
// blocks that run before its own) and the files its json blocks name.
func readWalkthrough(t *testing.T) (sessions []walkthroughSession, files map[string]string) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "docs", "walkthrough.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = map[string]string{}
	var (
		section, title string
		prelude        []walkthroughBlock
		intro          []walkthroughBlock // the blocks at the top of the level-2 section
		cur            *walkthroughBlock
		body           strings.Builder
	)
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &walkthroughBlock{info: strings.TrimSpace(strings.TrimPrefix(line, "```")), line: n}
			body.Reset()
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.body = body.String()
			switch info := cur.info; {
			case info == "sh" && section == walkthroughPrelude:
				prelude = append(prelude, *cur)
			case info == "sh" && title == "":
				intro = append(intro, *cur)
			case info == "sh":
				last := len(sessions) - 1
				if last < 0 || sessions[last].section != section || sessions[last].title != title {
					identity := ""
					switch {
					case strings.HasPrefix(title, "System-assigned"):
						identity = "SystemAssigned"
					case strings.HasPrefix(title, "User-assigned"):
						identity = "UserAssigned"
					default:
						t.Fatalf("walkthrough.md:%d: section %q is neither System-assigned nor User-assigned", n, title)
					}
					before := append(append([]walkthroughBlock(nil), prelude...), intro...)
					sessions = append(sessions, walkthroughSession{section: section, title: title, identity: identity, blocks: before})
					last++
				}
				sessions[last].blocks = append(sessions[last].blocks, *cur)
			case info == "sh norun":
			case strings.HasPrefix(info, "json file="):
				name := strings.TrimPrefix(info, "json file=")
				if name != filepath.Base(name) || files[name] != "" {
					t.Fatalf("walkthrough.md:%d: file name %q is not a new plain file name", n, name)
				}
				files[name] = cur.body
			case strings.HasPrefix(info, "sh"):
				t.Fatalf("walkthrough.md:%d: unknown shell block kind %q (sh or sh norun)", n, info)
			}
			cur = nil
		case cur != nil:
			body.WriteString(line + "\n")
		case strings.HasPrefix(line, "## "):
			section, title, intro = strings.TrimPrefix(line, "## "), "", nil
		case strings.HasPrefix(line, "### "):
			title = strings.TrimPrefix(line, "### ")
		}
	}
	if cur != nil {
		t.Fatalf("walkthrough.md:%d: block never closed", cur.line)
	}
	// Every tool's section covers both kinds of identity, and there are
	// the three tools: outpost, az and templates.
	kinds := map[string][]string{}
	for _, sess := range sessions {
		kinds[sess.section] = append(kinds[sess.section], sess.identity)
	}
	for section, k := range kinds {
		if strings.Join(k, ",") != "SystemAssigned,UserAssigned" {
			t.Fatalf("walkthrough.md: section %q has identity sections %v; want SystemAssigned then UserAssigned", section, k)
		}
	}
	if len(prelude) == 0 || len(kinds) < 3 {
		t.Fatalf("walkthrough.md: %d prelude blocks and %d tool sections; want a %q section and the outpost, az and template sections",
			len(prelude), len(kinds), walkthroughPrelude)
	}
	for name, body := range files {
		if !json.Valid([]byte(body)) {
			t.Fatalf("walkthrough.md: %s is not JSON", name)
		}
	}
	return sessions, files
}

var (
	walkthroughGroup  = regexp.MustCompile(`(?m)^RG=([A-Za-z0-9._-]+)$`)
	walkthroughHubVar = regexp.MustCompile(`(?m)^HUB=([A-Za-z0-9$_-]+)$`)
)

// TestWalkthrough runs every command of docs/walkthrough.md — the seed
// document's routing, file upload and import/export scenarios, each with a
// system- and a user-assigned identity, with outpost, with az and with
// templates — and checks each hub's results itself.
func TestWalkthrough(t *testing.T) {
	t.Parallel()
	sessions, files := readWalkthrough(t)
	azPath, err := exec.LookPath("az")
	if err != nil {
		testenv.Unavailable(t, "az is not installed (Debian: apt-get install azure-cli)")
	}
	bashPath, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash is not installed")
	}
	bin := testserver.BuildBinary(t)
	binDir := t.TempDir()
	if err := os.Symlink(bin, filepath.Join(binDir, "outpost")); err != nil {
		t.Fatal(err)
	}
	s := testserver.Start(t, testserver.WithConfig(func(c *config.Config) {
		c.Hub.RoutingMinBatchFrequency = time.Second
	}))
	// The checks below call the hubs' data plane by host name on 443, as a
	// service would; the document's commands need neither.
	s.Require443(t)
	secret := s.Env()["AZURE_CLIENT_SECRET"]

	for _, sess := range sessions {
		name := strings.NewReplacer(" ", "_", "`", "").Replace(sess.section + "/" + sess.title)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var script strings.Builder
			script.WriteString("set -euo pipefail\n")
			hubVar := false
			for _, b := range sess.blocks {
				// A marker on stderr before each block says where a failure was.
				fmt.Fprintf(&script, "echo '>>> walkthrough.md:%d' >&2\n%s", b.line, b.body)
				hubVar = hubVar || walkthroughHubVar.MatchString(b.body)
			}
			if !walkthroughGroup.MatchString(script.String()) || !hubVar {
				t.Fatalf("%s does not set RG= and HUB=", name)
			}
			// The shell says which group and hub it built, on a descriptor
			// of its own.
			script.WriteString("echo \"$RG $HUB\" >&3\n")
			built, builtW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer built.Close()
			defer builtW.Close()
			dir := t.TempDir()
			for name, body := range files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bashPath, "-c", script.String())
			cmd.Dir = dir
			cmd.Env = []string{
				"PATH=" + binDir + string(os.PathListSeparator) + filepath.Dir(azPath) + string(os.PathListSeparator) + "/usr/bin:/bin",
				"HOME=" + t.TempDir(),
				"LANG=C.UTF-8",
				"OUTPOST_DATA_DIR=" + s.Config.DataDir,
				"OUTPOST_CONFIG_DIR=" + t.TempDir(),
				"AZURE_CONFIG_DIR=" + t.TempDir(),
				"AZURE_CORE_COLLECT_TELEMETRY=false",
				"AZURE_CORE_NO_COLOR=true",
				"AZURE_CORE_SURVEY_MESSAGE=false",
				"BATCH_SECONDS=1",
			}
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			cmd.ExtraFiles = []*os.File{builtW}
			start := time.Now()
			err = cmd.Run()
			builtW.Close()
			var group, hub string
			if err == nil {
				if _, err := fmt.Fscan(built, &group, &hub); err != nil {
					t.Fatalf("%s: the shell did not say which group and hub it built: %v", name, err)
				}
			}
			log := out.String()
			if secret != "" {
				log = strings.ReplaceAll(log, secret, "<redacted>")
			}
			if err != nil {
				t.Fatalf("%s failed after %.1fs: %v\n%s", name, time.Since(start).Seconds(), err, log)
			}
			t.Logf("%s ran %d blocks in %.1fs", name, len(sess.blocks), time.Since(start).Seconds())
			checkWalkthroughHub(t, s, group, hub, sess.identity)
		})
	}
}

// walkthroughHub is the part of a hub's resource the checks read.
type walkthroughHub struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Identity struct {
		Type                   string         `json:"type"`
		UserAssignedIdentities map[string]any `json:"userAssignedIdentities"`
	} `json:"identity"`
	Properties struct {
		HostName string `json:"hostName"`
		Routing  struct {
			Endpoints struct {
				StorageContainers []struct {
					AuthenticationType string `json:"authenticationType"`
					Identity           *struct {
						UserAssignedIdentity string `json:"userAssignedIdentity"`
					} `json:"identity"`
					EndpointURI   string `json:"endpointUri"`
					ContainerName string `json:"containerName"`
				} `json:"storageContainers"`
			} `json:"endpoints"`
		} `json:"routing"`
		StorageEndpoints map[string]struct {
			AuthenticationType string `json:"authenticationType"`
			Identity           *struct {
				UserAssignedIdentity string `json:"userAssignedIdentity"`
			} `json:"identity"`
			ContainerName string `json:"containerName"`
		} `json:"storageEndpoints"`
	} `json:"properties"`
}

// walkthroughJob is a bulk job as the hub's service API lists it.
type walkthroughJob struct {
	JobID                     string `json:"jobId"`
	Type                      string `json:"type"`
	Status                    string `json:"status"`
	StorageAuthenticationType string `json:"storageAuthenticationType"`
	OutputBlobContainerURI    string `json:"outputBlobContainerUri"`
	OutputBlobName            string `json:"outputBlobName"`
	Identity                  *struct {
		UserAssignedIdentity string `json:"userAssignedIdentity"`
	} `json:"identity"`
}

// checkWalkthroughHub wants the hub to have the identity kind its section
// is about and, used by every egress: an identity-based storage routing
// endpoint whose container holds the routed message, identity-based file
// upload with the uploaded blob and its notification, and a completed
// identity-based export (devices.txt in storage) and import (the imported
// devices in the registry).
func checkWalkthroughHub(t *testing.T, s *testserver.Server, group, name, identity string) {
	t.Helper()
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	id := "/subscriptions/" + s.App.Installation().SubscriptionID + "/resourceGroups/" + group + "/providers/Microsoft.Devices/IotHubs/" + name
	code, body := op.do("GET", id+"?api-version=2023-06-30", "")
	raw, _ := json.Marshal(body)
	var hub walkthroughHub
	if err := json.Unmarshal(raw, &hub); code != 200 || err != nil {
		t.Fatalf("hub %s of group %s: %d %s", name, group, code, raw)
	}
	if hub.Identity.Type != identity {
		t.Fatalf("hub %s has identity %q, want %q", name, hub.Identity.Type, identity)
	}
	// The identity each egress must name: none for the system-assigned one.
	wantUser := ""
	if hub.Identity.Type == "UserAssigned" {
		if len(hub.Identity.UserAssignedIdentities) != 1 {
			t.Fatalf("hub %s: user-assigned identities %v, want one", hub.Name, hub.Identity.UserAssignedIdentities)
		}
		for id := range hub.Identity.UserAssignedIdentities {
			wantUser = id
		}
	}
	userOf := func(p *struct {
		UserAssignedIdentity string `json:"userAssignedIdentity"`
	}) string {
		if p == nil {
			return ""
		}
		return p.UserAssignedIdentity
	}

	// Routing: the endpoint authenticates with the identity.
	eps := hub.Properties.Routing.Endpoints.StorageContainers
	if len(eps) != 1 || eps[0].AuthenticationType != "identityBased" || !strings.EqualFold(userOf(eps[0].Identity), wantUser) {
		t.Fatalf("hub %s: storage endpoints %+v; want one identityBased endpoint with identity %q", hub.Name, eps, wantUser)
	}
	u, err := url.Parse(eps[0].EndpointURI)
	if err != nil || !strings.Contains(u.Hostname(), ".blob.") {
		t.Fatalf("hub %s: endpoint URI %q", hub.Name, eps[0].EndpointURI)
	}
	account := strings.SplitN(u.Hostname(), ".", 2)[0]
	accountID := strings.SplitN(hub.ID, "/providers/", 2)[0] + "/providers/Microsoft.Storage/storageAccounts/" + account
	code, keys := op.do("POST", accountID+"/listKeys?api-version=2023-05-01", "")
	list, _ := keys["keys"].([]any)
	if code != 200 || len(list) == 0 {
		t.Fatalf("listKeys of %s: %d %v", account, code, keys)
	}
	key, _ := list[0].(map[string]any)["value"].(string)
	cred, err := azblob.NewSharedKeyCredential(account, key)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := azblob.NewClientWithSharedKeyCredential(eps[0].EndpointURI, cred, blobOptions(s))
	if err != nil {
		t.Fatal(err)
	}
	names, contents := containerBlobs(t, blobs, eps[0].ContainerName)
	routed := false
	for i, name := range names {
		if strings.HasPrefix(name, hub.Name+"/") && bytes.Contains(contents[i], []byte(`"temperature"`)) &&
			bytes.Contains(contents[i], []byte(`"connectionDeviceId":"thermostat"`)) {
			routed = true
		}
	}
	if !routed {
		t.Errorf("hub %s: no routed message from thermostat in container %s (blobs %v)", hub.Name, eps[0].ContainerName, names)
	}

	// File upload: identity-based settings, the blob, and its notification.
	fu, ok := hub.Properties.StorageEndpoints["$default"]
	if !ok || fu.AuthenticationType != "identityBased" || !strings.EqualFold(userOf(fu.Identity), wantUser) {
		t.Errorf("hub %s: file upload settings %+v; want identityBased with identity %q", hub.Name, fu, wantUser)
	}
	code, hubKeys := op.do("POST", hub.ID+"/listkeys?api-version=2023-06-30", "")
	h := testHub{Name: hub.Name, ID: hub.ID, HostName: hub.Properties.HostName}
	if policies, _ := hubKeys["value"].([]any); code == 200 {
		for _, p := range policies {
			if m := p.(map[string]any); m["keyName"] == "iothubowner" {
				h.OwnerKey, _ = m["primaryKey"].(string)
			}
		}
	}
	if h.OwnerKey == "" {
		t.Fatalf("hub %s: listkeys %d %v", hub.Name, code, hubKeys)
	}
	n := fileNotification(t, s, h)
	if n["deviceId"] != "thermostat" || n["blobName"] != "thermostat/snapshot.txt" || n["blobSizeInBytes"] != float64(len("frame 1\n")) {
		t.Errorf("hub %s: file notification %v", hub.Name, n)
	}
	resp, err := blobs.DownloadStream(context.Background(), fu.ContainerName, "thermostat/snapshot.txt", nil)
	if err != nil {
		t.Fatalf("hub %s: uploaded blob: %v", hub.Name, err)
	}
	var uploaded bytes.Buffer
	_, _ = uploaded.ReadFrom(resp.Body)
	resp.Body.Close()
	if uploaded.String() != "frame 1\n" {
		t.Errorf("hub %s: uploaded blob holds %q", hub.Name, uploaded.String())
	}

	// Jobs: one export and one import, completed, with the identity.
	code, rawJobs := hubCall(t, s, h, "GET", "/jobs", nil)
	var jobs []walkthroughJob
	if code != 200 || json.Unmarshal(rawJobs, &jobs) != nil {
		t.Fatalf("hub %s: jobs: %d %s", hub.Name, code, rawJobs)
	}
	done := map[string]walkthroughJob{}
	for _, j := range jobs {
		if j.Status != "completed" || j.StorageAuthenticationType != "identityBased" || !strings.EqualFold(userOf(j.Identity), wantUser) {
			t.Errorf("hub %s: job %+v; want completed, identityBased, identity %q", hub.Name, j, wantUser)
		}
		done[j.Type] = j
	}
	if len(jobs) != 2 || done["export"].JobID == "" || done["import"].JobID == "" {
		t.Fatalf("hub %s: jobs %+v; want one export and one import", hub.Name, jobs)
	}
	exp := done["export"]
	exportContainer := exp.OutputBlobContainerURI[strings.LastIndex(exp.OutputBlobContainerURI, "/")+1:]
	resp, err = blobs.DownloadStream(context.Background(), exportContainer, exp.OutputBlobName, nil)
	if err != nil {
		t.Fatalf("hub %s: export blob %s/%s: %v", hub.Name, exportContainer, exp.OutputBlobName, err)
	}
	var exported bytes.Buffer
	_, _ = exported.ReadFrom(resp.Body)
	resp.Body.Close()
	if devices := readExport(t, exported.Bytes()); devices["thermostat"].Primary == "" {
		t.Errorf("hub %s: export %s holds %v; want thermostat with its keys", hub.Name, exp.OutputBlobName, devices)
	}
	for _, id := range []string{"imported-1", "imported-2"} {
		if code, raw := hubCall(t, s, h, "GET", "/devices/"+id, nil); code != 200 {
			t.Errorf("hub %s: imported device %s: %d %s", hub.Name, id, code, raw)
		}
	}
}
