package hubresource

import (
	"time"

	"github.com/outpost-iot/outpost/internal/isoduration"
)

// durationSetting reads, defaults and range-checks an ISO 8601 duration
// member of o, writing it back (the client's spelling is kept).
func durationSetting(o object, key, what, def string, min, max time.Duration) error {
	s, ok, err := o.str(key, what)
	if err != nil {
		return err
	}
	if !ok {
		o.set(key, def)
		return nil
	}
	d, err := isoduration.Parse(s)
	if err != nil {
		return invalid("%s.%s '%s' is not an ISO 8601 duration; write it like 'PT1H' (one hour) or 'PT30S'.", what, key, s)
	}
	if d < min || d > max {
		return invalid("%s.%s '%s' is out of range: it must be between %s and %s.", what, key, s, isoduration.Format(min), isoduration.Format(max))
	}
	o.set(key, s)
	return nil
}

// intSetting reads, defaults and range-checks an integer member of o.
func intSetting(o object, key, what string, def, min, max int64) (int64, error) {
	n, ok, err := o.integer(key, what)
	if err != nil {
		return 0, err
	}
	if !ok {
		n = def
	}
	if n < min || n > max {
		return 0, invalid("%s.%s is %d; it must be between %d and %d.", what, key, n, min, max)
	}
	o.set(key, n)
	return n, nil
}

// boolSetting reads and defaults a boolean member of o.
func boolSetting(o object, key, what string, def bool) (bool, error) {
	b, ok, err := o.boolean(key, what)
	if err != nil {
		return false, err
	}
	if !ok {
		b = def
	}
	o.set(key, b)
	return b, nil
}
