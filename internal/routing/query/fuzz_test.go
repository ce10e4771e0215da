package query

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCompile holds the compiler and the evaluator to two promises: no
// input makes them panic, and every error points inside the condition.
func FuzzCompile(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.txt")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if _, cond, ok := strings.Cut(line, "\t"); ok && !strings.HasPrefix(cond, "go:") {
				f.Add(cond)
			}
		}
	}
	for _, s := range []string{"", "(", ")", "'", `"\u12`, "{$", "$body.", "/*", "a ?? b ?? c", "-", "NOT", "0x", "1e", "concat(a,"} {
		f.Add(s)
	}
	utf16Body := &MessageData{
		SystemProperties: map[string]string{SysContentType: "application/json", SysContentEncoding: "utf-16"},
		Payload:          encodeBody("utf-16", `{"a": {"b": [1, "x", null, true, {"c": "😀"}]}}`),
	}
	messages := []Message{telemetry(), &MessageData{}, utf16Body, nil}
	f.Fuzz(func(t *testing.T, cond string) {
		c, err := Compile(cond)
		if err != nil {
			list, ok := err.(ErrorList)
			if !ok || len(list) == 0 {
				t.Fatalf("Compile(%q) returned %T %v", cond, err, err)
			}
			end := advance(Position{1, 1}, cond)
			for _, e := range list {
				if e.Start.Line < 1 || e.Start.Column < 1 || e.Msg == "" ||
					e.Start.Line > end.Line || (e.Start.Line == end.Line && e.Start.Column > end.Column) {
					t.Fatalf("Compile(%q): error outside the condition: %+v", cond, e)
				}
			}
			return
		}
		in := &Input{}
		for _, m := range messages {
			in.Reset(m)
			first := c.Eval(in)
			if again := c.Eval(in); again != first || first > True {
				t.Fatalf("%q: Eval gave %v then %v", cond, first, again)
			}
		}
	})
}

// FuzzJSON compares the tape parser with encoding/json: the same documents
// are valid, and top-level members read back the same values.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, `{"a":[1,2,{"b":null}],"c":"x\u00e9\ud83d\ude00"}`, `{"a":1,}`, `[1]`, `{"a":01}`,
		`{"a":"\x"}`, `{"a":-0.5e+3,"b":true,"c":false}`, ` { "a" : { } , "b" : [ ] } `, `{"a":"b"`, `{"a" 1}`,
		"{\"a\":\"\x01\"}", `{"a":1e400}`, `{"a":"\ud800"}`, `{"dup":1,"dup":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := jsonDoc{src: data}
		ok := d.parse()
		trimmed := bytes.TrimLeft(data, " \t\r\n")
		want := json.Valid(data) && len(trimmed) > 0 && trimmed[0] == '{' && jsonDepth(data) <= maxJSONDepth
		if ok != want {
			t.Fatalf("parse(%q) = %v, encoding/json says %v", data, ok, want)
		}
		if !ok || !utf8.Valid(data) {
			return
		}
		var members map[string]any
		if json.Unmarshal(data, &members) != nil {
			return // e.g. a number out of float64 range
		}
		in := &Input{}
		for name, v := range members {
			got := d.lookup(in, []pathSegment{{name: []byte(name), index: -1}}, false)
			if !sameJSONValue(got, v) {
				t.Fatalf("%q: member %q read as %+v, encoding/json says %#v", data, name, got, v)
			}
			d.lookup(in, []pathSegment{{name: []byte(name), index: 0}, {name: []byte("x"), index: 3}}, true)
		}
	})
}

func jsonDepth(data []byte) int {
	dec := json.NewDecoder(bytes.NewReader(data))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

func sameJSONValue(got value, want any) bool {
	switch w := want.(type) {
	case nil:
		return got.kind == kindNull
	case bool:
		return got.kind == kindBool && got.b == w
	case float64:
		return got.kind == kindNumber && got.n == w
	case string:
		return got.kind == kindString && got.s == w
	case map[string]any:
		return got.kind == kindObject
	case []any:
		return got.kind == kindArray
	}
	return false
}
