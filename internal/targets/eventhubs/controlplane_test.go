package eventhubs_test

import (
	"context"
	"strings"
	"testing"

	"github.com/outpost-iot/outpost/internal/targets/eventhubs"
	"github.com/outpost-iot/outpost/internal/targets/eventhubs/ehresource"
)

func TestNamespaceDefaultsAndRules(t *testing.T) {
	f := newFixture(t)
	ns := f.call(t, "PUT", f.nsID("Ctl-Space")+v, `{"location":"West US","identity":{"type":"SystemAssigned"}}`, 201)
	props := ns["properties"]
	for k, want := range map[string]any{
		"provisioningState": "Succeeded", "status": "Active", "disableLocalAuth": false, "publicNetworkAccess": "Enabled",
		"minimumTlsVersion": "1.2", "serviceBusEndpoint": "https://ctl-space.servicebus." + suffix + ":443/", "kafkaEnabled": true,
	} {
		if got := at(props, k); got != want {
			t.Errorf("properties.%s = %v, want %v", k, got, want)
		}
	}
	if at(ns, "sku", "name") != "Standard" || at(ns, "sku", "tier") != "Standard" || at(ns, "sku", "capacity") != float64(1) {
		t.Errorf("sku = %v", ns["sku"])
	}
	if at(ns, "identity", "type") != "SystemAssigned" || at(ns, "identity", "principalId") == "" || at(ns, "identity", "principalId") == nil {
		t.Errorf("identity = %v", ns["identity"])
	}
	if at(props, "createdAt") == nil || at(props, "metricId") == nil || ns["location"] != "westus" {
		t.Errorf("namespace = %v", ns)
	}

	// The root rule exists from creation; GET hides its keys, listKeys has them.
	root := f.call(t, "GET", f.nsID("Ctl-Space")+"/authorizationRules/RootManageSharedAccessKey"+v, "", 200)
	if _, leaked := root["keys"]; leaked || strings.Join(toStrings(at(root, "properties", "rights")), ",") != "Listen,Manage,Send" {
		t.Errorf("root rule = %v", root)
	}
	keys := f.call(t, "POST", f.nsID("Ctl-Space")+"/authorizationRules/RootManageSharedAccessKey/listKeys"+v, "", 200)
	cs, _ := keys["primaryConnectionString"].(string)
	if cs != "Endpoint=sb://ctl-space.servicebus."+suffix+"/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey="+keys["primaryKey"].(string) || keys["keyName"] != "RootManageSharedAccessKey" {
		t.Errorf("listKeys = %v", keys)
	}
	regen := f.call(t, "POST", f.nsID("Ctl-Space")+"/authorizationRules/RootManageSharedAccessKey/regenerateKeys"+v, `{"keyType":"PrimaryKey"}`, 200)
	if regen["primaryKey"] == keys["primaryKey"] || regen["secondaryKey"] != keys["secondaryKey"] {
		t.Errorf("regenerateKeys = %v (was %v)", regen, keys)
	}
	// A PUT of the namespace keeps the rule and its keys.
	f.call(t, "PUT", f.nsID("Ctl-Space")+v, `{"location":"westus","tags":{"a":"b"}}`, 200)
	again := f.call(t, "POST", f.nsID("Ctl-Space")+"/authorizationRules/RootManageSharedAccessKey/listKeys"+v, "", 200)
	if again["primaryKey"] != regen["primaryKey"] {
		t.Error("a namespace PUT changed the root rule's keys")
	}
	list := f.call(t, "GET", f.nsID("Ctl-Space")+"/authorizationRules"+v, "", 200)
	if vals, _ := list["value"].([]any); len(vals) != 1 {
		t.Errorf("rules = %v", list)
	}

	f.call(t, "PUT", f.nsID("Ctl-Space")+"/authorizationRules/bad"+v, `{"properties":{"rights":["Manage"]}}`, 400)
	f.call(t, "PUT", f.nsID("Ctl-Space")+"/authorizationRules/bad"+v, `{"properties":{"rights":["Write"]}}`, 400)

	// The network rule set is readable before anyone writes it.
	nrs := f.call(t, "GET", f.nsID("Ctl-Space")+"/networkRuleSets/default"+v, "", 200)
	if at(nrs, "properties", "defaultAction") != "Allow" || at(nrs, "properties", "publicNetworkAccess") != "Enabled" {
		t.Errorf("default network rule set = %v", nrs)
	}
	f.call(t, "PUT", f.nsID("Ctl-Space")+"/networkRuleSets/default"+v, `{"properties":{"defaultAction":"Deny","ipRules":[{"ipMask":"not-an-ip"}]}}`, 400)
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestNamespaceNames(t *testing.T) {
	taken := map[string]bool{"sb-owned-ns": true}
	f := newFixture(t, func(_ *eventhubs.Config, p *ehresource.Config) {
		p.NameTaken = func(_ context.Context, name string) (bool, error) { return taken[strings.ToLower(name)], nil }
	})
	for _, bad := range []string{"short", "1starts-with-digit", "ends-with-", "name-sb", "name-mgmt", "has_underscore"} {
		f.call(t, "PUT", f.nsID(bad)+v, `{"location":"westus"}`, 400)
	}
	f.call(t, "PUT", f.nsID("sb-owned-ns")+v, `{"location":"westus"}`, 409)
	f.call(t, "PUT", f.nsID("unique-ns")+v, `{"location":"westus"}`, 201)
	f.call(t, "PUT", "/subscriptions/"+f.sub+"/resourcegroups/rg2?api-version=2021-04-01", `{"location":"westus"}`, 201)
	f.call(t, "PUT", "/subscriptions/"+f.sub+"/resourceGroups/rg2/providers/Microsoft.EventHub/namespaces/UNIQUE-NS"+v, `{"location":"westus"}`, 409)

	check := func(name string) map[string]any {
		return f.call(t, "POST", "/subscriptions/"+f.sub+"/providers/Microsoft.EventHub/checkNameAvailability"+v, `{"name":"`+name+`"}`, 200)
	}
	if r := check("unique-ns"); r["nameAvailable"] != false || r["reason"] != "NameInUse" {
		t.Errorf("check taken = %v", r)
	}
	if r := check("sb-owned-ns"); r["nameAvailable"] != false {
		t.Errorf("check other provider = %v", r)
	}
	if r := check("free-name-1"); r["nameAvailable"] != true {
		t.Errorf("check free = %v", r)
	}
	if r := check("x"); r["reason"] != "InvalidName" {
		t.Errorf("check invalid = %v", r)
	}
}

func TestEventHubsAndConsumerGroups(t *testing.T) {
	f := newFixture(t)
	f.call(t, "PUT", f.nsID("eh-space")+v, `{"location":"westus"}`, 201)
	eh := f.call(t, "PUT", f.nsID("eh-space")+"/eventhubs/hub.one"+v, `{}`, 200)
	if at(eh, "properties", "partitionCount") != float64(4) || at(eh, "properties", "messageRetentionInDays") != float64(1) ||
		len(at(eh, "properties", "partitionIds").([]any)) != 4 || at(eh, "properties", "status") != "Active" ||
		at(eh, "properties", "retentionDescription", "retentionTimeInHours") != float64(24) {
		t.Errorf("event hub = %v", eh)
	}
	// Partitions are fixed outside Premium; retention follows the tier.
	f.call(t, "PUT", f.nsID("eh-space")+"/eventhubs/hub.one"+v, `{"properties":{"partitionCount":8}}`, 400)
	f.call(t, "PUT", f.nsID("eh-space")+"/eventhubs/hub.one"+v, `{"properties":{"messageRetentionInDays":7}}`, 200)
	f.call(t, "PUT", f.nsID("eh-space")+"/eventhubs/toolong"+v, `{"properties":{"messageRetentionInDays":8}}`, 400)
	f.call(t, "PUT", f.nsID("eh-space")+"/eventhubs/toomany"+v, `{"properties":{"partitionCount":33}}`, 400)
	f.call(t, "PUT", f.nsID("eh-space")+"/eventhubs/-bad"+v, `{}`, 400)

	def := f.call(t, "GET", f.nsID("eh-space")+"/eventhubs/hub.one/consumergroups/$Default"+v, "", 200)
	if def["name"] != "$Default" {
		t.Errorf("$Default = %v", def)
	}
	f.call(t, "PUT", f.nsID("eh-space")+"/eventhubs/hub.one/consumergroups/readers"+v, `{"properties":{"userMetadata":"cli"}}`, 200)
	groups := f.call(t, "GET", f.nsID("eh-space")+"/eventhubs/hub.one/consumergroups"+v, "", 200)
	if vals, _ := groups["value"].([]any); len(vals) != 2 {
		t.Errorf("consumer groups = %v", groups)
	}
	f.call(t, "PUT", f.nsID("eh-space")+"/eventhubs/hub.one/consumergroups/$Default"+v, `{}`, 400)

	// Basic has only $Default.
	f.call(t, "PUT", f.nsID("basic-space")+v, `{"location":"westus","sku":{"name":"basic"}}`, 201)
	f.call(t, "PUT", f.nsID("basic-space")+"/eventhubs/h"+v, `{}`, 200)
	f.call(t, "PUT", f.nsID("basic-space")+"/eventhubs/h/consumergroups/extra"+v, `{}`, 400)

	// The data plane reads a consumer group that was just created.
	if _, err := f.handler.Read(context.Background(), "eh-space", "HUB.ONE", "readers", "0", 0, 10); err != nil {
		t.Errorf("read with a new consumer group: %v", err)
	}
	// Deleting the event hub removes it (and its streams) from the data plane.
	f.call(t, "DELETE", f.nsID("eh-space")+"/eventhubs/hub.one"+v, "", 200)
	if _, err := f.handler.Read(context.Background(), "eh-space", "hub.one", "$Default", "0", 0, 10); err == nil {
		t.Error("read from a deleted event hub succeeded")
	}
}
