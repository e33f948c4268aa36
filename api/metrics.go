package api

import "time"

// RRDData is a series history from the round-robin archives
// (GET .../rrddata). Points are oldest first; Values[i] belongs to
// Series[i] and is null where nothing was sampled.
type RRDData struct {
	Timeframe string     `json:"timeframe" enum:"hour,day,week,month,year"`
	CF        string     `json:"cf" enum:"AVERAGE,MAX"`
	Step      int        `json:"step" doc:"seconds per point"`
	Series    []string   `json:"series"`
	Points    []RRDPoint `json:"points"`
}

// RRDPoint is one consolidated row.
type RRDPoint struct {
	Time   int64      `json:"time" doc:"Unix seconds: the start of the row"`
	Values []*float64 `json:"values"`
}

// NodeMetrics is a node's latest sample.
type NodeMetrics struct {
	Node      string             `json:"node"`
	Time      time.Time          `json:"time"`
	CPU       float64            `json:"cpu" doc:"share of all CPUs busy, 0..1"`
	CPUs      int                `json:"cpus"`
	Load      [3]float64         `json:"loadavg"`
	MemTotal  uint64             `json:"memtotal"`
	MemUsed   uint64             `json:"memused"`
	SwapTotal uint64             `json:"swaptotal"`
	SwapUsed  uint64             `json:"swapused"`
	RootTotal uint64             `json:"roottotal"`
	RootUsed  uint64             `json:"rootused"`
	NetIn     float64            `json:"netin" doc:"bytes/s received, all host interfaces but loopback and guests'"`
	NetOut    float64            `json:"netout" doc:"bytes/s sent"`
	PSI       map[string]float64 `json:"psi,omitempty" doc:"pressure stall, some avg10 in percent: cpu, memory, io"`
}

// GuestMetrics is a running guest's latest sample.
type GuestMetrics struct {
	VMID      int       `json:"vmid"`
	Type      string    `json:"type" enum:"qemu,lxc"`
	Name      string    `json:"name,omitempty"`
	Node      string    `json:"node"`
	Time      time.Time `json:"time"`
	CPU       float64   `json:"cpu" doc:"share of its cores busy, 0..1"`
	CPUs      float64   `json:"cpus"`
	Mem       uint64    `json:"mem"`
	MaxMem    uint64    `json:"maxmem"`
	Balloon   uint64    `json:"balloon,omitempty" doc:"VMs: memory the balloon leaves the guest"`
	DiskRead  float64   `json:"diskread" doc:"bytes/s"`
	DiskWrite float64   `json:"diskwrite" doc:"bytes/s"`
	ReadOps   float64   `json:"diskreadops" doc:"operations/s"`
	WriteOps  float64   `json:"diskwriteops" doc:"operations/s"`
	NetIn     float64   `json:"netin" doc:"bytes/s the guest received"`
	NetOut    float64   `json:"netout" doc:"bytes/s the guest sent"`
}

// StorageMetrics is a pool's latest size on a node.
type StorageMetrics struct {
	Storage string `json:"storage"`
	Node    string `json:"node"`
	Total   uint64 `json:"total"`
	Used    uint64 `json:"used"`
}

// MetricsCurrent is the latest sample of everything the caller may see.
type MetricsCurrent struct {
	Nodes   []NodeMetrics    `json:"nodes"`
	Guests  []GuestMetrics   `json:"guests"`
	Storage []StorageMetrics `json:"storage"`
}

// Metric server types.
const (
	MetricInfluxDB = "influxdb"
	MetricGraphite = "graphite"
)

// MetricServer is an external metric server every node pushes its samples
// to (cluster-wide: /cluster/metrics/server/{id}).
type MetricServer struct {
	ID           string `json:"id,omitempty" maxLength:"32" pattern:"^[a-z][a-z0-9_-]*$" doc:"taken from the URL"`
	Type         string `json:"type" enum:"influxdb,graphite"`
	Server       string `json:"server" minLength:"1" maxLength:"253" doc:"host name or address"`
	Port         int    `json:"port" minimum:"1" maximum:"65535"`
	Protocol     string `json:"protocol,omitempty" enum:"http,https,udp,tcp," doc:"influxdb: http (default), https or udp; graphite: tcp (default) or udp"`
	PathPrefix   string `json:"path_prefix,omitempty" maxLength:"128" pattern:"^[A-Za-z0-9_./-]*$" doc:"graphite: metric path prefix (default corral); influxdb http: URL path prefix"`
	Organization string `json:"organization,omitempty" maxLength:"128" doc:"influxdb http"`
	Bucket       string `json:"bucket,omitempty" maxLength:"128" doc:"influxdb http (default corral)"`
	MTU          int    `json:"mtu,omitempty" minimum:"0" maximum:"65536" doc:"udp: largest datagram (default 1500)"`
	Timeout      int    `json:"timeout,omitempty" minimum:"0" maximum:"60" doc:"seconds (default 1)"`
	Disable      bool   `json:"disable,omitempty"`
	HasToken     bool   `json:"has_token,omitempty" readOnly:"true" doc:"an InfluxDB token is set (it is never returned)"`
	Digest       string `json:"digest,omitempty" readOnly:"true"`
}

// MetricServerCreate defines a server; Token is write-only.
type MetricServerCreate struct {
	MetricServer
	Token string `json:"token,omitempty" maxLength:"512" doc:"influxdb http: API token (write-only)"`
}

// MetricServerStats is an exporter's state on the answering node.
type MetricServerStats struct {
	Sent      uint64 `json:"sent" doc:"points delivered"`
	Dropped   uint64 `json:"dropped" doc:"rounds dropped because the server was too slow or down"`
	Errors    uint64 `json:"errors"`
	LastError string `json:"last_error,omitempty"`
}

// MetricServerStatus is a server's definition and this node's exporter state.
type MetricServerStatus struct {
	MetricServer
	Stats MetricServerStats `json:"stats"`
}
