package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	jmespath "github.com/jmespath-community/go-jmespath"
	"github.com/jmespath-community/go-jmespath/pkg/parsing"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// Output formats, as az names them (knack's OutputProducer).
var outputFormats = []string{"json", "jsonc", "yaml", "yamlc", "table", "tsv", "none"}

// tableTransform reshapes a command's result for -o table the way az's
// per-command table transformers do; it is skipped when --query is given.
type tableTransform func(v any) []orderedRow

// orderedRow is a table row whose columns keep the order they were added in
// (az's transformers build OrderedDicts).
type orderedRow []cell

type cell struct {
	key string
	val any
}

func addOutputFlags(root *cobra.Command) {
	def := "json"
	if v := os.Getenv("AZURE_CORE_OUTPUT"); v != "" {
		def = v
	}
	root.PersistentFlags().StringP("output", "o", def, "output format: "+strings.Join(outputFormats, ", "))
	root.PersistentFlags().String("query", "", "JMESPath query applied to the result (https://jmespath.org)")
}

// printer writes one command's result in the format and with the query the
// command line asked for.
type printer struct {
	format string
	query  string
	table  tableTransform
	model  []string
	color  bool
}

func newPrinter(cmd *cobra.Command, table tableTransform) (*printer, error) {
	format, _ := cmd.Flags().GetString("output")
	query, _ := cmd.Flags().GetString("query")
	format = strings.ToLower(format)
	ok := false
	for _, f := range outputFormats {
		ok = ok || f == format
	}
	if !ok {
		return nil, usageErrorf("argument --output/-o: invalid choice: %q (choose from %s)", format, strings.Join(outputFormats, ", "))
	}
	color := false
	if f, isFile := cmd.OutOrStdout().(*os.File); isFile {
		color = isatty.IsTerminal(f.Fd())
	}
	return &printer{format: format, query: query, table: table, color: color}, nil
}

// emit prints v for cmd: the common tail of every client command.
func emit(cmd *cobra.Command, v any, table tableTransform) error {
	return emitModel(cmd, v, table, nil)
}

// emitRaw prints a JSON answer as it came, through -o and --query.
func emitRaw(cmd *cobra.Command, raw json.RawMessage) error {
	var v any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("decode the answer: %w", err)
		}
	}
	return emit(cmd, v, nil)
}

// emitModel prints v as az prints a result it read through an Azure SDK
// model with these fields, in this order: every object in v gains the
// fields it lacks as null ("parent.child" inside a parent that is there),
// and a --query result's table columns follow the model's order, as the
// SDK's dicts do.
func emitModel(cmd *cobra.Command, v any, table tableTransform, model []string) error {
	p, err := newPrinter(cmd, table)
	if err != nil {
		return err
	}
	p.model = model
	return p.print(cmd.OutOrStdout(), v)
}

func (p *printer) print(w io.Writer, v any) error {
	data, err := generic(v)
	if err != nil {
		return err
	}
	if p.model != nil {
		for _, it := range asList(data) {
			fillModel(it, p.model)
		}
	}
	addResourceGroup(data)
	var order keyOrder
	if p.query != "" {
		order, data, err = applyQuery(p.query, data)
		if err != nil {
			return err
		}
	}
	if data == nil {
		return nil // az prints nothing for a null result
	}
	var out []byte
	switch p.format {
	case "none":
		return nil
	case "json", "jsonc":
		out, err = formatJSON(data)
		if err == nil && p.format == "jsonc" && p.color {
			out = colorJSON(out)
		}
	case "yaml", "yamlc":
		out, err = yaml.Marshal(data)
	case "table":
		out, err = p.formatTable(data, order)
	case "tsv":
		out = formatTSV(data, order)
	}
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

// generic turns v into plain JSON values (maps, slices, json.Number, …) so
// queries and formats see what the server sent.
func generic(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode the result: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("decode the result: %w", err)
	}
	return out, nil
}

// fillModel gives v every model field it lacks, as null. A dotted field
// ("sku.family") is filled only inside an object that is there.
func fillModel(v any, model []string) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	for _, f := range model {
		parent, child, nested := strings.Cut(f, ".")
		if !nested {
			if _, present := m[f]; !present {
				m[f] = nil
			}
			continue
		}
		if pm, ok := m[parent].(map[string]any); ok {
			if _, present := pm[child]; !present {
				pm[child] = nil
			}
		}
	}
}

// addResourceGroup is az's global result transform: every object with a
// resource id at least as deep as a resource in a group gains
// "resourceGroup" (unless it has a key of that name in any case).
func addResourceGroup(v any) {
	switch t := v.(type) {
	case []any:
		for _, e := range t {
			addResourceGroup(e)
		}
	case map[string]any:
		has := false
		for k := range t {
			has = has || strings.EqualFold(k, "resourceGroup")
		}
		if id, ok := t["id"].(string); ok && !has {
			if parts := strings.Split(id, "/"); len(parts) > 8 && strings.EqualFold(parts[3], "resourceGroups") {
				t["resourceGroup"] = parts[4]
			}
		}
		for k, e := range t {
			if k != "sourceVault" {
				addResourceGroup(e)
			}
		}
	}
}

// keyOrder ranks the keys that --query's multiselect hashes name, in the
// order written: az keeps that order (jmespath builds OrderedDicts) in table
// and tsv output.
type keyOrder map[string]int

func applyQuery(query string, data any) (keyOrder, any, error) {
	ast, err := parsing.NewParser().Parse(query)
	if err != nil {
		return nil, nil, usageErrorf("argument --query: invalid jmespath query supplied for %q: %v", query, err)
	}
	jp, err := jmespath.Compile(query)
	if err != nil {
		return nil, nil, usageErrorf("argument --query: invalid jmespath query supplied for %q: %v", query, err)
	}
	// jmespath compares numbers as float64.
	res, err := jp.Search(numbersToFloat(data))
	if err != nil {
		return nil, nil, fmt.Errorf("--query %q: %w", query, err)
	}
	order := keyOrder{}
	var walk func(n parsing.ASTNode)
	walk = func(n parsing.ASTNode) {
		if n.NodeType == parsing.ASTKeyValPair {
			if k, ok := n.Value.(string); ok {
				if _, seen := order[k]; !seen {
					order[k] = len(order)
				}
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(ast)
	return order, res, nil
}

func numbersToFloat(v any) any {
	switch t := v.(type) {
	case json.Number:
		if f, err := t.Float64(); err == nil {
			return f
		}
		return t.String()
	case map[string]any:
		for k, e := range t {
			t[k] = numbersToFloat(e)
		}
	case []any:
		for i, e := range t {
			t[i] = numbersToFloat(e)
		}
	}
	return v
}

// keys returns m's keys: sorted, unless order (from --query) ranks them.
func (o keyOrder) keys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		ri, iok := o[ks[i]]
		rj, jok := o[ks[j]]
		switch {
		case iok && jok:
			return ri < rj
		case iok != jok:
			return iok
		}
		return ks[i] < ks[j]
	})
	return ks
}

// formatJSON is json.dumps(indent=2, sort_keys=True, ensure_ascii=False).
func formatJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// colorJSON colours keys, strings and literals for a terminal.
func colorJSON(b []byte) []byte {
	const (
		key   = "\x1b[94m"
		str   = "\x1b[32m"
		lit   = "\x1b[36m"
		reset = "\x1b[39m"
	)
	var out bytes.Buffer
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '"':
			j := i + 1
			for j < len(b) && b[j] != '"' {
				if b[j] == '\\' {
					j++
				}
				j++
			}
			j++
			color := str
			if k := bytes.IndexFunc(b[j:], func(r rune) bool { return r != ' ' }); k >= 0 && b[j+k] == ':' {
				color = key
			}
			out.WriteString(color)
			out.Write(b[i:j])
			out.WriteString(reset)
			i = j
		case c == 't' || c == 'f' || c == 'n' || c == '-' || (c >= '0' && c <= '9'):
			j := i
			for j < len(b) && !strings.ContainsRune(",]} \n", rune(b[j])) {
				j++
			}
			out.WriteString(lit)
			out.Write(b[i:j])
			out.WriteString(reset)
			i = j
		default:
			out.WriteByte(c)
			i++
		}
	}
	return out.Bytes()
}

var errNoTable = errors.New("Table output unavailable. Use the --query option to specify an appropriate query. Use --debug for more info.")

// formatTable is knack's _TableOutput with tabulate's "simple" format:
// scalar columns only (id, type and etag left out), headers with their first
// letter capitalised, every cell left-aligned, columns at least two wider
// than their header, rows without trailing blanks.
func (p *printer) formatTable(data any, order keyOrder) ([]byte, error) {
	var rows []orderedRow
	if p.table != nil && p.query == "" {
		rows = p.table(data)
	} else {
		items, isList := data.([]any)
		if !isList {
			items = []any{data}
		}
		// Under --query, objects the query did not build keep the
		// order az's SDK dicts have: the model's.
		tableOrder := order
		if p.query != "" && p.model != nil {
			tableOrder = keyOrder{}
			for k, r := range order {
				tableOrder[k] = r
			}
			for i, f := range p.model {
				if _, ok := tableOrder[f]; !ok && !strings.Contains(f, ".") {
					tableOrder[f] = len(order) + i
				}
			}
		}
		for _, it := range items {
			rows = append(rows, autoRow(it, tableOrder))
		}
	}
	var headers []string
	seen := map[string]bool{}
	cols := make([]map[string]string, len(rows))
	for i, r := range rows {
		cols[i] = map[string]string{}
		for _, c := range r {
			if c.val == nil || isContainer(c.val) {
				continue
			}
			if c.key == "id" || c.key == "type" || c.key == "etag" {
				continue
			}
			h := capitalizeFirst(c.key)
			if !seen[h] {
				seen[h] = true
				headers = append(headers, h)
			}
			cols[i][h] = pyStr(c.val)
		}
	}
	if len(rows) == 0 {
		return []byte("\n"), nil
	}
	if len(headers) == 0 {
		return nil, errNoTable
	}
	widths := make([]int, len(headers))
	for j, h := range headers {
		widths[j] = utf8.RuneCountInString(h) + 2
		for _, r := range cols {
			widths[j] = max(widths[j], utf8.RuneCountInString(r[h]))
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		var l strings.Builder
		for j, c := range cells {
			if j > 0 {
				l.WriteString("  ")
			}
			l.WriteString(c)
			l.WriteString(strings.Repeat(" ", widths[j]-utf8.RuneCountInString(c)))
		}
		b.WriteString(strings.TrimRight(l.String(), " "))
		b.WriteByte('\n')
	}
	line(headers)
	dashes := make([]string, len(headers))
	for j, w := range widths {
		dashes[j] = strings.Repeat("-", w)
	}
	line(dashes)
	for _, r := range cols {
		cells := make([]string, len(headers))
		for j, h := range headers {
			cells[j] = r[h]
		}
		line(cells)
	}
	return []byte(b.String()), nil
}

// autoRow is knack's _auto_table_item: a map's entries (sorted, or in
// --query's order), a list's items as Column1…, a scalar as Result.
func autoRow(v any, order keyOrder) orderedRow {
	switch t := v.(type) {
	case map[string]any:
		var r orderedRow
		for _, k := range order.keys(t) {
			r = append(r, cell{k, t[k]})
		}
		return r
	case []any:
		var r orderedRow
		for i, e := range t {
			r = append(r, cell{"Column" + strconv.Itoa(i+1), e})
		}
		return r
	}
	return orderedRow{{"Result", v}}
}

func isContainer(v any) bool {
	switch v.(type) {
	case map[string]any, []any:
		return true
	}
	return false
}

func capitalizeFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return strings.ToUpper(string(r)) + s[n:]
}

// pyStr is Python's str() of a JSON value, which is what az prints in
// table and tsv cells.
func pyStr(v any) string {
	switch t := v.(type) {
	case nil:
		return "None"
	case bool:
		if t {
			return "True"
		}
		return "False"
	case string:
		return t
	case json.Number:
		return t.String()
	case float64:
		if t == float64(int64(t)) && t < 1e16 && t > -1e16 {
			return strconv.FormatInt(int64(t), 10)
		}
		return strconv.FormatFloat(t, 'g', -1, 64)
	case []any:
		return strconv.Itoa(len(t))
	case map[string]any:
		return ""
	}
	return fmt.Sprint(v)
}

// formatTSV is knack's _TsvOutput: one line per item; a map's values
// (sorted by key, or in --query's order) joined by tabs, a nested list as
// its length, a nested map as nothing.
func formatTSV(data any, order keyOrder) []byte {
	items, isList := data.([]any)
	if !isList {
		items = []any{data}
	}
	var b strings.Builder
	for _, it := range items {
		switch t := it.(type) {
		case map[string]any:
			for i, k := range order.keys(t) {
				if i > 0 {
					b.WriteByte('\t')
				}
				b.WriteString(pyStr(t[k]))
			}
		case []any:
			for i, e := range t {
				if i > 0 {
					b.WriteByte('\t')
				}
				b.WriteString(pyStr(e))
			}
		case bool:
			b.WriteString(strconv.FormatBool(t))
		default:
			b.WriteString(pyStr(t))
		}
		b.WriteByte('\n')
	}
	return []byte(b.String())
}
