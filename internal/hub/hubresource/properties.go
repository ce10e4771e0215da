package hubresource

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/identity/msi"
)

// propertiesBuilder builds the properties member of one PUT. Members are
// taken out of body as they are handled, so what is left is echoed as sent.
type propertiesBuilder struct {
	name      string
	location  string
	dnsSuffix string
	body      object // the PUT's properties
	current   object // the stored properties; nil on create
	sku       skuLimits
	identity  msi.Block
	random    io.Reader

	out object
	// minBatchSeconds is the lowest storage endpoint batchFrequencyInSeconds
	// accepted (Azure: 60).
	minBatchSeconds int64
	// checkCondition validates a route condition (nil accepts any).
	checkCondition func(string) error
	// fileUploadReady is whether storageEndpoints.$default names a
	// container and a connection string (file upload notifications need one).
	fileUploadReady bool
}

// knownProperties are the members this package owns; other members are
// echoed as sent (and kept on update when a PUT omits them).
var knownProperties = []string{
	"authorizationPolicies", "eventHubEndpoints", "storageEndpoints", "messagingEndpoints",
	"enableFileUploadNotifications", "cloudToDevice", "features", "disableLocalAuth", "routing",
	"provisioningState", "state", "hostName", "locations",
}

func isKnownProperty(k string) bool {
	_, ok := canonical(k, knownProperties...)
	return ok
}

// input returns a member as the PUT sends it or, when the PUT omits it or
// sends null, as it is stored: settings are kept on update.
func (b *propertiesBuilder) input(key string) (json.RawMessage, bool) {
	if raw, ok := b.body.take(key); ok {
		return raw, true
	}
	if b.current != nil {
		return b.current.get(key)
	}
	return nil, false
}

// build returns the properties to store.
func (b *propertiesBuilder) build() (object, error) {
	b.out = object{}
	sent := map[string]bool{}
	for k := range b.body {
		sent[strings.ToLower(k)] = true
	}
	var currentPolicies []Policy
	if b.current != nil {
		if raw, ok := b.current.get("authorizationPolicies"); ok {
			_ = json.Unmarshal(raw, &currentPolicies)
		}
	}
	raw, present := b.body.take("authorizationPolicies")
	policies, err := preparePolicies(raw, present, currentPolicies, b.random)
	if err != nil {
		return nil, err
	}
	b.out.set("authorizationPolicies", policies)

	for _, step := range []func() error{
		b.eventHubEndpoints, b.storageEndpoints, b.messagingEndpoints, b.fileUploadNotifications,
		b.cloudToDevice, b.features, b.disableLocalAuth, b.routing,
	} {
		if err := step(); err != nil {
			return nil, err
		}
	}

	// Read-only members are the server's.
	for _, k := range []string{"provisioningState", "state", "hostName", "locations"} {
		b.body.take(k)
	}
	b.out.set("hostName", strings.ToLower(b.name)+"."+b.dnsSuffix)
	b.out.set("locations", []map[string]string{{"location": b.location, "role": "primary"}})
	state := "Activating"
	if b.current != nil {
		if s, ok, _ := b.current.str("state", "properties"); ok && s != "" {
			state = s
		}
	}
	b.out.set("state", state)

	for k, v := range b.body {
		if !isNull(v) {
			b.out[k] = v
		}
	}
	for k, v := range b.current {
		if !isKnownProperty(k) && !sent[strings.ToLower(k)] {
			b.out[k] = v
		}
	}
	return b.out, nil
}

// eventHubEndpoints: the built-in "events" endpoint. The partition count is
// fixed at creation; retention may change.
func (b *propertiesBuilder) eventHubEndpoints() error {
	const what = "properties.eventHubEndpoints.events"
	events := object{}
	if raw, ok := b.body.take("eventHubEndpoints"); ok {
		eh, err := decodeObject(raw, "properties.eventHubEndpoints")
		if err != nil {
			return err
		}
		for k := range eh {
			if !strings.EqualFold(k, "events") {
				return invalid("properties.eventHubEndpoints has the key '%s'; the only built-in Event Hub-compatible endpoint is 'events'.", k)
			}
		}
		if e, err := eh.sub("events", "properties.eventHubEndpoints"); err != nil {
			return err
		} else if e != nil {
			events = e
		}
	}
	var stored object
	if b.current != nil {
		if eh, err := b.current.sub("eventHubEndpoints", "properties"); err == nil && eh != nil {
			stored, _ = eh.sub("events", "properties.eventHubEndpoints")
		}
	}
	minParts, maxParts, defParts, maxDays := int64(2), int64(32), int64(4), int64(7)
	if b.sku.free() {
		maxParts, defParts, maxDays = 2, 2, 1
	}
	partitions, err := fromOrStored(events, stored, "partitionCount", what, defParts)
	if err != nil {
		return err
	}
	if stored != nil {
		if was, ok, _ := stored.integer("partitionCount", what); ok && was != partitions {
			return invalid("%s.partitionCount can't change after the hub is created: it is %d. Send %d or leave it out.", what, was, was)
		}
	}
	if partitions < minParts || partitions > maxParts {
		hint := ""
		if b.sku.free() {
			hint = " A free (F1) hub has exactly 2 partitions (az: --partition-count 2)."
		}
		return flat(400, codeInvalidPartitionCount, "Invalid PartitionCount %d - value must be between %d and %d.%s", partitions, minParts, maxParts, hint)
	}
	days, err := fromOrStored(events, stored, "retentionTimeInDays", what, 1)
	if err != nil {
		return err
	}
	if days < 1 || days > maxDays {
		return invalid("%s.retentionTimeInDays is %d; the %s tier keeps device-to-cloud messages 1 to %d days.", what, days, b.sku.Tier, maxDays)
	}
	ids := make([]string, partitions)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	lower := strings.ToLower(b.name)
	b.out.set("eventHubEndpoints", map[string]any{"events": map[string]any{
		"retentionTimeInDays": days,
		"partitionCount":      partitions,
		"partitionIds":        ids,
		"path":                lower,
		"endpoint":            "sb://iothub-ns-" + lower + ".servicebus." + b.dnsSuffix + "/",
	}})
	return nil
}

// fromOrStored reads an integer from the PUT, else from the stored object,
// else def.
func fromOrStored(sent, stored object, key, what string, def int64) (int64, error) {
	n, ok, err := sent.integer(key, what)
	if err != nil || ok {
		return n, err
	}
	if stored != nil {
		if n, ok, _ := stored.integer(key, what); ok {
			return n, nil
		}
	}
	return def, nil
}

// endpointAuth validates authenticationType and identity of a storage or
// routing endpoint: an identity-based endpoint must use an identity the hub
// has. It reports whether the endpoint is identity-based.
func (b *propertiesBuilder) endpointAuth(o object, what string) (bool, error) {
	at, ok, err := o.str("authenticationType", what)
	if err != nil || !ok {
		return false, err
	}
	c, valid := canonical(at, "keyBased", "identityBased")
	if !valid {
		return false, invalid("%s.authenticationType '%s' is invalid; use 'keyBased' (a connection string) or 'identityBased' (a managed identity of the hub).", what, at)
	}
	o.set("authenticationType", c)
	if c != "identityBased" {
		return false, nil
	}
	id, err := o.sub("identity", what)
	if err != nil {
		return false, err
	}
	uai := ""
	if id != nil {
		if uai, _, err = id.str("userAssignedIdentity", what+".identity"); err != nil {
			return false, err
		}
	}
	who := what
	if name, _, _ := o.str("name", what); name != "" {
		who = fmt.Sprintf("endpoint '%s' (%s)", name, what)
	}
	if uai == "" {
		if !b.identity.System() {
			return false, invalid("%s uses the hub's system-assigned identity, so the hub must have one: it can't be turned off while in use. Switch the endpoint to a user-assigned identity (%s.identity.userAssignedIdentity) or to keyBased first, or keep identity.type 'SystemAssigned' (az iot hub identity assign --system-assigned).", who, what)
		}
		return true, nil
	}
	for assigned := range b.identity.UserAssignedIdentities {
		if strings.EqualFold(assigned, uai) {
			return true, nil
		}
	}
	return false, invalid("%s uses the user-assigned identity '%s', which is not assigned to the hub: it can't be detached while in use, and must be assigned before use. Add it to identity.userAssignedIdentities (az iot hub identity assign --user-assigned <id>), or switch the endpoint to another identity first.", who, uai)
}

// storageEndpoints: the file upload storage account, always under "$default".
func (b *propertiesBuilder) storageEndpoints() error {
	const what = "properties.storageEndpoints"
	eps := object{}
	if raw, ok := b.input("storageEndpoints"); ok {
		var err error
		if eps, err = decodeObject(raw, what); err != nil {
			return err
		}
	}
	for k := range eps {
		if !strings.EqualFold(k, "$default") {
			return invalid("%s has the key '%s'; IoT Hub supports one storage endpoint and its key must be '$default'.", what, k)
		}
	}
	def, err := eps.sub("$default", what)
	if err != nil {
		return err
	}
	if def == nil {
		def = object{}
	}
	const dwhat = what + ".$default"
	if err := durationSetting(def, "sasTtlAsIso8601", dwhat, "PT1H", time.Minute, 24*time.Hour); err != nil {
		return err
	}
	conn, _, err := def.str("connectionString", dwhat)
	if err != nil {
		return err
	}
	container, _, err := def.str("containerName", dwhat)
	if err != nil {
		return err
	}
	def.set("connectionString", conn)
	def.set("containerName", container)
	if _, err := b.endpointAuth(def, dwhat); err != nil {
		return err
	}
	b.fileUploadReady = conn != "" && container != ""
	b.out.set("storageEndpoints", map[string]object{"$default": def})
	return nil
}

// messagingEndpoints: the file upload notification queue.
func (b *propertiesBuilder) messagingEndpoints() error {
	const what = "properties.messagingEndpoints"
	eps := object{}
	if raw, ok := b.input("messagingEndpoints"); ok {
		var err error
		if eps, err = decodeObject(raw, what); err != nil {
			return err
		}
	}
	for k := range eps {
		if !strings.EqualFold(k, "fileNotifications") {
			return invalid("%s has the key '%s'; the only messaging endpoint is 'fileNotifications'.", what, k)
		}
	}
	fn, err := eps.sub("fileNotifications", what)
	if err != nil {
		return err
	}
	if fn == nil {
		fn = object{}
	}
	if err := feedbackSettings(fn, what+".fileNotifications"); err != nil {
		return err
	}
	b.out.set("messagingEndpoints", map[string]object{"fileNotifications": fn})
	return nil
}

// feedbackSettings are the lock, time to live and delivery count of a
// service-bound queue (file notifications, C2D feedback).
func feedbackSettings(o object, what string) error {
	if err := durationSetting(o, "lockDurationAsIso8601", what, "PT1M", 5*time.Second, 300*time.Second); err != nil {
		return err
	}
	if err := durationSetting(o, "ttlAsIso8601", what, "PT1H", time.Minute, 48*time.Hour); err != nil {
		return err
	}
	_, err := intSetting(o, "maxDeliveryCount", what, 10, 1, 100)
	return err
}

func (b *propertiesBuilder) fileUploadNotifications() error {
	on := false
	if raw, ok := b.input("enableFileUploadNotifications"); ok {
		if err := json.Unmarshal(raw, &on); err != nil {
			return invalid("properties.enableFileUploadNotifications must be true or false, got %s.", abbreviate(raw))
		}
	}
	if on && !b.fileUploadReady {
		return invalid("properties.enableFileUploadNotifications is true, but properties.storageEndpoints.$default has no connectionString and containerName. File upload notifications need the file upload storage endpoint: set both (az iot hub update --fcs <connection string> --fc <container>).")
	}
	b.out.set("enableFileUploadNotifications", on)
	return nil
}

func (b *propertiesBuilder) cloudToDevice() error {
	const what = "properties.cloudToDevice"
	c2d := object{}
	if raw, ok := b.input("cloudToDevice"); ok {
		var err error
		if c2d, err = decodeObject(raw, what); err != nil {
			return err
		}
	}
	if _, err := intSetting(c2d, "maxDeliveryCount", what, 10, 1, 100); err != nil {
		return err
	}
	if err := durationSetting(c2d, "defaultTtlAsIso8601", what, "PT1H", time.Minute, 48*time.Hour); err != nil {
		return err
	}
	fb, err := c2d.sub("feedback", what)
	if err != nil {
		return err
	}
	if fb == nil {
		fb = object{}
	}
	if err := feedbackSettings(fb, what+".feedback"); err != nil {
		return err
	}
	c2d.set("feedback", fb)
	b.out.set("cloudToDevice", c2d)
	return nil
}

func (b *propertiesBuilder) features() error {
	f := "None"
	if raw, ok := b.input("features"); ok {
		if err := json.Unmarshal(raw, &f); err != nil {
			return invalid("properties.features must be a string, got %s.", abbreviate(raw))
		}
		c, valid := canonical(f, "None", "DeviceManagement")
		if !valid {
			return invalid("properties.features '%s' is invalid; use 'None' or 'DeviceManagement'.", f)
		}
		f = c
	}
	b.out.set("features", f)
	return nil
}

func (b *propertiesBuilder) disableLocalAuth() error {
	off := false
	if raw, ok := b.input("disableLocalAuth"); ok {
		if err := json.Unmarshal(raw, &off); err != nil {
			return invalid("properties.disableLocalAuth must be true or false, got %s.", abbreviate(raw))
		}
	}
	b.out.set("disableLocalAuth", off)
	return nil
}
