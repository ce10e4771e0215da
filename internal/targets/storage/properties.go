package storage

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
)

// NetworkACLs is properties.networkAcls.
type NetworkACLs struct {
	Bypass              string            `json:"bypass"`
	VirtualNetworkRules []json.RawMessage `json:"virtualNetworkRules"`
	IPRules             []IPRule          `json:"ipRules"`
	DefaultAction       string            `json:"defaultAction"`
	ResourceAccessRules []json.RawMessage `json:"resourceAccessRules,omitempty"`
}

// IPRule is one entry of networkAcls.ipRules.
type IPRule struct {
	Value  string `json:"value"`
	Action string `json:"action"`
}

// properties builds the stored properties: the client's settable members,
// validated and defaulted, unknown members passed through (clients send
// many flags Outpost has no behaviour for), and the read-only members the
// server owns.
func (a *Accounts) properties(body, current arm.Document, name, location, kind string, secrets stored, now time.Time) (map[string]any, error) {
	in := map[string]json.RawMessage{}
	if err := body.Decode("properties", &in); err != nil {
		return nil, arm.Errorf(http.StatusBadRequest, "InvalidRequestContent", "properties must be an object: %v", err)
	}
	var cur map[string]json.RawMessage
	if current != nil {
		_ = current.Decode("properties", &cur)
	}
	out := map[string]any{}
	for k, v := range in {
		out[k] = v
	}
	readOnly := []string{"provisioningState", "primaryEndpoints", "primaryLocation", "statusOfPrimary", "creationTime", "keyCreationTime", "secondaryLocation", "statusOfSecondary", "secondaryEndpoints", "privateEndpointConnections"}
	for _, k := range readOnly {
		delete(out, k)
	}

	if raw, ok := in["allowSharedKeyAccess"]; ok && string(raw) != "null" {
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, invalidValue("properties.allowSharedKeyAccess", string(raw), "true or false")
		}
		out["allowSharedKeyAccess"] = b
	} else {
		// Azure shows nothing (null) until it is set and treats that as true.
		delete(out, "allowSharedKeyAccess")
	}
	var err error
	if out["publicNetworkAccess"], err = enumProp(in, "publicNetworkAccess", "Enabled", "Enabled", "Disabled", "SecuredByPerimeter"); err != nil {
		return nil, err
	}
	if out["minimumTlsVersion"], err = enumProp(in, "minimumTlsVersion", "TLS1_2", "TLS1_0", "TLS1_1", "TLS1_2", "TLS1_3"); err != nil {
		return nil, err
	}
	tier := "Hot"
	if kind == "BlockBlobStorage" || kind == "FileStorage" {
		tier = "Premium"
	}
	if out["accessTier"], err = enumProp(in, "accessTier", tier, "Hot", "Cool", "Cold", "Premium"); err != nil {
		return nil, err
	}
	for _, b := range []struct {
		key string
		def bool
	}{{"supportsHttpsTrafficOnly", true}, {"allowBlobPublicAccess", false}, {"isHnsEnabled", false}} {
		v := b.def
		if raw, ok := in[b.key]; ok && string(raw) != "null" {
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, invalidValue("properties."+b.key, string(raw), "true or false")
			}
		}
		out[b.key] = v
	}
	acls, err := prepareACLs(in["networkAcls"])
	if err != nil {
		return nil, err
	}
	out["networkAcls"] = acls

	created := now.Format(time.RFC3339Nano)
	if raw, ok := cur["creationTime"]; ok {
		var s string
		if json.Unmarshal(raw, &s) == nil && s != "" {
			created = s
		}
	}
	if _, ok := in["encryption"]; !ok {
		enc := map[string]any{"enabled": true, "keyType": "Account", "lastEnabledTime": created}
		out["encryption"] = map[string]any{
			"services":  map[string]any{"blob": enc, "file": enc},
			"keySource": "Microsoft.Storage",
		}
	}
	kct := map[string]string{}
	for _, k := range secrets.Keys {
		kct[k.KeyName] = k.CreationTime
	}
	out["keyCreationTime"] = kct
	out["privateEndpointConnections"] = []any{}
	out["creationTime"] = created
	out["primaryLocation"] = location
	out["statusOfPrimary"] = "available"
	out["provisioningState"] = "Succeeded"
	out["primaryEndpoints"] = a.endpoints(name)
	return out, nil
}

// endpoints lists the account's service endpoints as Azure shows them.
// Only blob is served.
func (a *Accounts) endpoints(name string) map[string]string {
	port := ""
	if a.cfg.Port != "" && a.cfg.Port != "443" {
		port = ":" + a.cfg.Port
	}
	ep := func(service string) string {
		return "https://" + name + "." + service + "." + a.cfg.DNSSuffix + port + "/"
	}
	return map[string]string{
		"blob": ep("blob"), "dfs": ep("dfs"), "queue": ep("queue"), "table": ep("table"),
		"file": ep("file"), "web": ep("web"),
	}
}

func enumProp(in map[string]json.RawMessage, key, def string, allowed ...string) (string, error) {
	raw, ok := in[key]
	if !ok || string(raw) == "null" {
		return def, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", invalidValue("properties."+key, string(raw), strings.Join(allowed, ", "))
	}
	for _, a := range allowed {
		if strings.EqualFold(a, s) {
			return a, nil
		}
	}
	return "", invalidValue("properties."+key, s, strings.Join(allowed, ", "))
}

func invalidValue(prop, got, want string) *arm.Error {
	return arm.Errorf(http.StatusBadRequest, "InvalidValuesForRequestParameters",
		"Values for request parameters are invalid: %s '%s'. Use %s.", prop, got, want)
}

func prepareACLs(raw json.RawMessage) (NetworkACLs, error) {
	acls := NetworkACLs{Bypass: "AzureServices", DefaultAction: "Allow"}
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &acls); err != nil {
			return NetworkACLs{}, arm.Errorf(http.StatusBadRequest, "NetworkAclsValidationFailure",
				"properties.networkAcls is malformed: %v. Send {\"defaultAction\": \"Deny\", \"bypass\": \"AzureServices\", \"ipRules\": [{\"value\": \"203.0.113.0/24\", \"action\": \"Allow\"}]}.", err)
		}
	}
	switch {
	case acls.DefaultAction == "", strings.EqualFold(acls.DefaultAction, "Allow"):
		acls.DefaultAction = "Allow"
	case strings.EqualFold(acls.DefaultAction, "Deny"):
		acls.DefaultAction = "Deny"
	default:
		return NetworkACLs{}, arm.Errorf(http.StatusBadRequest, "NetworkAclsValidationFailure",
			"networkAcls.defaultAction '%s' is invalid: use Allow or Deny.", acls.DefaultAction)
	}
	if acls.Bypass == "" {
		acls.Bypass = "None"
	}
	if acls.VirtualNetworkRules == nil {
		acls.VirtualNetworkRules = []json.RawMessage{}
	}
	if acls.IPRules == nil {
		acls.IPRules = []IPRule{}
	}
	for i, r := range acls.IPRules {
		if !validIPRule(r.Value) {
			return NetworkACLs{}, arm.Errorf(http.StatusBadRequest, "NetworkAclsValidationFailure",
				"networkAcls.ipRules[%d].value '%s' is not an IPv4 address or CIDR range (e.g. 203.0.113.7 or 203.0.113.0/24).", i, r.Value)
		}
		if r.Action == "" || strings.EqualFold(r.Action, "Allow") {
			acls.IPRules[i].Action = "Allow"
		} else {
			return NetworkACLs{}, arm.Errorf(http.StatusBadRequest, "NetworkAclsValidationFailure",
				"networkAcls.ipRules[%d].action '%s' is invalid: the only action is Allow.", i, r.Action)
		}
	}
	return acls, nil
}

func validIPRule(v string) bool {
	if strings.Contains(v, "/") {
		_, err := netip.ParsePrefix(v)
		return err == nil
	}
	_, err := netip.ParseAddr(v)
	return err == nil
}

// trustedBypass reports whether a bypass list ("Logging, Metrics,
// AzureServices") contains AzureServices.
func trustedBypass(bypass string) bool {
	for _, b := range strings.Split(bypass, ",") {
		if strings.EqualFold(strings.TrimSpace(b), "AzureServices") {
			return true
		}
	}
	return false
}
