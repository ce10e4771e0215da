package e2e

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestCLITargets drives `outpost storage`, `outpost eventhubs` and
// `outpost servicebus` against a real server: accounts, keys, containers
// and blobs (with the account key az would look up, and with a token once
// the operator holds a data role), namespaces and their entities; and the
// errors az gives for each kind of mistake.
func TestCLITargets(t *testing.T) {
	bin := testserver.BuildBinary(t)
	forEachTier(t, func(t *testing.T, s *testserver.Server) {
		const group = "rg-cli-targets"
		ensureGroup(t, s, group)
		acctName := uniqueName("cli", 24)

		// Storage accounts.
		var acct map[string]any
		execOutpostOK(t, bin, s, &acct, "storage", "account", "create", "-n", acctName, "-g", group, "--sku", "Standard_LRS", "--tags", "env=test")
		if acct["name"] != acctName || acct["kind"] != "StorageV2" || digJSONPath(acct, "sku", "name") != "Standard_LRS" ||
			digJSONPath(acct, "location") != "westus" || digJSONPath(acct, "tags", "env") != "test" {
			t.Fatalf("account create: %v", acct)
		}
		var shown map[string]any
		execOutpostOK(t, bin, s, &shown, "storage", "account", "show", "-n", acctName)
		if shown["id"] != acct["id"] {
			t.Errorf("account show (no group) = %v, want id %v", shown["id"], acct["id"])
		}
		var accounts []map[string]any
		execOutpostOK(t, bin, s, &accounts, "storage", "account", "list", "-g", group)
		if len(accounts) != 1 || accounts[0]["name"] != acctName {
			t.Errorf("account list: %v", accounts)
		}
		var keys []map[string]any
		execOutpostOK(t, bin, s, &keys, "storage", "account", "keys", "list", "-n", acctName, "-g", group)
		if len(keys) != 2 || keys[0]["keyName"] != "key1" || keys[0]["value"] == "" {
			t.Errorf("keys list: %v", keys)
		}

		// Containers and blobs, signed with the account key looked up
		// through the resource manager (az's default "key" auth mode).
		var created map[string]bool
		execOutpostOK(t, bin, s, &created, "storage", "container", "create", "-n", "docs", "--account-name", acctName)
		if !created["created"] {
			t.Errorf("container create: %v", created)
		}
		execOutpostOK(t, bin, s, &created, "storage", "container", "create", "-n", "docs", "--account-name", acctName)
		if created["created"] {
			t.Errorf("container create of an existing one: %v, want created false", created)
		}
		execOutpostFails(t, bin, s, 1, "(ContainerAlreadyExists)", "storage", "container", "create", "-n", "docs", "--account-name", acctName, "--fail-on-exist")
		var containers []map[string]any
		execOutpostOK(t, bin, s, &containers, "storage", "container", "list", "--account-name", acctName)
		if len(containers) != 1 || containers[0]["name"] != "docs" || digJSONPath(containers[0], "properties", "lease", "state") != "available" {
			t.Errorf("container list: %v", containers)
		}

		dir := t.TempDir()
		src := filepath.Join(dir, "notes.txt")
		if err := os.WriteFile(src, []byte("first line\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var up map[string]any
		execOutpostOK(t, bin, s, &up, "storage", "blob", "upload", "-f", src, "-c", "docs", "--account-name", acctName, "--content-type", "text/plain")
		if up["etag"] == nil || up["lastModified"] == nil {
			t.Errorf("blob upload: %v", up)
		}
		execOutpostFails(t, bin, s, 1, "--overwrite", "storage", "blob", "upload", "-f", src, "-c", "docs", "--account-name", acctName)
		execOutpostOK(t, bin, s, nil, "storage", "blob", "upload", "--data", "second", "-n", "notes.txt", "-c", "docs", "--account-name", acctName, "--overwrite")
		var blobs []map[string]any
		execOutpostOK(t, bin, s, &blobs, "storage", "blob", "list", "-c", "docs", "--account-name", acctName)
		if len(blobs) != 1 || blobs[0]["name"] != "notes.txt" || digJSONPath(blobs[0], "properties", "contentLength") != float64(len("second")) ||
			digJSONPath(blobs[0], "properties", "blobType") != "BlockBlob" {
			t.Errorf("blob list: %v", blobs)
		}
		table := execOutpostOK(t, bin, s, nil, "storage", "blob", "list", "-c", "docs", "--account-name", acctName, "-o", "table")
		if lines := strings.Split(strings.TrimSpace(table), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "Name") ||
			!strings.Contains(lines[0], "Blob Type") || !strings.Contains(lines[0], "Content Type") || !strings.HasPrefix(lines[2], "notes.txt") {
			t.Errorf("blob list -o table:\n%s", table)
		}
		if got := execOutpostOK(t, bin, s, nil, "storage", "blob", "download", "-c", "docs", "-n", "notes.txt", "--account-name", acctName); got != "second" {
			t.Errorf("blob download to stdout: %q", got)
		}
		dst := filepath.Join(dir, "copy.txt")
		var downloaded map[string]any
		execOutpostOK(t, bin, s, &downloaded, "storage", "blob", "download", "-c", "docs", "-n", "notes.txt", "-f", dst, "--account-name", acctName)
		if b, err := os.ReadFile(dst); err != nil || string(b) != "second" || downloaded["name"] != "notes.txt" {
			t.Errorf("blob download --file: %q, %v; printed %v", b, err, downloaded)
		}
		execOutpostFails(t, bin, s, 3, "(BlobNotFound)", "storage", "blob", "download", "-c", "docs", "-n", "missing", "--account-name", acctName)

		// A token instead of the key: refused until the operator holds a
		// data role on the account, as storage refuses it.
		execOutpostFails(t, bin, s, 1, "(AuthorizationPermissionMismatch)", "storage", "blob", "list", "-c", "docs", "--account-name", acctName, "--auth-mode", "login")
		assignRole(t, s, s.App.Operator().ObjectID, storageBlobDataContributor, acct["id"].(string))
		execOutpostOK(t, bin, s, &blobs, "storage", "blob", "list", "-c", "docs", "--account-name", acctName, "--auth-mode", "login")
		if len(blobs) != 1 || blobs[0]["name"] != "notes.txt" {
			t.Errorf("blob list --auth-mode login: %v", blobs)
		}

		var deleted map[string]bool
		execOutpostOK(t, bin, s, &deleted, "storage", "container", "delete", "-n", "docs", "--account-name", acctName)
		if !deleted["deleted"] {
			t.Errorf("container delete: %v", deleted)
		}
		execOutpostFails(t, bin, s, 2, "--container-name/-c", "storage", "blob", "list", "--account-name", acctName)
		execOutpostFails(t, bin, s, 2, "--name/-n, --resource-group/-g", "storage", "account", "create")
		execOutpostFails(t, bin, s, 2, "--yes", "storage", "account", "delete", "-n", acctName)
		execOutpostOK(t, bin, s, nil, "storage", "account", "delete", "-n", acctName, "-g", group, "--yes")
		execOutpostFails(t, bin, s, 3, "was not found", "storage", "account", "show", "-n", acctName)

		// Event Hubs.
		ehNS := uniqueName("cli-eh-", 20)
		var ns map[string]any
		execOutpostOK(t, bin, s, &ns, "eventhubs", "namespace", "create", "-n", ehNS, "-g", group, "--sku", "Standard")
		if ns["name"] != ehNS || digJSONPath(ns, "sku", "name") != "Standard" || ns["provisioningState"] != "Succeeded" {
			t.Errorf("eventhubs namespace create: %v", ns)
		}
		var eh map[string]any
		execOutpostOK(t, bin, s, &eh, "eventhubs", "eventhub", "create", "-n", "telemetry", "--namespace-name", ehNS, "-g", group, "--partition-count", "2", "--message-retention", "1")
		if eh["name"] != "telemetry" || eh["partitionCount"] != float64(2) {
			t.Errorf("eventhub create: %v", eh)
		}
		var hubs []map[string]any
		execOutpostOK(t, bin, s, &hubs, "eventhubs", "eventhub", "list", "--namespace-name", ehNS, "-g", group)
		if len(hubs) != 1 || hubs[0]["name"] != "telemetry" {
			t.Errorf("eventhub list: %v", hubs)
		}
		execOutpostOK(t, bin, s, &eh, "eventhubs", "eventhub", "show", "-n", "telemetry", "--namespace-name", ehNS, "-g", group)
		var namespaces []map[string]any
		execOutpostOK(t, bin, s, &namespaces, "eventhubs", "namespace", "list", "-g", group)
		if len(namespaces) != 1 || namespaces[0]["name"] != ehNS {
			t.Errorf("eventhubs namespace list: %v", namespaces)
		}
		// The older `eventhubs read` still reads the (empty) event hub.
		if out := execOutpostOK(t, bin, s, nil, "eventhubs", "read", "--namespace", ehNS, "-n", "telemetry"); out != "" {
			t.Errorf("eventhubs read of an empty hub printed %q", out)
		}
		execOutpostFails(t, bin, s, 2, "--sku", "eventhubs", "namespace", "create", "-n", "x", "-g", group, "--sku", "Gold")
		execOutpostOK(t, bin, s, nil, "eventhubs", "eventhub", "delete", "-n", "telemetry", "--namespace-name", ehNS, "-g", group)
		execOutpostFails(t, bin, s, 3, "NotFound", "eventhubs", "eventhub", "show", "-n", "telemetry", "--namespace-name", ehNS, "-g", group)
		execOutpostOK(t, bin, s, nil, "eventhubs", "namespace", "delete", "-n", ehNS, "-g", group)

		// Service Bus.
		sbNS := uniqueName("cli-sb-", 20)
		execOutpostOK(t, bin, s, &ns, "servicebus", "namespace", "create", "-n", sbNS, "-g", group)
		if ns["name"] != sbNS || digJSONPath(ns, "sku", "name") != "Standard" {
			t.Errorf("servicebus namespace create: %v", ns)
		}
		var q map[string]any
		execOutpostOK(t, bin, s, &q, "servicebus", "queue", "create", "-n", "orders", "--namespace-name", sbNS, "-g", group, "--max-delivery-count", "5", "--lock-duration", "PT30S")
		if q["name"] != "orders" || q["maxDeliveryCount"] != float64(5) || q["lockDuration"] != "0:00:30" {
			t.Errorf("queue create: %v", q)
		}
		var topic map[string]any
		execOutpostOK(t, bin, s, &topic, "servicebus", "topic", "create", "-n", "events", "--namespace-name", sbNS, "-g", group)
		if topic["name"] != "events" {
			t.Errorf("topic create: %v", topic)
		}
		var queues, topics []map[string]any
		execOutpostOK(t, bin, s, &queues, "servicebus", "queue", "list", "--namespace-name", sbNS, "-g", group)
		execOutpostOK(t, bin, s, &topics, "servicebus", "topic", "list", "--namespace-name", sbNS, "-g", group)
		if len(queues) != 1 || queues[0]["name"] != "orders" || len(topics) != 1 || topics[0]["name"] != "events" {
			t.Errorf("queue list %v, topic list %v", queues, topics)
		}
		execOutpostFails(t, bin, s, 2, "--max-delivery-count", "servicebus", "queue", "create", "-n", "q2", "--namespace-name", sbNS, "-g", group, "--max-delivery-count", "many")
		execOutpostOK(t, bin, s, nil, "servicebus", "queue", "delete", "-n", "orders", "--namespace-name", sbNS, "-g", group)
		execOutpostOK(t, bin, s, nil, "servicebus", "topic", "delete", "-n", "events", "--namespace-name", sbNS, "-g", group)
		execOutpostOK(t, bin, s, &queues, "servicebus", "queue", "list", "--namespace-name", sbNS, "-g", group)
		if len(queues) != 0 {
			t.Errorf("queues after delete: %v", queues)
		}
		execOutpostOK(t, bin, s, nil, "servicebus", "namespace", "delete", "-n", sbNS, "-g", group)
		execOutpostFails(t, bin, s, 3, "NotFound", "servicebus", "namespace", "show", "-n", sbNS, "-g", group)
	})
}

// TestCLITargetsTablesMatchAz: on the same resources, `outpost … -o table`
// prints exactly what Debian's az prints.
func TestCLITargetsTablesMatchAz(t *testing.T) {
	t.Parallel() // az and the CLI spend most of their time starting up: overlap them
	bin := testserver.BuildBinary(t)
	s := testserver.Start(t)
	env := s.Env()
	az := newAzCLI(t, s, env["AZURE_CLIENT_SECRET"])
	azRegisterCloud(az, s)
	az.ok("login", "--service-principal", "-u", env["AZURE_CLIENT_ID"], "-p", env["AZURE_CLIENT_SECRET"], "--tenant", env["AZURE_TENANT_ID"])
	const group = "rg-cli-tables"
	ensureGroup(t, s, group)
	names := []string{uniqueName("tba", 24), uniqueName("tbb", 24)}
	for _, name := range names {
		execOutpostOK(t, bin, s, nil, "storage", "account", "create", "-n", name, "-g", group, "--sku", "Standard_LRS")
	}
	// Blobs through az's data-plane transformers (az resolves the blob
	// host through /etc/hosts and signs with the key it looks up).
	s.Require443(t)
	testserver.MapHosts(t, s.IP, names[0]+".blob."+s.Config.DNSSuffix)
	execOutpostOK(t, bin, s, nil, "storage", "container", "create", "-n", "tables", "--account-name", names[0])
	execOutpostOK(t, bin, s, nil, "storage", "blob", "upload", "--data", "hello", "-n", "a/b.txt", "-c", "tables", "--account-name", names[0], "--content-type", "text/plain")
	ns := uniqueName("tbl-", 20)
	execOutpostOK(t, bin, s, nil, "eventhubs", "namespace", "create", "-n", ns, "-g", group)
	execOutpostOK(t, bin, s, nil, "eventhubs", "eventhub", "create", "-n", "hub1", "--namespace-name", ns, "-g", group, "--partition-count", "2")
	sbNS := uniqueName("tbl-sb-", 20)
	execOutpostOK(t, bin, s, nil, "servicebus", "namespace", "create", "-n", sbNS, "-g", group)
	execOutpostOK(t, bin, s, nil, "servicebus", "queue", "create", "-n", "q1", "--namespace-name", sbNS, "-g", group, "--lock-duration", "PT45S")
	for _, args := range [][]string{
		{"storage", "account", "list", "-g", group, "-o", "table"},
		{"servicebus", "queue", "list", "--namespace-name", sbNS, "-g", group, "-o", "table"},
		{"storage", "container", "list", "--account-name", names[0], "-o", "table"},
		{"storage", "blob", "list", "-c", "tables", "--account-name", names[0], "-o", "table"},
		{"storage", "blob", "list", "-c", "tables", "--account-name", names[0], "--query", "[].{name:name, length:properties.contentLength, type:properties.contentSettings.contentType}", "-o", "tsv"},
		{"servicebus", "queue", "list", "--namespace-name", sbNS, "-g", group, "--query", "[].lockDuration", "-o", "tsv"},
		{"storage", "account", "list", "-g", group, "--query", "[].{name:name, sku:sku.name, kind:kind}", "-o", "table"},
		{"eventhubs", "namespace", "list", "-g", group, "-o", "table"},
		{"eventhubs", "eventhub", "list", "--namespace-name", ns, "-g", group, "-o", "table"},
		{"storage", "account", "show-connection-string", "-n", names[0], "-g", group},
		{"storage", "account", "show-connection-string", "-n", names[0], "--key", "key2", "--protocol", "http"},
	} {
		want := az.ok(args...).Stdout
		if got := execOutpostOK(t, bin, s, nil, args...); got != want {
			t.Errorf("outpost %s:\n%s\naz printed:\n%s", strings.Join(args, " "), got, want)
		}
	}
	// The JSON of one account: the same document (az's SDK model view).
	var fromAz, fromOutpost map[string]any
	az.decode(&fromAz, "storage", "account", "show", "-n", names[0], "-g", group)
	execOutpostOK(t, bin, s, &fromOutpost, "storage", "account", "show", "-n", names[0], "-g", group)
	if a, o := sortedKeys(fromAz), sortedKeys(fromOutpost); !slices.Equal(a, o) {
		t.Errorf("storage account show members:\noutpost %v\naz      %v", o, a)
	}
	for _, k := range sortedKeys(fromAz) {
		if !reflect.DeepEqual(fromAz[k], fromOutpost[k]) {
			t.Errorf("storage account show %s: outpost %v, az %v", k, fromOutpost[k], fromAz[k])
		}
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// digJSONPath follows object keys through decoded JSON.
func digJSONPath(v any, keys ...string) any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}
