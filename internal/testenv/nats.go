package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSEnv names the environment variable holding the URL of an external
// NATS server with JetStream, e.g. nats://127.0.0.1:4222.
const NATSEnv = "OUTPOST_TEST_NATS"

// NATSURL returns the external NATS server's URL after checking that its
// JetStream answers, or ends the test through Unavailable.
func NATSURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv(NATSEnv)
	if url == "" {
		Unavailable(t, "external NATS: %s is not set", NATSEnv)
	}
	js, nc, err := connectJetStream(url)
	if err != nil {
		Unavailable(t, "external NATS at %s: %v", url, err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		Unavailable(t, "external NATS at %s: jetstream: %v", url, err)
	}
	return url
}

// StreamPrefix returns a prefix unique to this test, usable as a bus
// StreamPrefix (lowercase letters, digits and '-'). When NATSEnv is set, it
// registers a cleanup that deletes every stream on that server whose name
// starts with the prefix, so register it before anything that must close
// first (cleanups run last-in first-out).
func StreamPrefix(t testing.TB) string {
	t.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand docs)
	// All prefixes have the same length, so none is a prefix of another and
	// matching names by prefix is exact.
	prefix := "test-" + hex.EncodeToString(b[:])
	if url := os.Getenv(NATSEnv); url != "" {
		t.Cleanup(func() { deleteStreams(t, url, prefix) })
	}
	return prefix
}

func deleteStreams(t testing.TB, url, prefix string) {
	t.Helper()
	js, nc, err := connectJetStream(url)
	if err != nil {
		t.Errorf("delete streams %s*: %v", prefix, err)
		return
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	names := js.StreamNames(ctx)
	var doomed []string
	for name := range names.Name() {
		if strings.HasPrefix(name, prefix) {
			doomed = append(doomed, name)
		}
	}
	if err := names.Err(); err != nil {
		t.Errorf("delete streams %s*: list: %v", prefix, err)
	}
	for _, name := range doomed {
		if err := js.DeleteStream(ctx, name); err != nil {
			t.Errorf("delete stream %s: %v", name, err)
		}
	}
}

func connectJetStream(url string) (jetstream.JetStream, *nats.Conn, error) {
	nc, err := nats.Connect(url, nats.Name("outpost-testenv"), nats.Timeout(2*time.Second), nats.MaxReconnects(0))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return js, nc, nil
}
