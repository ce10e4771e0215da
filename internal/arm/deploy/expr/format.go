package expr

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// fnFormat is format(formatString, args…) with .NET composite formatting
// (String.Format, invariant culture): {index[,alignment][:format]}, {{ and
// }} for braces. Booleans print as True/False, null as nothing, objects and
// arrays as one-line JSON with single quotes ({'a':'b'}), which is what
// Bicep string interpolation evaluates to.
func fnFormat(args []any) (any, error) {
	f, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	return compositeFormat(f, args[1:])
}

var errFormat = errors.New("the format string is not in a correct format; write literal braces as {{ and }}")

func compositeFormat(f string, args []any) (string, error) {
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		c := f[i]
		switch c {
		case '}':
			if i+1 < len(f) && f[i+1] == '}' {
				b.WriteByte('}')
				i++
				continue
			}
			return "", errFormat
		case '{':
			if i+1 < len(f) && f[i+1] == '{' {
				b.WriteByte('{')
				i++
				continue
			}
			end := strings.IndexByte(f[i:], '}')
			if end < 0 {
				return "", errFormat
			}
			item := f[i+1 : i+end]
			i += end
			s, err := formatItem(item, args)
			if err != nil {
				return "", err
			}
			b.WriteString(s)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// maxAlignment keeps {0,n} from building huge strings.
const maxAlignment = 16384

func formatItem(item string, args []any) (string, error) {
	spec := ""
	if k := strings.IndexByte(item, ':'); k >= 0 {
		item, spec = item[:k], item[k+1:]
	}
	align := 0
	if k := strings.IndexByte(item, ','); k >= 0 {
		a, err := strconv.Atoi(strings.TrimSpace(item[k+1:]))
		if err != nil || a > maxAlignment || a < -maxAlignment {
			return "", errFormat
		}
		item, align = item[:k], a
	}
	idx, err := strconv.Atoi(strings.TrimSpace(item))
	if err != nil || idx < 0 {
		return "", errFormat
	}
	if idx >= len(args) {
		return "", fmt.Errorf("the format item {%d} refers to argument %d, but only %d argument%s follow the format string", idx, idx, len(args), plural(len(args), "", "s"))
	}
	s, err := formatArg(args[idx], spec)
	if err != nil {
		return "", err
	}
	if pad := abs(align) - utf16Len(s); pad > 0 {
		if align > 0 {
			s = strings.Repeat(" ", pad) + s
		} else {
			s += strings.Repeat(" ", pad)
		}
	}
	return s, nil
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func formatArg(v any, spec string) (string, error) {
	switch t := v.(type) {
	case int64:
		return formatNumber(numberValue{i: t, isInt: true}, spec)
	case float64:
		return formatNumber(numberValue{f: t}, spec)
	case []any, map[string]any:
		return strings.ReplaceAll(jsonText(t), `"`, "'"), nil
	}
	return stringify(v), nil
}

type numberValue struct {
	i     int64
	f     float64
	isInt bool
}

func (n numberValue) float() float64 {
	if n.isInt {
		return float64(n.i)
	}
	return n.f
}

func (n numberValue) negative() bool {
	if n.isInt {
		return n.i < 0
	}
	return n.f < 0 || n.f == 0 && math.Signbit(n.f)
}

// digits returns the absolute value as integer and fraction digit strings
// rounded (half away from zero, as .NET does) to frac fraction digits.
func (n numberValue) digits(frac int) (string, string) {
	if n.isInt {
		s := strconv.FormatUint(absUint(n.i), 10)
		return s, strings.Repeat("0", frac)
	}
	s := strconv.FormatFloat(math.Abs(n.f), 'f', 40, 64)
	intPart, fracPart, _ := strings.Cut(s, ".")
	return roundDigits(intPart, fracPart, frac)
}

func absUint(i int64) uint64 {
	if i < 0 {
		return uint64(-(i + 1)) + 1
	}
	return uint64(i)
}

// roundDigits rounds a decimal number given as digit strings to frac
// fraction digits, half away from zero.
func roundDigits(intPart, fracPart string, frac int) (string, string) {
	for len(fracPart) < frac+1 {
		fracPart += "0"
	}
	keep := []byte(intPart + fracPart[:frac])
	if fracPart[frac] >= '5' {
		i := len(keep) - 1
		for ; i >= 0; i-- {
			if keep[i] == '9' {
				keep[i] = '0'
				continue
			}
			keep[i]++
			break
		}
		if i < 0 {
			keep = append([]byte{'1'}, keep...)
		}
	}
	n := len(keep) - frac
	ip := strings.TrimLeft(string(keep[:n]), "0")
	if ip == "" {
		ip = "0"
	}
	return ip, string(keep[n:])
}

func isZeroDigits(ip, fp string) bool {
	return strings.Trim(ip, "0") == "" && strings.Trim(fp, "0") == ""
}

func groupDigits(ip string) string {
	if len(ip) <= 3 {
		return ip
	}
	var b strings.Builder
	lead := len(ip) % 3
	if lead > 0 {
		b.WriteString(ip[:lead])
	}
	for i := lead; i < len(ip); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(ip[i : i+3])
	}
	return b.String()
}

// formatNumber applies a .NET numeric format string (standard: C, D, E,
// F, G, N, P, R, X, each with an optional precision; or a custom pattern
// of 0 # . , % and literals) in the invariant culture.
func formatNumber(n numberValue, spec string) (string, error) {
	if spec == "" {
		spec = "G"
	}
	kind := spec[0] | 0x20 // lower-case letter
	prec, err := -1, error(nil)
	if len(spec) > 1 {
		prec, err = strconv.Atoi(spec[1:])
	}
	if kind < 'a' || kind > 'z' || err != nil || prec > 99 {
		return customNumber(n, spec)
	}
	sign := ""
	switch kind {
	case 'g', 'r':
		if n.isInt {
			return strconv.FormatInt(n.i, 10), nil
		}
		if prec > 0 && kind == 'g' {
			return strconv.FormatFloat(n.f, 'G', prec, 64), nil
		}
		return formatFloat(n.f), nil
	case 'd':
		if !n.isInt {
			return "", errors.New("the format D only applies to integers")
		}
		s := strconv.FormatUint(absUint(n.i), 10)
		if len(s) < prec {
			s = strings.Repeat("0", prec-len(s)) + s
		}
		if n.i < 0 {
			s = "-" + s
		}
		return s, nil
	case 'x':
		if !n.isInt {
			return "", errors.New("the format X only applies to integers")
		}
		s := strconv.FormatUint(uint64(n.i), 16)
		if spec[0] == 'X' {
			s = strings.ToUpper(s)
		}
		if len(s) < prec {
			s = strings.Repeat("0", prec-len(s)) + s
		}
		return s, nil
	case 'e':
		if prec < 0 {
			prec = 6
		}
		s := strconv.FormatFloat(n.float(), 'e', prec, 64)
		mant, exp, _ := strings.Cut(s, "e")
		expSign, expDigits := exp[:1], strings.TrimLeft(exp[1:], "0")
		for len(expDigits) < 3 {
			expDigits = "0" + expDigits
		}
		e := "e"
		if spec[0] == 'E' {
			e = "E"
		}
		return mant + e + expSign + expDigits, nil
	case 'f', 'n', 'p', 'c':
		if prec < 0 {
			prec = 2
		}
		v := n
		if kind == 'p' {
			if v.isInt {
				v = numberValue{i: v.i * 100, isInt: true}
				if v.i/100 != n.i {
					v = numberValue{f: n.float() * 100}
				}
			} else {
				v.f *= 100
			}
		}
		ip, fp := v.digits(prec)
		if v.negative() && !isZeroDigits(ip, fp) {
			sign = "-"
		}
		if kind != 'f' {
			ip = groupDigits(ip)
		}
		s := ip
		if prec > 0 {
			s += "." + fp
		}
		switch kind {
		case 'p':
			return sign + s + " %", nil
		case 'c':
			return sign + "¤" + s, nil
		}
		return sign + s, nil
	}
	return customNumber(n, spec)
}

// customNumber handles custom numeric format strings: up to three
// ';'-separated sections (positive;negative;zero), digit placeholders 0
// and #, one decimal point, ',' for grouping (between placeholders) or
// scaling by 1000 (before the point), % (times 100), quoted and escaped
// literals.
func customNumber(n numberValue, spec string) (string, error) {
	sections := splitSections(spec)
	section := sections[0]
	neg := n.negative()
	useNegSection := neg && len(sections) > 1 && sections[1] != ""
	if useNegSection {
		section = sections[1]
	}
	p := parsePattern(section)
	v := n
	if p.percent {
		v = numberValue{f: n.float() * 100}
		if n.isInt && n.i < math.MaxInt64/100 && n.i > math.MinInt64/100 {
			v = numberValue{i: n.i * 100, isInt: true}
		}
	}
	if p.scale > 0 {
		v = numberValue{f: v.float() / math.Pow(1000, float64(p.scale))}
	}
	ip, fp := v.digits(p.fracMax)
	if isZeroDigits(ip, fp) && len(sections) > 2 && sections[2] != "" {
		p = parsePattern(sections[2])
		ip, fp = numberValue{}.digits(p.fracMax)
		useNegSection, neg = true, false
	}
	fp = strings.TrimRight(fp, "0")
	for len(fp) < p.fracMin {
		fp += "0"
	}
	if ip == "0" && p.intMin == 0 {
		ip = ""
	}
	for len(ip) < p.intMin {
		ip = "0" + ip
	}
	var b strings.Builder
	if neg && !useNegSection && !isZeroDigits(ip, fp) {
		b.WriteByte('-')
	}
	intSeen, fracSeen := 0, 0
	for _, it := range p.items {
		switch it.kind {
		case itemLiteral:
			b.WriteString(it.text)
		case itemPoint:
			if p.intCount == 0 {
				// No integer placeholders: the integer digits still print.
				b.WriteString(strings.TrimLeft(ip, "0"))
			}
			if fp != "" {
				b.WriteByte('.')
			}
		case itemDigit:
			if !it.fraction {
				intSeen++
				// Placeholders take digits from the right; the first one also
				// takes every digit beyond what the later ones hold.
				idx := len(ip) - 1 - (p.intCount - intSeen)
				from := idx
				if intSeen == 1 {
					from = 0
				}
				for k := max(from, 0); k <= idx; k++ {
					b.WriteByte(ip[k])
					if p.grouping && k < len(ip)-1 && (len(ip)-1-k)%3 == 0 {
						b.WriteByte(',')
					}
				}
				continue
			}
			if fracSeen < len(fp) {
				b.WriteByte(fp[fracSeen])
			}
			fracSeen++
		}
	}
	return b.String(), nil
}

func splitSections(spec string) []string {
	var out []string
	var cur strings.Builder
	var quote byte
	for i := 0; i < len(spec); i++ {
		c := spec[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '\\' && i+1 < len(spec):
			cur.WriteByte(c)
			i++
			c = spec[i]
		case c == ';':
			out = append(out, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(c)
	}
	return append(out, cur.String())
}

type itemKind int

const (
	itemLiteral itemKind = iota
	itemDigit
	itemPoint
)

type patternItem struct {
	kind     itemKind
	text     string
	zero     bool // '0' rather than '#'
	fraction bool
}

type pattern struct {
	items            []patternItem
	intCount, intMin int
	fracMin, fracMax int
	grouping         bool
	scale            int
	percent          bool
}

func parsePattern(s string) pattern {
	var p pattern
	inFraction := false
	pendingCommas := 0
	firstZero := -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '0', '#':
			if pendingCommas > 0 && !inFraction && p.intCount > 0 {
				p.grouping = true
			}
			pendingCommas = 0
			it := patternItem{kind: itemDigit, zero: c == '0', fraction: inFraction}
			if inFraction {
				p.fracMax++
				if c == '0' {
					p.fracMin = p.fracMax
				}
			} else {
				if c == '0' && firstZero < 0 {
					firstZero = p.intCount
				}
				p.intCount++
			}
			p.items = append(p.items, it)
		case '.':
			if !inFraction {
				inFraction = true
				p.scale += pendingCommas
				pendingCommas = 0
				p.items = append(p.items, patternItem{kind: itemPoint})
			}
		case ',':
			if !inFraction {
				pendingCommas++
			}
		case '%':
			p.percent = true
			p.items = append(p.items, patternItem{kind: itemLiteral, text: "%"})
		case '\'', '"':
			end := strings.IndexByte(s[i+1:], c)
			if end < 0 {
				end = len(s) - i - 1
			}
			p.items = append(p.items, patternItem{kind: itemLiteral, text: s[i+1 : i+1+end]})
			i += end + 1
		case '\\':
			if i+1 < len(s) {
				p.items = append(p.items, patternItem{kind: itemLiteral, text: s[i+1 : i+2]})
				i++
			}
		default:
			p.items = append(p.items, patternItem{kind: itemLiteral, text: s[i : i+1]})
		}
	}
	if !inFraction {
		p.scale += pendingCommas
	}
	if firstZero >= 0 {
		p.intMin = p.intCount - firstZero
	}
	return p
}
