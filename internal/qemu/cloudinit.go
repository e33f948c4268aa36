package qemu

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
)

// validateCloudInit checks what the schema can't about cloud-init settings.
func validateCloudInit(ci *api.VMCloudInit) error {
	if ci == nil {
		return nil
	}
	for i, k := range ci.SSHKeys {
		f := strings.Fields(k)
		if len(f) < 2 || !(strings.HasPrefix(f[0], "ssh-") || strings.HasPrefix(f[0], "ecdsa-") || strings.HasPrefix(f[0], "sk-")) || strings.ContainsAny(k, "\n\r") {
			return errs.Invalid(fmt.Sprintf("cloudinit.ssh_keys[%d]", i), "not an OpenSSH public key line")
		}
	}
	if ci.IP != "" && ci.IP != "dhcp" {
		if _, _, err := net.ParseCIDR(ci.IP); err != nil {
			return errs.Invalid("cloudinit.ip", "want dhcp or an address in CIDR form")
		}
	}
	if ci.Gateway != "" && net.ParseIP(ci.Gateway) == nil {
		return errs.Invalid("cloudinit.gw", "not an IP address")
	}
	for i, ns := range ci.Nameserver {
		if net.ParseIP(ns) == nil {
			return errs.Invalid(fmt.Sprintf("cloudinit.nameserver[%d]", i), "not an IP address")
		}
	}
	return nil
}

// cloudInitSeed writes a NoCloud seed ISO (volume label "cidata") for the
// VM into the run directory and returns its path. It is rebuilt at every
// start so it always matches the config.
func (m *Manager) cloudInitSeed(ctx context.Context, c api.VMConfig) (string, error) {
	ci := c.CloudInit
	dir, err := os.MkdirTemp(m.runDir, "cidata-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	host := c.Name
	if host == "" {
		host = "vm" + strconv.Itoa(c.VMID)
	}
	meta := map[string]any{"instance-id": c.UUID, "local-hostname": host}
	cfg := map[string]any{}
	if ci.User != "" {
		u := map[string]any{"name": ci.User, "shell": "/bin/bash", "sudo": "ALL=(ALL) NOPASSWD:ALL", "lock_passwd": ci.PasswordHash == ""}
		if ci.PasswordHash != "" {
			u["hashed_passwd"] = ci.PasswordHash
		}
		if len(ci.SSHKeys) > 0 {
			u["ssh_authorized_keys"] = ci.SSHKeys
		}
		cfg["users"] = []any{u}
	} else if len(ci.SSHKeys) > 0 {
		cfg["ssh_authorized_keys"] = ci.SSHKeys
	}
	if ci.PasswordHash != "" {
		cfg["ssh_pwauth"] = true
	}
	net := map[string]any{"version": 2}
	eths := map[string]any{}
	for i, n := range c.Nets {
		e := map[string]any{"match": map[string]any{"macaddress": strings.ToLower(n.MAC)}, "set-name": fmt.Sprintf("eth%d", i)}
		if i == 0 {
			switch ci.IP {
			case "", "dhcp":
				e["dhcp4"] = true
			default:
				e["addresses"] = []string{ci.IP}
				if ci.Gateway != "" {
					e["gateway4"] = ci.Gateway
				}
			}
			if len(ci.Nameserver) > 0 || ci.SearchDomain != "" {
				ns := map[string]any{"addresses": ci.Nameserver}
				if ci.SearchDomain != "" {
					ns["search"] = []string{ci.SearchDomain}
				}
				e["nameservers"] = ns
			}
		}
		eths[fmt.Sprintf("eth%d", i)] = e
	}
	if len(eths) > 0 {
		net["ethernets"] = eths
	}
	files := map[string]any{"meta-data": meta, "user-data": cfg, "network-config": net}
	for name, v := range files {
		b, err := yaml.Marshal(v)
		if err != nil {
			return "", err
		}
		if name == "user-data" {
			b = append([]byte("#cloud-config\n"), b...)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return "", err
		}
	}
	iso := filepath.Join(m.runDir, strconv.Itoa(c.VMID)+"-cloudinit.iso")
	os.Remove(iso)
	out, err := exec.CommandContext(ctx, "xorriso", "-as", "mkisofs", "-quiet", "-output", iso, "-volid", "cidata", "-joliet", "-rock", dir).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("cloud-init seed: xorriso: %s", strings.TrimSpace(string(out)))
	}
	return iso, nil
}
