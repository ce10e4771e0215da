package hubresource

import (
	"context"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/arm"
	"github.com/outpost-iot/outpost/internal/store"
)

// CertificateType is the ARM type of a hub's CA certificates.
const CertificateType = "Microsoft.Devices/IotHubs/certificates"

// Certificates is the IotHubs/certificates child type: CA certificates that
// sign the client certificates of certificateAuthority devices. Outpost has
// no proof-of-possession flow yet, so a certificate is trusted when it is
// uploaded with isVerified: true (as Azure allows at upload).
type Certificates struct{ now func() time.Time }

// NewCertificates builds the type.
func NewCertificates(now func() time.Time) *Certificates { return &Certificates{now: now} }

// Info implements arm.ResourceType.
func (c *Certificates) Info() arm.TypeInfo {
	return arm.TypeInfo{Namespace: "Microsoft.Devices", Type: "IotHubs/certificates", APIVersions: APIVersions()}
}

// ParseCertificate reads a certificate given as PEM or as base64 DER.
func ParseCertificate(s string) (*x509.Certificate, error) {
	s = strings.TrimSpace(s)
	if block, _ := pem.Decode([]byte(s)); block != nil {
		return x509.ParseCertificate(block.Bytes)
	}
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// Prepare implements arm.ResourceType.
func (c *Certificates) Prepare(_ context.Context, req arm.PutRequest) (arm.Document, error) {
	var in struct {
		Certificate string `json:"certificate"`
		IsVerified  bool   `json:"isVerified"`
	}
	if err := req.Body.Decode("properties", &in); err != nil {
		return nil, flat(http.StatusBadRequest, "400004", "The certificate properties are invalid: %v", err)
	}
	cert, err := ParseCertificate(in.Certificate)
	if err != nil {
		return nil, flat(http.StatusBadRequest, "400004", "properties.certificate must be a PEM or base64 DER X.509 certificate: %v", err)
	}
	if !cert.IsCA {
		return nil, flat(http.StatusBadRequest, "400004", "The certificate '%s' is not a CA certificate (basic constraints CA:true).", cert.Subject.CommonName)
	}
	sum := sha1.Sum(cert.Raw)
	now := c.now().UTC().Format(time.RFC1123)
	created := now
	if req.Current != nil {
		if doc, err := arm.ParseDocument(req.Current.Body); err == nil {
			var old struct {
				Created string `json:"created"`
			}
			_ = doc.Decode("properties", &old)
			if old.Created != "" {
				created = old.Created
			}
		}
	}
	doc := arm.Document{}
	doc.Set("properties", map[string]any{
		"subject": cert.Subject.CommonName, "expiry": cert.NotAfter.UTC().Format(time.RFC1123),
		"thumbprint": strings.ToUpper(hex.EncodeToString(sum[:])), "isVerified": in.IsVerified,
		"created": created, "updated": now,
		"certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
	})
	return doc, nil
}

// Provision implements arm.ResourceType.
func (c *Certificates) Provision(_ context.Context, _ arm.ResourceID, doc arm.Document) (arm.Document, error) {
	return doc, nil
}

// Deprovision implements arm.ResourceType.
func (c *Certificates) Deprovision(context.Context, store.Resource) error { return nil }

// VerifiedCAs returns the verified CA certificates of a hub from its stored
// certificate resources.
func VerifiedCAs(ctx context.Context, resources store.Resources, hubID string) ([]*x509.Certificate, error) {
	list, err := resources.List(ctx, store.ResourceFilter{ParentID: hubID, Type: CertificateType})
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for _, r := range list {
		doc, err := arm.ParseDocument(r.Body)
		if err != nil {
			continue
		}
		var p struct {
			Certificate string `json:"certificate"`
			IsVerified  bool   `json:"isVerified"`
		}
		if doc.Decode("properties", &p) != nil || !p.IsVerified {
			continue
		}
		if cert, err := ParseCertificate(p.Certificate); err == nil {
			out = append(out, cert)
		}
	}
	return out, nil
}
