package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"gopkg.in/yaml.v3"
)

// Output formats of --output.
const (
	formatTable = "table"
	formatJSON  = "json"
	formatYAML  = "yaml"
)

func (a *cliApp) checkOutputFlag() error {
	switch a.output {
	case formatTable, formatJSON, formatYAML:
		return nil
	}
	return usageErrorf("invalid --output %q: want table, json or yaml", a.output)
}

// column is one column of a typed table.
type column[T any] struct {
	header string
	value  func(T) string
}

// kvField is one row of a key/value view of a single object.
type kvField struct {
	key, value string
}

// printList prints rows as a table, or the whole slice as JSON/YAML. A nil
// slice is printed as an empty list, never as null, so scripts can iterate
// the result unconditionally.
func printList[T any](a *cliApp, rows []T, cols []column[T]) error {
	if rows == nil {
		rows = []T{}
	}
	return a.printValue(rows, func(w io.Writer) error {
		headers := make([]string, len(cols))
		for i, c := range cols {
			headers[i] = c.header
		}
		fmt.Fprintln(w, strings.Join(headers, "\t"))
		for _, r := range rows {
			cells := make([]string, len(cols))
			for i, c := range cols {
				cells[i] = cell(c.value(r))
			}
			fmt.Fprintln(w, strings.Join(cells, "\t"))
		}
		return nil
	})
}

// printObject prints one object: as aligned key/value rows for tables, or
// v itself as JSON/YAML.
func (a *cliApp) printObject(v any, fields []kvField) error {
	return a.printValue(v, func(w io.Writer) error {
		for _, f := range fields {
			fmt.Fprintf(w, "%s\t%s\n", f.key, cell(f.value))
		}
		return nil
	})
}

// printValue renders v in the selected format; table draws the table view
// into an aligned writer.
func (a *cliApp) printValue(v any, table func(io.Writer) error) error {
	if err := a.checkOutputFlag(); err != nil {
		return err
	}
	switch a.output {
	case formatJSON:
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("write JSON: %w", err)
		}
		return nil
	case formatYAML:
		data, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("write YAML: %w", err)
		}
		return writeYAML(a.stdout, data)
	default:
		tw := newTabWriter(a.stdout)
		if err := table(tw); err != nil {
			return err
		}
		return tw.Flush()
	}
}

// printRawJSON prints an API response body whose shape the CLI does not
// know (corral api ...). An empty body prints nothing.
func (a *cliApp) printRawJSON(data []byte) error {
	if err := a.checkOutputFlag(); err != nil {
		return err
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil
	}
	switch a.output {
	case formatJSON:
		var buf bytes.Buffer
		if err := json.Indent(&buf, data, "", "  "); err != nil {
			// Not JSON after all: show it as the server sent it.
			buf.Reset()
			buf.Write(data)
		}
		buf.WriteByte('\n')
		_, err := a.stdout.Write(buf.Bytes())
		return err
	case formatYAML:
		return writeYAML(a.stdout, data)
	default:
		v, err := decodeOrdered(data)
		if err != nil {
			_, err := fmt.Fprintf(a.stdout, "%s\n", data)
			return err
		}
		tw := newTabWriter(a.stdout)
		writeGenericTable(tw, dropSchemaLinks(v))
		return tw.Flush()
	}
}

func newTabWriter(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// cell makes a value safe for one tabwriter cell: tabs and newlines would
// break the alignment, and an empty cell would make columns hard to read.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.NewReplacer("\t", " ", "\r", `\r`, "\n", `\n`).Replace(s)
}

// ---- order-preserving JSON ----

// orderedObject is a JSON object that remembers its key order, so generic
// output (tables and YAML of "corral api") lists fields in the order the
// server sent them rather than alphabetically.
type orderedObject []orderedMember

type orderedMember struct {
	Key   string
	Value any
}

// MarshalJSON keeps the member order.
func (o orderedObject) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, err := json.Marshal(m.Key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(m.Value)
		if err != nil {
			return nil, err
		}
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// decodeOrdered decodes JSON into nil, bool, json.Number, string, []any and
// orderedObject values.
func decodeOrdered(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeOrderedValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("invalid JSON: trailing data")
	}
	return v, nil
}

func decodeOrderedValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	switch delim {
	case '{':
		obj := orderedObject{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, fmt.Errorf("invalid JSON: %w", err)
			}
			key, ok := kt.(string)
			if !ok {
				return nil, fmt.Errorf("invalid JSON: object key %v", kt)
			}
			val, err := decodeOrderedValue(dec)
			if err != nil {
				return nil, err
			}
			obj = append(obj, orderedMember{Key: key, Value: val})
		}
		if _, err := dec.Token(); err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		return obj, nil
	case '[':
		arr := []any{}
		for dec.More() {
			val, err := decodeOrderedValue(dec)
			if err != nil {
				return nil, err
			}
			arr = append(arr, val)
		}
		if _, err := dec.Token(); err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		return arr, nil
	}
	return nil, fmt.Errorf("invalid JSON: unexpected %v", delim)
}

// dropSchemaLinks removes the "$schema" member the server adds to object
// responses: it is for editors and validators, and only clutters a table.
func dropSchemaLinks(v any) any {
	switch t := v.(type) {
	case orderedObject:
		out := make(orderedObject, 0, len(t))
		for _, m := range t {
			if m.Key != "$schema" {
				out = append(out, m)
			}
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = dropSchemaLinks(e)
		}
		return out
	}
	return v
}

// writeGenericTable draws decoded JSON: a list of objects as a table whose
// columns are the union of their keys, an object as key/value rows, and
// anything else one value per line.
func writeGenericTable(w io.Writer, v any) {
	switch t := v.(type) {
	case nil:
	case orderedObject:
		for _, m := range t {
			fmt.Fprintf(w, "%s\t%s\n", m.Key, cell(scalarText(m.Value)))
		}
	case []any:
		var keys []string
		seen := map[string]bool{}
		allObjects := len(t) > 0
		for _, e := range t {
			obj, ok := e.(orderedObject)
			if !ok {
				allObjects = false
				break
			}
			for _, m := range obj {
				if !seen[m.Key] {
					seen[m.Key] = true
					keys = append(keys, m.Key)
				}
			}
		}
		if !allObjects {
			for _, e := range t {
				fmt.Fprintln(w, cell(scalarText(e)))
			}
			return
		}
		headers := make([]string, len(keys))
		for i, k := range keys {
			headers[i] = strings.ToUpper(k)
		}
		fmt.Fprintln(w, strings.Join(headers, "\t"))
		for _, e := range t {
			obj := e.(orderedObject)
			cells := make([]string, len(keys))
			for i, k := range keys {
				cells[i] = "-"
				for _, m := range obj {
					if m.Key == k {
						cells[i] = cell(scalarText(m.Value))
						break
					}
				}
			}
			fmt.Fprintln(w, strings.Join(cells, "\t"))
		}
	default:
		fmt.Fprintln(w, cell(scalarText(t)))
	}
}

// scalarText renders one decoded JSON value for a table cell. Lists of
// scalars read best comma-separated (privileges, groups); anything nested
// deeper is shown as compact JSON.
func scalarText(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case bool:
		return strconv.FormatBool(t)
	case json.Number:
		return t.String()
	case []any:
		parts := make([]string, 0, len(t))
		for _, e := range t {
			switch e.(type) {
			case orderedObject, []any:
				data, _ := json.Marshal(t)
				return string(data)
			}
			parts = append(parts, scalarText(e))
		}
		return strings.Join(parts, ",")
	default:
		data, _ := json.Marshal(t)
		return string(data)
	}
}

// ---- YAML ----

// writeYAML converts JSON to YAML. Going through JSON (rather than
// marshalling Go values with yaml.v3 directly) keeps the API's field names,
// omitempty behaviour and time format, and the key order.
func writeYAML(w io.Writer, data []byte) error {
	v, err := decodeOrdered(data)
	if err != nil {
		return fmt.Errorf("write YAML: %w", err)
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(yamlNode(v)); err != nil {
		return fmt.Errorf("write YAML: %w", err)
	}
	return enc.Close()
}

func yamlNode(v any) *yaml.Node {
	switch t := v.(type) {
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(t)}
	case json.Number:
		tag := "!!float"
		if _, err := t.Int64(); err == nil {
			tag = "!!int"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: t.String()}
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: t}
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		if len(t) == 0 {
			n.Style = yaml.FlowStyle
		}
		for _, e := range t {
			n.Content = append(n.Content, yamlNode(e))
		}
		return n
	case orderedObject:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		if len(t) == 0 {
			n.Style = yaml.FlowStyle
		}
		for _, m := range t {
			n.Content = append(n.Content,
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: m.Key},
				yamlNode(m.Value))
		}
		return n
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: fmt.Sprint(v)}
}

// ---- small formatters for typed tables ----

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339)
}

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return fmtTime(*t)
}

// fmtBytes renders a byte count in IEC units, as free(1) -h does.
func fmtBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func fmtUsage(used, total uint64) string {
	if total == 0 {
		return ""
	}
	return fmt.Sprintf("%s / %s (%.0f%%)", fmtBytes(used), fmtBytes(total), 100*float64(used)/float64(total))
}

// fmtDuration renders seconds as days/hours/minutes, the useful precision
// for uptimes.
func fmtDuration(secs int64) string {
	d := time.Duration(secs) * time.Second
	days := int64(d / (24 * time.Hour))
	d -= time.Duration(days) * 24 * time.Hour
	h := int64(d / time.Hour)
	d -= time.Duration(h) * time.Hour
	m := int64(d / time.Minute)
	if days > 0 {
		return fmt.Sprintf("%dd %dh %dm", days, h, m)
	}
	if h > 0 {
		return fmt.Sprintf("%dh %dm", h, m)
	}
	return fmt.Sprintf("%dm %ds", m, int64((d%time.Minute)/time.Second))
}
