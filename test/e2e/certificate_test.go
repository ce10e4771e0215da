package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/google/uuid"

	"github.com/outpost-iot/outpost/internal/testserver"
)

// TestCertificateCredential: a service principal with a certificate
// credential (added with `outpost ad sp credential reset --cert`) signs in
// with azidentity's unmodified ClientCertificateCredential.
func TestCertificateCredential(t *testing.T) {
	bin := testserver.BuildBinary(t)
	s := testserver.Start(t)
	sp := outpostCLI(t, bin, s, "ad", "sp", "create", "--name", "cert-app")
	appID, oid := sp["appId"].(string), sp["objectId"].(string)

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cert-app"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	certFile := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	outpostCLI(t, bin, s, "ad", "sp", "credential", "reset", "--id", appID, "--cert", certFile)

	sub := s.App.Installation().SubscriptionID
	op := armCall{t, s, s.Token(t, testserver.ARMResource)}
	reader := "/subscriptions/" + sub + "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"
	if code, body := op.do("PUT", "/subscriptions/"+sub+"/providers/Microsoft.Authorization/roleAssignments/"+uuid.NewString()+"?api-version=2022-04-01",
		`{"properties":{"roleDefinitionId":"`+reader+`","principalId":"`+oid+`"}}`); code != 201 {
		t.Fatalf("assign Reader: %d %v", code, body)
	}

	certs, pk, err := azidentity.ParseCertificates(append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})...), nil)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := azidentity.NewClientCertificateCredential(s.App.Installation().TenantID, appID, certs, pk,
		&azidentity.ClientCertificateCredentialOptions{
			ClientOptions:            azcore.ClientOptions{Cloud: cloudConfig(s), Transport: s.HTTPClient()},
			DisableInstanceDiscovery: true,
		})
	if err != nil {
		t.Fatal(err)
	}
	groups, _ := armresources.NewResourceGroupsClient(sub, cred, armOptions(s))
	if _, err := groups.NewListPager(nil).NextPage(context.Background()); err != nil {
		t.Fatalf("list groups with a certificate credential: %v", err)
	}

	// A certificate that was never registered is refused.
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherDER, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &other.PublicKey, other)
	otherCert, _ := x509.ParseCertificate(otherDER)
	bad, err := azidentity.NewClientCertificateCredential(s.App.Installation().TenantID, appID, []*x509.Certificate{otherCert}, other,
		&azidentity.ClientCertificateCredentialOptions{
			ClientOptions:            azcore.ClientOptions{Cloud: cloudConfig(s), Transport: s.HTTPClient()},
			DisableInstanceDiscovery: true,
		})
	if err != nil {
		t.Fatal(err)
	}
	badGroups, _ := armresources.NewResourceGroupsClient(sub, bad, armOptions(s))
	if _, err := badGroups.NewListPager(nil).NextPage(context.Background()); err == nil {
		t.Fatal("an unregistered certificate signed in")
	}
}
