package pki

import (
	"net/netip"
	"strings"
)

// normalizeName lower-cases a host name and drops a trailing dot, the forms
// under which DNS treats names as equal.
func normalizeName(name string) string {
	return strings.TrimSuffix(strings.ToLower(name), ".")
}

// validDNSName reports whether name (already normalized) is a host name a
// strict client accepts in a certificate: letters, digits and hyphens in
// labels of 1 to 63 characters, no wildcard, and not all-numeric at the end
// (which would read as an IP address).
func validDNSName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	var last string
	for label := range strings.SplitSeq(name, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
		last = label
	}
	return strings.Trim(last, "0123456789") != ""
}

// parseSAN reads an entry of Options.Names or IssueLeaf's names: an IP
// address, a DNS name, or a wildcard over a zone of at least two labels.
func parseSAN(name string) (dns string, ip netip.Addr, ok bool) {
	if ip, err := netip.ParseAddr(name); err == nil && ip.Zone() == "" {
		return "", ip.Unmap(), true
	}
	dns = normalizeName(name)
	if zone, wild := strings.CutPrefix(dns, "*."); wild {
		return dns, netip.Addr{}, validDNSName(zone) && strings.Contains(zone, ".")
	}
	return dns, netip.Addr{}, validDNSName(dns)
}

// covers reports whether one of patterns matches name the way TLS clients
// match certificate names: exactly, or through a wildcard standing for
// exactly one leading label.
func covers(patterns []string, name string) bool {
	label, parent, hasParent := strings.Cut(name, ".")
	for _, p := range patterns {
		if p == name {
			return true
		}
		if zone, wild := strings.CutPrefix(p, "*."); wild && hasParent && label != "" && parent == zone {
			return true
		}
	}
	return false
}
