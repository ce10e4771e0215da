package expr

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
)

// String functions (template-functions-string.md). contains, empty,
// first, last, indexOf, lastIndexOf, length, skip, take, json, join and
// concat serve arrays too and live with the collection functions.
func stringFunctions() []*function {
	return []*function{
		fixed("base64", 1, pure(func(args []any) (any, error) {
			s, err := argString(args, 0)
			return base64.StdEncoding.EncodeToString([]byte(s)), err
		})),
		fixed("base64ToString", 1, pure(func(args []any) (any, error) {
			b, err := base64Arg(args)
			return strings.ToValidUTF8(string(b), "\uFFFD"), err
		})),
		fixed("base64ToJson", 1, pure(func(args []any) (any, error) {
			b, err := base64Arg(args)
			if err != nil {
				return nil, err
			}
			return parseLenientJSON(string(b))
		})),
		fixed("dataUri", 1, pure(fnDataURI)),
		fixed("dataUriToString", 1, pure(fnDataURIToString)),
		fixed("startsWith", 2, pure(func(args []any) (any, error) { return affix(args, true) })),
		fixed("endsWith", 2, pure(func(args []any) (any, error) { return affix(args, false) })),
		ranged("format", 1, -1, pure(fnFormat)),
		ranged("guid", 1, -1, pure(func(args []any) (any, error) {
			parts, err := allStrings(args)
			if err != nil {
				return nil, err
			}
			return GUID(parts...), nil
		})),
		{name: "newGuid", minArgs: 0, maxArgs: 0, eval: fnNewGUID,
			sites: []Site{SiteParameterDefault}, siteHint: "The function can only be used in the default value of a parameter."},
		ranged("padLeft", 2, 3, pure(fnPadLeft)),
		fixed("replace", 3, pure(fnReplace)),
		fixed("split", 2, pure(fnSplit)),
		fixed("string", 1, pure(func(args []any) (any, error) { return stringify(args[0]), nil })),
		ranged("substring", 1, 3, pure(fnSubstring)),
		fixed("toLower", 1, pure(func(args []any) (any, error) {
			s, err := argString(args, 0)
			return strings.ToLower(s), err
		})),
		fixed("toUpper", 1, pure(func(args []any) (any, error) {
			s, err := argString(args, 0)
			return strings.ToUpper(s), err
		})),
		fixed("trim", 1, pure(func(args []any) (any, error) {
			s, err := argString(args, 0)
			return strings.TrimFunc(s, unicode.IsSpace), err
		})),
		ranged("uniqueString", 1, -1, pure(func(args []any) (any, error) {
			parts, err := allStrings(args)
			if err != nil {
				return nil, err
			}
			if n := len(strings.Join(parts, "-")); n > 131072 {
				return nil, fmt.Errorf("the arguments are %d characters long together; the limit is 131072", n)
			}
			return UniqueString(parts...), nil
		})),
		fixed("uri", 2, pure(fnURI)),
		fixed("uriComponent", 1, pure(func(args []any) (any, error) {
			s, err := argString(args, 0)
			return escapeDataString(s), err
		})),
		fixed("uriComponentToString", 1, pure(fnURIComponentToString)),
	}
}

func base64Arg(args []any) ([]byte, error) {
	s, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("the value is not valid base64: %w", err)
	}
	return b, nil
}

func fnDataURI(args []any) (any, error) {
	if s, ok := args[0].(string); ok {
		return "data:text/plain;charset=utf8;base64," + base64.StdEncoding.EncodeToString([]byte(s)), nil
	}
	return "data:application/json;charset=utf8;base64," + base64.StdEncoding.EncodeToString([]byte(jsonText(args[0]))), nil
}

func fnDataURIToString(args []any) (any, error) {
	s, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	rest, ok := strings.CutPrefix(s, "data:")
	meta, data, comma := strings.Cut(rest, ",")
	if !ok || !comma {
		return nil, errors.New("the value is not a data URI (data:[<media type>][;base64],<data>)")
	}
	if strings.HasSuffix(strings.ToLower(meta), ";base64") {
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return nil, fmt.Errorf("the data URI's base64 data is not valid: %w", err)
		}
		return strings.ToValidUTF8(string(b), "\uFFFD"), nil
	}
	out, err := url.PathUnescape(data)
	if err != nil {
		return nil, fmt.Errorf("the data URI's data is not valid percent-encoding: %w", err)
	}
	return out, nil
}

// affix is startsWith/endsWith, which ignore case.
func affix(args []any, start bool) (any, error) {
	s, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	x, err := argString(args, 1)
	if err != nil {
		return nil, err
	}
	sr, xr := []rune(s), []rune(x)
	if len(xr) > len(sr) {
		return false, nil
	}
	if start {
		return strings.EqualFold(string(sr[:len(xr)]), x), nil
	}
	return strings.EqualFold(string(sr[len(sr)-len(xr):]), x), nil
}

func fnNewGUID(ctx *Context, _ []any) (any, error) {
	if ctx.NewGUID != nil {
		return ctx.NewGUID(), nil
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	b[6] = b[6]&0x0F | 0x40
	b[8] = b[8]&0x3F | 0x80
	return formatUUID(b), nil
}

// maxPadLength guards padLeft against building huge strings; ARM's own
// limit is undocumented.
const maxPadLength = 16384

func fnPadLeft(args []any) (any, error) {
	var s string
	switch t := args[0].(type) {
	case string:
		s = t
	case int64:
		s = stringify(t)
	default:
		return nil, argTypeError(args, 0, "a string or an integer")
	}
	total, err := argInt(args, 1)
	if err != nil {
		return nil, err
	}
	if total < 0 || total > maxPadLength {
		return nil, fmt.Errorf("the total length %d must be from 0 to %d", total, maxPadLength)
	}
	pad := " "
	if len(args) == 3 {
		if pad, err = argString(args, 2); err != nil {
			return nil, err
		}
		if utf16Len(pad) != 1 {
			return nil, fmt.Errorf("the padding character must be a single character, not '%s'", pad)
		}
	}
	if n := utf16Len(s); int64(n) < total {
		s = strings.Repeat(pad, int(total)-n) + s
	}
	return s, nil
}

func fnReplace(args []any) (any, error) {
	parts, err := allStrings(args)
	if err != nil {
		return nil, err
	}
	if parts[1] == "" {
		return nil, errors.New("the string to replace (second argument) must not be empty")
	}
	return strings.ReplaceAll(parts[0], parts[1], parts[2]), nil
}

// fnSplit is .NET's String.Split(string[], None): empty entries are kept;
// at each position the first matching delimiter in the list wins.
func fnSplit(args []any) (any, error) {
	s, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	var delims []string
	switch t := args[1].(type) {
	case string:
		delims = []string{t}
	case nil:
	case []any:
		if delims, err = allStrings(t); err != nil {
			return nil, errors.New("the delimiters (second argument) must be a string or an array of strings")
		}
	default:
		return nil, argTypeError(args, 1, "a string or an array of strings")
	}
	out := []any{}
	last := 0
	for i := 0; i < len(s); {
		matched := ""
		for _, d := range delims {
			if d != "" && strings.HasPrefix(s[i:], d) {
				matched = d
				break
			}
		}
		if matched == "" {
			i++
			continue
		}
		out = append(out, s[last:i])
		i += len(matched)
		last = i
	}
	return append(out, s[last:]), nil
}

func fnSubstring(args []any) (any, error) {
	s, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	n := int64(utf16Len(s))
	start := int64(0)
	if len(args) > 1 {
		if start, err = argInt(args, 1); err != nil {
			return nil, err
		}
	}
	length := n - start
	if len(args) > 2 {
		if length, err = argInt(args, 2); err != nil {
			return nil, err
		}
	}
	if start < 0 || start > n || length < 0 || start+length > n {
		return nil, fmt.Errorf("The index and length parameters must refer to a location within the string. The index parameter: '%d', the length parameter: '%d', the length of the string parameter: '%d'.", start, length, n)
	}
	return utf16Slice(s, int(start), int(start+length)), nil
}

func fnURI(args []any) (any, error) {
	parts, err := allStrings(args)
	if err != nil {
		return nil, err
	}
	base, err := url.Parse(parts[0])
	if err != nil || !base.IsAbs() {
		return nil, fmt.Errorf("the base URI '%s' must be an absolute URI", parts[0])
	}
	rel, err := url.Parse(parts[1])
	if err != nil {
		return nil, fmt.Errorf("the relative URI '%s' is not valid: %w", parts[1], err)
	}
	return base.ResolveReference(rel).String(), nil
}

// escapeDataString is .NET's Uri.EscapeDataString: everything but the
// RFC 3986 unreserved characters is percent-encoded (UTF-8, upper-case hex).
func escapeDataString(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte("0123456789ABCDEF"[c>>4])
		b.WriteByte("0123456789ABCDEF"[c&0xF])
	}
	return b.String()
}

// fnURIComponentToString decodes percent-encoding; '+' becomes a space, as
// the Azure Policy port of the evaluator (HttpUtility.UrlDecode) does.
func fnURIComponentToString(args []any) (any, error) {
	s, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	out, err := url.QueryUnescape(s)
	if err != nil {
		return nil, fmt.Errorf("the value is not valid percent-encoding: %w", err)
	}
	return strings.ToValidUTF8(out, "\uFFFD"), nil
}
