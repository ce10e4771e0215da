package expr

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The golden cases live in testdata/*.txt, one per line:
//
//	<template string><TAB><expected>
//
// where <expected> is the JSON value the string evaluates to, or
// "error: <text>" (evaluation fails with a message containing text), or
// "parse error @<pos>: <text>" (Parse fails at character pos). Lines
// starting with '#' are comments. Directives change the context for the
// lines after them: "@site <any|parameterDefault|variables|resource|
// resourceProperties|outputs>" and "@scope <resourceGroup|subscription|
// managementGroup|tenant>". Every case runs against testdata/context.json.

type goldenContext struct {
	Tenant          Tenant                    `json:"tenant"`
	Subscription    Subscription              `json:"subscription"`
	ResourceGroup   ResourceGroup             `json:"resourceGroup"`
	ManagementGroup ManagementGroup           `json:"managementGroup"`
	Deployment      Deployment                `json:"deployment"`
	Now             time.Time                 `json:"now"`
	NewGUID         string                    `json:"newGuid"`
	Declarations    map[string]any            `json:"parameterDeclarations"`
	Parameters      map[string]any            `json:"parameters"`
	Variables       map[string]any            `json:"variables"`
	Copies          []goldenCopy              `json:"copyLoops"`
	References      map[string]goldenResource `json:"references"`
	Lists           map[string]any            `json:"lists"`
	Zones           map[string][]string       `json:"zones"`
	Loops           map[string][]any          `json:"references_loops"`
}

type goldenCopy struct {
	Name     string `json:"name"`
	Index    int    `json:"index"`
	Resource bool   `json:"resource"`
}

type goldenResource struct {
	Properties any `json:"properties"`
	Full       any `json:"full"`
}

func loadGoldenContext(t testing.TB) *goldenContext {
	t.Helper()
	raw, err := os.ReadFile("testdata/context.json")
	if err != nil {
		t.Fatal(err)
	}
	var g goldenContext
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&g); err != nil {
		t.Fatalf("testdata/context.json: %v", err)
	}
	return &g
}

// newContext builds a fresh Context (fresh lazy variables) for a scope.
func (g *goldenContext) newContext(scope string, site Site) *Context {
	sub, rg, mg := g.Subscription, g.ResourceGroup, g.ManagementGroup
	ctx := &Context{
		Site:        site,
		Tenant:      g.Tenant,
		Deployment:  g.Deployment,
		Parameters:  NewParameters(Normalize(g.Declarations).(map[string]any), Normalize(g.Parameters).(map[string]any)),
		Variables:   NewVariables(Normalize(g.Variables).(map[string]any)),
		Now:         func() time.Time { return g.Now },
		NewGUID:     func() string { return g.NewGUID },
		Environment: nil,
		Reference: func(r ReferenceRequest) (any, error) {
			res, ok := g.References[r.Target]
			if !ok {
				return nil, fmt.Errorf("The Resource '%s' was not found.", r.Target)
			}
			if r.Full {
				return Normalize(res.Full), nil
			}
			return Normalize(res.Properties), nil
		},
		References: func(name string, full bool) ([]any, error) {
			items, ok := g.Loops[name]
			if !ok {
				return nil, fmt.Errorf("no copy loop '%s'", name)
			}
			return Normalize(items).([]any), nil
		},
		List: func(r ListRequest) (any, error) {
			v, ok := g.Lists[r.Action+" "+r.Target]
			if !ok {
				return nil, fmt.Errorf("no action %s on '%s'", r.Action, r.Target)
			}
			return Normalize(v), nil
		},
		Zones: func(ns, typ, loc string) []string { return g.Zones[ns+" "+typ+" "+loc] },
		UserFunction: func(_ *Context, name string, args []any) (any, error) {
			if strings.EqualFold(name, "contoso.greet") {
				return fmt.Sprintf("Hello, %s!", stringify(args[0])), nil
			}
			return nil, fmt.Errorf("the template defines no function '%s'", name)
		},
	}
	switch scope {
	case "resourceGroup":
		ctx.Subscription, ctx.ResourceGroup = &sub, &rg
	case "subscription":
		ctx.Subscription = &sub
	case "managementGroup":
		ctx.ManagementGroup = &mg
	case "tenant":
	}
	for _, c := range g.Copies {
		if c.Resource {
			ctx = ctx.WithResourceCopyIndex(c.Name, c.Index)
		} else {
			ctx = ctx.WithCopyIndex(c.Name, c.Index)
		}
	}
	return ctx
}

var siteNames = map[string]Site{
	"any": SiteAny, "parameterDefault": SiteParameterDefault, "variables": SiteVariables,
	"resource": SiteResource, "resourceProperties": SiteResourceProperties, "outputs": SiteOutputs,
}

type goldenCase struct {
	file     string
	line     int
	input    string
	expected string
	site     Site
	scope    string
}

func (c goldenCase) name() string { return fmt.Sprintf("%s:%d", c.file, c.line) }

func readGoldenCases(t testing.TB) []goldenCase {
	t.Helper()
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/*.txt: %v", err)
	}
	var cases []goldenCase
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		site, scope := SiteAny, "resourceGroup"
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			switch {
			case strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#"):
				continue
			case strings.HasPrefix(line, "@site "):
				s, ok := siteNames[strings.TrimSpace(line[6:])]
				if !ok {
					t.Fatalf("%s:%d: unknown site %q", file, n, line)
				}
				site = s
				continue
			case strings.HasPrefix(line, "@scope "):
				scope = strings.TrimSpace(line[7:])
				continue
			}
			input, expected, ok := strings.Cut(line, "\t")
			if !ok {
				t.Fatalf("%s:%d: no TAB between the template string and the expected value: %q", file, n, line)
			}
			cases = append(cases, goldenCase{file: filepath.Base(file), line: n, input: input, expected: strings.TrimLeft(expected, "\t"), site: site, scope: scope})
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return cases
}

func TestGolden(t *testing.T) {
	g := loadGoldenContext(t)
	cases := readGoldenCases(t)
	if len(cases) < 600 {
		t.Fatalf("only %d golden cases read", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name(), func(t *testing.T) {
			ctx := g.newContext(c.scope, c.site)
			checkGolden(t, c, ctx)
		})
	}
}

func checkGolden(t *testing.T, c goldenCase, ctx *Context) {
	t.Helper()
	if rest, ok := strings.CutPrefix(c.expected, "parse error @"); ok {
		posText, msg, _ := strings.Cut(rest, ": ")
		wantPos, err := strconv.Atoi(posText)
		if err != nil {
			t.Fatalf("bad expectation %q", c.expected)
		}
		_, err = Parse(c.input)
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("Parse(%s) = %v, want a parse error at %d", c.input, err, wantPos)
		}
		if pe.Pos != wantPos || !strings.Contains(pe.Error(), msg) {
			t.Fatalf("Parse(%s):\n got: @%d %v\nwant: @%d …%s…", c.input, pe.Pos, pe, wantPos, msg)
		}
		return
	}
	got, err := EvalString(c.input, ctx)
	if msg, ok := strings.CutPrefix(c.expected, "error: "); ok {
		if err == nil {
			t.Fatalf("%s = %s, want an error containing %q", c.input, jsonText(got), msg)
		}
		if !strings.Contains(err.Error(), msg) {
			t.Fatalf("%s:\n got error: %v\nwant error containing: %s", c.input, err, msg)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: %v", c.input, err)
	}
	dec := json.NewDecoder(strings.NewReader(c.expected))
	dec.UseNumber()
	var want any
	if err := dec.Decode(&want); err != nil {
		t.Fatalf("bad expected JSON %q: %v", c.expected, err)
	}
	want = Normalize(want)
	if !deepEqual(got, want) {
		t.Fatalf("%s\n got: %s\nwant: %s", c.input, jsonText(got), jsonText(want))
	}
}
