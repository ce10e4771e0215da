package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// ServerTLSConfig returns a new config that serves the CA's leaves (see the
// package documentation for which leaf a handshake gets). Callers may add to
// it, e.g. NextProtos or ClientAuth with ClientCAs set to CertPool().
func (a *Authority) ServerTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: a.getCertificate,
	}
}

func (a *Authority) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	ctx := hello.Context()
	if ctx == nil { // a ClientHelloInfo built outside crypto/tls
		ctx = context.Background()
	}
	local := localAddr(hello.Conn)
	name := normalizeName(hello.ServerName)
	switch {
	case name == "" || isIPAddress(name): // clients should not send an IP as SNI, but some do
		return a.defaultLeaf(ctx, local)
	case covers(a.defaultDNS, name):
		return a.defaultLeaf(ctx, netip.Addr{})
	case !validDNSName(name) || a.allow == nil || !a.allow(name):
		// The default leaf makes the client fail with a hostname mismatch
		// that lists the names it is valid for, which says more than an
		// aborted handshake would.
		a.log.Debug("pki: no certificate for server name; serving the default", "server_name", name)
		return a.defaultLeaf(ctx, local)
	}
	cert, err := a.leaves.get(ctx, "dns:"+name, a.now(), func() (*tls.Certificate, error) {
		return a.mint(leafRequest{dnsNames: []string{name}, usage: serverAuth()})
	})
	if err != nil {
		return nil, fmt.Errorf("pki: certificate for %q: %w", name, err)
	}
	return cert, nil
}

// defaultLeaf returns the default leaf, extended with local when that
// address is not already in it.
func (a *Authority) defaultLeaf(ctx context.Context, local netip.Addr) (*tls.Certificate, error) {
	key, ips := "default", a.defaultIPs
	if local.IsValid() && !slices.Contains(ips, local) {
		key, ips = "default@"+local.String(), append(slices.Clip(ips), local)
	}
	cert, err := a.leaves.get(ctx, key, a.now(), func() (*tls.Certificate, error) {
		return a.mint(leafRequest{dnsNames: a.defaultDNS, ips: ips, usage: serverAuth()})
	})
	if err != nil {
		return nil, fmt.Errorf("pki: default certificate: %w", err)
	}
	return cert, nil
}

// localAddr is the IP address the client dialed, if conn is a TCP
// connection. A link-local zone is dropped: certificates cannot carry it.
func localAddr(conn net.Conn) netip.Addr {
	if conn == nil {
		return netip.Addr{}
	}
	tcp, ok := conn.LocalAddr().(*net.TCPAddr)
	if !ok {
		return netip.Addr{}
	}
	ip, ok := netip.AddrFromSlice(tcp.IP)
	if !ok {
		return netip.Addr{}
	}
	return ip.Unmap()
}

func isIPAddress(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

func serverAuth() []x509.ExtKeyUsage { return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} }
