package hubresource

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// parseISODuration parses the ISO 8601 durations IoT Hub settings use:
// P[nD][T[nH][nM][n[.n]S]] (also nW), as Python's and .NET's serializers
// write them ("PT1H", "PT5S", "P1DT2H").
func parseISODuration(s string) (time.Duration, error) {
	rest, ok := strings.CutPrefix(strings.ToUpper(strings.TrimSpace(s)), "P")
	if !ok || rest == "" {
		return 0, fmt.Errorf("not an ISO 8601 duration")
	}
	var total time.Duration
	inTime := false
	seen := false
	for rest != "" {
		if rest[0] == 'T' {
			if inTime {
				return 0, fmt.Errorf("not an ISO 8601 duration")
			}
			inTime, rest = true, rest[1:]
			if rest == "" {
				return 0, fmt.Errorf("not an ISO 8601 duration")
			}
			continue
		}
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 || i == len(rest) {
			return 0, fmt.Errorf("not an ISO 8601 duration")
		}
		n, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil {
			return 0, fmt.Errorf("not an ISO 8601 duration")
		}
		var unit time.Duration
		switch u := rest[i]; {
		case !inTime && u == 'W':
			unit = 7 * 24 * time.Hour
		case !inTime && u == 'D':
			unit = 24 * time.Hour
		case inTime && u == 'H':
			unit = time.Hour
		case inTime && u == 'M':
			unit = time.Minute
		case inTime && u == 'S':
			unit = time.Second
		default:
			return 0, fmt.Errorf("not an ISO 8601 duration")
		}
		part := n * float64(unit)
		if part > float64(math.MaxInt64)-float64(total) {
			return 0, fmt.Errorf("duration too long")
		}
		total += time.Duration(part)
		seen = true
		rest = rest[i+1:]
	}
	if !seen {
		return 0, fmt.Errorf("not an ISO 8601 duration")
	}
	return total, nil
}

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
	d, err := parseISODuration(s)
	if err != nil {
		return invalid("%s.%s '%s' is not an ISO 8601 duration; write it like 'PT1H' (one hour) or 'PT30S'.", what, key, s)
	}
	if d < min || d > max {
		return invalid("%s.%s '%s' is out of range: it must be between %s and %s.", what, key, s, isoDuration(min), isoDuration(max))
	}
	o.set(key, s)
	return nil
}

// isoDuration formats d the way the messages above suggest values.
func isoDuration(d time.Duration) string {
	var b strings.Builder
	b.WriteString("PT")
	if h := d / time.Hour; h > 0 {
		fmt.Fprintf(&b, "%dH", h)
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		fmt.Fprintf(&b, "%dM", m)
		d -= m * time.Minute
	}
	if s := d / time.Second; s > 0 || b.Len() == 2 {
		fmt.Fprintf(&b, "%dS", s)
	}
	return b.String()
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
