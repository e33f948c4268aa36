package host

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/corral-project/corral/api"
)

// Diff lists what applying want over prev changes, per interface.
func Diff(prev, want []api.NetIface) []api.NetChange {
	var out []api.NetChange
	for _, p := range prev {
		if find(want, p.Iface) == nil {
			out = append(out, api.NetChange{Iface: p.Iface, Action: "delete"})
		}
	}
	for _, w := range want {
		p := find(prev, w.Iface)
		if p == nil {
			out = append(out, api.NetChange{Iface: w.Iface, Action: "add", Detail: w.Type})
			continue
		}
		if d := fieldDiff(*p, w); d != "" {
			out = append(out, api.NetChange{Iface: w.Iface, Action: "change", Detail: d})
		}
	}
	slices.SortFunc(out, func(a, b api.NetChange) int { return cmpStr(a.Iface, b.Iface) })
	return out
}

// fieldDiff renders changed fields as "field: old -> new; ...".
func fieldDiff(a, b api.NetIface) string {
	ma, mb := toMap(a), toMap(b)
	var keys []string
	for k := range ma {
		keys = append(keys, k)
	}
	for k := range mb {
		if _, ok := ma[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		if va, vb := ma[k], mb[k]; va != vb {
			parts = append(parts, fmt.Sprintf("%s: %s -> %s", k, orNone(va), orNone(vb)))
		}
	}
	return strings.Join(parts, "; ")
}

func toMap(i api.NetIface) map[string]string {
	raw, _ := json.Marshal(i)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(raw, &m)
	out := map[string]string{}
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
