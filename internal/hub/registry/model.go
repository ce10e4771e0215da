package registry

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"time"
)

// Authentication is how a device or module proves who it is.
type Authentication struct {
	// Type is sas, selfSigned, certificateAuthority or none.
	Type           string          `json:"type"`
	SymmetricKey   *SymmetricKey   `json:"symmetricKey,omitempty"`
	X509Thumbprint *X509Thumbprint `json:"x509Thumbprint,omitempty"`
}

// SymmetricKey holds base64 SAS keys.
type SymmetricKey struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

// X509Thumbprint holds certificate thumbprints (hex SHA-1 or SHA-256).
type X509Thumbprint struct {
	PrimaryThumbprint   *string `json:"primaryThumbprint"`
	SecondaryThumbprint *string `json:"secondaryThumbprint"`
}

// Capabilities of a device.
type Capabilities struct {
	IotEdge bool `json:"iotEdge"`
}

// Identity is a device or module identity as the service API shows it.
type Identity struct {
	DeviceID                   string         `json:"deviceId"`
	ModuleID                   string         `json:"moduleId,omitempty"`
	ManagedBy                  string         `json:"managedBy,omitempty"`
	GenerationID               string         `json:"generationId"`
	ETag                       string         `json:"etag"`
	ConnectionState            string         `json:"connectionState"`
	Status                     string         `json:"status,omitempty"`
	StatusReason               *string        `json:"statusReason"`
	ConnectionStateUpdatedTime string         `json:"connectionStateUpdatedTime"`
	StatusUpdatedTime          string         `json:"statusUpdatedTime,omitempty"`
	LastActivityTime           string         `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int            `json:"cloudToDeviceMessageCount"`
	Authentication             Authentication `json:"authentication"`
	Capabilities               *Capabilities  `json:"capabilities,omitempty"`
	DeviceScope                string         `json:"deviceScope,omitempty"`
	ParentScopes               []string       `json:"parentScopes,omitempty"`
}

// zeroTime is how IoT Hub shows a time that never happened.
const zeroTime = "0001-01-01T00:00:00Z"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return zeroTime
	}
	return t.UTC().Format("2006-01-02T15:04:05.0000000Z")
}

// newKey returns a 32-byte base64 key, as IoT Hub generates.
func newKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// newGenerationID distinguishes a re-created device from an earlier one
// with the same id.
func newGenerationID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	n := uint64(0)
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return "6" + itoa(n%1e17)
}

func itoa(n uint64) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// twinDoc is the stored twin.
type twinDoc struct {
	Tags       map[string]any `json:"tags"`
	Desired    map[string]any `json:"desired"`
	Reported   map[string]any `json:"reported"`
	DesiredV   int64          `json:"desiredVersion"`
	ReportedV  int64          `json:"reportedVersion"`
	Version    int64          `json:"version"`
	DesiredAt  time.Time      `json:"desiredUpdated"`
	ReportedAt time.Time      `json:"reportedUpdated"`
}

func decodeTwin(raw json.RawMessage) twinDoc {
	var t twinDoc
	_ = json.Unmarshal(raw, &t)
	if t.Tags == nil {
		t.Tags = map[string]any{}
	}
	if t.Desired == nil {
		t.Desired = map[string]any{}
	}
	if t.Reported == nil {
		t.Reported = map[string]any{}
	}
	return t
}

func (t twinDoc) encode() json.RawMessage {
	b, _ := json.Marshal(t)
	return b
}

// mergePatch applies a JSON merge patch (null removes a member).
func mergePatch(target, patch map[string]any) {
	for k, v := range patch {
		if v == nil {
			delete(target, k)
			continue
		}
		if pm, ok := v.(map[string]any); ok {
			tm, ok := target[k].(map[string]any)
			if !ok {
				tm = map[string]any{}
			}
			mergePatch(tm, pm)
			target[k] = tm
			continue
		}
		target[k] = v
	}
}

func decodeB64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
