package testserver

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/outpost-iot/outpost/internal/config"
)

// StartPeer starts another node of first's installation in process: the
// same PostgreSQL database, NATS server and stream prefix, DNS suffix and
// CA, with a data directory and a loopback address of its own. The CA is
// shared the way an operator shares it: first's DATA_DIR/pki is copied
// into the peer's data directory before it starts. opts apply after the
// shared settings (e.g. WithConfig for a shorter reload interval). first
// must run on PostgreSQL and an external NATS (WithPostgres,
// WithExternalNATS): an embedded node's state cannot be shared.
func StartPeer(t testing.TB, first *Server, opts ...Option) *Server {
	t.Helper()
	cfg, err := peerConfig(first.Config, t.TempDir())
	if err != nil {
		t.Fatalf("start peer: %v", err)
	}
	for _, o := range opts {
		o(t, &cfg)
	}
	return startConfig(t, cfg)
}

// peerConfig is first's configuration for a node with its own data
// directory dir (its CA copied there) and addresses chosen at start.
func peerConfig(first config.Config, dir string) (config.Config, error) {
	if first.Store.Driver != "postgres" || first.NATS.URL == "" {
		return config.Config{}, fmt.Errorf("the first node runs on %s and %s; nodes share only PostgreSQL and an external NATS",
			first.Store.Driver, natsMode(first.NATS.URL))
	}
	if err := CopyCA(first.DataDir, dir); err != nil {
		return config.Config{}, err
	}
	c := first
	c.DataDir = dir
	c.Listen = ""
	for _, l := range []*string{&c.MQTTListen, &c.AMQPListen, &c.Blob.Listen} {
		if *l != "off" {
			*l = "" // the peer's own host, default port
		}
	}
	return c, nil
}

func natsMode(url string) string {
	if url == "" {
		return "embedded NATS"
	}
	return "NATS at " + url
}

// CopyCA copies the CA (DATA_DIR/pki: ca.pem, ca-key.pem and whatever
// else the directory holds) from one data directory to another, keeping
// file modes, so a new node serves certificates clients of the first
// already trust.
func CopyCA(fromDataDir, toDataDir string) error {
	src := filepath.Join(fromDataDir, "pki")
	dst := filepath.Join(toDataDir, "pki")
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(target, info.Mode().Perm())
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
	if err != nil {
		return fmt.Errorf("copy CA %s to %s: %w", src, dst, err)
	}
	return nil
}

// StartPeerProcess runs the binary as another node of first's
// installation (see StartPeer): shared PostgreSQL, NATS and stream prefix,
// DNS suffix and CA, its own data directory and loopback address.
// extraArgs are passed to serve after the shared settings.
func StartPeerProcess(t testing.TB, binary string, first *Server, extraArgs ...string) *Process {
	t.Helper()
	dir := t.TempDir()
	if _, err := peerConfig(first.Config, dir); err != nil {
		t.Fatalf("start peer process: %v", err)
	}
	c := first.Config
	args := []string{"--store-driver", "postgres", "--store-dsn", c.Store.DSN,
		"--nats-url", c.NATS.URL, "--nats-stream-prefix", c.NATS.StreamPrefix, "--dns-suffix", c.DNSSuffix,
		"--nats-replicas", strconv.Itoa(c.NATS.Replicas)}
	return startProcess(t, binary, dir, append(args, extraArgs...))
}
