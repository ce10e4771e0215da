package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"time"
)

// leafLifetime stays under the 398 days Apple and Chrome accept for a
// server certificate.
const leafLifetime = 397 * 24 * time.Hour

// IssueLeaf mints a certificate signed by the CA for the given DNS names
// (wildcards allowed) and IP addresses, with the given extended key usages
// (server authentication when none is given). It is not cached.
func (a *Authority) IssueLeaf(names []string, ips []net.IP, usage ...x509.ExtKeyUsage) (tls.Certificate, error) {
	var req leafRequest
	for _, name := range names {
		dns, ip, ok := parseSAN(name)
		switch {
		case !ok:
			return tls.Certificate{}, fmt.Errorf("pki: issue leaf: %q is not a valid DNS name, wildcard or IP address", name)
		case ip.IsValid():
			req.ips = append(req.ips, ip)
		default:
			req.dnsNames = append(req.dnsNames, dns)
		}
	}
	for _, ip := range ips {
		addr, ok := netip.AddrFromSlice(ip)
		if !ok {
			return tls.Certificate{}, fmt.Errorf("pki: issue leaf: invalid IP address %v", ip)
		}
		req.ips = append(req.ips, addr.Unmap())
	}
	if len(req.dnsNames) == 0 && len(req.ips) == 0 {
		return tls.Certificate{}, errors.New("pki: issue leaf: no names or IP addresses")
	}
	req.usage = usage
	if len(req.usage) == 0 {
		req.usage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	cert, err := a.mint(req)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: issue leaf: %w", err)
	}
	return *cert, nil
}

// IssueClientCert mints a client-authentication certificate whose subject
// common name is commonName (for X.509 device authentication, the device
// id).
func (a *Authority) IssueClientCert(commonName string) (tls.Certificate, error) {
	if commonName == "" || len(commonName) > 64 {
		return tls.Certificate{}, fmt.Errorf("pki: issue client cert: common name must have 1 to 64 characters, got %d", len(commonName))
	}
	cert, err := a.mint(leafRequest{commonName: commonName, usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: issue client cert: %w", err)
	}
	return *cert, nil
}

type leafRequest struct {
	commonName string // defaults to the first name that fits
	dnsNames   []string
	ips        []netip.Addr
	usage      []x509.ExtKeyUsage
}

// mint creates a fresh key and a certificate for it signed by the CA.
func (a *Authority) mint(req leafRequest) (*tls.Certificate, error) {
	now := a.now()
	notBefore := now.Add(-clockSkew)
	notAfter := notBefore.Add(leafLifetime)
	if notAfter.After(a.caCert.NotAfter) {
		notAfter = a.caCert.NotAfter
	}
	if !now.Before(notAfter) {
		return nil, fmt.Errorf("CA %s expired on %s", a.caFile, a.caCert.NotAfter)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Outpost"}, CommonName: req.subjectName()},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           req.usage,
		BasicConstraintsValid: true,
		DNSNames:              req.dnsNames,
	}
	for _, ip := range req.ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.caCert, key.Public(), a.caKey)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	a.mints.Add(1)
	a.log.Debug("pki: minted certificate", "dns_names", req.dnsNames, "ip_addresses", req.ips, "common_name", leaf.Subject.CommonName, "not_after", notAfter)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// subjectName is the common name: clients match on the SANs, but people
// reading the certificate look here first.
func (r leafRequest) subjectName() string {
	if r.commonName != "" {
		return r.commonName
	}
	for _, name := range r.dnsNames {
		if len(name) <= 64 {
			return name
		}
	}
	if len(r.ips) > 0 {
		return r.ips[0].String()
	}
	return ""
}

func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}
