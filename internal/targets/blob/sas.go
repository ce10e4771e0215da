package blob

import (
	"crypto/hmac"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/outpost-iot/outpost/internal/targets/storage"
)

// sasKind is which of the three SAS forms a query carries.
type sasKind int

const (
	serviceSAS sasKind = iota
	accountSAS
	delegationSAS
)

func (k sasKind) String() string {
	return [...]string{"service SAS", "account SAS", "user delegation SAS"}[k]
}

// sasToken is a parsed SAS query.
type sasToken struct {
	kind sasKind
	q    url.Values
	sig  []byte
}

func (t sasToken) get(k string) string { return t.q.Get(k) }

// isSAS reports whether a query carries a SAS (a signature).
func isSAS(q url.Values) bool { return q.Has("sig") }

func parseSAS(q url.Values) (sasToken, error) {
	sig, err := base64.StdEncoding.DecodeString(q.Get("sig"))
	if err != nil || len(sig) == 0 {
		return sasToken{}, errAuthenticationFailed("sig is not a base64 signature.")
	}
	t := sasToken{q: q, sig: sig}
	switch {
	case q.Get("ss") != "" || q.Get("srt") != "":
		t.kind = accountSAS
	case q.Get("skoid") != "":
		t.kind = delegationSAS
	}
	if q.Get("sv") == "" {
		return sasToken{}, errAuthenticationFailed("sv (the signed version) is mandatory.")
	}
	if q.Get("si") != "" {
		return sasToken{}, errAuthenticationFailed("si names a stored access policy; Outpost does not keep stored access policies. Sign the SAS with explicit sp and se instead.")
	}
	if q.Get("se") == "" {
		return sasToken{}, errAuthenticationFailed("se (the signed expiry) is mandatory.")
	}
	if q.Get("sp") == "" {
		return sasToken{}, errAuthenticationFailed("sp (the signed permissions) is mandatory.")
	}
	return t, nil
}

// parseSASTime reads the ISO 8601 forms SAS times come in.
func parseSASTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04Z", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// sasTimeKey is the canonical form a user delegation key's times are
// hashed in, so "…:00Z" and "…:00.000Z" derive the same key.
func sasTimeKey(s string) string {
	t, ok := parseSASTime(s)
	if !ok {
		return s
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

func sasCanonicalName(account, container, blob string) string {
	if blob == "" {
		return "/blob/" + account + "/" + container
	}
	return "/blob/" + account + "/" + container + "/" + blob
}

// stringsToSign returns the candidate strings to sign of a token for the
// request's resource: one per layout its sv may use.
func (t sasToken) stringsToSign(account, container, blob string) ([]string, error) {
	g := t.get
	sv := g("sv")
	resp := []string{g("rscc"), g("rscd"), g("rsce"), g("rscl"), g("rsct")}
	join := func(parts ...[]string) string {
		var all []string
		for _, p := range parts {
			all = append(all, p...)
		}
		return strings.Join(all, "\n")
	}
	switch t.kind {
	case accountSAS:
		base := []string{account, g("sp"), g("ss"), g("srt"), g("st"), g("se"), g("sip"), g("spr"), sv}
		if sv >= "2020-12-06" {
			return []string{join(base, []string{g("ses"), ""})}, nil
		}
		return []string{join(base, []string{""})}, nil
	case serviceSAS:
		if sv < "2015-04-05" {
			return nil, errAuthenticationFailed(fmt.Sprintf("sv %s is older than 2015-04-05, the oldest SAS version accepted.", sv))
		}
		canon := sasCanonicalName(account, container, blob)
		if g("sr") == "c" {
			canon = sasCanonicalName(account, container, "")
		}
		head := []string{g("sp"), g("st"), g("se"), canon, g("si"), g("sip"), g("spr"), sv}
		switch {
		case sv >= "2020-12-06":
			return []string{join(head, []string{g("sr"), g("snapshot"), g("ses")}, resp)}, nil
		case sv >= "2018-11-09":
			return []string{join(head, []string{g("sr"), g("snapshot")}, resp)}, nil
		}
		return []string{join(head, resp)}, nil
	default:
		if sv < "2018-11-09" {
			return nil, errAuthenticationFailed(fmt.Sprintf("sv %s is older than 2018-11-09, the first version with user delegation SAS.", sv))
		}
		canon := sasCanonicalName(account, container, blob)
		if g("sr") == "c" {
			canon = sasCanonicalName(account, container, "")
		}
		head := []string{g("sp"), g("st"), g("se"), canon, g("skoid"), g("sktid"), g("skt"), g("ske"), g("sks"), g("skv")}
		tail := []string{g("sip"), g("spr"), sv, g("sr"), g("snapshot")}
		agents := []string{g("saoid"), g("suoid"), g("scid")}
		switch {
		case sv >= "2025-07-05":
			delegated := []string{g("skdutid"), g("sduoid")}
			// Versions after 2025-07-05 add signed request headers and query
			// parameters (azblob 1.8.3 signs them); Azurite's 2025-07-05
			// layout has neither, so both are tried.
			return []string{
				join(head, agents, delegated, tail, []string{g("ses"), g("srh"), g("srq")}, resp),
				join(head, agents, delegated, tail, []string{g("ses")}, resp),
			}, nil
		case sv >= "2020-12-06":
			return []string{join(head, agents, tail, []string{g("ses")}, resp)}, nil
		case sv >= "2020-02-10":
			return []string{join(head, agents, tail, resp)}, nil
		}
		return []string{join(head, tail, resp)}, nil
	}
}

// delegationKeyFor derives the user delegation key a token was signed with.
func delegationKeyFor(a storage.Account, t sasToken) []byte {
	return a.DelegationKey(t.get("skoid"), t.get("sktid"), sasTimeKey(t.get("skt")), sasTimeKey(t.get("ske")), t.get("sks"), t.get("skv"))
}

// verifySAS checks a token's signature, times, protocol and source address.
// Permissions are checked by the caller, per operation.
func verifySAS(a storage.Account, t sasToken, r *http.Request, container, blob string, ip netip.Addr, now time.Time) error {
	candidates, err := t.stringsToSign(a.Name, container, blob)
	if err != nil {
		return err
	}
	var keys [][]byte
	if t.kind == delegationSAS {
		keys = append(keys, delegationKeyFor(a, t))
	} else {
		for _, k := range a.Keys {
			if b, err := base64.StdEncoding.DecodeString(k); err == nil && len(b) > 0 {
				keys = append(keys, b)
			}
		}
	}
	ok := false
	for _, sts := range candidates {
		for _, k := range keys {
			if hmac.Equal(hmacSHA256(k, sts), t.sig) {
				ok = true
			}
		}
	}
	if !ok {
		return errAuthenticationFailed(fmt.Sprintf("Signature did not match. String to sign used was %s", strings.ReplaceAll(candidates[0], "\n", `\n`)))
	}
	start, expiry := t.get("st"), t.get("se")
	se, okE := parseSASTime(expiry)
	if !okE {
		return errAuthenticationFailed(fmt.Sprintf("se '%s' is not an ISO 8601 UTC time such as 2024-01-01T00:00:00Z.", expiry))
	}
	if start != "" {
		st, okS := parseSASTime(start)
		if !okS {
			return errAuthenticationFailed(fmt.Sprintf("st '%s' is not an ISO 8601 UTC time such as 2024-01-01T00:00:00Z.", start))
		}
		if now.Before(st) {
			return errAuthenticationFailed(fmt.Sprintf("Signed start time [%s] must be before current time [%s].", st.UTC().Format(http.TimeFormat), now.UTC().Format(http.TimeFormat)))
		}
	}
	if !now.Before(se) {
		return errAuthenticationFailed(fmt.Sprintf("Signed expiry time [%s] must be after current time [%s].", se.UTC().Format(http.TimeFormat), now.UTC().Format(http.TimeFormat)))
	}
	if t.kind == delegationSAS {
		skt, ok1 := parseSASTime(t.get("skt"))
		ske, ok2 := parseSASTime(t.get("ske"))
		if !ok1 || !ok2 || now.Before(skt) || !now.Before(ske) {
			return errAuthenticationFailed(fmt.Sprintf("The user delegation key is not valid now: it runs from %s to %s. Get a new one with Get User Delegation Key.", t.get("skt"), t.get("ske")))
		}
	}
	if spr := t.get("spr"); spr != "" && !strings.Contains(spr, "http,") && !strings.HasSuffix(spr, ",http") && spr != "http" && r.TLS == nil {
		return errorf(http.StatusForbidden, "AuthorizationProtocolMismatch",
			"This request is not authorized to perform this operation using this protocol: the SAS allows only %s and the request came over http.", spr)
	}
	if sip := t.get("sip"); sip != "" && !ipInRange(sip, ip) {
		return errorf(http.StatusForbidden, "AuthorizationSourceIPMismatch",
			"This request is not authorized to perform this operation using this source IP %s: the SAS admits only %s.", ip, sip)
	}
	if t.kind == accountSAS && !strings.Contains(t.get("ss"), "b") {
		return errorf(http.StatusForbidden, "AuthorizationServiceMismatch",
			"This request is not authorized to perform this operation using this service: the account SAS covers services '%s', not b (blob).", t.get("ss"))
	}
	return nil
}

// ipInRange checks a sip value: one address or "from-to".
func ipInRange(sip string, ip netip.Addr) bool {
	ip = ip.Unmap()
	from, to, isRange := strings.Cut(sip, "-")
	lo, err := netip.ParseAddr(strings.TrimSpace(from))
	if err != nil {
		return false
	}
	if !isRange {
		return lo.Unmap() == ip
	}
	hi, err := netip.ParseAddr(strings.TrimSpace(to))
	if err != nil {
		return false
	}
	return lo.Unmap().Compare(ip) <= 0 && ip.Compare(hi.Unmap()) <= 0
}
