package bus

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultStreamPrefix is the prefix used when Config.StreamPrefix is empty.
const DefaultStreamPrefix = "outpost"

// maxPrefixLen keeps physical stream names short: the embedded file store
// uses them as directory names.
const maxPrefixLen = 32

// Config selects and configures the bus mode.
type Config struct {
	// URL of an external NATS server or cluster (comma-separated URLs are
	// accepted). Empty means embedded mode.
	URL string
	// StoreDir is the JetStream storage directory of the embedded server.
	// Required in embedded mode, ignored otherwise.
	StoreDir string
	// StreamPrefix is the root of every stream name and subject this bus
	// uses, so installations and tests sharing a server never collide.
	// 1 to 32 characters from [A-Za-z0-9-]; empty means DefaultStreamPrefix.
	StreamPrefix string
	// Replicas is how many servers of a JetStream cluster keep each stream
	// and key-value bucket this bus creates (0 means 1). Three survive the
	// loss of one server. More than one needs an external cluster with at
	// least that many JetStream servers; the embedded server is alone.
	Replicas int
}

// maxReplicas is JetStream's own limit.
const maxReplicas = 5

// Embedded reports whether the config runs an in-process server.
func (c Config) Embedded() bool { return c.URL == "" }

// Validate reports every problem in c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Embedded() && c.StoreDir == "" {
		errs = append(errs, errors.New("StoreDir is required in embedded mode (URL is empty)"))
	}
	if c.StreamPrefix != "" {
		if err := validatePrefix(c.StreamPrefix); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Replicas < 0 || c.Replicas > maxReplicas {
		errs = append(errs, fmt.Errorf("Replicas %d must be between 1 and %d (0 means 1)", c.Replicas, maxReplicas))
	}
	if c.Embedded() && c.Replicas > 1 {
		errs = append(errs, fmt.Errorf("Replicas %d needs an external NATS cluster; the embedded server keeps one copy", c.Replicas))
	}
	return errors.Join(errs...)
}

func (c Config) prefix() string {
	if c.StreamPrefix == "" {
		return DefaultStreamPrefix
	}
	return c.StreamPrefix
}

func (c Config) replicas() int { return max(c.Replicas, 1) }

func validatePrefix(p string) error {
	if len(p) > maxPrefixLen {
		return fmt.Errorf("StreamPrefix %q is longer than %d characters", p, maxPrefixLen)
	}
	// '_' and '.' are excluded so the prefix always ends unambiguously; see
	// the package documentation.
	if i := strings.IndexFunc(p, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-')
	}); i >= 0 {
		return fmt.Errorf("StreamPrefix %q: character %q is not one of [A-Za-z0-9-]", p, p[i])
	}
	return nil
}
