package main

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestParseKeyValues(t *testing.T) {
	tests := []struct {
		args    []string
		want    []kvPair
		wantErr bool
	}{
		{args: nil, want: []kvPair{}},
		{args: []string{"a=1", "b="}, want: []kvPair{{"a", "1"}, {"b", ""}}},
		{args: []string{"expr=x=y"}, want: []kvPair{{"expr", "x=y"}}},
		{args: []string{"userid=alice@corral!t"}, want: []kvPair{{"userid", "alice@corral!t"}}},
		{args: []string{"novalue"}, wantErr: true},
		{args: []string{"=v"}, wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseKeyValues(tt.args)
		if tt.wantErr {
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Errorf("parseKeyValues(%q) err = %v, want a usage error", tt.args, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseKeyValues(%q) = %v, %v; want %v", tt.args, got, err, tt.want)
		}
	}
}

func TestParseJSONish(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{"42", json.Number("42")},
		{"-1.50", json.Number("-1.50")},
		{"1e3", json.Number("1e3")},
		{"12345678901234567890", json.Number("12345678901234567890")},
		{"true", true},
		{"false", false},
		{"null", nil},
		{`["a",1]`, []any{"a", json.Number("1")}},
		{`{"k":"v"}`, map[string]any{"k": "v"}},
		{`"quoted"`, "quoted"},
		{"plain", "plain"},
		{"", ""},
		{"007", "007"}, // not valid JSON: a string, so IDs keep their zeros
		{"+1", "+1"},   // likewise
		{"1 2", "1 2"}, // two values are not one
		{"[1] x", "[1] x"},
		{"alice@corral", "alice@corral"},
		{"True", "True"},
	}
	for _, tt := range tests {
		if got := parseJSONish(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseJSONish(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func TestBodyFromPairs(t *testing.T) {
	pairs := []kvPair{
		{"userid", "alice@corral"},
		{"enabled", "false"},
		{"privs", "VM.Audit"},
		{"seconds", "10"},
		{"privs", `["Sys.Audit"]`},
		{"privs", "VM.Console"},
	}
	got, err := json.Marshal(bodyFromPairs(pairs))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"enabled":false,"privs":["VM.Audit",["Sys.Audit"],"VM.Console"],"seconds":10,"userid":"alice@corral"}`
	if string(got) != want {
		t.Errorf("body = %s\nwant   %s", got, want)
	}
	if got, _ := json.Marshal(bodyFromPairs(nil)); string(got) != "{}" {
		t.Errorf("empty body = %s, want {}", got)
	}
}

func TestQueryFromPairs(t *testing.T) {
	q := queryFromPairs([]kvPair{{"limit", "5"}, {"type", "qemu"}, {"type", "lxc"}, {"user", "a@b"}})
	if got := q.Encode(); got != "limit=5&type=qemu&type=lxc&user=a%40b" {
		t.Errorf("query = %s", got)
	}
}
