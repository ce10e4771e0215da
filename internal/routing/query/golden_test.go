package query

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
)

// The golden files in testdata are sections of cases. A section starts
// with "=== title" and may set the message its cases run against:
//
//	app: {"name": "value", ...}      application properties
//	sys: {"contentType": "...", ...} system properties
//	body: text                       encoded as the sys contentEncoding says
//	twin: {...}                      twin document
//
// A case is "expected<TAB>condition", where expected is true, false or
// undefined, or "error L:C text" for a compile error at line L, column C
// whose message or hint contains text. A condition written go:"..." is a
// Go string literal, for conditions with tabs or newlines.
type goldenCase struct {
	file, section string
	line          int
	expected      string
	condition     string
	msg           *MessageData
}

func readGolden(t *testing.T) []goldenCase {
	t.Helper()
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	var cases []goldenCase
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		section, msg := "", &MessageData{}
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			where := fmt.Sprintf("%s:%d", file, n)
			switch {
			case strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#"):
			case strings.HasPrefix(line, "=== "):
				section, msg = strings.TrimPrefix(line, "=== "), &MessageData{}
			case strings.HasPrefix(line, "app: "):
				msg.Properties = decodeStringMap(t, where, strings.TrimPrefix(line, "app: "))
			case strings.HasPrefix(line, "sys: "):
				msg.SystemProperties = decodeStringMap(t, where, strings.TrimPrefix(line, "sys: "))
			case strings.HasPrefix(line, "body: "):
				msg.Payload = encodeBody(msg.SystemProperties[SysContentEncoding], strings.TrimPrefix(line, "body: "))
			case strings.HasPrefix(line, "twin: "):
				msg.TwinJSON = []byte(strings.TrimPrefix(line, "twin: "))
			default:
				expected, cond, ok := strings.Cut(line, "\t")
				if !ok {
					t.Fatalf("%s: want expected<TAB>condition, got %q", where, line)
				}
				if strings.HasPrefix(cond, "go:") {
					if cond, err = strconv.Unquote(cond[3:]); err != nil {
						t.Fatalf("%s: %v", where, err)
					}
				}
				cases = append(cases, goldenCase{file: filepath.Base(file), section: section, line: n,
					expected: expected, condition: cond, msg: msg})
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return cases
}

func decodeStringMap(t *testing.T, where, text string) map[string]string {
	var m map[string]string
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	return m
}

// encodeBody writes the body the way a device would for the declared
// encoding: little-endian UTF-16 or UTF-32, otherwise the text as is.
func encodeBody(encoding, text string) []byte {
	switch strings.ToLower(encoding) {
	case "utf-16":
		var b []byte
		for _, u := range utf16.Encode([]rune(text)) {
			b = binary.LittleEndian.AppendUint16(b, u)
		}
		return b
	case "utf-32":
		var b []byte
		for _, r := range text {
			b = binary.LittleEndian.AppendUint32(b, uint32(r))
		}
		return b
	}
	return []byte(text)
}

func TestGolden(t *testing.T) {
	cases := readGolden(t)
	if len(cases) < 80 {
		t.Errorf("only %d golden cases", len(cases))
	}
	in := &Input{} // one Input for every case, as a routing worker would use it
	for _, tc := range cases {
		name := fmt.Sprintf("%s:%d", tc.file, tc.line)
		t.Run(name, func(t *testing.T) {
			c, err := Compile(tc.condition)
			if want, ok := strings.CutPrefix(tc.expected, "error "); ok {
				checkCompileError(t, tc, err, want)
				return
			}
			if err != nil {
				t.Fatalf("[%s] Compile(%q): %v", tc.section, tc.condition, err)
			}
			in.Reset(tc.msg)
			if got := c.Eval(in).String(); got != tc.expected {
				t.Errorf("[%s] %q = %s, want %s", tc.section, tc.condition, got, tc.expected)
			}
		})
	}
}

func checkCompileError(t *testing.T, tc goldenCase, err error, want string) {
	t.Helper()
	pos, text, _ := strings.Cut(want, " ")
	if err == nil {
		t.Fatalf("[%s] Compile(%q) succeeded, want error at %s", tc.section, tc.condition, pos)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("[%s] Compile(%q): %T is not an *Error", tc.section, tc.condition, err)
	}
	if e.Start.String() != pos {
		t.Errorf("[%s] Compile(%q): error at %s, want %s: %v", tc.section, tc.condition, e.Start, pos, err)
	}
	if !strings.Contains(e.Msg+"; "+e.Hint, text) {
		t.Errorf("[%s] Compile(%q): %v\nwant it to contain %q", tc.section, tc.condition, err, text)
	}
}
