package isoduration

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Format writes a duration the way Azure's services do ("PT1M", "P14D",
// "PT1H30M5.5S").
func Format(d time.Duration) string {
	if d <= 0 {
		return "PT0S"
	}
	var b strings.Builder
	b.WriteString("P")
	if days := d / (24 * time.Hour); days > 0 {
		b.WriteString(strconv.FormatInt(int64(days), 10) + "D")
		d -= days * 24 * time.Hour
	}
	if d == 0 {
		return b.String()
	}
	b.WriteString("T")
	if h := d / time.Hour; h > 0 {
		b.WriteString(strconv.FormatInt(int64(h), 10) + "H")
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		b.WriteString(strconv.FormatInt(int64(m), 10) + "M")
		d -= m * time.Minute
	}
	if d > 0 {
		b.WriteString(strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "S")
	}
	return b.String()
}

// Parse reads an ISO 8601 duration (P[nD][T[nH][nM][n[.n]S]], also nW) as
// Azure resource properties carry them (IoT Hub's "PT1H", Service Bus's
// "P14D"); .NET's TimeSpan.MaxValue and
// anything beyond Go's range become the largest duration.
func Parse(s string) (time.Duration, error) {
	rest, ok := strings.CutPrefix(strings.ToUpper(strings.TrimSpace(s)), "P")
	if !ok || rest == "" {
		return 0, fmt.Errorf("%q is not an ISO 8601 duration such as PT1M or P14D", s)
	}
	var total float64
	inTime := false
	for rest != "" {
		if rest[0] == 'T' {
			if inTime || len(rest) == 1 {
				return 0, fmt.Errorf("%q is not an ISO 8601 duration such as PT1M or P14D", s)
			}
			inTime, rest = true, rest[1:]
			continue
		}
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 || i == len(rest) {
			return 0, fmt.Errorf("%q is not an ISO 8601 duration such as PT1M or P14D", s)
		}
		n, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not an ISO 8601 duration such as PT1M or P14D", s)
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
			return 0, fmt.Errorf("%q is not an ISO 8601 duration such as PT1M or P14D", s)
		}
		total += n * float64(unit)
		rest = rest[i+1:]
	}
	if total >= math.MaxInt64 {
		return time.Duration(math.MaxInt64), nil
	}
	return time.Duration(total), nil
}
