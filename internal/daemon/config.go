// Package daemon wires a corral node together: configuration, the cluster
// store, access control, tasks, the API listeners, and orderly shutdown.
package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the node configuration: defaults, then /etc/corral/corral.yaml
// (or --config), then CORRAL_* environment variables, then flags.
type Config struct {
	Node           string        `yaml:"node"`
	DataDir        string        `yaml:"data_dir"`
	Listen         string        `yaml:"listen"`
	Socket         string        `yaml:"socket"`
	Address        string        `yaml:"address"`
	StoreClientURL string        `yaml:"store_client_url"`
	StorePeerURL   string        `yaml:"store_peer_url"`
	TicketLifetime time.Duration `yaml:"ticket_lifetime"`
	LogLevel       string        `yaml:"log_level"`
	LogFormat      string        `yaml:"log_format"`
	AdminPassword  string        `yaml:"-"` // only from CORRAL_ADMIN_PASSWORD
	PAMService     string        `yaml:"pam_service"`
	NetNS          string        `yaml:"netns"`        // network namespace the network layer manages; "" = the daemon's own (tests set one)
	ImageServer    string        `yaml:"image_server"` // simplestreams server for container templates
	// MetricsInterval is how often the node samples itself and its guests.
	MetricsInterval time.Duration `yaml:"metrics_interval"`
}

// DefaultConfigFile is read when it exists and --config is not given.
const DefaultConfigFile = "/etc/corral/corral.yaml"

// Defaults returns the built-in configuration.
func Defaults() Config {
	host, _ := os.Hostname()
	if i := strings.IndexByte(host, '.'); i > 0 {
		host = host[:i]
	}
	return Config{
		Node:            host,
		DataDir:         "/var/lib/corral",
		Listen:          ":8006",
		Socket:          "/run/corral/corral.sock",
		Address:         "127.0.0.1",
		StoreClientURL:  "", // unix socket in the data dir, see Validate
		StorePeerURL:    "", // https://<address>:8008, see Validate
		TicketLifetime:  2 * time.Hour,
		LogLevel:        "info",
		LogFormat:       "text",
		PAMService:      "corral",
		ImageServer:     "https://images.linuxcontainers.org",
		MetricsInterval: 10 * time.Second,
	}
}

// LoadFile merges a YAML file into c. A missing default file is fine; a
// missing explicit file is an error. Unknown keys are refused.
func (c *Config) LoadFile(path string, explicit bool) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		return nil
	}
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && err.Error() != "EOF" {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// LoadEnv applies CORRAL_* variables.
func (c *Config) LoadEnv() error {
	str := map[string]*string{
		"CORRAL_NODE": &c.Node, "CORRAL_DATA_DIR": &c.DataDir, "CORRAL_LISTEN": &c.Listen, "CORRAL_SOCKET": &c.Socket,
		"CORRAL_ADDRESS": &c.Address, "CORRAL_STORE_CLIENT_URL": &c.StoreClientURL, "CORRAL_STORE_PEER_URL": &c.StorePeerURL,
		"CORRAL_LOG_LEVEL": &c.LogLevel, "CORRAL_LOG_FORMAT": &c.LogFormat, "CORRAL_ADMIN_PASSWORD": &c.AdminPassword,
		"CORRAL_PAM_SERVICE": &c.PAMService, "CORRAL_NETNS": &c.NetNS, "CORRAL_IMAGE_SERVER": &c.ImageServer,
	}
	for k, p := range str {
		if v, ok := os.LookupEnv(k); ok {
			*p = v
		}
	}
	if v, ok := os.LookupEnv("CORRAL_METRICS_INTERVAL"); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("CORRAL_METRICS_INTERVAL: %w", err)
		}
		c.MetricsInterval = d
	}
	if v, ok := os.LookupEnv("CORRAL_TICKET_LIFETIME"); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("CORRAL_TICKET_LIFETIME: %w", err)
		}
		c.TicketLifetime = d
	}
	return nil
}

// DefaultPeerPort is the cluster channel's port on the node's address:
// store peer traffic and forwarded API requests, both mutual TLS.
const DefaultPeerPort = "8008"

// checkPeerURL accepts https://<ip>:<port>: the URL other members dial.
func checkPeerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("config: store_peer_url %q: %w", s, err)
	}
	if u.Scheme != "https" || u.Path != "" {
		return fmt.Errorf("config: store_peer_url %q must be https://<ip>:<port> (peers speak mutual TLS)", s)
	}
	h, p, err := net.SplitHostPort(u.Host)
	if err != nil || net.ParseIP(h) == nil || p == "" {
		return fmt.Errorf("config: store_peer_url %q must be https://<ip>:<port>", s)
	}
	return nil
}

var nodeNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,62}$`)

// Validate checks the configuration and makes paths absolute.
func (c *Config) Validate() error {
	if !nodeNameRe.MatchString(c.Node) {
		return fmt.Errorf("config: node name %q must be a host name (letters, digits, -)", c.Node)
	}
	if c.DataDir == "" {
		return errors.New("config: data_dir is empty")
	}
	if c.MetricsInterval < time.Second || c.MetricsInterval > 10*time.Minute {
		return fmt.Errorf("config: metrics_interval %s must be between 1s and 10m", c.MetricsInterval)
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return err
	}
	c.DataDir = abs
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("config: listen %q: %w", c.Listen, err)
	}
	if c.StoreClientURL == "" {
		// Only this node talks to its member as a client: a unix socket in
		// the 0700 data dir keeps other local users out of the store.
		c.StoreClientURL = "unix://" + filepath.Join(c.DataDir, "store.sock")
	}
	if !strings.HasPrefix(c.StoreClientURL, "unix://") {
		return fmt.Errorf("config: store_client_url %q must be a unix:// socket (the store's client endpoint is for this daemon only)", c.StoreClientURL)
	}
	if net.ParseIP(c.Address) == nil {
		return fmt.Errorf("config: address %q is not an IP address", c.Address)
	}
	if c.StorePeerURL == "" {
		c.StorePeerURL = "https://" + net.JoinHostPort(c.Address, DefaultPeerPort)
	}
	if err := checkPeerURL(c.StorePeerURL); err != nil {
		return err
	}
	if c.TicketLifetime < time.Minute || c.TicketLifetime > 7*24*time.Hour {
		return fmt.Errorf("config: ticket_lifetime %s out of range (1m..168h)", c.TicketLifetime)
	}
	if c.AdminPassword != "" && len(c.AdminPassword) < 8 {
		return errors.New("config: CORRAL_ADMIN_PASSWORD must have at least 8 characters")
	}
	return nil
}
