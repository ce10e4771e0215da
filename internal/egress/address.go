package egress

import "net/netip"

// nonPublic lists the special-purpose ranges of the IANA IPv4 and IPv6
// registries that must not be reached as if they were the internet, most
// specific first. IPv6 outside 2000::/3 is caught by classify even when
// not listed; the IPv6 entries here only give it a better name.
var nonPublic = []struct {
	prefix netip.Prefix
	class  string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified (this-network) address"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (CGNAT) address"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local address (the range of the cloud metadata service 169.254.169.254)"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol-assignment address"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation address"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay address"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved address"},

	{netip.MustParsePrefix("::/128"), "unspecified address"},
	{netip.MustParsePrefix("::1/128"), "loopback address"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible IPv6 address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64 address"},
	{netip.MustParsePrefix("100::/64"), "discard-only address"},
	{netip.MustParsePrefix("2001::/23"), "IETF protocol-assignment address (Teredo, benchmarking, ORCHID)"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation address"},
	{netip.MustParsePrefix("2002::/16"), "6to4 address"},
	{netip.MustParsePrefix("3fff::/20"), "documentation address"},
	{netip.MustParsePrefix("fc00::/7"), "private (unique local) address"},
	{netip.MustParsePrefix("fe80::/10"), "link-local address"},
	{netip.MustParsePrefix("fec0::/10"), "site-local address"},
	{netip.MustParsePrefix("ff00::/8"), "multicast address"},
}

var (
	// nat64 is the well-known NAT64 prefix: a DNS64 resolver on an
	// IPv6-only network answers with it for every IPv4-only name, so its
	// addresses are judged by the IPv4 address they embed.
	nat64 = netip.MustParsePrefix("64:ff9b::/96")
	// globalUnicast6 is the only IPv6 range IANA allocates for the internet.
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
)

// classify returns why ip is not a public internet address ("loopback
// address"), or "" when it is one.
func classify(ip netip.Addr) string {
	if !ip.IsValid() {
		return "invalid address"
	}
	ip = ip.WithZone("")
	if ip.Is4In6() {
		return classify(ip.Unmap())
	}
	if nat64.Contains(ip) {
		b := ip.As16()
		if c := classify(netip.AddrFrom4([4]byte(b[12:]))); c != "" {
			return "NAT64 address of a " + c
		}
		return ""
	}
	for _, r := range nonPublic {
		if r.prefix.Contains(ip) {
			return r.class
		}
	}
	if ip.Is6() && !globalUnicast6.Contains(ip) {
		return "reserved IPv6 address"
	}
	return ""
}
