package blob

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// rawPath is the request path exactly as the client sent it (still
// escaped): what a Shared Key signature covers.
func rawPath(r *http.Request) string {
	p := r.RequestURI
	if p == "" || p == "*" {
		return r.URL.EscapedPath()
	}
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if strings.HasPrefix(p, "http://") || strings.HasPrefix(p, "https://") {
		if u, err := url.Parse(p); err == nil {
			return u.EscapedPath()
		}
	}
	return p
}

// canonicalizedResource is "/{account}{path}" then "\n{name}:{values}" for
// each query parameter, names lower-cased and sorted.
func canonicalizedResource(account string, r *http.Request) string {
	var b strings.Builder
	b.WriteString("/")
	b.WriteString(account)
	p := rawPath(r)
	if p == "" {
		p = "/"
	}
	b.WriteString(p)
	q, _ := url.ParseQuery(r.URL.RawQuery)
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		vs := append([]string(nil), q[k]...)
		sort.Strings(vs)
		b.WriteString("\n")
		b.WriteString(strings.ToLower(k))
		b.WriteString(":")
		b.WriteString(strings.Join(vs, ","))
	}
	return b.String()
}

// canonicalizedHeaders lists the x-ms-* headers, "name:value" lines. The
// Azure SDKs sort names with a culture-aware comparison that ignores '-'
// on the first pass; plain byte order is what the REST docs describe.
// Either is accepted, so cultureOrder picks which.
func canonicalizedHeaders(h http.Header, cultureOrder bool) string {
	var names []string
	vals := map[string]string{}
	for k, v := range h {
		n := strings.ToLower(strings.TrimSpace(k))
		if strings.HasPrefix(n, "x-ms-") {
			names = append(names, n)
			vals[n] = strings.Join(v, ",")
		}
	}
	if cultureOrder {
		sort.Slice(names, func(i, j int) bool { return cultureLess(names[i], names[j]) })
	} else {
		sort.Strings(names)
	}
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(n)
		b.WriteByte(':')
		b.WriteString(vals[n])
	}
	return b.String()
}

// cultureLess approximates the SDKs' header order: compare without
// hyphens first, then by byte order.
func cultureLess(a, b string) bool {
	sa, sb := strings.ReplaceAll(a, "-", ""), strings.ReplaceAll(b, "-", "")
	if sa != sb {
		return sa < sb
	}
	return a < b
}

// stringToSign builds the Shared Key string to sign (azure-wire §7.1).
func stringToSign(account string, r *http.Request, withDate, cultureOrder bool) string {
	h := r.Header
	length := h.Get("Content-Length")
	if length == "" && r.ContentLength > 0 {
		length = strconv.FormatInt(r.ContentLength, 10)
	}
	if length == "0" {
		length = ""
	}
	date := ""
	if withDate {
		date = h.Get("Date")
	}
	return strings.Join([]string{
		r.Method,
		h.Get("Content-Encoding"), h.Get("Content-Language"), length, h.Get("Content-MD5"), h.Get("Content-Type"),
		date,
		h.Get("If-Modified-Since"), h.Get("If-Match"), h.Get("If-None-Match"), h.Get("If-Unmodified-Since"),
		h.Get("Range"),
		canonicalizedHeaders(h, cultureOrder),
		canonicalizedResource(account, r),
	}, "\n")
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// verifySharedKey checks a Shared Key signature against the account's
// keys. It returns the string the server signed, for the error detail.
func verifySharedKey(account string, keys [2]string, r *http.Request, sig []byte) (bool, string) {
	var first string
	for _, withDate := range []bool{false, true} {
		if withDate && r.Header.Get("Date") == "" {
			continue
		}
		for _, culture := range []bool{true, false} {
			sts := stringToSign(account, r, withDate, culture)
			if first == "" {
				first = sts
			}
			for _, k := range keys {
				key, err := base64.StdEncoding.DecodeString(k)
				if err != nil || len(key) == 0 {
					continue
				}
				if hmac.Equal(hmacSHA256(key, sts), sig) {
					return true, sts
				}
			}
		}
	}
	return false, first
}
