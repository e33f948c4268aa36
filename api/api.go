// Package api holds the public types of corral's REST API: requests,
// responses and errors. Both the server and the Go client import it, so it
// must never import anything internal to corral.
package api

import (
	"fmt"
	"strings"
	"time"
)

// Version is the API major version served under /api/v1.
const Version = "v1"

// VersionInfo answers GET /api/v1/version.
type VersionInfo struct {
	Version string `json:"version" doc:"corral release"`
	Commit  string `json:"commit" doc:"source commit the binary was built from"`
	API     string `json:"api" doc:"API version"`
}

// Health answers GET /api/v1/health.
type Health struct {
	Status string `json:"status" enum:"ok,degraded"`
	Node   string `json:"node"`
	Store  string `json:"store" doc:"cluster store state as seen by this node"`
}

// FieldError names one invalid input field.
type FieldError struct {
	Field   string `json:"field" doc:"JSON path of the invalid field, e.g. 'roles[2]' or 'userid'"`
	Message string `json:"message"`
}

// Problem is an RFC 9457 problem document; every API error is one.
type Problem struct {
	Type   string       `json:"type,omitempty"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail,omitempty"`
	Errors []FieldError `json:"errors,omitempty" doc:"field errors for validation failures"`
}

func (p *Problem) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", p.Status, p.Title)
	if p.Detail != "" {
		b.WriteString(": " + p.Detail)
	}
	for _, e := range p.Errors {
		if e.Field != "" {
			fmt.Fprintf(&b, "; %s: %s", e.Field, e.Message)
		} else {
			fmt.Fprintf(&b, "; %s", e.Message)
		}
	}
	return b.String()
}

// ContentType makes the server send problems as application/problem+json.
func (p *Problem) ContentType(string) string { return "application/problem+json" }

// GetStatus lets the server hand a Problem straight back as an HTTP error.
func (p *Problem) GetStatus() int { return p.Status }

// TaskRef answers every endpoint that starts a task (HTTP 202).
type TaskRef struct {
	Task string `json:"task" doc:"task ID (UPID)"`
}

// ---- access ----

// TicketRequest logs in. Username is user@realm; a missing realm means corral.
type TicketRequest struct {
	Username string `json:"username" minLength:"1" maxLength:"128"`
	Password string `json:"password" minLength:"1" maxLength:"4096"`
}

// Ticket is a signed session credential.
type Ticket struct {
	Ticket    string    `json:"ticket"`
	CSRFToken string    `json:"csrf_token"`
	Username  string    `json:"username"`
	Expires   time.Time `json:"expires"`
}

// User is an account in a realm. Passwords are never returned.
type User struct {
	UserID    string     `json:"userid" doc:"name@realm"`
	Enabled   bool       `json:"enabled"`
	Expire    *time.Time `json:"expire,omitempty" doc:"account expiry; absent means never"`
	FirstName string     `json:"firstname,omitempty" maxLength:"128"`
	LastName  string     `json:"lastname,omitempty" maxLength:"128"`
	Email     string     `json:"email,omitempty" maxLength:"254"`
	Comment   string     `json:"comment,omitempty" maxLength:"1024"`
	Groups    []string   `json:"groups,omitempty"`
	Digest    string     `json:"digest,omitempty" readOnly:"true"`
}

// UserCreate creates a user; Password is only for the corral realm.
type UserCreate struct {
	UserID    string     `json:"userid" minLength:"3" maxLength:"128" doc:"name@realm"`
	Password  string     `json:"password,omitempty" minLength:"8" maxLength:"4096"`
	Enabled   *bool      `json:"enabled,omitempty" doc:"default true"`
	Expire    *time.Time `json:"expire,omitempty"`
	FirstName string     `json:"firstname,omitempty" maxLength:"128"`
	LastName  string     `json:"lastname,omitempty" maxLength:"128"`
	Email     string     `json:"email,omitempty" maxLength:"254" format:"email"`
	Comment   string     `json:"comment,omitempty" maxLength:"1024"`
	Groups    []string   `json:"groups,omitempty" maxItems:"256"`
}

// UserUpdate changes a user; absent fields are kept.
type UserUpdate struct {
	Enabled   *bool      `json:"enabled,omitempty"`
	Expire    *time.Time `json:"expire,omitempty"`
	FirstName *string    `json:"firstname,omitempty" maxLength:"128"`
	LastName  *string    `json:"lastname,omitempty" maxLength:"128"`
	Email     *string    `json:"email,omitempty" maxLength:"254"`
	Comment   *string    `json:"comment,omitempty" maxLength:"1024"`
	Groups    *[]string  `json:"groups,omitempty" maxItems:"256"`
	Password  *string    `json:"password,omitempty" minLength:"8" maxLength:"4096" doc:"new password (corral realm only)"`
}

// Group collects users so ACLs can name many at once.
type Group struct {
	GroupID string   `json:"groupid" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._-]*$"`
	Comment string   `json:"comment,omitempty" maxLength:"1024"`
	Members []string `json:"members,omitempty" readOnly:"true"`
	Digest  string   `json:"digest,omitempty" readOnly:"true"`
}

// Role is a named set of privileges.
type Role struct {
	RoleID  string   `json:"roleid" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._-]*$"`
	Privs   []string `json:"privs" maxItems:"256"`
	Builtin bool     `json:"builtin" readOnly:"true"`
	Digest  string   `json:"digest,omitempty" readOnly:"true"`
}

// ACLEntry grants Role on Path to exactly one of User, Group or Token.
type ACLEntry struct {
	Path      string `json:"path" minLength:"1" maxLength:"256" doc:"/, /nodes/{node}, /vms/{id}, /storage/{id}, /pools/{pool}, /access/..."`
	User      string `json:"user,omitempty" maxLength:"128"`
	Group     string `json:"group,omitempty" maxLength:"64"`
	Token     string `json:"token,omitempty" maxLength:"192" doc:"user@realm!tokenname"`
	Role      string `json:"role" minLength:"1" maxLength:"64"`
	Propagate bool   `json:"propagate" doc:"also applies to paths below"`
}

// ACLUpdate adds or (with Delete) removes ACL entries in one atomic write.
type ACLUpdate struct {
	Entries []ACLEntry `json:"entries" minItems:"1" maxItems:"1024"`
	Delete  bool       `json:"delete,omitempty"`
}

// Realm is an authentication domain.
type Realm struct {
	Realm   string `json:"realm" minLength:"1" maxLength:"32" pattern:"^[a-z][a-z0-9_-]*$"`
	Type    string `json:"type" enum:"corral,pam"`
	Comment string `json:"comment,omitempty" maxLength:"1024"`
	Default bool   `json:"default,omitempty"`
	Service string `json:"service,omitempty" maxLength:"64" pattern:"^[A-Za-z0-9._-]*$" doc:"PAM service name (pam realms)"`
	Digest  string `json:"digest,omitempty" readOnly:"true"`
}

// Token is an API token of a user. Privsep tokens get only the
// privileges of ACL entries naming the token itself, intersected with
// the user's.
type Token struct {
	TokenID string     `json:"tokenid" doc:"user@realm!name"`
	Privsep bool       `json:"privsep"`
	Expire  *time.Time `json:"expire,omitempty"`
	Comment string     `json:"comment,omitempty"`
	Digest  string     `json:"digest,omitempty" readOnly:"true"`
}

// TokenCreate creates a token. Privsep defaults to true.
type TokenCreate struct {
	Privsep *bool      `json:"privsep,omitempty"`
	Expire  *time.Time `json:"expire,omitempty"`
	Comment string     `json:"comment,omitempty" maxLength:"1024"`
}

// TokenSecret is returned once when a token is created.
type TokenSecret struct {
	TokenID string `json:"tokenid"`
	Secret  string `json:"secret" doc:"shown only now; send as 'Authorization: CorralToken <tokenid>=<secret>'"`
	Token   Token  `json:"token"`
}

// Permissions lists the caller's effective privileges per path.
type Permissions map[string][]string

// ---- nodes and cluster ----

// Node is one cluster member as listed by GET /nodes.
type Node struct {
	Node    string    `json:"node"`
	Address string    `json:"address"`
	Online  bool      `json:"online"`
	Version string    `json:"version"`
	Seen    time.Time `json:"seen" doc:"last heartbeat"`
}

// Capability says whether a virtualization feature works on a node and why not.
type Capability struct {
	Available bool   `json:"available"`
	Version   string `json:"version,omitempty"`
	Detail    string `json:"detail,omitempty"`
}

// NodeStatus answers GET /nodes/{node}/status.
type NodeStatus struct {
	Node     string     `json:"node"`
	Kernel   string     `json:"kernel"`
	CPUModel string     `json:"cpu_model"`
	CPUs     int        `json:"cpus"`
	Load     [3]float64 `json:"load"`
	Uptime   int64      `json:"uptime" doc:"seconds"`
	Memory   Usage      `json:"memory"`
	Swap     Usage      `json:"swap"`
	RootFS   Usage      `json:"rootfs"`
	KVM      Capability `json:"kvm" doc:"/dev/kvm present and able to run a guest"`
	QEMU     Capability `json:"qemu"`
	LXC      Capability `json:"lxc"`
	Time     time.Time  `json:"time"`
}

// Usage is total/used/free bytes.
type Usage struct {
	Total uint64 `json:"total"`
	Used  uint64 `json:"used"`
	Free  uint64 `json:"free"`
}

// Guest types.
const (
	GuestVM        = "qemu"
	GuestContainer = "lxc"
)

// Resource is one row of GET /cluster/resources.
type Resource struct {
	ID       string `json:"id" doc:"node/<name>, qemu/<vmid>, lxc/<vmid>, storage/<node>/<id>"`
	Type     string `json:"type" enum:"node,qemu,lxc,storage"`
	Node     string `json:"node,omitempty"`
	VMID     int    `json:"vmid,omitempty"`
	Name     string `json:"name,omitempty"`
	Status   string `json:"status,omitempty"`
	Template bool   `json:"template,omitempty"`
	Tags     string `json:"tags,omitempty"`
	Pool     string `json:"pool,omitempty"`
	Storage  string `json:"storage,omitempty"`
}

// NextID answers GET /cluster/nextid.
type NextID struct {
	VMID    int       `json:"vmid"`
	Expires time.Time `json:"expires" doc:"the ID is reserved for the caller until then"`
}

// ---- tasks ----

// Task statuses.
const (
	TaskRunning = "running"
	TaskOK      = "ok"
	TaskFailed  = "failed"
	TaskStopped = "stopped"
)

// Task is the stored record of one long operation.
type Task struct {
	ID        string     `json:"id" doc:"UPID:<node>:<unique>:<start>:<type>:<target>:<user>:"`
	Node      string     `json:"node"`
	Type      string     `json:"type"`
	Target    string     `json:"target,omitempty"`
	User      string     `json:"user"`
	Status    string     `json:"status" enum:"running,ok,failed,stopped"`
	ExitMsg   string     `json:"exit_message,omitempty"`
	StartTime time.Time  `json:"start_time"`
	EndTime   *time.Time `json:"end_time,omitempty"`
}

// TaskLogLine is one numbered line of a task log.
type TaskLogLine struct {
	N    int    `json:"n"`
	Text string `json:"t"`
}

// SleepTask asks for the admin diagnostics task that just waits; it exists
// so the task machinery can be exercised end to end.
type SleepTask struct {
	Seconds int `json:"seconds" minimum:"0" maximum:"3600"`
}
