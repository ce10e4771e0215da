package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"github.com/outpost-iot/outpost/internal/store"
)

// Query is a parsed registry query:
//
//	SELECT * FROM devices [WHERE condition]
//	SELECT * FROM devices.modules [WHERE condition]
//	SELECT COUNT() AS name FROM devices [WHERE condition]
//
// Conditions compare twin paths (deviceId, status, tags.x.y,
// properties.reported.x, …) with string, number, boolean and null literals
// using = != <> < > <= >=, combined with AND, OR, NOT and parentheses. This
// is the registry's subset of the IoT Hub query language; routing brings the
// full language later.
type Query struct {
	Modules bool
	Count   string // the COUNT() alias, "" for SELECT *
	Where   expr
}

type expr interface {
	eval(doc map[string]any) any
}

type (
	literal struct{ v any }
	path    struct{ parts []string }
	binary  struct {
		op   string
		l, r expr
	}
	not struct{ e expr }
)

func (l literal) eval(map[string]any) any { return l.v }

func (p path) eval(doc map[string]any) any {
	var cur any = doc
	for _, part := range p.parts {
		m, ok := cur.(map[string]any)
		if !ok {
			return undefined{}
		}
		v, ok := m[part]
		if !ok {
			return undefined{}
		}
		cur = v
	}
	return cur
}

type undefined struct{}

func (n not) eval(doc map[string]any) any {
	b, ok := n.e.eval(doc).(bool)
	if !ok {
		return undefined{}
	}
	return !b
}

func (b binary) eval(doc map[string]any) any {
	switch b.op {
	case "AND":
		l, _ := b.l.eval(doc).(bool)
		r, _ := b.r.eval(doc).(bool)
		return l && r
	case "OR":
		l, _ := b.l.eval(doc).(bool)
		r, _ := b.r.eval(doc).(bool)
		return l || r
	}
	l, r := b.l.eval(doc), b.r.eval(doc)
	if _, u := l.(undefined); u {
		return undefined{}
	}
	if _, u := r.(undefined); u {
		return undefined{}
	}
	switch b.op {
	case "=":
		return equal(l, r)
	case "!=", "<>":
		return !equal(l, r)
	}
	if lf, ok := l.(float64); ok {
		if rf, ok := r.(float64); ok {
			return compare(b.op, lf-rf)
		}
	}
	if ls, ok := l.(string); ok {
		if rs, ok := r.(string); ok {
			return compare(b.op, float64(strings.Compare(ls, rs)))
		}
	}
	return undefined{}
}

func equal(l, r any) bool {
	switch lv := l.(type) {
	case string, bool, float64, nil:
		return lv == r
	}
	lb, _ := json.Marshal(l)
	rb, _ := json.Marshal(r)
	return string(lb) == string(rb)
}

func compare(op string, d float64) bool {
	switch op {
	case "<":
		return d < 0
	case ">":
		return d > 0
	case "<=":
		return d <= 0
	case ">=":
		return d >= 0
	}
	return false
}

// ParseQuery parses a registry query.
func ParseQuery(q string) (Query, error) {
	p := &parser{toks: tokenize(q)}
	var out Query
	if !p.keyword("SELECT") {
		return Query{}, p.fail("the query must start with SELECT")
	}
	switch {
	case p.accept("*"):
	case p.keyword("COUNT"):
		if !p.accept("(") || !p.accept(")") {
			return Query{}, p.fail("COUNT takes no arguments: COUNT()")
		}
		out.Count = "COUNT"
		if p.keyword("AS") {
			out.Count = p.next()
		}
	default:
		return Query{}, p.fail("only SELECT * and SELECT COUNT() are supported")
	}
	if !p.keyword("FROM") {
		return Query{}, p.fail("expected FROM devices")
	}
	switch strings.ToLower(p.next()) {
	case "devices":
	case "devices.modules":
		out.Modules = true
	default:
		return Query{}, p.fail("FROM must be devices or devices.modules")
	}
	if p.keyword("WHERE") {
		e, err := p.or()
		if err != nil {
			return Query{}, err
		}
		out.Where = e
	}
	if !p.done() {
		return Query{}, p.fail(fmt.Sprintf("unexpected '%s'", p.peek()))
	}
	return out, nil
}

type parser struct {
	toks []string
	i    int
}

func (p *parser) peek() string {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return ""
}
func (p *parser) next() string { t := p.peek(); p.i++; return t }
func (p *parser) done() bool   { return p.i >= len(p.toks) }
func (p *parser) accept(t string) bool {
	if p.peek() == t {
		p.i++
		return true
	}
	return false
}
func (p *parser) keyword(k string) bool {
	if strings.EqualFold(p.peek(), k) {
		p.i++
		return true
	}
	return false
}
func (p *parser) fail(msg string) error {
	return errorf(http.StatusBadRequest, "SqlQueryInvalid", "The query is invalid: %s (at token %d).", msg, p.i+1)
}

func (p *parser) or() (expr, error) {
	l, err := p.and()
	for err == nil && p.keyword("OR") {
		var r expr
		if r, err = p.and(); err == nil {
			l = binary{"OR", l, r}
		}
	}
	return l, err
}

func (p *parser) and() (expr, error) {
	l, err := p.unary()
	for err == nil && p.keyword("AND") {
		var r expr
		if r, err = p.unary(); err == nil {
			l = binary{"AND", l, r}
		}
	}
	return l, err
}

func (p *parser) unary() (expr, error) {
	if p.keyword("NOT") {
		e, err := p.unary()
		return not{e}, err
	}
	if p.accept("(") {
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		if !p.accept(")") {
			return nil, p.fail("missing )")
		}
		return e, nil
	}
	l, err := p.operand()
	if err != nil {
		return nil, err
	}
	switch op := p.peek(); op {
	case "=", "!=", "<>", "<", ">", "<=", ">=":
		p.i++
		r, err := p.operand()
		if err != nil {
			return nil, err
		}
		return binary{op, l, r}, nil
	}
	return l, nil
}

func (p *parser) operand() (expr, error) {
	t := p.next()
	switch {
	case t == "":
		return nil, p.fail("the condition ends too early")
	case strings.HasPrefix(t, "'"):
		return literal{strings.ReplaceAll(t[1:len(t)-1], "''", "'")}, nil
	case strings.EqualFold(t, "true"):
		return literal{true}, nil
	case strings.EqualFold(t, "false"):
		return literal{false}, nil
	case strings.EqualFold(t, "null"):
		return literal{nil}, nil
	}
	if f, err := strconv.ParseFloat(t, 64); err == nil {
		return literal{f}, nil
	}
	if !unicode.IsLetter(rune(t[0])) && t[0] != '$' && t[0] != '_' {
		return nil, p.fail(fmt.Sprintf("unexpected '%s'", t))
	}
	return path{strings.Split(t, ".")}, nil
}

// tokenize splits a query into words, quoted strings and operators.
func tokenize(s string) []string {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'':
			j := i + 1
			for j < len(s) {
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' {
						j += 2
						continue
					}
					break
				}
				j++
			}
			if j >= len(s) {
				toks = append(toks, "\x00unterminated")
				return toks
			}
			toks = append(toks, s[i:j+1])
			i = j + 1
		case strings.ContainsRune("()*,", rune(c)):
			toks = append(toks, string(c))
			i++
		case strings.ContainsRune("=<>!", rune(c)):
			j := i + 1
			for j < len(s) && strings.ContainsRune("=<>", rune(s[j])) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r\n()*,=<>!'", rune(s[j])) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks
}

// RunQuery evaluates a query over a hub's twins, returning up to max
// results after the continuation key (a device id) and the next key.
func (s *Service) RunQuery(ctx context.Context, hub string, q Query, max int, after string) ([]any, string, error) {
	if max <= 0 || max > 1000 {
		max = 1000
	}
	var out []any
	var count int64
	cursor, cursorModule := after, ""
	if q.Modules && after != "" {
		cursor, cursorModule, _ = strings.Cut(after, "/")
	}
	for {
		batch, err := s.devices.List(ctx, store.DeviceFilter{Hub: hub, Modules: q.Modules, After: cursor, AfterModule: cursorModule, Limit: 500})
		if err != nil {
			return nil, "", fmt.Errorf("registry: query: %w", err)
		}
		for _, d := range batch {
			cursor, cursorModule = d.DeviceID, d.ModuleID
			tw := s.renderTwin(d)
			if q.Where != nil {
				b, _ := json.Marshal(tw)
				var doc map[string]any
				_ = json.Unmarshal(b, &doc)
				if ok, _ := q.Where.eval(doc).(bool); !ok {
					continue
				}
			}
			if q.Count != "" {
				count++
				continue
			}
			out = append(out, tw)
			if len(out) == max {
				next := d.DeviceID
				if q.Modules {
					next += "/" + d.ModuleID
				}
				return out, next, nil
			}
		}
		if len(batch) < 500 {
			break
		}
	}
	if q.Count != "" {
		return []any{map[string]int64{q.Count: count}}, "", nil
	}
	if out == nil {
		out = []any{}
	}
	return out, "", nil
}
