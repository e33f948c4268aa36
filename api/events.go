package api

import "time"

// Event types of the event stream (GET /events).
const (
	EventGuestCreated = "guest.created" // a guest appeared in the index
	EventGuestDeleted = "guest.deleted"
	EventGuestState   = "guest.state"  // status changed (running, stopped, paused, ...)
	EventGuestConfig  = "guest.config" // its config record changed; Digest is the new digest
	EventTaskStarted  = "task.started"
	EventTaskFinished = "task.finished"
	EventNodeJoined   = "node.joined"
	EventNodeLeft     = "node.left"
	EventNodeOnline   = "node.online"
	EventNodeOffline  = "node.offline"
	EventStorage      = "storage.changed" // a pool definition was created, changed or removed
	EventNetwork      = "network.changed" // a network, zone or firewall definition changed
	EventAccess       = "access.changed"  // users, groups, roles, ACLs or realms changed
	// EventReset is sent alone when the Last-Event-ID a client resumed from
	// is older than the server's window: the client must reload its state.
	EventReset = "reset"
)

// Event is one typed change in the cluster. Every node derives the same
// events from the cluster store's watch, so any node's stream is complete.
type Event struct {
	ID        string    `json:"id" doc:"<store revision>.<index>: resume with Last-Event-ID"`
	Type      string    `json:"type"`
	Time      time.Time `json:"time" doc:"when this node saw the change"`
	Node      string    `json:"node,omitempty" doc:"the node the object belongs to"`
	VMID      int       `json:"vmid,omitempty"`
	GuestType string    `json:"guest_type,omitempty" enum:"qemu,lxc,"`
	Name      string    `json:"name,omitempty"`
	Status    string    `json:"status,omitempty" doc:"new guest status, task status"`
	Previous  string    `json:"previous,omitempty" doc:"the status before (guest.state)"`
	Digest    string    `json:"digest,omitempty" doc:"new config digest (guest.config)"`
	Storage   string    `json:"storage,omitempty"`
	Object    string    `json:"object,omitempty" doc:"the changed object's path below the keyspace, e.g. network/zones/z1"`
	Deleted   bool      `json:"deleted,omitempty"`
	Task      *Task     `json:"task,omitempty"`
}
