package egress

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// allowFlag is the setting a refusal tells the operator to change.
const allowFlag = "--egress-allow"

// RefusedError is a request egress would not send, and why.
type RefusedError struct {
	// URL is the request's URL without query or user info (SAS signatures
	// and passwords live there). Empty when the refusal came from the
	// transport of HTTPClient, which does not know it.
	URL string
	// Addr is the host:port the request was for.
	Addr string
	// IP is the resolved address that was refused, when the host is a name.
	IP string
	// Reason says why and what to change.
	Reason string
}

func (e *RefusedError) Error() string {
	target := e.Addr
	if target == "" {
		target = e.URL
	}
	return "egress to " + target + " refused: " + e.Reason
}

// plan returns the addresses a connection to hostport may be made to, in
// the order to try them, or why none may. Each returned address has
// passed the policy; dialing them needs no further DNS.
func (p *policy) plan(ctx context.Context, hostport string) ([]netip.AddrPort, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("egress: %q is not host:port: %w", hostport, err)
	}
	port, err := parsePort(portStr)
	if err != nil {
		return nil, &RefusedError{Addr: hostport, Reason: err.Error()}
	}

	if ip, err := netip.ParseAddr(host); err == nil {
		ap := netip.AddrPortFrom(ip.Unmap(), port)
		if reason := p.checkIP(ap); reason != "" {
			return nil, &RefusedError{Addr: hostport, Reason: reason + "; " + p.hint(hostport)}
		}
		return []netip.AddrPort{ap}, nil
	}

	name := normalizeName(host)
	if p.served(name) {
		ap, ok := p.selfFor(port)
		if !ok {
			return nil, &RefusedError{Addr: hostport, Reason: fmt.Sprintf(
				"%s is a name Outpost serves, but Outpost does not listen on port %d; use its HTTPS port", name, port)}
		}
		return []netip.AddrPort{ap}, nil
	}
	_, anyPort := p.allowNames[name]
	_, thisPort := p.allowNamePorts[net.JoinHostPort(name, strconv.Itoa(int(port)))]
	allowed := anyPort || thisPort

	ips, err := p.resolver.LookupIPAddr(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("egress: resolve %s: %w", name, err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("egress: resolve %s: no addresses", name)
	}
	aps := make([]netip.AddrPort, 0, len(ips))
	for _, ia := range ips {
		ip, ok := netip.AddrFromSlice(ia.IP)
		if !ok {
			return nil, fmt.Errorf("egress: resolve %s: invalid address %v", name, ia.IP)
		}
		ip = ip.Unmap().WithZone(ia.Zone)
		ap := netip.AddrPortFrom(ip, port)
		if !allowed {
			// Every address, not just the first: the dialer would fall
			// back to the next one.
			if reason := p.checkResolved(ap); reason != "" {
				return nil, &RefusedError{Addr: hostport, IP: ip.String(), Reason: fmt.Sprintf(
					"%s resolves to %s (%s) and is not a name Outpost serves; %s", name, ip, reason, p.hint(hostport))}
			}
		}
		aps = append(aps, ap)
	}
	return aps, nil
}

// checkIP judges an address the URL named literally. It returns "" when
// it may be dialed.
func (p *policy) checkIP(ap netip.AddrPort) string {
	if _, ok := p.selfSet[ap]; ok {
		return ""
	}
	if p.allowedIP(ap) {
		return ""
	}
	if c := classify(ap.Addr()); c != "" {
		return c + " not served by Outpost"
	}
	return p.checkPublic(ap.Addr())
}

// checkResolved judges an address a name resolved to. Unlike checkIP it
// does not accept Outpost's own listeners: served names are matched by
// name, and a foreign name pointing at loopback is what rebinding looks
// like.
func (p *policy) checkResolved(ap netip.AddrPort) string {
	if p.allowedIP(ap) {
		return ""
	}
	if c := classify(ap.Addr()); c != "" {
		return c
	}
	return p.checkPublic(ap.Addr())
}

// checkPublic judges a public address. It lists the interfaces on every
// call, as they change; that happens once per new connection, not per
// request.
func (p *policy) checkPublic(ip netip.Addr) string {
	if !p.allowPublic {
		return "public address, and public egress is turned off"
	}
	addrs, err := p.interfaceAddrs()
	if err != nil {
		// Fail closed: without the list, this could be the machine itself.
		return "public address that could not be compared with this machine's own (" + err.Error() + ")"
	}
	ip = ip.WithZone("")
	for _, a := range addrs {
		var local net.IP
		switch a := a.(type) {
		case *net.IPNet:
			local = a.IP
		case *net.IPAddr:
			local = a.IP
		}
		if l, ok := netip.AddrFromSlice(local); ok && l.Unmap() == ip {
			return "address of this machine not served by Outpost"
		}
	}
	return ""
}

func (p *policy) allowedIP(ap netip.AddrPort) bool {
	if _, ok := p.allowAddrPorts[netip.AddrPortFrom(ap.Addr().WithZone(""), ap.Port())]; ok {
		return true
	}
	for _, pfx := range p.allowPrefixes {
		if pfx.Contains(ap.Addr().WithZone("")) {
			return true
		}
	}
	return false
}

func (p *policy) served(name string) bool {
	if _, ok := p.servedNames[name]; ok {
		return true
	}
	for _, s := range p.servedSuffixes {
		if name == s || strings.HasSuffix(name, "."+s) {
			return true
		}
	}
	return false
}

// selfFor is the listener a served name on port is dialed at: SelfAddr for
// 443 (the port every Azure URL implies), else the first listener on that
// port.
func (p *policy) selfFor(port uint16) (netip.AddrPort, bool) {
	if port == 443 && p.selfAddr.IsValid() {
		return p.selfAddr, true
	}
	for _, ap := range p.self {
		if ap.Port() == port {
			return ap, true
		}
	}
	return netip.AddrPort{}, false
}

func (p *policy) hint(hostport string) string {
	return "add " + hostport + " to " + allowFlag + " to permit it"
}
