package sas

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

const key = "cHJpbWFyeWtleXByaW1hcnlrZXlwcmltYXJ5a2V5MTI="

func TestSignParseVerify(t *testing.T) {
	exp := time.Unix(1795872115, 0)
	tok, err := Sign("localhost/devices/dev1", key, "", exp)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "SharedAccessSignature sr=localhost%2Fdevices%2Fdev1&sig=") {
		t.Errorf("token = %s", tok)
	}
	p, err := Parse(tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.Resource != "localhost/devices/dev1" || !p.Expiry.Equal(exp) || p.KeyName != "" {
		t.Errorf("parsed = %+v", p)
	}
	if !p.Verify(key) {
		t.Error("a correctly signed token did not verify")
	}
	if p.Verify("b3RoZXJrZXk=") {
		t.Error("verified with the wrong key")
	}
	if !p.Expired(exp, 0) || p.Expired(exp.Add(-time.Second), 0) || p.Expired(exp, time.Minute) {
		t.Error("expiry boundaries are wrong")
	}
}

// The signature covers sr exactly as sent, so lower-case percent escapes
// (what some SDKs send) verify too.
func TestVerifyUsesTheResourceAsSent(t *testing.T) {
	tok, _ := Sign("hub.example/devices/d1", key, "", time.Unix(2000000000, 0))
	p, _ := Parse(tok)
	lower := "hub.example%2fdevices%2fd1"
	p2 := Token{Resource: p.Resource, rawResource: lower, Signature: mac(mustKey(t), lower, "2000000000"), expiryRaw: "2000000000"}
	if !p2.Verify(key) {
		t.Error("lower-case escapes did not verify")
	}
	// Changing the resource after signing breaks the signature.
	forged := strings.Replace(tok, "d1", "d2", 1)
	pf, err := Parse(forged)
	if err != nil || pf.Verify(key) {
		t.Errorf("a token moved to another device verified (%v)", err)
	}
}

func mustKey(t *testing.T) []byte {
	t.Helper()
	b, err := decodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCovers(t *testing.T) {
	p := Token{Resource: "Hub.Example/devices/d1"}
	for target, want := range map[string]bool{
		"hub.example/devices/d1":            true,
		"hub.example/devices/d1/modules/m1": true,
		"hub.example/devices/d10":           false,
		"hub.example/devices":               false,
		"other.example/devices/d1":          false,
		"HUB.EXAMPLE/DEVICES/D1/":           true,
	} {
		if got := p.Covers(target); got != want {
			t.Errorf("Covers(%q) = %v, want %v", target, got, want)
		}
	}
	hub := Token{Resource: "hub.example"}
	if !hub.Covers("hub.example/devices/anything") {
		t.Error("a hub-level token must cover its devices")
	}
}

func TestParseErrors(t *testing.T) {
	for _, bad := range []string{
		"",
		"SharedAccessSignature ",
		"SharedAccessSignature sr=a&sig=%%%&se=1",
		"SharedAccessSignature sr=a&sig=bm90IGJhc2U2NA&se=1",
		"SharedAccessSignature sr=a&sig=YQ==&se=soon",
		"SharedAccessSignature sr=a&sig=YQ==",
		"SharedAccessSignature sig=YQ==&se=1",
		"SharedAccessSignature sr=a&sr=b&sig=YQ==&se=1",
		"SharedAccessSignature sr=a&sig=YQ==&se=1&junk",
		"SharedAccessSignaturesr=a",
		strings.Repeat("a", MaxTokenBytes+1),
	} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

// FuzzParse: an accepted token is complete, and none verifies without the
// signature the key made.
func FuzzParse(f *testing.F) {
	tok, _ := Sign("hub.example/devices/d1", key, "device", time.Unix(2000000000, 0))
	minted, err := Parse(tok)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok)
	f.Add("SharedAccessSignature sr=a&sig=YQ==&se=1")
	f.Add("sr=&sig=&se=")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			return
		}
		if p.rawResource == "" || p.Signature == nil || p.expiryRaw == "" {
			t.Fatalf("Parse(%q) accepted an incomplete token: %+v", s, p)
		}
		if p.Verify(key) && !bytes.Equal(p.Signature, minted.Signature) {
			t.Fatalf("Parse(%q) verifies with a signature the key never made", s)
		}
		_ = p.VerifyRawKey(key)
		_ = p.Covers("hub.example/devices/d1")
	})
}

func TestRawKeySignVerify(t *testing.T) {
	const key = "c2VjcmV0LWtleS1ub3QtZGVjb2RlZA=="
	exp := time.Now().Add(time.Hour)
	tok := SignRawKey("https://NS.servicebus.outpost.test/queue1", key, "RootManageSharedAccessKey", exp)
	parsed, err := Parse(tok)
	if err != nil {
		t.Fatal(err)
	}
	if !parsed.VerifyRawKey(key) {
		t.Fatal("raw-key token does not verify with its key")
	}
	if parsed.Verify(key) {
		t.Fatal("raw-key token verifies as an IoT Hub (decoded-key) token")
	}
	if parsed.VerifyRawKey(key+"x") || parsed.VerifyRawKey("") {
		t.Fatal("raw-key token verifies with another key")
	}
	if parsed.Resource != "https://ns.servicebus.outpost.test/queue1" || parsed.KeyName != "RootManageSharedAccessKey" {
		t.Fatalf("parsed %+v", parsed)
	}
}
