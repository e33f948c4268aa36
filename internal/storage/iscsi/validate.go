package iscsi

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// DefaultPort is the IANA iSCSI port, used when a portal names none.
const DefaultPort = 3260

var (
	// dnsLabelRe is one DNS label (RFC 1123): letters, digits and inner
	// dashes. Nothing else can reach the iscsi:// URI QEMU parses, so a
	// portal can never smuggle in "user%password@", a path or a query.
	dnsLabelRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	// hexNumberRe is a label the URL and inet_aton parsers read as a
	// number ("0x7f000001"); a host ending in one is an IP in disguise.
	hexNumberRe = regexp.MustCompile(`^0[xX][0-9A-Fa-f]*$`)

	// iqnRe is an iSCSI qualified name (RFC 7143 §4.2.7.2):
	// iqn.YYYY-MM.<reversed domain>[:<identifier>]. RFC 3722 folds names
	// to lower case, but tgt matches target names byte for byte, so
	// upper-case letters are accepted and kept as written. '/' and '%' are
	// never allowed: they would change what the iscsi:// URI means.
	iqnRe = regexp.MustCompile(`^iqn\.[0-9]{4}-(0[1-9]|1[0-2])\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*(:[A-Za-z0-9.:-]+)?$`)
	// euiRe and naaRe are the other two name formats of RFC 7143: an
	// IEEE EUI-64 or a T11 NAA identifier in hexadecimal.
	euiRe = regexp.MustCompile(`^eui\.[0-9A-Fa-f]{16}$`)
	naaRe = regexp.MustCompile(`^naa\.([0-9A-Fa-f]{16}|[0-9A-Fa-f]{32})$`)
)

// maxNameLen is the longest iSCSI name (RFC 7143 §4.2.7.1).
const maxNameLen = 223

// Portal is a parsed, validated "host[:port]".
type Portal struct {
	Host string // DNS name or IP literal, without brackets
	Port int
}

// String is the canonical "host:port" form, with IPv6 in brackets: what
// goes into the config and into the iscsi:// URI.
func (p Portal) String() string { return net.JoinHostPort(p.Host, strconv.Itoa(p.Port)) }

// ParsePortal strictly parses a portal: an IPv4 literal, a bracketed
// IPv6 literal or a DNS name, optionally followed by ":port". Anything
// else is refused, in particular URL syntax ("@", "/", "%", "?"), IPv6
// zones and numeric spellings of addresses other than dotted quads.
func ParsePortal(s string) (Portal, error) {
	if s == "" {
		return Portal{}, fmt.Errorf("empty portal")
	}
	if len(s) > 256 {
		return Portal{}, fmt.Errorf("portal too long")
	}
	host, portStr := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return Portal{}, fmt.Errorf("portal %q: unterminated [IPv6] literal", s)
		}
		host, portStr = s[1:end], s[end+1:]
		if portStr != "" {
			if !strings.HasPrefix(portStr, ":") {
				return Portal{}, fmt.Errorf("portal %q: want [ipv6] or [ipv6]:port", s)
			}
			portStr = portStr[1:]
			if portStr == "" {
				return Portal{}, fmt.Errorf("portal %q: empty port", s)
			}
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return Portal{}, fmt.Errorf("portal %q: %q is not an IPv6 address (zones are not allowed)", s, host)
		}
		host = a.String()
	} else {
		if i := strings.LastIndexByte(s, ':'); i >= 0 {
			host, portStr = s[:i], s[i+1:]
			if portStr == "" {
				return Portal{}, fmt.Errorf("portal %q: empty port", s)
			}
		}
		if strings.Contains(host, ":") {
			return Portal{}, fmt.Errorf("portal %q: write IPv6 addresses in brackets, e.g. [2001:db8::1]:3260", s)
		}
		if err := checkHost(host); err != nil {
			return Portal{}, fmt.Errorf("portal %q: %w", s, err)
		}
	}
	port := DefaultPort
	if portStr != "" {
		n, err := strconv.Atoi(portStr)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != portStr {
			return Portal{}, fmt.Errorf("portal %q: port must be a number from 1 to 65535", s)
		}
		port = n
	}
	pt := Portal{Host: host, Port: port}
	if len(pt.String()) > 256 { // the API's limit, which the normalised form must meet too
		return Portal{}, fmt.Errorf("portal too long")
	}
	return pt, nil
}

// checkHost accepts a dotted-quad IPv4 address or a DNS name whose last
// label is not a number, so that no host is read as an address by one
// parser and as a name by another.
func checkHost(host string) error {
	if host == "" {
		return fmt.Errorf("empty host")
	}
	if strings.Trim(host, "0123456789.") == "" {
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is4() {
			return fmt.Errorf("%q is not a dotted-quad IPv4 address", host)
		}
		return nil
	}
	if len(host) > 253 {
		return fmt.Errorf("host name too long")
	}
	labels := strings.Split(host, ".")
	for _, l := range labels {
		if !dnsLabelRe.MatchString(l) {
			return fmt.Errorf("%q is not a valid host name (letters, digits, inner dashes and dots only)", host)
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" || hexNumberRe.MatchString(last) {
		return fmt.Errorf("%q: a host name must not end in a number", host)
	}
	return nil
}

// ValidTargetName reports whether s is a well-formed iSCSI target name
// (iqn., eui. or naa. format) that is safe inside an iscsi:// URI.
func ValidTargetName(s string) bool {
	if len(s) > maxNameLen {
		return false
	}
	return iqnRe.MatchString(s) || euiRe.MatchString(s) || naaRe.MatchString(s)
}
