package hubresource

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
)

// Policy is a shared access policy of a hub (SharedAccessSignatureAuthorizationRule).
type Policy struct {
	KeyName      string `json:"keyName"`
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
	Rights       string `json:"rights"`
}

// rightsOrder is the canonical order of access rights in IoT Hub's enum
// ("RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect").
var rightsOrder = []string{"RegistryRead", "RegistryWrite", "ServiceConnect", "DeviceConnect"}

// defaultPolicies are the policies every new hub gets.
var defaultPolicies = []Policy{
	{KeyName: "iothubowner", Rights: "RegistryWrite, ServiceConnect, DeviceConnect"},
	{KeyName: "service", Rights: "ServiceConnect"},
	{KeyName: "device", Rights: "DeviceConnect"},
	{KeyName: "registryRead", Rights: "RegistryRead"},
	{KeyName: "registryReadWrite", Rights: "RegistryWrite"},
}

// maxPolicies is IoT Hub's limit of shared access policies per hub.
const maxPolicies = 16

var keyNamePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// canonicalRights parses "serviceconnect,RegistryRead" into IoT Hub's
// canonical "RegistryRead, ServiceConnect".
func canonicalRights(s string) (string, error) {
	have := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		r, ok := canonical(part, rightsOrder...)
		if !ok {
			return "", fmt.Errorf("'%s' is not an access right", part)
		}
		have[r] = true
	}
	var out []string
	for _, r := range rightsOrder {
		if have[r] {
			out = append(out, r)
		}
	}
	return strings.Join(out, ", "), nil
}

// newKey returns a random 32-byte key, base64 encoded, as IoT Hub generates.
func newKey(random io.Reader) (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(random, b); err != nil {
		return "", fmt.Errorf("hubresource: generate key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

func checkKey(k, keyName, which string) error {
	b, err := base64.StdEncoding.DecodeString(k)
	if err != nil || len(b) < 16 || len(b) > 64 {
		return invalid("authorizationPolicies '%s': %s is not a valid key; a key is 16 to 64 bytes, base64 encoded. Omit it to have one generated.", keyName, which)
	}
	return nil
}

// preparePolicies returns the hub's policies: the PUT's own when it sends
// any (keys it omits are kept from the same policy or generated), else the
// stored ones, else the defaults with fresh keys.
func preparePolicies(raw json.RawMessage, present bool, current []Policy, random io.Reader) ([]Policy, error) {
	if !present {
		if current != nil {
			return current, nil
		}
		raw, _ = json.Marshal(defaultPolicies)
	}
	var in []Policy
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, invalid("properties.authorizationPolicies must be an array of {keyName, rights, primaryKey, secondaryKey}: %v", err)
	}
	if len(in) > maxPolicies {
		return nil, flat(http.StatusBadRequest, codeTooManyPolicies,
			"The hub has %d shared access policies; IoT Hub allows at most %d. Remove some.", len(in), maxPolicies)
	}
	byName := map[string]Policy{}
	for _, p := range current {
		byName[strings.ToLower(p.KeyName)] = p
	}
	seen := map[string]bool{}
	out := make([]Policy, 0, len(in))
	for _, p := range in {
		if !keyNamePattern.MatchString(p.KeyName) {
			return nil, invalid("authorizationPolicies: keyName '%s' is invalid; use 1-64 letters, digits, '.', '_' or '-'.", p.KeyName)
		}
		if seen[strings.ToLower(p.KeyName)] {
			return nil, invalid("authorizationPolicies: the policy '%s' is listed twice; policy names are unique (ignoring case).", p.KeyName)
		}
		seen[strings.ToLower(p.KeyName)] = true
		rights, err := canonicalRights(p.Rights)
		if err != nil || p.Rights == "" {
			return nil, invalid("authorizationPolicies '%s': rights '%s' are invalid; use a comma-separated list of RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect.", p.KeyName, p.Rights)
		}
		p.Rights = rights
		old := byName[strings.ToLower(p.KeyName)]
		for _, k := range []struct {
			v     *string
			old   string
			which string
		}{{&p.PrimaryKey, old.PrimaryKey, "primaryKey"}, {&p.SecondaryKey, old.SecondaryKey, "secondaryKey"}} {
			switch {
			case *k.v != "":
				if err := checkKey(*k.v, p.KeyName, k.which); err != nil {
					return nil, err
				}
			case k.old != "":
				*k.v = k.old
			default:
				if *k.v, err = newKey(random); err != nil {
					return nil, err
				}
			}
		}
		out = append(out, p)
	}
	return out, nil
}
