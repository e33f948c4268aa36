package firewall

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/network"
)

// LogGroup is the NFLOG group corral's log rules send dropped packets to
// (per network namespace).
const LogGroup = 64

// logPrefix marks a log rule's prefix as corral's.
const logPrefix = "corral "

// nfnetlink_log protocol constants (linux/netfilter/nfnetlink_log.h).
const (
	nfnlSubsysULOG    = 4
	nfulnlMsgPacket   = 0
	nfulnlMsgConfig   = 1
	nfulaCfgCmd       = 1
	nfulaCfgMode      = 2
	nfulnlCfgCmdBind  = 1
	nfulnlCopyPacket  = 2
	nfulaIfindexIn    = 4
	nfulaIfindexOut   = 5
	nfulaPhysIn       = 6
	nfulaPhysOut      = 7
	nfulaPayload      = 9
	nfulaPrefix       = 10
	dropLogCapacity   = 1000
	dropLogCopyLength = 96 // IP + transport headers are enough
)

// DropLog reads the packets corral's rules drop (NFLOG) into a ring the API
// serves.
type DropLog struct {
	conn *netlink.Conn
	ns   *network.NS
	mu   sync.Mutex
	ring []api.FwLogEntry
	next int
	full bool
}

// OpenDropLog binds LogGroup in ns and starts reading. It fails if the
// kernel has no nfnetlink_log or another process holds the group.
func OpenDropLog(ns *network.NS) (*DropLog, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: ns.Fd()})
	if err != nil {
		return nil, fmt.Errorf("firewall log: %w", err)
	}
	cfg := func(attr uint16, data []byte) error {
		ae := netlink.NewAttributeEncoder()
		ae.Bytes(attr, data)
		b, err := ae.Encode()
		if err != nil {
			return err
		}
		hdr := []byte{unix.AF_UNSPEC, 0, 0, 0}
		binary.BigEndian.PutUint16(hdr[2:], LogGroup)
		_, err = c.Execute(netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysULOG<<8 | nfulnlMsgConfig),
			Flags: netlink.Request | netlink.Acknowledge}, Data: append(hdr, b...)})
		return err
	}
	mode := make([]byte, 6)
	binary.BigEndian.PutUint32(mode, dropLogCopyLength)
	mode[4] = nfulnlCopyPacket
	if err := errors.Join(cfg(nfulaCfgCmd, []byte{nfulnlCfgCmdBind}), cfg(nfulaCfgMode, mode)); err != nil {
		c.Close()
		return nil, fmt.Errorf("firewall log: bind NFLOG group %d: %w", LogGroup, err)
	}
	d := &DropLog{conn: c, ns: ns, ring: make([]api.FwLogEntry, dropLogCapacity)}
	go d.read()
	return d, nil
}

// Close stops reading.
func (d *DropLog) Close() { d.conn.Close() }

func (d *DropLog) read() {
	names := map[uint32]string{}
	ifname := func(idx uint32) string {
		if idx == 0 {
			return ""
		}
		if n, ok := names[idx]; ok {
			return n
		}
		l, err := d.ns.H.LinkByIndex(int(idx))
		if err != nil {
			return fmt.Sprint(idx)
		}
		names[idx] = l.Attrs().Name
		return names[idx]
	}
	for {
		msgs, err := d.conn.Receive()
		if err != nil {
			var oe *netlink.OpError
			if errors.As(err, &oe) && errors.Is(oe.Err, unix.ENOBUFS) {
				continue // a burst overflowed the socket: entries are lost, reading goes on
			}
			return // closed
		}
		for _, m := range msgs {
			if m.Header.Type != netlink.HeaderType(nfnlSubsysULOG<<8|nfulnlMsgPacket) || len(m.Data) < 4 {
				continue
			}
			ad, err := netlink.NewAttributeDecoder(m.Data[4:])
			if err != nil {
				continue
			}
			ad.ByteOrder = binary.BigEndian
			e := api.FwLogEntry{Time: time.Now().UTC()}
			var in, out, physIn, physOut uint32
			for ad.Next() {
				switch ad.Type() {
				case nfulaPrefix:
					e.Rule = strings.TrimPrefix(strings.TrimRight(ad.String(), "\x00"), logPrefix)
				case nfulaIfindexIn:
					in = ad.Uint32()
				case nfulaIfindexOut:
					out = ad.Uint32()
				case nfulaPhysIn:
					physIn = ad.Uint32()
				case nfulaPhysOut:
					physOut = ad.Uint32()
				case nfulaPayload:
					parsePayload(ad.Bytes(), &e)
				}
			}
			if physIn != 0 { // bridged: the port says more than the bridge
				in = physIn
			}
			if physOut != 0 {
				out = physOut
			}
			e.In, e.Out = ifname(in), ifname(out)
			d.add(e)
		}
	}
}

// parsePayload reads addresses, protocol and ports from an IP packet.
func parsePayload(b []byte, e *api.FwLogEntry) {
	if len(b) < 1 {
		return
	}
	var l4 []byte
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return
		}
		ihl := int(b[0]&0x0f) * 4
		src, _ := netip.AddrFromSlice(b[12:16])
		dst, _ := netip.AddrFromSlice(b[16:20])
		e.Src, e.Dst, e.Proto = src.String(), dst.String(), protoName(b[9])
		if len(b) > ihl {
			l4 = b[ihl:]
		}
	case 6:
		if len(b) < 40 {
			return
		}
		src, _ := netip.AddrFromSlice(b[8:24])
		dst, _ := netip.AddrFromSlice(b[24:40])
		e.Src, e.Dst, e.Proto = src.String(), dst.String(), protoName(b[6])
		l4 = b[40:]
	}
	if (e.Proto == "tcp" || e.Proto == "udp" || e.Proto == "sctp") && len(l4) >= 4 {
		e.SPort, e.DPort = int(binary.BigEndian.Uint16(l4)), int(binary.BigEndian.Uint16(l4[2:]))
	}
}

func protoName(p byte) string {
	for n, v := range protos {
		if v == p {
			return n
		}
	}
	return fmt.Sprint(p)
}

func (d *DropLog) add(e api.FwLogEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ring[d.next] = e
	d.next = (d.next + 1) % len(d.ring)
	if d.next == 0 {
		d.full = true
	}
}

// Entries returns up to limit entries, newest last.
func (d *DropLog) Entries(limit int) []api.FwLogEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	var all []api.FwLogEntry
	if d.full {
		all = append(all, d.ring[d.next:]...)
	}
	all = append(all, d.ring[:d.next]...)
	if limit > 0 && len(all) > limit {
		all = all[len(all)-limit:]
	}
	return all
}
