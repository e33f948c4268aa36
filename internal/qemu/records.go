package qemu

import (
	"strings"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/guest"
)

// vmRecords are the VM records in the store, on the guest core.
type vmRecords = guest.Records[record, *record]

func (r *record) Meta() guest.Meta     { return metaOf(r.Config) }
func (r *record) LockName() string     { return r.Lock }
func (r *record) SetLockName(l string) { r.Lock = l }
func (r *record) Protected() bool      { return r.Config.Protection }
func metaOf(c api.VMConfig) guest.Meta {
	return guest.Meta{VMID: c.VMID, Type: api.GuestVM, Node: c.Node, Name: c.Name, Template: c.Template, Tags: strings.Join(c.Tags, ",")}
}
