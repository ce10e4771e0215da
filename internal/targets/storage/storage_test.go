package storage_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/arm/armtest"
	"github.com/outpost-iot/outpost/internal/targets/storage"
)

type fixture struct {
	arm  *armtest.Server
	sub  string
	dirs *storage.Directory
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s := armtest.New(t)
	st := s.Store
	f := &fixture{arm: s, sub: s.SubscriptionID(), dirs: storage.NewDirectory(st.Resources())}
	accounts := storage.NewAccounts(storage.Config{DNSSuffix: "outpost.test", Identities: s.Identities, Resources: st.Resources(), Directory: f.dirs})
	s.Serve(t, []arm.ResourceType{accounts, storage.NewBlobServices(st.Resources()), storage.NewContainerType(st.Resources(), nil, nil)},
		accounts.ProviderActions()...)
	s.Group(t, "rg2")
	return f
}

const v = "?api-version=2023-05-01"

func (f *fixture) id(group, name string) string {
	return f.arm.GroupID(group) + "/providers/Microsoft.Storage/storageAccounts/" + name
}

func (f *fixture) call(t *testing.T, method, path, body string, want int) map[string]any {
	t.Helper()
	return f.arm.Call(t, method, path, body, want)
}

func at(v any, path ...string) any {
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	return v
}

func TestAccountDefaultsKeysAndNames(t *testing.T) {
	f := newFixture(t)
	acct := f.call(t, "PUT", f.id("rg", "acct1")+v, `{"location":"West US","identity":{"type":"SystemAssigned"}}`, 200)
	for path, want := range map[string]any{
		"kind": "StorageV2", "location": "westus",
		"sku/name": "Standard_LRS", "sku/tier": "Standard",
		"properties/provisioningState": "Succeeded", "properties/statusOfPrimary": "available",
		"properties/primaryEndpoints/blob": "https://acct1.blob.outpost.test/",
		"properties/publicNetworkAccess":   "Enabled", "properties/networkAcls/bypass": "AzureServices",
		"properties/networkAcls/defaultAction": "Allow", "properties/supportsHttpsTrafficOnly": true,
		"properties/accessTier": "Hot", "properties/minimumTlsVersion": "TLS1_2", "identity/type": "SystemAssigned",
	} {
		if got := at(acct, strings.Split(path, "/")...); got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	if at(acct, "identity", "principalId") == nil || at(acct, "properties", "allowSharedKeyAccess") != nil {
		t.Errorf("identity or allowSharedKeyAccess wrong: %v", acct)
	}
	got := f.call(t, "GET", f.id("rg", "acct1")+v, "", 200)
	if strings.Contains(toJSON(got), "outpostSecrets") || strings.Contains(toJSON(acct), "outpostSecrets") {
		t.Fatal("keys leak through GET/PUT")
	}
	keys := f.call(t, "POST", f.id("rg", "acct1")+"/listKeys"+v, "", 200)["keys"].([]any)
	k1 := keys[0].(map[string]any)
	if b, err := base64.StdEncoding.DecodeString(k1["value"].(string)); err != nil || len(b) != 64 || k1["keyName"] != "key1" || k1["permissions"] != "FULL" {
		t.Fatalf("listKeys = %v", keys)
	}
	// Keys survive a PUT; regenerateKey changes only the named one.
	f.call(t, "PUT", f.id("rg", "acct1")+v, `{"location":"westus","properties":{"allowSharedKeyAccess":false}}`, 200)
	again := f.call(t, "POST", f.id("rg", "acct1")+"/listKeys"+v, "", 200)["keys"].([]any)
	if again[0].(map[string]any)["value"] != k1["value"] {
		t.Fatal("a PUT changed the keys")
	}
	regen := f.call(t, "POST", f.id("rg", "acct1")+"/regenerateKey"+v, `{"keyName":"key1"}`, 200)["keys"].([]any)
	if regen[0].(map[string]any)["value"] == k1["value"] || regen[1].(map[string]any)["value"] != again[1].(map[string]any)["value"] {
		t.Fatal("regenerateKey did not change exactly key1")
	}
	a, ok, err := f.dirs.Get(context.Background(), "ACCT1")
	if err != nil || !ok || a.AllowSharedKeyAccess || a.Keys[0] != regen[0].(map[string]any)["value"] || !a.Network.TrustedServices {
		t.Fatalf("directory: %+v %v %v", a, ok, err)
	}

	f.call(t, "PUT", f.id("rg", "Bad_Name")+v, `{"location":"westus"}`, 400)
	e := f.call(t, "PUT", f.id("rg2", "acct1")+v, `{"location":"westus"}`, 409)
	if at(e, "error", "code") != "StorageAccountAlreadyTaken" {
		t.Fatalf("taken: %v", e)
	}
	check := func(name string) map[string]any {
		return f.call(t, "POST", "/subscriptions/"+f.sub+"/providers/Microsoft.Storage/checkNameAvailability"+v, `{"name":"`+name+`","type":"Microsoft.Storage/storageAccounts"}`, 200)
	}
	if r := check("acct1"); r["nameAvailable"] != false || r["reason"] != "AlreadyExists" {
		t.Errorf("check taken = %v", r)
	}
	if r := check("UPPER"); r["nameAvailable"] != false || r["reason"] != "AccountNameInvalid" {
		t.Errorf("check invalid = %v", r)
	}
	if r := check("freename"); r["nameAvailable"] != true {
		t.Errorf("check free = %v", r)
	}
	// The default blob service always exists; a PUT keeps its properties.
	bs := f.call(t, "GET", f.id("rg", "acct1")+"/blobServices/default"+v, "", 200)
	if at(bs, "properties", "deleteRetentionPolicy", "enabled") != false {
		t.Errorf("blob service = %v", bs)
	}
	f.call(t, "PUT", f.id("rg", "acct1")+"/blobServices/default"+v, `{"properties":{"deleteRetentionPolicy":{"enabled":true,"days":7}}}`, 200)
	bs = f.call(t, "GET", f.id("rg", "acct1")+"/blobServices/default"+v, "", 200)
	if at(bs, "properties", "deleteRetentionPolicy", "days") != 7.0 {
		t.Errorf("blob service after PUT = %v", bs)
	}
	// Containers: name rules and public access needs the account's consent.
	f.call(t, "PUT", f.id("rg", "acct1")+"/blobServices/default/containers/ok-name"+v, `{}`, 201)
	f.call(t, "PUT", f.id("rg", "acct1")+"/blobServices/default/containers/Bad--Name"+v, `{}`, 400)
	f.call(t, "PUT", f.id("rg", "acct1")+"/blobServices/default/containers/pub"+v, `{"properties":{"publicAccess":"Blob"}}`, 409)
	list := f.call(t, "GET", f.id("rg", "acct1")+"/blobServices/default/containers"+v, "", 200)
	if n := len(list["value"].([]any)); n != 1 {
		t.Errorf("containers listed: %d", n)
	}
	// Network rules are validated.
	f.call(t, "PUT", f.id("rg", "acct1")+v, `{"location":"westus","properties":{"networkAcls":{"defaultAction":"Deny","ipRules":[{"value":"nope"}]}}}`, 400)
}

func toJSON(v any) string { b, _ := json.Marshal(v); return string(b) }
