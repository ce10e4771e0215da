package deviceauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/hub"
	"github.com/outpost-iot/outpost/internal/hub/deviceauth"
	"github.com/outpost-iot/outpost/internal/hub/registry"
	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/store"
	"github.com/outpost-iot/outpost/internal/store/sqlstore"
)

const (
	host      = "myhub.outpost.localhost"
	policyKey = "cG9saWN5a2V5cG9saWN5a2V5cG9saWN5a2V5MTIzNA=="
)

type fixture struct {
	auth *deviceauth.Authenticator
	reg  *registry.Service
	st   store.Store
}

func newFixture(t *testing.T, disableLocalAuth bool) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, sqlstore.Config{Driver: sqlstore.DriverSQLite, DSN: t.TempDir() + "/db"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	id := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Devices/IotHubs/myhub"
	local := "false"
	if disableLocalAuth {
		local = "true"
	}
	body := `{"properties":{"hostName":"` + host + `","disableLocalAuth":` + local + `,"authorizationPolicies":[` +
		`{"keyName":"device","primaryKey":"` + policyKey + `","secondaryKey":"` + policyKey + `","rights":"DeviceConnect"},` +
		`{"keyName":"registryRead","primaryKey":"` + policyKey + `","secondaryKey":"` + policyKey + `","rights":"RegistryRead"}]}}`
	if _, _, err := st.Resources().Put(ctx, id, func(*store.Resource) (store.Resource, error) {
		return store.Resource{ID: id, Type: "Microsoft.Devices/IotHubs", Name: "myhub", Body: []byte(body)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	reg := registry.New(st.Devices(), nil, time.Now)
	return &fixture{auth: deviceauth.New(hub.NewDirectory(st.Resources(), "outpost.localhost", ""), reg, nil, time.Now), reg: reg, st: st}
}

func (f *fixture) device(t *testing.T, id string, in registry.Identity) registry.Identity {
	t.Helper()
	d, _, err := f.reg.PutIdentity(context.Background(), "myhub", id, "", in, "")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func sign(t *testing.T, resource, key, policy string, exp time.Time) string {
	t.Helper()
	tok, err := sas.Sign(resource, key, policy, exp)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestSAS(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	d := f.device(t, "dev1", registry.Identity{})
	f.device(t, "dev2", registry.Identity{})
	f.device(t, "off", registry.Identity{Status: "disabled"})
	key := d.Authentication.SymmetricKey.PrimaryKey
	hour := time.Now().Add(time.Hour)

	id, err := f.auth.SAS(ctx, host, "dev1", "", sign(t, host+"/devices/dev1", key, "", hour))
	if err != nil || id.Hub.Name != "myhub" || id.AuthMethod != "sas" || id.GenerationID == "" || !id.ExpiresAt.Equal(hour.Truncate(time.Second).Add(sas.ClockSkew)) {
		t.Fatalf("device key: %+v %v", id, err)
	}
	if _, err := f.auth.SAS(ctx, host, "dev1", "", sign(t, host+"/devices/dev1", d.Authentication.SymmetricKey.SecondaryKey, "", hour)); err != nil {
		t.Errorf("secondary key: %v", err)
	}
	if _, err := f.auth.SAS(ctx, host, "dev1", "", sign(t, host, policyKey, "device", hour)); err != nil {
		t.Errorf("hub-scoped DeviceConnect policy: %v", err)
	}
	for name, tc := range map[string]struct {
		device, token string
		bad           bool
		reason        string
	}{
		"wrong key":             {"dev1", sign(t, host+"/devices/dev1", policyKey, "", hour), true, "does not match"},
		"expired":               {"dev1", sign(t, host+"/devices/dev1", key, "", time.Now().Add(-10*time.Minute)), true, "expired"},
		"another device's":      {"dev2", sign(t, host+"/devices/dev1", key, "", hour), false, "does not cover"},
		"prefix of another id":  {"dev10", sign(t, host+"/devices/dev1", key, "", hour), false, "does not cover"},
		"disabled device":       {"off", "", false, "disabled"},
		"unknown device":        {"ghost", sign(t, host+"/devices/ghost", key, "", hour), false, "not registered"},
		"policy without rights": {"dev1", sign(t, host, policyKey, "registryRead", hour), false, "DeviceConnect"},
		"unknown policy":        {"dev1", sign(t, host, policyKey, "nope", hour), false, "DeviceConnect"},
		"malformed":             {"dev1", "SharedAccessSignature sr=x", true, "malformed"},
		"other hub":             {"dev1", sign(t, "other.outpost.localhost/devices/dev1", key, "", hour), false, "no IoT hub"},
	} {
		tok := tc.token
		if name == "disabled device" {
			off, _ := f.reg.GetIdentity(ctx, "myhub", "off", "")
			tok = sign(t, host+"/devices/off", off.Authentication.SymmetricKey.PrimaryKey, "", hour)
		}
		_, err := f.auth.SAS(ctx, host, tc.device, "", tok)
		var ae *deviceauth.Error
		if !errors.As(err, &ae) || ae.BadCredentials != tc.bad || !strings.Contains(ae.Reason, tc.reason) {
			t.Errorf("%s: %v (bad credentials %v), want a refusal mentioning %q (bad credentials %v)", name, err, ae != nil && ae.BadCredentials, tc.reason, tc.bad)
		}
	}
}

func TestPolicySASRefusedWhenLocalAuthIsDisabled(t *testing.T) {
	f := newFixture(t, true)
	f.device(t, "dev1", registry.Identity{})
	_, err := f.auth.SAS(context.Background(), host, "dev1", "", sign(t, host, policyKey, "device", time.Now().Add(time.Hour)))
	var ae *deviceauth.Error
	if !errors.As(err, &ae) || !strings.Contains(ae.Reason, "disabled") {
		t.Fatalf("policy token with disableLocalAuth: %v", err)
	}
}

func TestX509Thumbprint(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	cert := selfSigned(t, "cert-dev")
	other := selfSigned(t, "cert-dev")
	sum := sha1.Sum(cert.Raw)
	tp := strings.ToUpper(hex.EncodeToString(sum[:]))
	f.device(t, "cert-dev", registry.Identity{Authentication: registry.Authentication{Type: "selfSigned",
		X509Thumbprint: &registry.X509Thumbprint{PrimaryThumbprint: &tp}}})
	f.device(t, "sas-dev", registry.Identity{})
	if id, err := f.auth.X509(ctx, host, "cert-dev", "", []*x509.Certificate{cert}); err != nil || id.AuthMethod != "x509" {
		t.Fatalf("registered thumbprint: %+v %v", id, err)
	}
	for name, tc := range map[string]struct {
		device string
		chain  []*x509.Certificate
	}{
		"another certificate": {"cert-dev", []*x509.Certificate{other}},
		"no certificate":      {"cert-dev", nil},
		"a SAS device":        {"sas-dev", []*x509.Certificate{cert}},
	} {
		if _, err := f.auth.X509(ctx, host, tc.device, "", tc.chain); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func selfSigned(t *testing.T, cn string) *x509.Certificate {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}
