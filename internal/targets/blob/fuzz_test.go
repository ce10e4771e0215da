package blob

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/outpost-iot/outpost/internal/targets/storage"
)

// FuzzParseBlockList: a Put Block List body either parses into ids that
// are base64 of 1–64 bytes, all of one length, or is refused with a 400;
// what is accepted, written back as a block list, reads back the same.
func FuzzParseBlockList(f *testing.F) {
	for _, s := range []string{
		`<?xml version="1.0" encoding="utf-8"?><BlockList><Latest>AAAA</Latest><Committed>AAAB</Committed><Uncommitted>AAAC</Uncommitted></BlockList>`,
		"<BlockList>\n  <Latest> YWJj </Latest>\n</BlockList>",
		`<BlockList></BlockList>`,
		`<BlockList><Latest>YQ==</Latest><Latest>YWI=</Latest></BlockList>`,
		`<BlockList><Latest><x/>YQ==</Latest></BlockList>`,
		`<ns:BlockList xmlns:ns="urn:x"><ns:Latest>YQ==</ns:Latest></ns:BlockList>`,
		`<BlockList><Latest>YQ==</Latest></BlockList><BlockList><Latest>Yg==</Latest></BlockList>`,
		`<BlockList><!-- c --><Latest><![CDATA[YQ==]]></Latest></BlockList>`,
		`<Other/>`, `<BlockList><Block>YQ==</Block></BlockList>`, `<BlockList><Latest>`, `<BlockList><Latest>!!</Latest></BlockList>`,
		`<!DOCTYPE x [<!ENTITY a "YQ==">]><BlockList><Latest>&a;</Latest></BlockList>`, "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		list, err := parseBlockList(bytes.NewReader(body))
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Code == "" {
				t.Fatalf("parseBlockList(%q): %T %v, want a 400 *Error", body, err, err)
			}
			return
		}
		if len(list) > MaxBlocks {
			t.Fatalf("parseBlockList(%q) accepted %d blocks", body, len(list))
		}
		var back strings.Builder
		back.WriteString("<BlockList>")
		for _, e := range list {
			raw, err := base64.StdEncoding.DecodeString(e.ID)
			if err != nil || !bytes.Equal(raw, e.raw) || len(raw) == 0 || len(raw) > maxBlockIDBytes || len(raw) != len(list[0].raw) {
				t.Fatalf("parseBlockList(%q): entry %+v", body, e)
			}
			if e.Kind != "Latest" && e.Kind != "Committed" && e.Kind != "Uncommitted" {
				t.Fatalf("parseBlockList(%q): kind %q", body, e.Kind)
			}
			back.WriteString("<" + e.Kind + ">" + e.ID + "</" + e.Kind + ">")
		}
		back.WriteString("</BlockList>")
		again, err := parseBlockList(strings.NewReader(back.String()))
		if err != nil || len(again) != len(list) {
			t.Fatalf("%q parsed as %+v, which written back reads as %+v (%v)", body, list, again, err)
		}
		for i := range list {
			if again[i].Kind != list[i].Kind || again[i].ID != list[i].ID {
				t.Fatalf("%q: entry %d %+v came back as %+v", body, i, list[i], again[i])
			}
		}
	})
}

// FuzzParseRange: a range header is refused with a 400 or a 416, or names
// bytes inside the blob.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-", "bytes=0-99", "bytes=5-5", "bytes=10-2", "bytes=-5", "bytes=99999999999999999999-", "bytes=0-1,3-4", " bytes=1-2", ""} {
		f.Add(s, "", int64(100))
		f.Add("", s, int64(0))
	}
	f.Fuzz(func(t *testing.T, msRange, rangeHeader string, size int64) {
		if size < 0 {
			return
		}
		r := &http.Request{Header: http.Header{}}
		if msRange != "" {
			r.Header.Set("x-ms-range", msRange)
		}
		if rangeHeader != "" {
			r.Header.Set("Range", rangeHeader)
		}
		start, end, ok, err := parseRange(r, size)
		switch {
		case err != nil:
			var e *Error
			if ok || !errors.As(err, &e) || (e.Status != http.StatusBadRequest && e.Status != http.StatusRequestedRangeNotSatisfiable) {
				t.Fatalf("parseRange(%q, %q, %d) = %v, %v", msRange, rangeHeader, size, ok, err)
			}
		case ok:
			if start < 0 || start > end || end >= size {
				t.Fatalf("parseRange(%q, %q, %d) = [%d, %d] outside the blob", msRange, rangeHeader, size, start, end)
			}
		case r.Header.Get("x-ms-range") != "" || r.Header.Get("Range") != "":
			t.Fatalf("parseRange(%q, %q, %d) ignored the header", msRange, rangeHeader, size)
		}
	})
}

// FuzzSAS feeds SAS query strings to the parser and the verifier: every
// refusal is a 403 *Error, and nothing verifies without the signature the
// account key made.
func FuzzSAS(f *testing.F) {
	key := base64.StdEncoding.EncodeToString([]byte("fuzz-account-key-0123456789abcdef"))
	account := storage.Account{Name: "acct", Keys: [2]string{key, ""}}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	sign := func(kind sasKind, q url.Values) ([]byte, string) {
		sts, err := sasToken{kind: kind, q: q}.stringsToSign(account.Name, "c", "b")
		if err != nil {
			f.Fatal(err)
		}
		raw, _ := base64.StdEncoding.DecodeString(key)
		sig := hmacSHA256(raw, sts[0])
		q.Set("sig", base64.StdEncoding.EncodeToString(sig))
		return sig, q.Encode()
	}
	serviceSig, service := sign(serviceSAS, url.Values{"sv": {"2021-08-06"}, "sp": {"r"}, "se": {"2030-01-01T00:00:00Z"}, "sr": {"b"}, "spr": {"https,http"}})
	accountSig, acct := sign(accountSAS, url.Values{"sv": {"2021-08-06"}, "ss": {"b"}, "srt": {"sco"}, "sp": {"rl"}, "st": {"2025-01-01"}, "se": {"2030-01-01T00:00Z"}, "sip": {"10.0.0.1-10.0.0.9"}})
	minted := [][]byte{serviceSig, accountSig}
	ip := netip.MustParseAddr("10.0.0.5")
	verify := func(query string) (sasToken, error) {
		q, _ := url.ParseQuery(query)
		tok, err := parseSAS(q)
		if err != nil {
			return tok, err
		}
		return tok, verifySAS(account, tok, &http.Request{Header: http.Header{}}, "c", "b", ip, now)
	}
	for _, s := range []string{service, acct} {
		if _, err := verify(s); err != nil {
			f.Fatalf("the minted %q does not verify: %v", s, err)
		}
	}
	for _, s := range []string{
		service, acct,
		"sv=2018-11-09&sr=c&sp=racwdl&se=2030-01-01&skoid=o&sktid=t&skt=2025-01-01T00:00:00Z&ske=2030-01-01T00:00:00Z&sks=b&skv=2018-11-09&sig=YQ==",
		"sv=2025-07-05&sr=b&sp=r&se=2030-01-01&skoid=o&skt=x&ske=y&sig=YQ==", "sv=2012-02-12&sp=r&se=2030-01-01&sig=YQ==",
		"sig=%ZZ", "sig=&sv=", "si=policy&sv=2021-08-06&sp=r&se=2030-01-01&sig=YQ==", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		tok, err := verify(query)
		if err == nil {
			if !bytes.Equal(tok.sig, minted[0]) && !bytes.Equal(tok.sig, minted[1]) {
				t.Fatalf("%q verified with a signature the account key never made", query)
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) || e.Status != http.StatusForbidden {
			t.Fatalf("verifySAS(%q): %T %v, want a 403 *Error", query, err, err)
		}
	})
}
