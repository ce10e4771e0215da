package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/outpost-iot/outpost/internal/sas"
	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestX509Devices: a thumbprint (selfSigned) device and a CA-signed device
// (the hub trusts a CA uploaded as IotHubs/certificates) connect over MQTT
// with their client certificates; a certificate from another CA is refused.
func TestX509Devices(t *testing.T) {
	s := testserver.Start(t)
	h := createHub(t, s, "rg-x509")
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}

	caKey, caCert := newCA(t, "Fleet CA")
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}))
	body, _ := json.Marshal(map[string]any{"properties": map[string]any{"certificate": caPEM, "isVerified": true}})
	if code, resp := op.do("PUT", h.ID+"/certificates/fleet?api-version=2023-06-30", string(body)); code != 201 && code != 200 {
		t.Fatalf("upload CA: %d %v", code, resp)
	}

	selfCert, selfKey := leaf(t, "thumb-dev", nil, nil)
	sum := sha1.Sum(selfCert.Raw)
	registerDevice(t, s, h, `{"deviceId":"thumb-dev","authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"`+strings.ToUpper(hex.EncodeToString(sum[:]))+`"}}}`, "thumb-dev")
	registerDevice(t, s, h, `{"deviceId":"ca-dev","authentication":{"type":"certificateAuthority"}}`, "ca-dev")

	caSigned, caSignedKey := leaf(t, "ca-dev", caCert, caKey)
	otherKey, otherCert := newCA(t, "Rogue")
	rogue, rogueKey := leaf(t, "ca-dev", otherCert, otherKey)

	connect := func(device string, cert *x509.Certificate, key *ecdsa.PrivateKey) error {
		tlsCert := tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key}
		opts := paho.NewClientOptions().AddBroker("ssl://" + net.JoinHostPort(s.IP, "8883")).
			SetClientID(device).SetUsername(h.HostName + "/" + device + "/?api-version=2021-04-12").
			SetTLSConfig(&tls.Config{RootCAs: s.CertPool(), ServerName: h.HostName, Certificates: []tls.Certificate{tlsCert}}).
			SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false)
		c := paho.NewClient(opts)
		tok := c.Connect()
		if !tok.WaitTimeout(10 * time.Second) {
			return errTimeout
		}
		if tok.Error() == nil {
			c.Disconnect(0)
		}
		return tok.Error()
	}
	if err := connect("thumb-dev", selfCert, selfKey); err != nil {
		t.Errorf("thumbprint device: %v", err)
	}
	if err := connect("ca-dev", caSigned, caSignedKey); err != nil {
		t.Errorf("CA-signed device: %v", err)
	}
	if err := connect("ca-dev", rogue, rogueKey); err == nil {
		t.Error("a certificate from another CA was accepted")
	}
	if err := connect("thumb-dev", caSigned, caSignedKey); err == nil {
		t.Error("a thumbprint device accepted another certificate")
	}
}

type timeoutError struct{}

func (timeoutError) Error() string { return "timed out" }

var errTimeout error = timeoutError{}

func newCA(t *testing.T, cn string) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return k, c
}

// leaf makes a client certificate for cn, self-signed when parent is nil.
func leaf(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	signer, signerKey := tmpl, k
	if parent != nil {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &k.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, k
}

func registerDevice(t *testing.T, s *testserver.Server, h testHub, body, id string) {
	t.Helper()
	token, _ := sas.Sign(h.HostName, h.OwnerKey, "iothubowner", time.Now().Add(time.Hour))
	req, _ := http.NewRequest("PUT", "https://"+h.HostName+"/devices/"+id+"?api-version=2021-04-12", strings.NewReader(body))
	req.Header.Set("Authorization", token)
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("register %s: %s", id, resp.Status)
	}
}
