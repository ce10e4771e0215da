package cli

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// genericUpdate is az's "Generic Update Arguments" (--set, --add, --remove,
// --force-string; azure.cli.core.commands.arm), applied to a resource as
// its JSON document. Paths name the document's members; az's snake_case
// spellings of them (properties.min_tls_version) work too.
type genericUpdate struct {
	set, add, remove *list
	forceString      bool
	// order is the flags' names in command-line order: az applies the
	// operations in the order they were given.
	order *[]string
}

func addGenericUpdateFlags(cmd *cobra.Command, a *azArgs) *genericUpdate {
	order := &[]string{}
	g := &genericUpdate{order: order}
	track := func(l *list, name string) *list {
		l.onSet = func() { *order = append(*order, name) }
		return l
	}
	g.set = track(a.listFlag(cmd, "set", "", "update an object by `PATH=VALUE`, e.g. properties.minTlsVersion=1.2"), "set")
	g.add = track(a.listFlag(cmd, "add", "", "add an object to a list: `PATH KEY=VALUE|JSON …`"), "add")
	g.remove = track(a.listFlag(cmd, "remove", "", "remove a property, or an element of a list: `PATH [INDEX]`"), "remove")
	cmd.Flags().BoolVar(&g.forceString, "force-string", false, "with --set and --add, keep string literals instead of converting them to JSON")
	return g
}

// apply runs the operations on doc in command-line order.
func (g *genericUpdate) apply(doc map[string]any) error {
	next := map[string]int{}
	for _, name := range *g.order {
		l := map[string]*list{"set": g.set, "add": g.add, "remove": g.remove}[name]
		i := next[name]
		next[name]++
		if i >= len(l.groups) {
			continue
		}
		words := l.groups[i]
		var err error
		switch name {
		case "set":
			for _, w := range words {
				if err = setProperty(doc, w, g.forceString); err != nil {
					break
				}
			}
		case "add":
			err = addProperty(doc, words, g.forceString)
		case "remove":
			err = removeProperty(doc, words)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (g *genericUpdate) given() bool { return g.set.given || g.add.given || g.remove.given }

var (
	indexOrFilter = regexp.MustCompile(`^\[(.*)\]$`)
	pathSegment   = regexp.MustCompile(`(\[.*?\])|([^.]+)`)
)

// splitPath is az's _get_internal_path: a.b[0][k=v] → a, b, [0], [k=v].
func splitPath(path string) []string {
	path = strings.ReplaceAll(strings.ReplaceAll(path, ".[", "["), "[", ".[")
	return pathSegment.FindAllString(path, -1)
}

// splitKeyValue splits on the first "=" outside brackets.
func splitKeyValue(expr string) (string, string) {
	depth := 0
	for i, c := range expr {
		switch {
		case c == '[':
			depth++
		case c == ']' && depth > 0:
			depth--
		case c == '=' && depth == 0:
			return expr[:i], expr[i+1:]
		}
	}
	return expr, ""
}

// jsonOrString is az's shell_safe_json_parse with its fallback to the raw
// string.
func jsonOrString(s string, forceString bool) any {
	if forceString {
		return s
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return s
	}
	return v
}

// memberKey finds the member of m a path segment names: exactly, then
// ignoring case, then as az's snake_case of a camelCase member.
func memberKey(m map[string]any, part string) (string, bool) {
	if _, ok := m[part]; ok {
		return part, true
	}
	flat := strings.ReplaceAll(strings.ToLower(part), "_", "")
	for k := range m {
		if strings.ToLower(k) == flat || strings.ToLower(k) == strings.ToLower(part) {
			return k, true
		}
	}
	return part, false
}

func optionsError(v any, part string, path []string) error {
	parent := strings.ReplaceAll(strings.Join(path[:max(len(path)-1, 0)], "."), ".[", "[")
	msg := fmt.Sprintf("Couldn't find '%s' in '%s'.", part, parent)
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, "'"+k+"'")
		}
		sort.Strings(keys)
		msg += " Available options: [" + strings.Join(keys, ", ") + "]"
	case []any:
		msg += fmt.Sprintf(" Available options: index into the collection '%s' with [<index>] or [<key=value>]", parent)
	default:
		msg += fmt.Sprintf(" '%s' does not support further indexing.", parent)
	}
	return usageErrorf("%s", msg)
}

// step is az's _update_instance: one segment down from v.
func step(v any, part string, path []string) (any, error) {
	if m := indexOrFilter.FindStringSubmatch(part); m != nil {
		items, ok := v.([]any)
		if !ok {
			return nil, optionsError(v, part, path)
		}
		if key, want, isFilter := strings.Cut(m[1], "="); isFilter {
			wantV := jsonOrString(want, false)
			var found []any
			for _, it := range items {
				if obj, ok := it.(map[string]any); ok {
					if k, ok := memberKey(obj, key); ok && fmt.Sprint(obj[k]) == fmt.Sprint(wantV) {
						found = append(found, it)
					}
				}
			}
			switch len(found) {
			case 1:
				return found[0], nil
			case 0:
				return nil, usageErrorf("item with value '%s' doesn't exist for key '%s' on %s", want, key, path[max(len(path)-2, 0)])
			}
			return nil, usageErrorf("non-unique key '%s' found multiple matches on %s. Key must be unique.", key, path[max(len(path)-2, 0)])
		}
		i, err := strconv.Atoi(m[1])
		if err != nil || i < 0 || i >= len(items) {
			return nil, usageErrorf("index %s doesn't exist on %s", m[1], path[max(len(path)-2, 0)])
		}
		return items[i], nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, optionsError(v, part, path)
	}
	k, found := memberKey(obj, part)
	if !found {
		return nil, optionsError(v, part, path)
	}
	return obj[k], nil
}

func findProperty(doc any, path []string) (any, error) {
	v := doc
	for _, part := range path {
		var err error
		if v, err = step(v, part, path); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// setProperty is az's set_properties: missing parents become objects.
func setProperty(doc map[string]any, expr string, forceString bool) error {
	key, raw := splitKeyValue(expr)
	if strings.TrimSpace(key) == "" {
		return usageErrorf("usage error: Empty key in --set. Correct syntax: --set KEY=VALUE [KEY=VALUE ...]")
	}
	value := jsonOrString(raw, forceString)
	path := splitPath(key)
	name, parents := path[len(path)-1], path[:len(path)-1]
	var parent any = doc
	for i, part := range parents {
		next, err := step(parent, part, parents)
		if err != nil {
			return err
		}
		if next == nil {
			next = map[string]any{}
			if err := setChild(parent, part, next, path[:i+1]); err != nil {
				return err
			}
		}
		parent = next
	}
	return setChild(parent, name, value, path)
}

func setChild(parent any, name string, value any, path []string) error {
	if m := indexOrFilter.FindStringSubmatch(name); m != nil {
		items, ok := parent.([]any)
		i, err := strconv.Atoi(m[1])
		if !ok || err != nil {
			return optionsError(parent, name, path)
		}
		if i < 0 || i >= len(items) {
			return usageErrorf("index %d doesn't exist on %s", i, name)
		}
		items[i] = value
		return nil
	}
	obj, ok := parent.(map[string]any)
	if !ok {
		return optionsError(parent, name, path)
	}
	k, _ := memberKey(obj, name)
	obj[k] = value
	return nil
}

// addProperty is az's add_properties: PATH then values; consecutive
// key=value words make one object.
func addProperty(doc map[string]any, words []string, forceString bool) error {
	if len(words) == 0 {
		return usageErrorf("usage error: --add PATH KEY=VALUE|JSON [...]")
	}
	path := splitPath(words[0])
	target, err := findProperty(doc, path)
	if err != nil {
		return err
	}
	if target == nil {
		target = []any{}
	}
	items, ok := target.([]any)
	if !ok {
		return usageErrorf("--add: '%s' is not a list", words[0])
	}
	var entry map[string]any
	for _, w := range words[1:] {
		if k, v, kv := strings.Cut(w, "="); kv {
			if entry == nil {
				entry = map[string]any{}
			}
			entry[k] = v
			continue
		}
		if entry != nil {
			items = append(items, entry)
			entry = nil
		}
		items = append(items, jsonOrString(w, forceString))
	}
	if entry != nil {
		items = append(items, entry)
	}
	return setChild(parentOf(doc, path), path[len(path)-1], items, path)
}

func parentOf(doc map[string]any, path []string) any {
	p, err := findProperty(doc, path[:len(path)-1])
	if err != nil {
		return nil
	}
	return p
}

// removeProperty is az's remove_properties: PATH [INDEX].
func removeProperty(doc map[string]any, words []string) error {
	if len(words) == 0 {
		return usageErrorf("usage error: --remove PATH [INDEX]")
	}
	path := splitPath(words[0])
	if len(words) == 1 {
		parent, err := findProperty(doc, path[:len(path)-1])
		if err != nil {
			return err
		}
		obj, ok := parent.(map[string]any)
		if !ok {
			return optionsError(parent, path[len(path)-1], path)
		}
		k, found := memberKey(obj, path[len(path)-1])
		if !found {
			return optionsError(parent, path[len(path)-1], path)
		}
		delete(obj, k)
		return nil
	}
	target, err := findProperty(doc, path)
	if err != nil {
		return err
	}
	items, ok := target.([]any)
	if !ok {
		return usageErrorf("%s doesn't exist", path[len(path)-1])
	}
	i, err := strconv.Atoi(words[1])
	if err != nil || i < 0 || i >= len(items) {
		return usageErrorf("index %s doesn't exist on %s", words[1], path[len(path)-1])
	}
	items = append(items[:i:i], items[i+1:]...)
	return setChild(parentOf(doc, path), path[len(path)-1], items, path)
}
