package server

import (
	"io"
	"log/slog"
	"reflect"
	"slices"
	"testing"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/access"
)

// Every field of an update type must say which privilege setting it needs;
// a field without one would be changeable by anyone holding any other
// config privilege (it was: vcpus, maxmemory and hotplug rode along on
// VM.Config.Options).
func TestUpdateFieldsDeclarePrivilege(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeFor[api.VMUpdate](), reflect.TypeFor[api.CTUpdate]()} {
		for i := range typ.NumField() {
			f := typ.Field(i)
			priv := f.Tag.Get(privTag)
			if priv == "" {
				t.Errorf("%s.%s has no priv tag", typ.Name(), f.Name)
				continue
			}
			if !slices.Contains(access.Privileges(), priv) {
				t.Errorf("%s.%s: priv %q is not a privilege", typ.Name(), f.Name, priv)
			}
			// Setting the field alone needs exactly its privilege.
			v := reflect.New(typ).Elem()
			fv := v.Field(i)
			if fv.Kind() == reflect.Pointer {
				fv.Set(reflect.New(fv.Type().Elem()))
			} else {
				fv.SetBool(true)
			}
			if got := fieldPrivs(v.Interface()); !slices.Equal(got, []string{priv}) {
				t.Errorf("%s.%s alone needs %v, want [%s]", typ.Name(), f.Name, got, priv)
			}
		}
	}
}

func TestFieldPrivs(t *testing.T) {
	n, c, vc := "web", 2, 4
	for _, tc := range []struct {
		u    api.VMUpdate
		want []string
	}{
		{api.VMUpdate{}, nil},
		{api.VMUpdate{Name: &n}, []string{"VM.Config.Options"}},
		{api.VMUpdate{Name: &n, VCPUs: &vc}, []string{"VM.Config.CPU", "VM.Config.Options"}},
		{api.VMUpdate{Cores: &c, VCPUs: &vc}, []string{"VM.Config.CPU"}},
		{api.VMUpdate{Hotplug: &[]string{"cpu"}}, []string{"VM.Config.HWType"}},
		{api.VMUpdate{Revert: true}, []string{"VM.Config.Options"}},
	} {
		if got := fieldPrivs(tc.u); !slices.Equal(got, tc.want) {
			t.Errorf("fieldPrivs(%+v) = %v, want %v", tc.u, got, tc.want)
		}
	}
}

// The OpenAPI document carries each update field's privilege.
func TestOpenAPIPublishesFieldPrivileges(t *testing.T) {
	s := New(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	sch := s.OpenAPI().Components.Schemas.Map()["VMUpdate"]
	if sch == nil {
		t.Fatal("no VMUpdate schema")
	}
	for name, want := range map[string]string{"vcpus": "VM.Config.CPU", "maxmemory": "VM.Config.Memory", "cdroms": "VM.Config.CDROM"} {
		if got := sch.Properties[name].Extensions["x-corral-privilege"]; got != want {
			t.Errorf("VMUpdate.%s x-corral-privilege = %v, want %s", name, got, want)
		}
	}
}
