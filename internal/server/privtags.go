package server

import (
	"reflect"
	"slices"
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

// privTag is the struct tag that declares, on an update type's field, the
// privilege that setting the field needs. Declaring it next to the field
// means a new field can't be added without deciding who may change it
// (TestUpdateFieldsDeclarePrivilege fails otherwise).
const privTag = "priv"

// fieldPrivs returns the privileges an update needs: the priv tags of the
// fields it sets (non-zero values), sorted and without duplicates.
func fieldPrivs(u any) []string {
	v := reflect.Indirect(reflect.ValueOf(u))
	var p []string
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			continue
		}
		if priv := v.Type().Field(i).Tag.Get(privTag); priv != "" && !slices.Contains(p, priv) {
			p = append(p, priv)
		}
	}
	slices.Sort(p)
	return p
}

// publishPrivs adds the priv tags of t's fields to its schema in the
// OpenAPI document as x-corral-privilege, so clients (the UI's config
// editors) read them instead of keeping their own copy.
func publishPrivs(a huma.API, t reflect.Type) {
	reg := a.OpenAPI().Components.Schemas
	ref := reg.Schema(t, true, "")
	if ref == nil || ref.Ref == "" {
		return
	}
	s := reg.Map()[strings.TrimPrefix(ref.Ref, "#/components/schemas/")]
	if s == nil {
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		priv := f.Tag.Get(privTag)
		if prop := s.Properties[name]; prop != nil && priv != "" {
			if prop.Extensions == nil {
				prop.Extensions = map[string]any{}
			}
			prop.Extensions["x-corral-privilege"] = priv
		}
	}
}
