package lxc

import (
	"strings"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/guest"
)

// ctRecords are the container records in the store, on the guest core.
type ctRecords = guest.Records[record, *record]

func (r *record) Meta() guest.Meta     { return metaOf(r.Config) }
func (r *record) LockName() string     { return r.Lock }
func (r *record) SetLockName(l string) { r.Lock = l }
func (r *record) Protected() bool      { return r.Config.Protection }
func metaOf(c api.CTConfig) guest.Meta {
	return guest.Meta{VMID: c.VMID, Type: api.GuestContainer, Node: c.Node, Name: c.Hostname, Template: c.Template, Tags: strings.Join(c.Tags, ",")}
}
