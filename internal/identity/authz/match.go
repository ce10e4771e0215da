package authz

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Match reports whether an operation string (action or data action) matches
// a role permission entry such as "Microsoft.Storage/*/read", with Azure's
// rules: case-insensitive, "*" matches any run of characters including "/",
// and a "*" that fills a whole segment may also stand for no segment. It
// compiles the pattern on every call; the Evaluator precompiles instead.
func Match(pattern, operation string) bool {
	p := compilePattern(pattern)
	return p.match(operation, isASCII(operation))
}

type patternKind uint8

const (
	matchAll     patternKind = iota // "*", "**", …
	matchLiteral                    // no wildcard: strings.EqualFold
	matchGlob
)

// pattern is a compiled permission entry. A glob is
// pieces[0] star[0] pieces[1] … star[n-1] pieces[n]; a segment star (from
// "/*/") owns its trailing "/", so the piece before it always ends in "/"
// and the text it consumes must be empty or end in "/".
type pattern struct {
	raw     string
	kind    patternKind
	pieces  []string
	segment []bool // segment[i]: star i is a segment star
	// ascii patterns keep lower-cased copies (of raw, or of the pieces) so
	// that matching an ASCII operation is a byte loop.
	ascii  bool
	lower  string
	lowerP []string
	minLen int // bytes the pieces need
}

func compilePattern(raw string) pattern {
	if strings.IndexByte(raw, '*') < 0 {
		return pattern{raw: raw, kind: matchLiteral, ascii: isASCII(raw), lower: strings.ToLower(raw)}
	}
	if strings.Trim(raw, "*") == "" {
		return pattern{raw: raw, kind: matchAll}
	}
	p := pattern{raw: raw, kind: matchGlob}
	var piece strings.Builder
	for i := 0; i < len(raw); {
		if raw[i] != '*' {
			piece.WriteByte(raw[i])
			i++
			continue
		}
		j := i
		for j < len(raw) && raw[j] == '*' {
			j++
		}
		seg := i > 0 && raw[i-1] == '/' && j < len(raw) && raw[j] == '/'
		p.pieces = append(p.pieces, piece.String())
		p.segment = append(p.segment, seg)
		piece.Reset()
		if seg {
			j++ // the star owns the "/" after it
		}
		i = j
	}
	p.pieces = append(p.pieces, piece.String())
	p.ascii = isASCII(raw)
	for _, pc := range p.pieces {
		p.lowerP = append(p.lowerP, strings.ToLower(pc))
		p.minLen += len(pc)
	}
	return p
}

// match reports whether s matches; sASCII says s is pure ASCII, which the
// caller computes once for all the patterns it tries.
func (p *pattern) match(s string, sASCII bool) bool {
	fast := sASCII && p.ascii
	switch p.kind {
	case matchAll:
		return true
	case matchLiteral:
		if fast {
			return len(s) == len(p.lower) && hasLowerPrefix(s, p.lower)
		}
		return strings.EqualFold(p.raw, s)
	}
	if fast {
		return p.matchASCII(s)
	}
	n := len(p.pieces) - 1
	start, ok := matchPrefix(s, 0, p.pieces[0])
	if !ok {
		return false
	}
	limit, ok := matchSuffix(s, p.pieces[n])
	if !ok || limit < start {
		return false
	}
	// Leftmost placement of each middle piece is optimal: a later placement
	// only hands text to the following star, and for a segment star that
	// text ends where the preceding piece does, in "/".
	cur := start
	for k := 1; k < n; k++ {
		end, found := -1, false
		for pos := cur; pos <= limit; {
			if !p.segment[k-1] || pos == cur || s[pos-1] == '/' {
				if e, ok := matchPrefix(s, pos, p.pieces[k]); ok && e <= limit {
					end, found = e, true
					break
				}
			}
			if pos == limit {
				break
			}
			_, w := utf8.DecodeRuneInString(s[pos:])
			pos += w
		}
		if !found {
			return false
		}
		cur = end
	}
	if p.segment[n-1] && cur != limit && s[limit-1] != '/' {
		return false
	}
	return true
}

// matchASCII is match for ASCII pattern and operation; the reasoning is
// the same as in match.
func (p *pattern) matchASCII(s string) bool {
	n := len(p.lowerP) - 1
	first, last := p.lowerP[0], p.lowerP[n]
	if len(s) < p.minLen || !hasLowerPrefix(s, first) || !hasLowerPrefix(s[len(s)-len(last):], last) {
		return false
	}
	cur, limit := len(first), len(s)-len(last)
	for k := 1; k < n; k++ {
		piece, found := p.lowerP[k], false
		for pos := cur; pos+len(piece) <= limit; pos++ {
			if p.segment[k-1] && pos != cur && s[pos-1] != '/' {
				continue
			}
			if hasLowerPrefix(s[pos:], piece) {
				cur, found = pos+len(piece), true
				break
			}
		}
		if !found {
			return false
		}
	}
	return !p.segment[n-1] || cur == limit || s[limit-1] == '/'
}

// hasLowerPrefix reports whether s starts with lower, an already lower-cased
// ASCII string, ignoring ASCII case in s.
func hasLowerPrefix(s, lower string) bool {
	if len(s) < len(lower) {
		return false
	}
	for i := 0; i < len(lower); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// matchPrefix matches piece against s from byte i, folding case the way
// strings.EqualFold does, and returns the end of the match.
func matchPrefix(s string, i int, piece string) (int, bool) {
	for j := 0; j < len(piece); {
		if i >= len(s) {
			return 0, false
		}
		pc, sc := piece[j], s[i]
		if pc < utf8.RuneSelf && sc < utf8.RuneSelf {
			if pc != sc && lowerASCII(pc) != lowerASCII(sc) {
				return 0, false
			}
			i++
			j++
			continue
		}
		pr, pw := utf8.DecodeRuneInString(piece[j:])
		sr, sw := utf8.DecodeRuneInString(s[i:])
		if !equalFoldRune(pr, sr) {
			return 0, false
		}
		i += sw
		j += pw
	}
	return i, true
}

// matchSuffix matches piece against the end of s and returns where the
// match starts.
func matchSuffix(s string, piece string) (int, bool) {
	i := len(s)
	for j := len(piece); j > 0; {
		if i <= 0 {
			return 0, false
		}
		pc, sc := piece[j-1], s[i-1]
		if pc < utf8.RuneSelf && sc < utf8.RuneSelf {
			if pc != sc && lowerASCII(pc) != lowerASCII(sc) {
				return 0, false
			}
			i--
			j--
			continue
		}
		pr, pw := utf8.DecodeLastRuneInString(piece[:j])
		sr, sw := utf8.DecodeLastRuneInString(s[:i])
		if !equalFoldRune(pr, sr) {
			return 0, false
		}
		i -= sw
		j -= pw
	}
	return i, true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalFoldRune is strings.EqualFold for one rune pair (simple folding).
func equalFoldRune(a, b rune) bool {
	if a == b {
		return true
	}
	if a > b {
		a, b = b, a
	}
	if b < utf8.RuneSelf {
		return 'A' <= a && a <= 'Z' && b == a+'a'-'A'
	}
	r := unicode.SimpleFold(a)
	for r != a && r < b {
		r = unicode.SimpleFold(r)
	}
	return r == b
}
