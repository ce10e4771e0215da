package mqtt

import (
	"errors"
	"fmt"
	"time"
)

// Config holds the endpoint's limits. Zero fields take the defaults of DefaultConfig.
type Config struct {
	// ConnectTimeout bounds the TLS handshake, the CONNECT packet and authentication together;
	// a connection that has not been accepted by then is closed. It also bounds how long a new
	// connection waits for the one it takes over to finish.
	ConnectTimeout time.Duration
	// MaxPacketSize is the largest packet accepted (remaining length). A bigger packet closes
	// the connection before its body is read. The default leaves room for a topic and its
	// property bag on top of a MaxMessageSize body.
	MaxPacketSize int
	// MaxMessageSize is the largest PUBLISH payload; a bigger one closes the connection, as
	// IoT Hub does past its 256 KiB device-to-cloud message limit.
	MaxMessageSize int
	// MaxKeepAliveTimeout caps the read timeout (1.5 × the client's keep-alive). IoT Hub caps it at
	// 1767 s, its load balancer's idle timeout; a keep-alive of 0 also gets this timeout.
	MaxKeepAliveTimeout time.Duration
	// WriteTimeout ends a connection whose peer does not take a write for this long.
	WriteTimeout time.Duration
	// WriteQueue is how many packets may wait for the socket per connection. A full queue makes
	// PUBACKs wait (and so the reading of further packets) and makes Deliver wait for room.
	WriteQueue int
	// ReadAhead is how many received packets may wait for the Handler per connection; past it
	// the connection stops reading, which pushes back on the device through TCP.
	ReadAhead int
	// MaxInflight is how many QoS 1 deliveries may await a PUBACK per connection; Deliver waits
	// for a free slot.
	MaxInflight int
	// MaxConnections caps the connections admitted at once (past CONNECT); a CONNECT beyond it
	// is refused with CONNACK 3 "server unavailable", which the device SDKs retry with backoff.
	// 0 means no cap.
	MaxConnections int
	// MaxPending caps the connections still in their TLS handshake or CONNECT, beyond the
	// admitted ones; a connection past it is closed at once, before its handshake, so a flood
	// of connection attempts costs no more than this many handshakes' memory.
	MaxPending int
}

// DefaultConfig returns the limits IoT Hub uses, where it documents them.
func DefaultConfig() Config {
	return Config{
		ConnectTimeout:      10 * time.Second,
		MaxPacketSize:       256<<10 + 8<<10,
		MaxMessageSize:      256 << 10,
		MaxKeepAliveTimeout: 1767 * time.Second,
		WriteTimeout:        30 * time.Second,
		WriteQueue:          64,
		ReadAhead:           32,
		MaxInflight:         32,
		MaxPending:          1024,
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = d.ConnectTimeout
	}
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = d.MaxPacketSize
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = d.MaxMessageSize
	}
	if c.MaxKeepAliveTimeout == 0 {
		c.MaxKeepAliveTimeout = d.MaxKeepAliveTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.WriteQueue == 0 {
		c.WriteQueue = d.WriteQueue
	}
	if c.ReadAhead == 0 {
		c.ReadAhead = d.ReadAhead
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = d.MaxInflight
	}
	if c.MaxPending == 0 {
		c.MaxPending = d.MaxPending
	}
	return c
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.ConnectTimeout < 0, "mqtt: ConnectTimeout %v is negative", c.ConnectTimeout)
	check(c.MaxPacketSize < 0 || c.MaxPacketSize > 268435455,
		"mqtt: MaxPacketSize %d is outside 0..268435455", c.MaxPacketSize)
	check(c.MaxMessageSize < 0, "mqtt: MaxMessageSize %d is negative", c.MaxMessageSize)
	check(c.MaxKeepAliveTimeout < 0, "mqtt: MaxKeepAliveTimeout %v is negative", c.MaxKeepAliveTimeout)
	check(c.WriteTimeout < 0, "mqtt: WriteTimeout %v is negative", c.WriteTimeout)
	check(c.WriteQueue < 0, "mqtt: WriteQueue %d is negative", c.WriteQueue)
	check(c.ReadAhead < 0, "mqtt: ReadAhead %d is negative", c.ReadAhead)
	check(c.MaxInflight < 0 || c.MaxInflight > 65535, "mqtt: MaxInflight %d is outside 0..65535", c.MaxInflight)
	check(c.MaxConnections < 0, "mqtt: MaxConnections %d is negative", c.MaxConnections)
	check(c.MaxPending < 0, "mqtt: MaxPending %d is negative", c.MaxPending)
	return errors.Join(errs...)
}
