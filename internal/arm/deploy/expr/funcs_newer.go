package expr

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"strings"
)

// Functions ARM gained alongside newer Bicep releases: the CIDR functions
// (template-functions-cidr.md), like, distinct, fail and deployer.
func newerFunctions() []*function {
	return []*function{
		fixed("parseCidr", 1, pure(fnParseCIDR)),
		fixed("cidrSubnet", 3, pure(fnCIDRSubnet)),
		fixed("cidrHost", 2, pure(fnCIDRHost)),
		fixed("like", 2, pure(fnLike)),
		fixed("distinct", 1, pure(func(args []any) (any, error) {
			arr, err := argArray(args, 0)
			if err != nil {
				return nil, err
			}
			out := []any{}
			for _, e := range arr {
				if !containsValue(out, e) {
					out = append(out, e)
				}
			}
			return out, nil
		})),
		fixed("fail", 1, pure(func(args []any) (any, error) {
			msg, err := argString(args, 0)
			if err != nil {
				return nil, err
			}
			return nil, &EvalError{Function: "fail", standalone: true, Err: errors.New(msg)}
		})),
		fixed("deployer", 0, func(ctx *Context, _ []any) (any, error) {
			d := ctx.Deployer
			return map[string]any{"objectId": d.ObjectID, "tenantId": or(d.TenantID, ctx.Tenant.ID), "userPrincipalName": d.UserPrincipalName}, nil
		}),
	}
}

// Deployer is what deployer() reports: the principal running the
// deployment.
type Deployer struct {
	ObjectID          string
	TenantID          string
	UserPrincipalName string
}

func cidrArg(args []any) (netip.Prefix, error) {
	s, err := argString(args, 0)
	if err != nil {
		return netip.Prefix{}, err
	}
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("'%s' is not an IP address range in CIDR notation such as 10.0.0.0/16", s)
	}
	return p.Masked(), nil
}

// addrAdd returns a + n (n may be negative) and whether it stayed in the
// address family.
func addrAdd(a netip.Addr, n *big.Int) (netip.Addr, bool) {
	v := new(big.Int).SetBytes(a.AsSlice())
	v.Add(v, n)
	size := a.BitLen() / 8
	if v.Sign() < 0 || v.BitLen() > a.BitLen() {
		return netip.Addr{}, false
	}
	buf := make([]byte, size)
	v.FillBytes(buf)
	out, _ := netip.AddrFromSlice(buf)
	return out, true
}

// lastAddr is the highest address of a prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	hostBits := p.Addr().BitLen() - p.Bits()
	span := new(big.Int).Lsh(big.NewInt(1), uint(hostBits))
	last, _ := addrAdd(p.Addr(), span.Sub(span, big.NewInt(1)))
	return last
}

func maskAddr(bits, total int) netip.Addr {
	buf := make([]byte, total/8)
	for i := range bits {
		buf[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(buf)
	return a
}

// fnParseCIDR describes a range; IPv6 has no broadcast address, and its
// first usable address is the network address itself, as the docs show.
func fnParseCIDR(args []any) (any, error) {
	p, err := cidrArg(args)
	if err != nil {
		return nil, err
	}
	network, last := p.Addr(), lastAddr(p)
	out := map[string]any{
		"network": network.String(),
		"netmask": maskAddr(p.Bits(), network.BitLen()).String(),
		"cidr":    int64(p.Bits()),
	}
	if network.Is4() {
		out["broadcast"] = last.String()
		first, lastUsable := network, last
		if p.Bits() < 31 {
			first, _ = addrAdd(network, big.NewInt(1))
			lastUsable, _ = addrAdd(last, big.NewInt(-1))
		}
		out["firstUsable"], out["lastUsable"] = first.String(), lastUsable.String()
	} else {
		out["firstUsable"], out["lastUsable"] = network.String(), last.String()
	}
	return out, nil
}

func fnCIDRSubnet(args []any) (any, error) {
	p, err := cidrArg(args)
	if err != nil {
		return nil, err
	}
	bits, err := argInt(args, 1)
	if err != nil {
		return nil, err
	}
	index, err := argInt(args, 2)
	if err != nil {
		return nil, err
	}
	if bits < int64(p.Bits()) || bits > int64(p.Addr().BitLen()) {
		return nil, fmt.Errorf("the new CIDR /%d must be from /%d (the network's) to /%d", bits, p.Bits(), p.Addr().BitLen())
	}
	count := new(big.Int).Lsh(big.NewInt(1), uint(bits)-uint(p.Bits()))
	if index < 0 || big.NewInt(index).Cmp(count) >= 0 {
		return nil, fmt.Errorf("the subnet index %d is out of range: %s splits into %s /%d subnets", index, p, count, bits)
	}
	offset := new(big.Int).Lsh(big.NewInt(index), uint(p.Addr().BitLen())-uint(bits))
	start, _ := addrAdd(p.Addr(), offset)
	return netip.PrefixFrom(start, int(bits)).String(), nil
}

func fnCIDRHost(args []any) (any, error) {
	p, err := cidrArg(args)
	if err != nil {
		return nil, err
	}
	index, err := argInt(args, 1)
	if err != nil {
		return nil, err
	}
	host, ok := addrAdd(p.Addr(), big.NewInt(index+1))
	limit := lastAddr(p)
	if p.Addr().Is4() && p.Bits() < 31 {
		limit, _ = addrAdd(limit, big.NewInt(-1))
	}
	if index < 0 || !ok || host.Compare(limit) > 0 {
		return nil, fmt.Errorf("the host index %d is outside the usable addresses of %s", index, p)
	}
	return host.String(), nil
}

// fnLike matches a pattern where '*' is any run of characters, ignoring
// case.
func fnLike(args []any) (any, error) {
	parts, err := allStrings(args)
	if err != nil {
		return nil, err
	}
	return wildcardMatch([]rune(strings.ToLower(parts[0])), []rune(strings.ToLower(parts[1]))), nil
}

func wildcardMatch(s, pattern []rune) bool {
	// Greedy with backtracking to the last star: linear for one star,
	// O(len(s)·len(pattern)) at worst.
	si, pi, star, mark := 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(pattern) && pattern[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(pattern) && pattern[pi] == s[si]:
			si++
			pi++
		case star >= 0:
			pi, mark = star+1, mark+1
			si = mark
		default:
			return false
		}
	}
	for pi < len(pattern) && pattern[pi] == '*' {
		pi++
	}
	return pi == len(pattern)
}
