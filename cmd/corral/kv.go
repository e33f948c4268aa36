package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strings"
)

// kvPair is one key=value argument of "corral api".
type kvPair struct {
	Key   string
	Value string
}

// parseKeyValues splits key=value arguments at the first '=' (values may
// contain more). An argument without '=' or with an empty key is a usage
// error.
func parseKeyValues(args []string) ([]kvPair, error) {
	pairs := make([]kvPair, 0, len(args))
	for _, arg := range args {
		k, v, ok := strings.Cut(arg, "=")
		if !ok {
			return nil, usageErrorf("argument %q is not key=value", arg)
		}
		if k == "" {
			return nil, usageErrorf("argument %q has an empty key", arg)
		}
		pairs = append(pairs, kvPair{Key: k, Value: v})
	}
	return pairs, nil
}

// parseJSONish interprets a value typed on the command line the way pvesh
// users expect: anything that is valid JSON (numbers, true/false, null,
// arrays, objects, quoted strings) is taken as that JSON value, everything
// else as a plain string. Numbers keep their exact text.
func parseJSONish(s string) any {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return s
	}
	// "1 2" or "[1] x" decode a prefix only: that is not one JSON value.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return s
	}
	return v
}

// bodyFromPairs builds the JSON request body of a POST/PUT. A key given
// more than once becomes an array of its values in order, so
// "privs=VM.Audit privs=VM.Console" reads naturally.
func bodyFromPairs(pairs []kvPair) map[string]any {
	body := make(map[string]any, len(pairs))
	counts := map[string]int{}
	for _, p := range pairs {
		counts[p.Key]++
	}
	for _, p := range pairs {
		v := parseJSONish(p.Value)
		if counts[p.Key] == 1 {
			body[p.Key] = v
			continue
		}
		list, _ := body[p.Key].([]any)
		body[p.Key] = append(list, v)
	}
	return body
}

// queryFromPairs builds the query of a GET/DELETE; values are sent as typed.
func queryFromPairs(pairs []kvPair) url.Values {
	q := url.Values{}
	for _, p := range pairs {
		q.Add(p.Key, p.Value)
	}
	return q
}
