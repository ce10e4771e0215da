package deviceauth

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/registry"
	"github.com/outpost-iot/outpost/internal/sas"
)

// Identity is an authenticated device or module connection.
type Identity struct {
	Hub      hub.Hub
	DeviceID string
	ModuleID string
	// AuthMethod is sas or x509 (iothub-connection-auth-method's "type").
	AuthMethod   string
	GenerationID string
	// ExpiresAt is when the SAS token stops being accepted: its expiry plus
	// the clock skew tolerated (zero for certificates). Connections close
	// then.
	ExpiresAt time.Time
}

// Error is a refusal. BadCredentials distinguishes a wrong secret
// (MQTT CONNACK 4) from "not authorized" (CONNACK 5).
type Error struct {
	Reason         string
	BadCredentials bool
}

func (e *Error) Error() string { return e.Reason }

func refuse(bad bool, format string, args ...any) error {
	return &Error{Reason: fmt.Sprintf(format, args...), BadCredentials: bad}
}

// CAs returns a hub's verified CA certificates (for certificateAuthority devices).
type CAs func(ctx context.Context, h hub.Hub) ([]*x509.Certificate, error)

// Authenticator checks device credentials against the registry.
type Authenticator struct {
	hubs     *hub.Directory
	registry *registry.Service
	cas      CAs
	now      func() time.Time
	skew     time.Duration
}

// New builds an authenticator; cas may be nil (no CA-signed devices).
func New(hubs *hub.Directory, reg *registry.Service, cas CAs, now func() time.Time) *Authenticator {
	return &Authenticator{hubs: hubs, registry: reg, cas: cas, now: now, skew: sas.ClockSkew}
}

// Resource is the SAS resource of a device or module under a host.
func Resource(host, deviceID, moduleID string) string {
	r := host + "/devices/" + deviceID
	if moduleID != "" {
		r += "/modules/" + moduleID
	}
	return r
}

// SAS authenticates a device (or module) presenting a SAS token. host is
// where the connection arrived (Host header, SNI or the MQTT username's
// host); the token's own resource names the hub when it differs.
func (a *Authenticator) SAS(ctx context.Context, host, deviceID, moduleID, token string) (Identity, error) {
	tok, err := sas.Parse(token)
	if err != nil {
		return Identity{}, refuse(true, "the SAS token is malformed: %v", err)
	}
	tokenHost, _, _ := strings.Cut(tok.Resource, "/")
	if tokenHost == "" {
		tokenHost = host
	}
	h, err := a.hubs.Resolve(ctx, tokenHost)
	if err != nil {
		if _, ok := err.(hub.ErrNoHub); ok {
			return Identity{}, refuse(false, "%v", err)
		}
		return Identity{}, err
	}
	if tok.Expired(a.now(), a.skew) {
		return Identity{}, refuse(true, "the SAS token expired at %s", tok.Expiry.UTC().Format(time.RFC3339))
	}
	if !tok.Covers(Resource(tokenHost, deviceID, moduleID)) {
		return Identity{}, refuse(false, "the SAS token's resource '%s' does not cover %s", tok.Resource, Resource(tokenHost, deviceID, moduleID))
	}
	dev, found, err := a.registry.Lookup(ctx, h.Name, deviceID, moduleID)
	if err != nil {
		return Identity{}, err
	}
	if !found {
		return Identity{}, refuse(false, "%s is not registered in hub %s", describe(deviceID, moduleID), h.Name)
	}
	if tok.KeyName != "" {
		if h.DisableLocalAuth {
			return Identity{}, refuse(false, "hub %s has local (policy SAS) authentication disabled", h.Name)
		}
		p, ok := h.Policy(tok.KeyName)
		if !ok || !p.Has("DeviceConnect") {
			return Identity{}, refuse(false, "policy '%s' of hub %s does not grant DeviceConnect", tok.KeyName, h.Name)
		}
		if !tok.Verify(p.PrimaryKey) && !tok.Verify(p.SecondaryKey) {
			return Identity{}, refuse(true, "the SAS token's signature does not match policy '%s'", tok.KeyName)
		}
	} else {
		k := dev.Authentication.SymmetricKey
		if dev.Authentication.Type != "sas" || k == nil {
			return Identity{}, refuse(false, "%s authenticates with %s, not a SAS key", describe(deviceID, moduleID), dev.Authentication.Type)
		}
		if !tok.Verify(k.PrimaryKey) && !tok.Verify(k.SecondaryKey) {
			return Identity{}, refuse(true, "the SAS token's signature does not match %s's keys", describe(deviceID, moduleID))
		}
	}
	if dev.Status != "enabled" {
		return Identity{}, refuse(false, "%s is disabled", describe(deviceID, moduleID))
	}
	return Identity{Hub: h, DeviceID: deviceID, ModuleID: moduleID, AuthMethod: "sas", GenerationID: dev.GenerationID, ExpiresAt: tok.Expiry.Add(a.skew)}, nil
}

// X509 authenticates a device presenting a client certificate whose SHA-1
// or SHA-256 thumbprint is registered on a selfSigned device.
func (a *Authenticator) X509(ctx context.Context, host, deviceID, moduleID string, chain []*x509.Certificate) (Identity, error) {
	if len(chain) == 0 {
		return Identity{}, refuse(true, "no client certificate was presented and no SAS token was sent")
	}
	h, err := a.hubs.Resolve(ctx, host)
	if err != nil {
		if _, ok := err.(hub.ErrNoHub); ok {
			return Identity{}, refuse(false, "%v", err)
		}
		return Identity{}, err
	}
	dev, found, err := a.registry.Lookup(ctx, h.Name, deviceID, moduleID)
	if err != nil {
		return Identity{}, err
	}
	if !found {
		return Identity{}, refuse(false, "%s is not registered in hub %s", describe(deviceID, moduleID), h.Name)
	}
	leaf := chain[0]
	if a.now().After(leaf.NotAfter) || a.now().Before(leaf.NotBefore) {
		return Identity{}, refuse(true, "the client certificate is outside its validity period")
	}
	switch dev.Authentication.Type {
	case "selfSigned":
		tp := dev.Authentication.X509Thumbprint
		s1 := sha1.Sum(leaf.Raw)
		s256 := sha256.Sum256(leaf.Raw)
		match := func(p *string) bool {
			if p == nil || *p == "" {
				return false
			}
			v := strings.ToLower(strings.ReplaceAll(*p, ":", ""))
			return v == hex.EncodeToString(s1[:]) || v == hex.EncodeToString(s256[:])
		}
		if tp == nil || !(match(tp.PrimaryThumbprint) || match(tp.SecondaryThumbprint)) {
			return Identity{}, refuse(true, "the client certificate's thumbprint is not registered for %s", describe(deviceID, moduleID))
		}
	case "certificateAuthority":
		if err := a.verifyChain(ctx, h, deviceID, moduleID, chain); err != nil {
			return Identity{}, err
		}
	default:
		return Identity{}, refuse(false, "%s authenticates with %s, not a certificate", describe(deviceID, moduleID), dev.Authentication.Type)
	}
	if dev.Status != "enabled" {
		return Identity{}, refuse(false, "%s is disabled", describe(deviceID, moduleID))
	}
	return Identity{Hub: h, DeviceID: deviceID, ModuleID: moduleID, AuthMethod: "x509", GenerationID: dev.GenerationID}, nil
}

func describe(deviceID, moduleID string) string {
	if moduleID != "" {
		return "module " + moduleID + " of device " + deviceID
	}
	return "device " + deviceID
}

// verifyChain checks a CA-signed device certificate: it chains to one of
// the hub's verified CA certificates and its common name is the device id
// (for a module, the module id), as IoT Hub requires.
func (a *Authenticator) verifyChain(ctx context.Context, h hub.Hub, deviceID, moduleID string, chain []*x509.Certificate) error {
	if a.cas == nil {
		return refuse(false, "hub %s has no CA certificates", h.Name)
	}
	roots, err := a.cas(ctx, h)
	if err != nil {
		return err
	}
	if len(roots) == 0 {
		return refuse(false, "hub %s has no verified CA certificates; upload one (IotHubs/certificates with isVerified)", h.Name)
	}
	pool, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	leaf := chain[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: a.now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return refuse(true, "the client certificate does not chain to a verified CA of hub %s: %v", h.Name, err)
	}
	want := deviceID
	if moduleID != "" {
		want = moduleID
	}
	if leaf.Subject.CommonName != want {
		return refuse(true, "the client certificate's common name '%s' must be '%s'", leaf.Subject.CommonName, want)
	}
	return nil
}
