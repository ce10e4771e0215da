package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/outpost-iot/outpost/internal/hub/telemetry"
	"github.com/outpost-iot/outpost/internal/isoduration"
	"github.com/outpost-iot/outpost/internal/store"
)

// Policy is a shared access policy of a hub.
type Policy struct {
	KeyName      string `json:"keyName"`
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
	Rights       string `json:"rights"`
}

// Has reports whether the policy grants a right (RegistryRead, …).
func (p Policy) Has(right string) bool {
	for _, r := range strings.Split(p.Rights, ",") {
		if strings.EqualFold(strings.TrimSpace(r), right) {
			return true
		}
	}
	return false
}

// Hub is what the data plane needs to know about one hub.
type Hub struct {
	Name             string // lower case
	ResourceID       string
	HostName         string
	Policies         []Policy
	DisableLocalAuth bool
	PartitionCount   int
	RetentionDays    int
	// Cloud-to-device settings (cloudToDevice).
	C2DMaxDeliveryCount int
	C2DDefaultTTL       time.Duration
	// Path is where the hub's device messages are stored when they arrive:
	// on the built-in endpoint, or for the router (telemetry.PathFor).
	Path telemetry.Path
	// EventSources are the event sources an enabled route reads; events of
	// the others are not stored (telemetry.SourcesFor).
	EventSources telemetry.Sources
	// FileUpload is the file upload configuration (storageEndpoints.$default,
	// messagingEndpoints.fileNotifications, enableFileUploadNotifications)
	// as stored; internal/hub/fileupload interprets it.
	FileUpload FileUploadSettings
}

// FileUploadSettings are a hub's stored file upload settings. Durations
// carry the control plane's defaults when the document has none.
type FileUploadSettings struct {
	ContainerName        string
	ConnectionString     string
	SASTTL               time.Duration
	AuthenticationType   string // "keyBased" (also when empty) or "identityBased"
	UserAssignedIdentity string // empty: the hub's system-assigned identity
	Notifications        bool
	LockDuration         time.Duration
	TTL                  time.Duration
	MaxDeliveryCount     int
}

// Policy returns the named policy.
func (h Hub) Policy(name string) (Policy, bool) {
	for _, p := range h.Policies {
		if strings.EqualFold(p.KeyName, name) {
			return p, true
		}
	}
	return Policy{}, false
}

// Directory resolves hubs from the stored IotHubs resources, cached briefly
// and refreshed at once when the control plane says a hub changed.
type Directory struct {
	resources store.Resources
	suffix    string
	// DefaultHub names the hub that localhost and bare IP addresses reach;
	// empty means "the only hub, if there is exactly one".
	defaultHub string
	ttl        time.Duration

	mu     sync.Mutex
	hubs   map[string]Hub
	loaded time.Time
	// version counts invalidations: a list read before the latest one is
	// kept but not taken as fresh.
	version uint64
	// refreshing: a background reload (Peek) is under way.
	refreshing bool
}

// NewDirectory builds a hub directory.
func NewDirectory(resources store.Resources, dnsSuffix, defaultHub string) *Directory {
	return &Directory{resources: resources, suffix: strings.ToLower(dnsSuffix), defaultHub: strings.ToLower(defaultHub), ttl: 2 * time.Second}
}

// ErrNoHub is returned when a host name names no hub.
type ErrNoHub struct{ Host string }

func (e ErrNoHub) Error() string {
	return fmt.Sprintf("no IoT hub answers to host '%s'", e.Host)
}

// Invalidate makes the next lookup reload (a hub was created, changed or
// deleted).
func (d *Directory) Invalidate() {
	d.mu.Lock()
	d.loaded = time.Time{}
	d.version++
	d.mu.Unlock()
}

// load returns the hubs, reading them from the store when what is held is
// older than the TTL or was invalidated. The store is read without holding
// the lock, so Peek never waits for it.
func (d *Directory) load(ctx context.Context) (map[string]Hub, error) {
	d.mu.Lock()
	if d.hubs != nil && time.Since(d.loaded) < d.ttl {
		hubs := d.hubs
		d.mu.Unlock()
		return hubs, nil
	}
	version := d.version
	d.mu.Unlock()
	return d.fetch(ctx, version)
}

// fetch reads every hub and keeps them; read after invalidation version,
// they count as fresh only if no invalidation came meanwhile.
func (d *Directory) fetch(ctx context.Context, version uint64) (map[string]Hub, error) {
	list, err := d.resources.List(ctx, store.ResourceFilter{Type: "Microsoft.Devices/IotHubs"})
	if err != nil {
		return nil, fmt.Errorf("hub: list hubs: %w", err)
	}
	hubs := make(map[string]Hub, len(list))
	for _, r := range list {
		h, err := decodeHub(r)
		if err != nil {
			continue
		}
		hubs[h.Name] = h
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.version == version {
		d.hubs, d.loaded = hubs, time.Now()
	} else if d.hubs == nil {
		d.hubs = hubs // better than nothing; still stale, so the next lookup reads again
	}
	return hubs, nil
}

// Peek returns a hub from what the directory holds without waiting for
// the store: when that is stale (older than the TTL, or invalidated) it is
// reloaded in the background and this call answers from the copy held.
// For the hot paths — every device message — where a hub a moment old is
// fine. A hub not held yet is looked up as Get does.
func (d *Directory) Peek(ctx context.Context, name string) (Hub, bool, error) {
	d.mu.Lock()
	hubs := d.hubs
	if hubs != nil && time.Since(d.loaded) >= d.ttl && !d.refreshing {
		d.refreshing = true
		version := d.version
		go func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_, _ = d.fetch(ctx, version) // on failure the next Peek tries again
			d.mu.Lock()
			d.refreshing = false
			d.mu.Unlock()
		}()
	}
	d.mu.Unlock()
	if h, ok := hubs[strings.ToLower(name)]; ok {
		return h, true, nil
	}
	return d.Get(ctx, name)
}

func decodeHub(r store.Resource) (Hub, error) {
	var doc struct {
		Properties struct {
			HostName              string   `json:"hostName"`
			AuthorizationPolicies []Policy `json:"authorizationPolicies"`
			DisableLocalAuth      bool     `json:"disableLocalAuth"`
			CloudToDevice         struct {
				MaxDeliveryCount    int    `json:"maxDeliveryCount"`
				DefaultTTLAsIso8601 string `json:"defaultTtlAsIso8601"`
			} `json:"cloudToDevice"`
			StorageEndpoints              map[string]storageEndpointDoc   `json:"storageEndpoints"`
			MessagingEndpoints            map[string]messagingEndpointDoc `json:"messagingEndpoints"`
			EnableFileUploadNotifications bool                            `json:"enableFileUploadNotifications"`
			EventHubEndpoints             map[string]struct {
				PartitionCount      int `json:"partitionCount"`
				RetentionTimeInDays int `json:"retentionTimeInDays"`
			} `json:"eventHubEndpoints"`
			Routing json.RawMessage `json:"routing"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(r.Body, &doc); err != nil {
		return Hub{}, err
	}
	h := Hub{Name: strings.ToLower(r.Name), ResourceID: r.ID, HostName: doc.Properties.HostName,
		Policies: doc.Properties.AuthorizationPolicies, DisableLocalAuth: doc.Properties.DisableLocalAuth,
		PartitionCount: 4, RetentionDays: 1, C2DMaxDeliveryCount: 10, C2DDefaultTTL: time.Hour,
		Path: telemetry.PathFor(doc.Properties.Routing), EventSources: telemetry.SourcesFor(doc.Properties.Routing)}
	if n := doc.Properties.CloudToDevice.MaxDeliveryCount; n > 0 {
		h.C2DMaxDeliveryCount = n
	}
	if d, ok := ParseISODuration(doc.Properties.CloudToDevice.DefaultTTLAsIso8601); ok && d > 0 {
		h.C2DDefaultTTL = d
	}
	if ev, ok := doc.Properties.EventHubEndpoints["events"]; ok {
		if ev.PartitionCount > 0 {
			h.PartitionCount = ev.PartitionCount
		}
		if ev.RetentionTimeInDays > 0 {
			h.RetentionDays = ev.RetentionTimeInDays
		}
	}
	h.FileUpload = decodeFileUpload(doc.Properties.StorageEndpoints["$default"], doc.Properties.MessagingEndpoints["fileNotifications"])
	h.FileUpload.Notifications = doc.Properties.EnableFileUploadNotifications
	return h, nil
}

// DecodeFileUpload reads the file upload settings from an IotHubs
// resource's properties object (as stored, or as a PUT validated it).
func DecodeFileUpload(properties []byte) (FileUploadSettings, error) {
	var p struct {
		StorageEndpoints              map[string]storageEndpointDoc   `json:"storageEndpoints"`
		MessagingEndpoints            map[string]messagingEndpointDoc `json:"messagingEndpoints"`
		EnableFileUploadNotifications bool                            `json:"enableFileUploadNotifications"`
	}
	if err := json.Unmarshal(properties, &p); err != nil {
		return FileUploadSettings{}, fmt.Errorf("hub: decode file upload settings: %w", err)
	}
	f := decodeFileUpload(p.StorageEndpoints["$default"], p.MessagingEndpoints["fileNotifications"])
	f.Notifications = p.EnableFileUploadNotifications
	return f, nil
}

type storageEndpointDoc struct {
	ContainerName      string `json:"containerName"`
	ConnectionString   string `json:"connectionString"`
	SASTTLAsIso8601    string `json:"sasTtlAsIso8601"`
	AuthenticationType string `json:"authenticationType"`
	Identity           *struct {
		UserAssignedIdentity string `json:"userAssignedIdentity"`
	} `json:"identity"`
}

type messagingEndpointDoc struct {
	LockDurationAsIso8601 string `json:"lockDurationAsIso8601"`
	TTLAsIso8601          string `json:"ttlAsIso8601"`
	MaxDeliveryCount      int    `json:"maxDeliveryCount"`
}

// decodeFileUpload applies IoT Hub's defaults (SAS TTL 1 hour; lock 1
// minute, TTL 1 hour, 10 deliveries) to what the document holds.
func decodeFileUpload(st storageEndpointDoc, fn messagingEndpointDoc) FileUploadSettings {
	f := FileUploadSettings{ContainerName: st.ContainerName, ConnectionString: st.ConnectionString,
		AuthenticationType: st.AuthenticationType, SASTTL: time.Hour,
		LockDuration: time.Minute, TTL: time.Hour, MaxDeliveryCount: 10}
	if st.Identity != nil {
		f.UserAssignedIdentity = st.Identity.UserAssignedIdentity
	}
	if d, ok := ParseISODuration(st.SASTTLAsIso8601); ok && d > 0 {
		f.SASTTL = d
	}
	if d, ok := ParseISODuration(fn.LockDurationAsIso8601); ok && d > 0 {
		f.LockDuration = d
	}
	if d, ok := ParseISODuration(fn.TTLAsIso8601); ok && d > 0 {
		f.TTL = d
	}
	if fn.MaxDeliveryCount > 0 {
		f.MaxDeliveryCount = fn.MaxDeliveryCount
	}
	return f
}

// Get returns a hub by name.
func (d *Directory) Get(ctx context.Context, name string) (Hub, bool, error) {
	hubs, err := d.load(ctx)
	if err != nil {
		return Hub{}, false, err
	}
	h, ok := hubs[strings.ToLower(name)]
	return h, ok, nil
}

// Resolve finds the hub a host name (as sent in Host, SNI, a SAS sr or an
// MQTT username) addresses: "{hub}.{suffix}", or for localhost, the
// machine's names and IP addresses, the default hub.
func (d *Directory) Resolve(ctx context.Context, host string) (Hub, error) {
	host = strings.ToLower(host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	hubs, err := d.load(ctx)
	if err != nil {
		return Hub{}, err
	}
	if name, ok := strings.CutSuffix(host, "."+d.suffix); ok && !strings.Contains(name, ".") {
		if h, ok := hubs[name]; ok {
			return h, nil
		}
		return Hub{}, ErrNoHub{host}
	}
	for _, h := range hubs {
		if strings.EqualFold(h.HostName, host) {
			return h, nil
		}
	}
	if d.defaultHub != "" {
		if h, ok := hubs[d.defaultHub]; ok {
			return h, nil
		}
		return Hub{}, ErrNoHub{host}
	}
	if len(hubs) == 1 {
		for _, h := range hubs {
			return h, nil
		}
	}
	return Hub{}, ErrNoHub{host}
}

// ParseISODuration reads the ISO 8601 durations IoT Hub settings use
// (PT1H, PT1M, P1D, PT1H30M5S).
func ParseISODuration(s string) (time.Duration, bool) {
	d, err := isoduration.Parse(s)
	return d, err == nil
}
