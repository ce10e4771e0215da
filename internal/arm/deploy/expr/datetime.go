package expr

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Date functions (template-functions-date.md). Formats are .NET's standard
// and custom date and time format strings in the invariant culture, which
// is what utcNow('d') = "03/05/2019" shows ARM uses.
func dateFunctions() []*function {
	return []*function{
		{name: "utcNow", minArgs: 0, maxArgs: 1, eval: fnUTCNow,
			sites: []Site{SiteParameterDefault}, siteHint: "The function can only be used in the default value of a parameter."},
		ranged("dateTimeAdd", 2, 3, pure(fnDateTimeAdd)),
		fixed("dateTimeToEpoch", 1, pure(func(args []any) (any, error) {
			s, err := argString(args, 0)
			if err != nil {
				return nil, err
			}
			t, err := parseDateTime(s)
			if err != nil {
				return nil, err
			}
			return t.Unix(), nil
		})),
		fixed("dateTimeFromEpoch", 1, pure(func(args []any) (any, error) {
			n, err := argInt(args, 0)
			if err != nil {
				return nil, err
			}
			return time.Unix(n, 0).UTC().Format("2006-01-02T15:04:05Z"), nil
		})),
	}
}

func fnUTCNow(ctx *Context, args []any) (any, error) {
	format := "yyyyMMddTHHmmssZ"
	if len(args) == 1 {
		var err error
		if format, err = argString(args, 0); err != nil {
			return nil, err
		}
	}
	return formatDateTime(ctx.now(), format)
}

// fnDateTimeAdd adds an ISO 8601 duration. Without a format the result is
// written as the docs' example shows ("4/7/2023 2:53:14 PM", .NET's en-US
// general format) although the docs' prose promises the base's format.
func fnDateTimeAdd(args []any) (any, error) {
	base, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	dur, err := argString(args, 1)
	if err != nil {
		return nil, err
	}
	t, err := parseDateTime(base)
	if err != nil {
		return nil, err
	}
	if t, err = addISODuration(t, dur); err != nil {
		return nil, err
	}
	if len(args) == 3 {
		format, err := argString(args, 2)
		if err != nil {
			return nil, err
		}
		return formatDateTime(t, format)
	}
	return formatDateTime(t, "M/d/yyyy h:mm:ss tt")
}

// parseDateTime reads the ISO 8601 forms ARM accepts ("2020-04-07T14:53:14Z",
// "2020-04-07 14:53:14Z", with offset or fraction, or a bare date) and
// .NET's general forms ("4/7/2023 2:53:14 PM"). Times without a zone are
// UTC; times with an offset are converted to UTC.
func parseDateTime(s string) (time.Time, error) {
	v := strings.TrimSpace(s)
	layouts := []string{
		time.RFC3339Nano,
		"2006-01-02 15:04:05Z07:00",
		"2006-01-02 15:04:05.999999999Z07:00",
		"2006-01-02T15:04:05.999999999",
		"2006-01-02 15:04:05.999999999",
		"2006-01-02T15:04Z07:00",
		"2006-01-02T15:04",
		"2006-01-02",
		"1/2/2006 3:04:05 PM",
		"1/2/2006 3:04 PM",
		"1/2/2006 15:04:05",
		"1/2/2006",
		"Mon, 02 Jan 2006 15:04:05 GMT",
	}
	for _, l := range layouts {
		if t, err := time.Parse(l, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("the value '%s' is not a date and time ARM can read; use ISO 8601 with separators such as 2020-04-07T14:53:14Z (utcNow('u') or utcNow('o'), not utcNow()'s compact default)", s)
}

// addISODuration adds [-]P[nY][nM][nW][nD][T[nH][nM][n[.n]S]]; years and
// months are calendar units that clamp the day of month as .NET's
// AddMonths does.
func addISODuration(t time.Time, d string) (time.Time, error) {
	bad := fmt.Errorf("the duration '%s' is not an ISO 8601 duration such as P3Y, -P9D or PT1H30M", d)
	rest := strings.ToUpper(strings.TrimSpace(d))
	sign := 1
	if r, ok := strings.CutPrefix(rest, "-"); ok {
		sign, rest = -1, r
	}
	rest, ok := strings.CutPrefix(rest, "P")
	if !ok || rest == "" {
		return t, bad
	}
	var years, months, days int
	var clock time.Duration
	inTime := false
	for rest != "" {
		if rest[0] == 'T' {
			if inTime || len(rest) == 1 {
				return t, bad
			}
			inTime, rest = true, rest[1:]
			continue
		}
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.' || rest[i] == ',') {
			i++
		}
		if i == 0 || i == len(rest) {
			return t, bad
		}
		num := strings.ReplaceAll(rest[:i], ",", ".")
		unit := rest[i]
		rest = rest[i+1:]
		if inTime {
			f, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return t, bad
			}
			switch unit {
			case 'H':
				clock += time.Duration(f * float64(time.Hour))
			case 'M':
				clock += time.Duration(f * float64(time.Minute))
			case 'S':
				clock += time.Duration(f * float64(time.Second))
			default:
				return t, bad
			}
			continue
		}
		n, err := strconv.Atoi(num)
		if err != nil {
			return t, bad
		}
		switch unit {
		case 'Y':
			years += n
		case 'M':
			months += n
		case 'W':
			days += 7 * n
		case 'D':
			days += n
		default:
			return t, bad
		}
	}
	t = addMonths(t, sign*(12*years+months))
	return t.AddDate(0, 0, sign*days).Add(time.Duration(sign) * clock), nil
}

func addMonths(t time.Time, n int) time.Time {
	if n == 0 {
		return t
	}
	y, m, d := t.Date()
	first := time.Date(y, m, 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location()).AddDate(0, n, 0)
	last := first.AddDate(0, 1, -1).Day()
	return first.AddDate(0, 0, min(d, last)-1)
}

// formatDateTime formats as .NET's DateTime.ToString(format,
// InvariantCulture) does.
func formatDateTime(t time.Time, format string) (string, error) {
	if len(format) == 1 {
		std, ok := standardDateFormats(format[0])
		if !ok {
			return "", fmt.Errorf("'%s' is not a standard date and time format; write %%%s for the custom specifier", format, format)
		}
		format = std
	}
	var b strings.Builder
	for i := 0; i < len(format); {
		c := format[i]
		n := 1
		for i+n < len(format) && format[i+n] == c {
			n++
		}
		switch c {
		case 'y':
			switch n {
			case 1:
				b.WriteString(strconv.Itoa(t.Year() % 100))
			case 2:
				fmt.Fprintf(&b, "%02d", t.Year()%100)
			default:
				fmt.Fprintf(&b, "%0*d", n, t.Year())
			}
		case 'M':
			switch n {
			case 1:
				b.WriteString(strconv.Itoa(int(t.Month())))
			case 2:
				fmt.Fprintf(&b, "%02d", int(t.Month()))
			case 3:
				b.WriteString(t.Month().String()[:3])
			default:
				b.WriteString(t.Month().String())
			}
		case 'd':
			switch n {
			case 1:
				b.WriteString(strconv.Itoa(t.Day()))
			case 2:
				fmt.Fprintf(&b, "%02d", t.Day())
			case 3:
				b.WriteString(t.Weekday().String()[:3])
			default:
				b.WriteString(t.Weekday().String())
			}
		case 'h':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			writeNumber(&b, h, min(n, 2))
		case 'H':
			writeNumber(&b, t.Hour(), min(n, 2))
		case 'm':
			writeNumber(&b, t.Minute(), min(n, 2))
		case 's':
			writeNumber(&b, t.Second(), min(n, 2))
		case 'f', 'F':
			if n > 7 {
				return "", fmt.Errorf("the format '%s' has more than seven '%c' specifiers", format, c)
			}
			frac := fmt.Sprintf("%07d", t.Nanosecond()/100)[:n]
			if c == 'F' {
				frac = strings.TrimRight(frac, "0")
			}
			b.WriteString(frac)
		case 't':
			ampm := "AM"
			if t.Hour() >= 12 {
				ampm = "PM"
			}
			if n == 1 {
				ampm = ampm[:1]
			}
			b.WriteString(ampm)
		case 'K':
			b.WriteString(strings.Repeat("Z", n))
		case 'z':
			switch n {
			case 1:
				b.WriteString("+0")
			case 2:
				b.WriteString("+00")
			default:
				b.WriteString("+00:00")
			}
		case 'g':
			b.WriteString("A.D.")
		case '\'', '"':
			end := strings.IndexByte(format[i+1:], c)
			if end < 0 {
				return "", fmt.Errorf("the format '%s' has an unterminated quoted string", format)
			}
			b.WriteString(format[i+1 : i+1+end])
			i += end + 2
			continue
		case '\\':
			if i+1 < len(format) {
				b.WriteByte(format[i+1])
			}
			i += 2
			continue
		case '%':
			i++
			continue
		default:
			b.WriteString(format[i : i+n])
		}
		i += n
	}
	return b.String(), nil
}

func writeNumber(b *strings.Builder, v, width int) {
	fmt.Fprintf(b, "%0*d", width, v)
}

func standardDateFormats(c byte) (string, bool) {
	switch c {
	case 'd':
		return "MM/dd/yyyy", true
	case 'D':
		return "dddd, dd MMMM yyyy", true
	case 'f':
		return "dddd, dd MMMM yyyy HH:mm", true
	case 'F', 'U':
		return "dddd, dd MMMM yyyy HH:mm:ss", true
	case 'g':
		return "MM/dd/yyyy HH:mm", true
	case 'G':
		return "MM/dd/yyyy HH:mm:ss", true
	case 'm', 'M':
		return "MMMM dd", true
	case 'o', 'O':
		return "yyyy-MM-ddTHH:mm:ss.fffffffK", true
	case 'r', 'R':
		return "ddd, dd MMM yyyy HH:mm:ss 'GMT'", true
	case 's':
		return "yyyy-MM-ddTHH:mm:ss", true
	case 't':
		return "HH:mm", true
	case 'T':
		return "HH:mm:ss", true
	case 'u':
		return "yyyy-MM-dd HH:mm:ss'Z'", true
	case 'y', 'Y':
		return "yyyy MMMM", true
	}
	return "", false
}
