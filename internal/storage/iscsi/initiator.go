package iscsi

// A minimal iSCSI initiator (RFC 7143), just enough for the control plane:
// log in to one target without authentication, REPORT LUNS, INQUIRY,
// READ CAPACITY and READ, log out. Guests never go through it: QEMU opens
// LUNs with its own initiator (libiscsi) from the URI Pool.Path returns.
//
// Why not shell out? libiscsi's iscsi-ls logs in to every target a portal
// advertises and exits at the first one that refuses us (ACLs on other
// targets are normal on a shared SAN), prints sizes rounded to MiB, and
// needs an extra package; probing LUN numbers with qemu-img misses LUNs
// after a gap and costs a login per probe. Speaking the protocol ourselves
// needs one connection per operation, to the configured portal only
// (login redirects are refused), with a deadline on every read and write.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// InitiatorName is the iSCSI name corral logs in with. It is the name
// QEMU's tools (qemu-img, qemu-io) use by default, so a target ACL that
// admits QEMU by initiator name admits corral's probes as well.
const InitiatorName = "iqn.2008-11.org.linux-kvm"

// Timeouts. Every network wait is bounded, whatever the caller's context.
var (
	dialTimeout = 5 * time.Second
	ioTimeout   = 15 * time.Second
)

// PDU opcodes (RFC 7143 §11.2.1.2).
const (
	opNopOut     = 0x00
	opSCSICmd    = 0x01
	opLoginReq   = 0x03
	opLogoutReq  = 0x06
	opNopIn      = 0x20
	opSCSIResp   = 0x21
	opLoginResp  = 0x23
	opDataIn     = 0x25
	opLogoutResp = 0x26
	opAsync      = 0x32
	opReject     = 0x3f

	flagImmediate = 0x40 // byte 0: immediate delivery
	flagFinal     = 0x80 // byte 1: final PDU / transit (login)

	bhsLen = 48
	// ourMaxRecv is the MaxRecvDataSegmentLength we declare: no PDU data
	// segment we accept is longer, which also bounds memory per PDU.
	ourMaxRecv = 256 << 10
	// ourMaxBurst is the MaxBurstLength we offer; reads never ask for
	// more than the negotiated value in one command.
	ourMaxBurst = 1 << 20
	// maxLUNs bounds the REPORT LUNS answer we ask for (16 KiB).
	maxLUNs = 2047
	noTag   = 0xffffffff
)

// SCSI status and sense keys we act on.
const (
	statusGood           = 0x00
	statusCheckCondition = 0x02
	statusBusy           = 0x08
	statusTaskSetFull    = 0x28

	senseNotReady       = 0x02
	senseIllegalRequest = 0x05
	senseUnitAttention  = 0x06

	typeDisk = 0x00 // peripheral device type: direct access block device
)

// loginError is a login the target answered with a non-success status.
type loginError struct{ class, detail byte }

func (e *loginError) Error() string {
	msg := map[uint16]string{
		0x0101: "target moved temporarily (redirects are not followed)",
		0x0102: "target moved permanently (redirects are not followed)",
		0x0200: "initiator error",
		0x0201: "authentication failed (corral logs in without CHAP)",
		0x0202: "this initiator is not allowed to log in (check the target's ACL)",
		0x0203: "target not found on this portal",
		0x0204: "target removed",
		0x0300: "target error",
		0x0301: "target service unavailable",
		0x0302: "target out of resources",
	}[uint16(e.class)<<8|uint16(e.detail)]
	if msg == "" {
		msg = "login refused"
	}
	return fmt.Sprintf("iSCSI login: %s (status %02x%02x)", msg, e.class, e.detail)
}

// senseError is a command that ended in CHECK CONDITION.
type senseError struct{ key, asc, ascq byte }

func (e *senseError) Error() string {
	return fmt.Sprintf("SCSI check condition: sense key %#x, ASC/ASCQ %02x/%02x", e.key, e.asc, e.ascq)
}

// statusError is any other non-GOOD SCSI status.
type statusError struct{ status byte }

func (e *statusError) Error() string { return fmt.Sprintf("SCSI status %#02x", e.status) }

// session is one logged-in iSCSI session with a single connection. It is
// not safe for concurrent use: commands are issued one at a time.
type session struct {
	conn      net.Conn
	stop      func() bool // unregisters the context watcher
	itt       uint32
	cmdSN     uint32
	expStatSN uint32
	maxBurst  uint32
}

// dial connects to the portal and logs in to target. Cancelling ctx
// aborts any wait by closing the connection.
func dial(ctx context.Context, portal Portal, target string) (*session, error) {
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", portal.String())
	if err != nil {
		return nil, fmt.Errorf("connect to portal %s: %w", portal, err)
	}
	s := &session{conn: conn, cmdSN: 1, maxBurst: 256 << 10}
	s.stop = context.AfterFunc(ctx, func() { conn.Close() })
	if err := s.login(target); err != nil {
		s.stop()
		conn.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("portal %s, target %s: %w", portal, target, err)
	}
	return s, nil
}

// close logs out (best effort, briefly) and closes the connection.
func (s *session) close() {
	defer s.conn.Close()
	defer s.stop()
	var b [bhsLen]byte
	b[0] = flagImmediate | opLogoutReq
	b[1] = flagFinal // reason 0: close the session
	binary.BigEndian.PutUint32(b[16:], s.nextTag())
	binary.BigEndian.PutUint32(b[24:], s.cmdSN)
	binary.BigEndian.PutUint32(b[28:], s.expStatSN)
	s.conn.SetDeadline(time.Now().Add(2 * time.Second))
	if s.send(b, nil) != nil {
		return
	}
	for range 4 {
		p, err := s.recv()
		if err != nil || p.opcode() == opLogoutResp {
			return
		}
	}
}

func (s *session) nextTag() uint32 {
	s.itt++
	if s.itt == noTag {
		s.itt = 1
	}
	return s.itt
}

// pdu is a received PDU: its basic header segment and data segment.
type pdu struct {
	bhs  [bhsLen]byte
	data []byte
}

func (p *pdu) opcode() byte             { return p.bhs[0] & 0x3f }
func (p *pdu) u32(off int) uint32       { return binary.BigEndian.Uint32(p.bhs[off:]) }
func pad4(n int) int                    { return (n + 3) &^ 3 }
func putDataLen(b *[bhsLen]byte, n int) { b[5], b[6], b[7] = byte(n>>16), byte(n>>8), byte(n) }

func (s *session) send(bhs [bhsLen]byte, data []byte) error {
	putDataLen(&bhs, len(data))
	buf := make([]byte, bhsLen+pad4(len(data)))
	copy(buf, bhs[:])
	copy(buf[bhsLen:], data)
	s.conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	_, err := s.conn.Write(buf)
	return err
}

func (s *session) recv() (*pdu, error) {
	s.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	p := &pdu{}
	if _, err := io.ReadFull(s.conn, p.bhs[:]); err != nil {
		return nil, fmt.Errorf("read PDU header: %w", err)
	}
	ahs := int(p.bhs[4]) * 4
	n := int(p.bhs[5])<<16 | int(p.bhs[6])<<8 | int(p.bhs[7])
	if n > ourMaxRecv {
		return nil, fmt.Errorf("target sent a %d-byte data segment (limit %d)", n, ourMaxRecv)
	}
	buf := make([]byte, ahs+pad4(n))
	if _, err := io.ReadFull(s.conn, buf); err != nil {
		return nil, fmt.Errorf("read PDU data: %w", err)
	}
	p.data = buf[ahs : ahs+n]
	return p, nil
}

// keys encodes login text parameters.
func keys(kv ...string) []byte {
	var b bytes.Buffer
	for i := 0; i+1 < len(kv); i += 2 {
		b.WriteString(kv[i] + "=" + kv[i+1])
		b.WriteByte(0)
	}
	return b.Bytes()
}

func parseKeys(data []byte) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(string(data), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// login runs the login phase: security negotiation with AuthMethod=None,
// then operational negotiation, then full feature phase. Every negotiable
// key is proposed up front with the simplest values (no digests, one
// connection, in-order data, error recovery level 0) so the target only
// has to answer.
func (s *session) login(target string) error {
	var isid [6]byte
	if _, err := rand.Read(isid[1:]); err != nil {
		return err
	}
	isid[0] = 0x80 // ISID type "random" (RFC 7143 §11.12.5)
	itt := s.nextTag()
	csg, nsg := byte(0), byte(1)
	data := keys("InitiatorName", InitiatorName, "TargetName", target,
		"SessionType", "Normal", "AuthMethod", "None")
	var tsih uint16
	for range 8 {
		var b [bhsLen]byte
		b[0] = flagImmediate | opLoginReq
		b[1] = flagFinal | csg<<2 | nsg
		copy(b[8:14], isid[:])
		binary.BigEndian.PutUint16(b[14:], tsih)
		binary.BigEndian.PutUint32(b[16:], itt)
		binary.BigEndian.PutUint32(b[24:], s.cmdSN)
		binary.BigEndian.PutUint32(b[28:], s.expStatSN)
		if err := s.send(b, data); err != nil {
			return fmt.Errorf("send login: %w", err)
		}
		p, err := s.recv()
		if err != nil {
			return err
		}
		if p.opcode() == opReject {
			return fmt.Errorf("target rejected the login PDU (reason %#x)", p.bhs[2])
		}
		if p.opcode() != opLoginResp || p.u32(16) != itt {
			return fmt.Errorf("unexpected PDU %#x during login", p.opcode())
		}
		if cls, det := p.bhs[36], p.bhs[37]; cls != 0 || det != 0 {
			return &loginError{cls, det}
		}
		s.expStatSN = p.u32(24) + 1
		tsih = binary.BigEndian.Uint16(p.bhs[14:])
		got := parseKeys(p.data)
		if m, ok := got["AuthMethod"]; ok && m != "None" {
			return fmt.Errorf("target requires authentication (AuthMethod=%s); corral logs in without CHAP", m)
		}
		if v, ok := got["MaxBurstLength"]; ok {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n < 512 {
				return fmt.Errorf("target sent MaxBurstLength=%q", v)
			}
			s.maxBurst = uint32(min(n, ourMaxBurst))
		}
		for _, k := range []string{"HeaderDigest", "DataDigest"} {
			if v, ok := got[k]; ok && v != "None" {
				return fmt.Errorf("target insists on %s=%s", k, v)
			}
		}
		data = nil
		if p.bhs[1]&flagFinal == 0 {
			continue // the target wants another round in this stage
		}
		switch next := p.bhs[1] & 0x03; {
		case next == 3:
			s.cmdSN = p.u32(28) // ExpCmdSN: the first command's CmdSN
			return nil
		case next == 1 && csg == 0:
			csg, nsg = 1, 3
			data = keys(
				"HeaderDigest", "None", "DataDigest", "None",
				"MaxConnections", "1", "InitialR2T", "Yes", "ImmediateData", "No",
				"MaxRecvDataSegmentLength", strconv.Itoa(ourMaxRecv),
				"MaxBurstLength", strconv.Itoa(ourMaxBurst),
				"FirstBurstLength", strconv.Itoa(64<<10),
				"DefaultTime2Wait", "0", "DefaultTime2Retain", "0",
				"MaxOutstandingR2T", "1", "DataPDUInOrder", "Yes",
				"DataSequenceInOrder", "Yes", "ErrorRecoveryLevel", "0")
		default:
			return fmt.Errorf("target moved to unexpected login stage %d", next)
		}
	}
	return errors.New("login did not complete after 8 exchanges")
}

// do runs one SCSI command that reads up to readLen bytes, retrying the
// transient conditions every target reports now and then (unit attention
// after a login or reset, busy, task set full).
func (s *session) do(lun uint16, cdb []byte, readLen int) ([]byte, error) {
	var err error
	for try := range 5 {
		var data []byte
		data, err = s.command(lun, cdb, readLen)
		var se *senseError
		var st *statusError
		switch {
		case errors.As(err, &se) && se.key == senseUnitAttention:
			// Reported once per event; the retry normally succeeds.
		case errors.As(err, &se) && se.key == senseNotReady && se.asc == 0x04,
			errors.As(err, &st) && (st.status == statusBusy || st.status == statusTaskSetFull):
			time.Sleep(time.Duration(try+1) * 100 * time.Millisecond)
		default:
			return data, err
		}
	}
	return nil, err
}

// command sends one SCSI command and collects its Data-In and status.
func (s *session) command(lun uint16, cdb []byte, readLen int) ([]byte, error) {
	var b [bhsLen]byte
	b[0] = opSCSICmd
	b[1] = flagFinal | 0x01 // task attribute: simple
	if readLen > 0 {
		b[1] |= 0x40 // read
	}
	// LUN field as libiscsi (QEMU's initiator) encodes it, so that
	// "lun<N>" here and ".../N" in QEMU's URI are the same unit.
	binary.BigEndian.PutUint16(b[8:], lun)
	tag := s.nextTag()
	binary.BigEndian.PutUint32(b[16:], tag)
	binary.BigEndian.PutUint32(b[20:], uint32(readLen))
	binary.BigEndian.PutUint32(b[24:], s.cmdSN)
	binary.BigEndian.PutUint32(b[28:], s.expStatSN)
	copy(b[32:], cdb)
	if err := s.send(b, nil); err != nil {
		return nil, fmt.Errorf("send command: %w", err)
	}
	s.cmdSN++
	buf := make([]byte, readLen)
	got := 0
	for {
		p, err := s.recv()
		if err != nil {
			return nil, err
		}
		switch p.opcode() {
		case opNopIn:
			if ttt := p.u32(20); ttt != noTag {
				if err := s.pingReply(p); err != nil {
					return nil, err
				}
			}
			continue
		case opAsync:
			s.expStatSN = p.u32(24) + 1
			if p.bhs[36] == 1 || p.bhs[36] == 2 || p.bhs[36] == 3 {
				return nil, fmt.Errorf("target is closing the session (async event %d)", p.bhs[36])
			}
			continue
		case opReject:
			return nil, fmt.Errorf("target rejected the command (reason %#x)", p.bhs[2])
		case opDataIn:
			if p.u32(16) != tag {
				return nil, fmt.Errorf("Data-In for unknown task %#x", p.u32(16))
			}
			off := int(p.u32(40))
			if off < 0 || off+len(p.data) > readLen {
				return nil, fmt.Errorf("target sent data beyond the %d bytes asked for", readLen)
			}
			copy(buf[off:], p.data)
			got = max(got, off+len(p.data))
			if p.bhs[1]&0x01 == 0 { // no status in this PDU
				continue
			}
			s.expStatSN = p.u32(24) + 1
			if st := p.bhs[3]; st != statusGood {
				return nil, &statusError{st}
			}
			return buf[:got], nil
		case opSCSIResp:
			if p.u32(16) != tag {
				return nil, fmt.Errorf("response for unknown task %#x", p.u32(16))
			}
			s.expStatSN = p.u32(24) + 1
			if p.bhs[2] != 0 {
				return nil, fmt.Errorf("target failed the command (iSCSI response %#x)", p.bhs[2])
			}
			switch st := p.bhs[3]; st {
			case statusGood:
				return buf[:got], nil
			case statusCheckCondition:
				return nil, parseSense(p.data)
			default:
				return nil, &statusError{st}
			}
		default:
			return nil, fmt.Errorf("unexpected PDU %#x", p.opcode())
		}
	}
}

// pingReply answers a target's NOP-In that asks for one, as the protocol
// requires; targets drop sessions that ignore their pings.
func (s *session) pingReply(in *pdu) error {
	var b [bhsLen]byte
	b[0] = flagImmediate | opNopOut
	b[1] = flagFinal
	copy(b[8:16], in.bhs[8:16])
	binary.BigEndian.PutUint32(b[16:], noTag)
	copy(b[20:24], in.bhs[20:24])
	binary.BigEndian.PutUint32(b[24:], s.cmdSN)
	binary.BigEndian.PutUint32(b[28:], s.expStatSN)
	return s.send(b, nil)
}

// parseSense decodes the sense data of a SCSI Response (2-byte length,
// then fixed or descriptor format sense).
func parseSense(data []byte) error {
	if len(data) < 2 {
		return &senseError{}
	}
	n := int(binary.BigEndian.Uint16(data))
	sense := data[2:min(len(data), 2+n)]
	if len(sense) < 4 {
		return &senseError{}
	}
	switch sense[0] & 0x7f {
	case 0x72, 0x73: // descriptor format
		return &senseError{sense[1] & 0x0f, sense[2], sense[3]}
	default: // fixed format
		e := &senseError{key: sense[2] & 0x0f}
		if len(sense) >= 14 {
			e.asc, e.ascq = sense[12], sense[13]
		}
		return e
	}
}

// reportLUNs lists the LUN numbers the target presents to us, in
// libiscsi's numbering (the first two bytes of each 8-byte LUN). Entries
// using more levels than that cannot be addressed by QEMU and are skipped.
func (s *session) reportLUNs() ([]uint16, error) {
	alloc := 8 + 8*maxLUNs
	cdb := make([]byte, 12)
	cdb[0] = 0xa0
	binary.BigEndian.PutUint32(cdb[6:], uint32(alloc))
	data, err := s.do(0, cdb, alloc)
	if err != nil {
		return nil, fmt.Errorf("REPORT LUNS: %w", err)
	}
	if len(data) < 8 {
		return nil, fmt.Errorf("REPORT LUNS: short answer (%d bytes)", len(data))
	}
	n := int(binary.BigEndian.Uint32(data)) / 8
	var out []uint16
	for i := 0; i < n && 8+8*i+8 <= len(data); i++ {
		e := data[8+8*i : 16+8*i]
		if binary.BigEndian.Uint32(e[4:]) != 0 || binary.BigEndian.Uint16(e[2:]) != 0 {
			continue
		}
		out = append(out, binary.BigEndian.Uint16(e))
	}
	return out, nil
}

// isDisk reports whether a LUN is a connected direct-access device (not,
// for example, tgt's LUN 0 controller or a CD drive).
func (s *session) isDisk(lun uint16) (bool, error) {
	data, err := s.do(lun, []byte{0x12, 0, 0, 0, 36, 0}, 36)
	if err != nil {
		return false, fmt.Errorf("INQUIRY LUN %d: %w", lun, err)
	}
	if len(data) < 1 {
		return false, fmt.Errorf("INQUIRY LUN %d: empty answer", lun)
	}
	return data[0] == typeDisk, nil // qualifier 0 (connected) and type 0
}

// capacity returns a LUN's size in bytes and its block size, via READ
// CAPACITY(16), falling back to READ CAPACITY(10) for old targets.
func (s *session) capacity(lun uint16) (size uint64, block uint32, err error) {
	cdb := make([]byte, 16)
	cdb[0], cdb[1] = 0x9e, 0x10
	binary.BigEndian.PutUint32(cdb[10:], 32)
	data, err := s.do(lun, cdb, 32)
	var se *senseError
	if errors.As(err, &se) && se.key == senseIllegalRequest {
		rc10 := make([]byte, 10)
		rc10[0] = 0x25
		data, err = s.do(lun, rc10, 8)
		if err == nil && len(data) >= 8 {
			last, bs := binary.BigEndian.Uint32(data), binary.BigEndian.Uint32(data[4:])
			return (uint64(last) + 1) * uint64(bs), bs, checkBlock(bs)
		}
	}
	if err != nil {
		return 0, 0, fmt.Errorf("READ CAPACITY LUN %d: %w", lun, err)
	}
	if len(data) < 12 {
		return 0, 0, fmt.Errorf("READ CAPACITY LUN %d: short answer", lun)
	}
	last, bs := binary.BigEndian.Uint64(data), binary.BigEndian.Uint32(data[8:])
	if last >= 1<<50 {
		return 0, 0, fmt.Errorf("READ CAPACITY LUN %d: implausible size", lun)
	}
	return (last + 1) * uint64(bs), bs, checkBlock(bs)
}

func checkBlock(bs uint32) error {
	if bs < 512 || bs > 64<<10 || bs&(bs-1) != 0 {
		return fmt.Errorf("unsupported block size %d", bs)
	}
	return nil
}

// read reads count blocks from lba with READ(16).
func (s *session) read(lun uint16, lba uint64, count, block uint32) ([]byte, error) {
	cdb := make([]byte, 16)
	cdb[0] = 0x88
	binary.BigEndian.PutUint64(cdb[2:], lba)
	binary.BigEndian.PutUint32(cdb[10:], count)
	want := int(count) * int(block)
	data, err := s.do(lun, cdb, want)
	if err != nil {
		return nil, fmt.Errorf("READ LUN %d at block %d: %w", lun, lba, err)
	}
	if len(data) != want {
		return nil, fmt.Errorf("READ LUN %d at block %d: got %d of %d bytes", lun, lba, len(data), want)
	}
	return data, nil
}
