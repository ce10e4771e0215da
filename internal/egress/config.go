package egress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout is used when Config.Timeout is 0.
const DefaultTimeout = 30 * time.Second

// Resolver looks host names up. *net.Resolver satisfies it; tests inject
// their own to play DNS rebinding.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// Config says where egress may connect. The zero value refuses everything
// but Allow; start from DefaultConfig in production.
type Config struct {
	// ServedSuffixes are DNS suffixes Outpost serves: "outpost.test" covers
	// "outpost.test" and every name under it, such as
	// "acct.blob.outpost.test". Matched case-insensitively, a trailing dot
	// ignored.
	ServedSuffixes []string
	// ServedNames are other names Outpost serves, matched exactly (the
	// machine's host name, "localhost").
	ServedNames []string
	// SelfAddr is Outpost's HTTPS listener, an IP address and port. A served
	// name on port 443 is dialed here whatever DNS says; on another port it
	// is dialed at the first of SelfAddr and ExtraSelf with that port. An
	// unspecified host (":443", "0.0.0.0:443", "[::]:443") is dialed on
	// loopback. Required when any name is served.
	SelfAddr string
	// ExtraSelf are other addresses Outpost listens on with TLS (a
	// path-style blob port), IP address and port. Never list the
	// managed-identity endpoint here.
	ExtraSelf []string
	// Allow are the operator's exceptions, dialed wherever they resolve:
	// "name", "name:port", "ip", "ip:port" or a CIDR prefix "10.1.0.0/16".
	// An entry without a port allows every port.
	Allow []string
	// AllowPublic lets egress reach public addresses, as a deployment
	// talking to real Azure needs.
	AllowPublic bool
	// TLS is cloned for every connection; RootCAs must include Outpost's CA
	// for served names to verify. Nil means the system roots. TLS 1.2 is the
	// minimum whatever it says.
	TLS *tls.Config
	// Timeout bounds connecting, the TLS handshake and the wait for response
	// headers; bodies are bounded by the request's context. 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// Resolver looks up names that are neither served nor allowed. Nil means
	// net.DefaultResolver.
	Resolver Resolver
	// InterfaceAddrs lists this machine's addresses, which are refused even
	// when public: a service on the machine's public address is as local
	// as one on loopback. Nil means net.InterfaceAddrs; tests inject one.
	InterfaceAddrs func() ([]net.Addr, error)
	// Log receives refusals at Warn. Nil discards them.
	Log *slog.Logger
}

// DefaultConfig is the production starting point: public egress on, the
// system resolver and roots. The caller adds the served names and
// listeners.
func DefaultConfig() Config {
	return Config{AllowPublic: true, Timeout: DefaultTimeout}
}

// Validate reports every problem in c at once.
func (c Config) Validate() error {
	_, err := compile(c)
	return err
}

// policy is Config parsed once: everything a dial consults, immutable.
type policy struct {
	servedSuffixes []string            // lower case, no leading or trailing dot
	servedNames    map[string]struct{} // lower case
	selfAddr       netip.AddrPort      // invalid when SelfAddr is empty
	self           []netip.AddrPort    // SelfAddr first, then ExtraSelf
	selfSet        map[netip.AddrPort]struct{}
	allowNames     map[string]struct{} // "name": any port
	allowNamePorts map[string]struct{} // "name:port"
	allowPrefixes  []netip.Prefix      // "ip" and CIDR entries: any port
	allowAddrPorts map[netip.AddrPort]struct{}
	allowPublic    bool
	resolver       Resolver
	interfaceAddrs func() ([]net.Addr, error)
}

func compile(c Config) (*policy, error) {
	p := &policy{
		servedNames:    map[string]struct{}{},
		selfSet:        map[netip.AddrPort]struct{}{},
		allowNames:     map[string]struct{}{},
		allowNamePorts: map[string]struct{}{},
		allowAddrPorts: map[netip.AddrPort]struct{}{},
		allowPublic:    c.AllowPublic,
		resolver:       c.Resolver,
		interfaceAddrs: c.InterfaceAddrs,
	}
	if p.resolver == nil {
		p.resolver = net.DefaultResolver
	}
	if p.interfaceAddrs == nil {
		p.interfaceAddrs = net.InterfaceAddrs
	}
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	for _, s := range c.ServedSuffixes {
		n := normalizeName(strings.TrimPrefix(s, "."))
		if err := checkName(n); err != nil {
			add("ServedSuffixes: %q: %w", s, err)
			continue
		}
		p.servedSuffixes = append(p.servedSuffixes, n)
	}
	for _, s := range c.ServedNames {
		n := normalizeName(s)
		if err := checkName(n); err != nil {
			add("ServedNames: %q: %w", s, err)
			continue
		}
		p.servedNames[n] = struct{}{}
	}

	if c.SelfAddr == "" {
		if len(c.ServedSuffixes)+len(c.ServedNames) > 0 {
			add("SelfAddr: required when ServedSuffixes or ServedNames are set: served names are dialed there")
		}
	} else if ap, err := parseListener(c.SelfAddr); err != nil {
		add("SelfAddr: %w", err)
	} else {
		p.selfAddr = ap
		p.self = append(p.self, ap)
	}
	for _, s := range c.ExtraSelf {
		ap, err := parseListener(s)
		if err != nil {
			add("ExtraSelf: %w", err)
			continue
		}
		p.self = append(p.self, ap)
	}
	for _, ap := range p.self {
		p.selfSet[ap] = struct{}{}
	}

	for _, a := range c.Allow {
		if err := p.addAllow(a); err != nil {
			add("Allow: %q: %w", a, err)
		}
	}

	if c.TLS != nil {
		if c.TLS.InsecureSkipVerify {
			add("TLS: InsecureSkipVerify would hand credentials to anyone on the path; add Outpost's CA to RootCAs instead")
		}
		if c.TLS.ServerName != "" {
			add("TLS: ServerName %q must be empty: each connection verifies the name it dials", c.TLS.ServerName)
		}
	}
	if c.Timeout < 0 {
		add("Timeout: must not be negative, got %s", c.Timeout)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("egress: invalid config: %w", errors.Join(errs...))
	}
	return p, nil
}

func (p *policy) addAllow(entry string) error {
	if entry == "" {
		return errors.New("empty entry")
	}
	if strings.Contains(entry, "/") {
		pfx, err := netip.ParsePrefix(entry)
		if err != nil {
			return fmt.Errorf("not a CIDR prefix: %w", err)
		}
		if pfx.Addr().Is4In6() {
			pfx = netip.PrefixFrom(pfx.Addr().Unmap(), max(pfx.Bits()-96, 0))
		}
		p.allowPrefixes = append(p.allowPrefixes, pfx.Masked())
		return nil
	}
	host, port, err := net.SplitHostPort(entry)
	if err != nil {
		// No port: a bare name or address, bracketed or not.
		host, port = strings.TrimSuffix(strings.TrimPrefix(entry, "["), "]"), ""
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap().WithZone("")
		if port == "" {
			p.allowPrefixes = append(p.allowPrefixes, netip.PrefixFrom(ip, ip.BitLen()))
			return nil
		}
		n, err := parsePort(port)
		if err != nil {
			return err
		}
		p.allowAddrPorts[netip.AddrPortFrom(ip, n)] = struct{}{}
		return nil
	}
	name := normalizeName(host)
	if err := checkName(name); err != nil {
		return err
	}
	if port == "" {
		p.allowNames[name] = struct{}{}
		return nil
	}
	n, err := parsePort(port)
	if err != nil {
		return err
	}
	p.allowNamePorts[net.JoinHostPort(name, strconv.Itoa(int(n)))] = struct{}{}
	return nil
}

// parseListener parses an address Outpost listens on into the address to
// dial it at.
func parseListener(s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q is not ip:port: %w", s, err)
	}
	n, err := parsePort(port)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: %w", s, err)
	}
	var ip netip.Addr
	switch host {
	case "":
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	default:
		ip, err = netip.ParseAddr(host)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("%q: the host must be an IP address, since it is dialed without DNS: %w", s, err)
		}
		ip = ip.Unmap()
		if ip.IsUnspecified() {
			// Listening on every interface; loopback is one of them.
			if ip.Is4() {
				ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
			} else {
				ip = netip.IPv6Loopback()
			}
		}
	}
	return netip.AddrPortFrom(ip, n), nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return uint16(n), nil
}

// normalizeName lower-cases a DNS name and drops the trailing dot of a
// fully qualified one, so "ACCT.blob.outpost.test." matches
// "acct.blob.outpost.test".
func normalizeName(s string) string {
	return strings.TrimSuffix(strings.ToLower(s), ".")
}

func checkName(n string) error {
	if n == "" {
		return errors.New("empty name")
	}
	if _, err := netip.ParseAddr(n); err == nil {
		return errors.New("is an IP address; list Outpost's addresses in SelfAddr or ExtraSelf and others in Allow")
	}
	if strings.ContainsAny(n, ":/[]@ ") {
		return errors.New("is not a DNS name")
	}
	return nil
}
