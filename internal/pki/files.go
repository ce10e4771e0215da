package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

const (
	caLifetime = 10 * 365 * 24 * time.Hour
	// clockSkew backdates every certificate so a client whose clock is a
	// little behind still accepts it.
	clockSkew = 5 * time.Minute
)

type loadedCA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
	created bool
}

// loadOrCreateCA reads the key and then the certificate, creating each one
// that is missing. Creating the key first means a crash in between leaves a
// key without a certificate, which the next start completes.
func loadOrCreateCA(dir, host string, now time.Time, log *slog.Logger) (loadedCA, error) {
	keyPath := filepath.Join(dir, CAKeyFileName)
	keyPEM, keyCreated, err := loadOrCreate(keyPath, 0o600, newCAKeyPEM)
	if err != nil {
		return loadedCA{}, err
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return loadedCA{}, fmt.Errorf("%s: %w; remove %s and %s to create a new CA", keyPath, err, CAFileName, CAKeyFileName)
	}
	if !keyCreated {
		warnIfReadableByOthers(keyPath, log)
	}

	certPath := filepath.Join(dir, CAFileName)
	certPEM, certCreated, err := loadOrCreate(certPath, 0o644, func() ([]byte, error) {
		return newCACertPEM(key, host, now)
	})
	if err != nil {
		return loadedCA{}, err
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return loadedCA{}, fmt.Errorf("%s: %w; remove %s and %s to create a new CA", certPath, err, CAFileName, CAKeyFileName)
	}
	switch {
	case !key.PublicKey.Equal(cert.PublicKey):
		return loadedCA{}, fmt.Errorf("%s does not match %s; restore the matching pair or remove both to create a new CA", certPath, keyPath)
	case !cert.IsCA:
		return loadedCA{}, fmt.Errorf("%s is not a CA certificate; remove %s and %s to create a new CA", certPath, CAFileName, CAKeyFileName)
	case !now.Before(cert.NotAfter):
		return loadedCA{}, fmt.Errorf("%s expired on %s; remove %s and %s to create a new CA, then make clients trust the new %s",
			certPath, cert.NotAfter.Format(time.DateOnly), CAFileName, CAKeyFileName, CAFileName)
	}
	return loadedCA{cert: cert, certPEM: certPEM, key: key, created: certCreated}, nil
}

// loadOrCreate returns the contents of path, first creating it with create's
// output when it does not exist. When another process creates it at the
// same time, both end up with that process's contents.
func loadOrCreate(path string, perm fs.FileMode, create func() ([]byte, error)) (data []byte, created bool, err error) {
	data, err = os.ReadFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return data, false, err
	}
	if data, err = create(); err != nil {
		return nil, false, err
	}
	err = createExclusive(path, data, perm)
	if errors.Is(err, fs.ErrExist) {
		data, err = os.ReadFile(path)
		return data, false, err
	}
	return data, err == nil, err
}

// createExclusive writes data to path unless path exists (then the error
// wraps fs.ErrExist). The data is complete and synced before path appears.
func createExclusive(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	// After a successful link this only drops the temporary name.
	defer os.Remove(tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm) // explicit, so the umask does not narrow ca.pem
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// A link, unlike a rename, refuses to replace an existing file.
	if err := os.Link(tmp, path); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// syncDir makes a new directory entry durable where the platform allows it.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // fails on some platforms (Windows); the data itself is synced
		_ = d.Close()
	}
}

func warnIfReadableByOthers(path string, log *slog.Logger) {
	if runtime.GOOS == "windows" {
		return
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("pki: CA key is readable by other users; run chmod 600 on it", "path", path, "mode", fi.Mode().Perm().String())
	}
}

func newCAKeyPEM() ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func newCACertPEM(key *ecdsa.PrivateKey, host string, now time.Time) ([]byte, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	where := host
	if where == "" {
		where = "unknown host"
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization: []string{"Outpost"},
			CommonName:   truncate("Outpost local CA on "+where, 64),
		},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		// SubjectKeyId is derived by CreateCertificate; strict verifiers
		// (Python 3.13's VERIFY_X509_STRICT) require it.
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func parseKeyPEM(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if block.Type == "EC PRIVATE KEY" {
		return x509.ParseECPrivateKey(block.Bytes)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is a %T, want an ECDSA key", parsed)
	}
	return key, nil
}

func parseCertPEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no CERTIFICATE PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// truncate cuts s to at most n bytes; X.509 caps a common name at 64.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
