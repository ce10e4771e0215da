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
	return p.match(operation)
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
}

func compilePattern(raw string) pattern {
	if strings.IndexByte(raw, '*') < 0 {
		return pattern{raw: raw, kind: matchLiteral}
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
	return p
}

func (p *pattern) match(s string) bool {
	switch p.kind {
	case matchAll:
		return true
	case matchLiteral:
		return strings.EqualFold(p.raw, s)
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
