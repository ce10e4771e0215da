package pki

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestLeafRenewedBeforeExpiry(t *testing.T) {
	a := newTestAuthority(t)
	now := time.Now()
	a.now = func() time.Time { return now }
	hello := &tls.ClientHelloInfo{ServerName: "a.b.c." + testSuffix}
	first, err := a.getCertificate(hello)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(200 * 24 * time.Hour)
	same, err := a.getCertificate(hello)
	if err != nil {
		t.Fatal(err)
	}
	if same != first {
		t.Error("leaf re-minted long before its renewal time")
	}
	now = first.Leaf.NotAfter.Add(-30 * 24 * time.Hour)
	renewed, err := a.getCertificate(hello)
	if err != nil {
		t.Fatal(err)
	}
	if renewed == first || !renewed.Leaf.NotAfter.After(first.Leaf.NotAfter) {
		t.Error("leaf not renewed a month before it expires")
	}
}

func TestLeafNeverOutlivesCA(t *testing.T) {
	a := newTestAuthority(t)
	now := a.caCert.NotAfter.Add(-24 * time.Hour)
	a.now = func() time.Time { return now }
	cert, err := a.IssueLeaf([]string{"localhost"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Leaf.NotAfter.Equal(a.caCert.NotAfter) {
		t.Errorf("leaf expires %v, CA %v", cert.Leaf.NotAfter, a.caCert.NotAfter)
	}
	now = a.caCert.NotAfter.Add(time.Second)
	if _, err := a.getCertificate(&tls.ClientHelloInfo{ServerName: "localhost"}); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("handshake after CA expiry: %v, want an expiry error", err)
	}
}

func TestLeafCacheIsBounded(t *testing.T) {
	a := newTestAuthority(t)
	a.leaves = newLeafCache(3)
	hello := func(i int) *tls.ClientHelloInfo {
		return &tls.ClientHelloInfo{ServerName: fmt.Sprintf("d%d.x.%s", i, testSuffix)}
	}
	for i := range 6 {
		if _, err := a.getCertificate(hello(i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.leaves.len(); got != 3 {
		t.Fatalf("cache holds %d leaves, want 3", got)
	}
	before := a.mints.Load()
	if _, err := a.getCertificate(hello(5)); err != nil { // most recent: still cached
		t.Fatal(err)
	}
	if _, err := a.getCertificate(hello(0)); err != nil { // oldest: evicted
		t.Fatal(err)
	}
	if got := a.mints.Load() - before; got != 1 {
		t.Errorf("minted %d leaves, want 1 (only the evicted name)", got)
	}
}

func TestLeafCacheWaitersAndErrors(t *testing.T) {
	c := newLeafCache(10)
	release := make(chan struct{})
	minting := make(chan struct{})
	done := make(chan error)
	go func() {
		_, err := c.get(context.Background(), "k", time.Now(), func() (*tls.Certificate, error) {
			close(minting)
			<-release
			return nil, errors.New("mint failed")
		})
		done <- err
	}()
	<-minting

	// A waiter whose handshake is abandoned stops waiting.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.get(ctx, "k", time.Now(), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled waiter: %v", err)
	}
	close(release)
	if err := <-done; err == nil {
		t.Error("mint error lost")
	}
	// Failures are not cached: the next request mints again.
	minted := false
	if _, err := c.get(context.Background(), "k", time.Now(), func() (*tls.Certificate, error) {
		minted = true
		return nil, errors.New("again")
	}); err == nil || !minted {
		t.Errorf("after a failed mint: err=%v minted=%v", err, minted)
	}
}
