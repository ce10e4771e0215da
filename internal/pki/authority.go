package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// File names inside the directory given to Open.
const (
	CAFileName    = "ca.pem"
	CAKeyFileName = "ca-key.pem"
)

// maxCachedLeaves bounds the leaf cache; Allow may accept names a client
// chooses, so the cache must not grow with them.
const maxCachedLeaves = 1024

// Options says which names the served certificates cover.
type Options struct {
	// DNSSuffix is the zone Outpost's resources live under, e.g.
	// "outpost.localhost". The default certificate covers the suffix,
	// *.{suffix}, *.blob.{suffix} and *.servicebus.{suffix}. It needs at
	// least two labels: clients refuse a wildcard right under a top-level
	// name. Empty means no suffix names.
	DNSSuffix string
	// Names are extra DNS names, wildcards (*.example.test) or IP addresses
	// always in the default certificate.
	Names []string
	// Allow decides whether an SNI name the default certificate does not
	// cover gets a certificate of its own. It is called on every such
	// handshake with the lower-cased name, so it must be cheap and safe for
	// concurrent use. Nil refuses every such name.
	Allow func(serverName string) bool
}

// Validate reports every problem with the options at once.
func (o Options) Validate() error {
	var errs []error
	if o.DNSSuffix != "" {
		suffix := normalizeName(o.DNSSuffix)
		switch {
		case !validDNSName(suffix):
			errs = append(errs, fmt.Errorf("DNSSuffix %q is not a valid DNS name", o.DNSSuffix))
		case !strings.Contains(suffix, "."):
			errs = append(errs, fmt.Errorf("DNSSuffix %q needs at least two labels: clients reject the wildcard *.%s", o.DNSSuffix, suffix))
		}
	}
	for i, name := range o.Names {
		if _, _, ok := parseSAN(name); !ok {
			errs = append(errs, fmt.Errorf("Names[%d] %q is neither a DNS name, a wildcard such as *.example.test, nor an IP address", i, name))
		}
	}
	return errors.Join(errs...)
}

// Authority is a local CA that mints and serves TLS certificates. Its
// methods are safe for concurrent use.
type Authority struct {
	log    *slog.Logger
	allow  func(string) bool
	caFile string
	caPEM  []byte
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey

	// defaultDNS and defaultIPs are what the default leaf names.
	defaultDNS []string
	defaultIPs []netip.Addr

	now    func() time.Time // replaced by tests to reach renewal
	leaves *leafCache
	mints  atomic.Int64 // leaves minted, for tests and debugging
}

// Open loads the CA kept in dir, creating dir and the CA on first start.
// log may be nil.
func Open(dir string, opts Options, log *slog.Logger) (*Authority, error) {
	start := time.Now()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("pki: open: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("pki: open: %w", err)
	}
	host := hostName()
	ca, err := loadOrCreateCA(dir, host, start, log)
	if err != nil {
		return nil, fmt.Errorf("pki: open: %w", err)
	}
	a := &Authority{
		log:    log,
		allow:  opts.Allow,
		caFile: filepath.Join(dir, CAFileName),
		caPEM:  ca.certPEM,
		caCert: ca.cert,
		caKey:  ca.key,
		now:    time.Now,
		leaves: newLeafCache(maxCachedLeaves),
	}
	a.defaultDNS, a.defaultIPs = defaultNames(host, opts)

	attrs := []any{"ca_file", a.caFile, "subject", ca.cert.Subject.String(), "not_after", ca.cert.NotAfter, "duration", time.Since(start)}
	if ca.created {
		log.Info("pki: created local CA; clients trust it through SSL_CERT_FILE, NODE_EXTRA_CA_CERTS or REQUESTS_CA_BUNDLE", attrs...)
	} else {
		log.Debug("pki: loaded local CA", attrs...)
	}
	if left := ca.cert.NotAfter.Sub(start); left < 90*24*time.Hour {
		log.Warn("pki: local CA expires soon; remove ca.pem and ca-key.pem to create a new one, then make clients trust the new ca.pem",
			"ca_file", a.caFile, "not_after", ca.cert.NotAfter)
	}
	return a, nil
}

// CAFile is the path of the CA certificate (PEM), the file clients trust.
func (a *Authority) CAFile() string { return a.caFile }

// CAPEM returns the CA certificate in PEM form.
func (a *Authority) CAPEM() []byte { return bytes.Clone(a.caPEM) }

// CertPool returns a new pool holding only the CA certificate.
func (a *Authority) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(a.caCert)
	return pool
}

// hostName is the machine's name if it can appear in a certificate.
func hostName() string {
	name, err := os.Hostname()
	if err != nil {
		return ""
	}
	name = normalizeName(name)
	if !validDNSName(name) {
		return ""
	}
	return name
}

// defaultNames lists what the default leaf covers, without duplicates.
func defaultNames(host string, opts Options) ([]string, []netip.Addr) {
	dns := []string{"localhost"}
	if host != "" {
		dns = append(dns, host)
	}
	if suffix := normalizeName(opts.DNSSuffix); suffix != "" {
		// A wildcard covers one label, so each service zone needs its own.
		dns = append(dns, suffix, "*."+suffix, "*.blob."+suffix, "*.servicebus."+suffix)
	}
	ips := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	for _, name := range opts.Names {
		d, ip, _ := parseSAN(name) // Validate has accepted every name
		if ip.IsValid() {
			ips = append(ips, ip)
		} else {
			dns = append(dns, d)
		}
	}
	return unique(dns), unique(ips)
}

// unique drops repeated values, keeping the first of each in order.
func unique[T comparable](values []T) []T {
	var out []T
	for _, v := range values {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
