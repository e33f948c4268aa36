// Package qmp is a small client for the QEMU Machine Protocol (QMP), the JSON
// control channel QEMU exposes on a unix socket (-qmp unix:PATH,server=on,wait=off,
// or -chardev socket,id=qmp,path=PATH,server=on,wait=off -mon chardev=qmp,mode=control).
//
// We own this client rather than use a generated one because the VM driver
// depends on its exact behaviour: one reader goroutine demultiplexes replies
// (matched by the "id" we put on every command) from asynchronous events, so
// many goroutines can issue commands on one connection, a caller that gives
// up (context deadline or cancel) never blocks or confuses the others, and
// the moment QEMU goes away (quit, crash, kill) is observable via Done/Err.
//
// QEMU serves one client per QMP socket. A second Dial to a socket that
// already has a client is queued by the kernel and only gets its greeting
// when the first client disconnects, so Dial must be given a context with a
// deadline. Reconnecting after a daemon restart works because the old
// connection died with the old process.
//
// When QEMU exits, Done fires after everything it sent has been read, so
// subscribers see the SHUTDOWN event (with its guest/host reason) first if
// QEMU got to send one; a crash or SIGKILL sends none. Treat Done, not
// SHUTDOWN, as the sign that the process is gone.
package qmp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrClosed is returned (possibly wrapped with the cause) by Execute and Err
// once the connection has ended: after Close, or when QEMU closed the socket
// (it exited or crashed) or sent something unparseable.
var ErrClosed = errors.New("qmp: monitor closed")

// Error classes QEMU reports in {"error": {"class": ...}}. QEMU only uses a
// handful; most failures are GenericError with a human-readable Desc.
const (
	ClassGenericError    = "GenericError"
	ClassCommandNotFound = "CommandNotFound"
	ClassDeviceNotActive = "DeviceNotActive"
	ClassDeviceNotFound  = "DeviceNotFound"
	ClassKVMMissingCap   = "KVMMissingCap"
)

// Error is a command failure reported by QEMU. Execute returns it wrapped
// with the command name; use errors.As to inspect Class.
type Error struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

// Error reads "Class: Desc"; Execute's wrapping adds "qmp COMMAND: ".
func (e *Error) Error() string { return e.Class + ": " + e.Desc }

// Version is a QEMU version as reported in the greeting and by query-version.
type Version struct {
	Major, Minor, Micro int
	// Package is the distribution's build string, e.g. "Debian 1:7.2+dfsg-7".
	Package string
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Micro) }

// AtLeast reports whether v is major.minor or newer, for feature checks.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || v.Major == major && v.Minor >= minor
}

// versionInfo is the wire form shared by the greeting and query-version.
type versionInfo struct {
	QEMU struct {
		Major int `json:"major"`
		Minor int `json:"minor"`
		Micro int `json:"micro"`
	} `json:"qemu"`
	Package string `json:"package"`
}

func (vi versionInfo) version() Version {
	return Version{Major: vi.QEMU.Major, Minor: vi.QEMU.Minor, Micro: vi.QEMU.Micro, Package: vi.Package}
}

// Option configures a Monitor.
type Option func(*Monitor)

// WithLogger sets where the monitor logs protocol oddities (unmatched replies,
// undecodable messages, dropped events) at debug level. Default: discarded.
func WithLogger(l *slog.Logger) Option { return func(m *Monitor) { m.log = l } }

// WithEventBuffer sets how many events each subscription queues before the
// drop policy (see Subscribe) applies. Default 256; values < 1 mean 1.
func WithEventBuffer(n int) Option { return func(m *Monitor) { m.eventBuf = max(n, 1) } }

// Monitor is a QMP connection. It is safe for concurrent use.
type Monitor struct {
	conn     net.Conn
	log      *slog.Logger
	eventBuf int

	version Version
	caps    []string

	nextID atomic.Uint64
	wsem   chan struct{} // write lock a waiting caller can abandon on ctx
	greet  chan versionGreeting

	mu      sync.Mutex
	pending map[string]chan response // nil once closed
	subs    map[*Subscription]struct{}
	cause   error // first reason the connection was torn down
	err     error // set before done is closed
	done    chan struct{}
}

type versionGreeting struct {
	Version      versionInfo `json:"version"`
	Capabilities []string    `json:"capabilities"`
}

// message is any object QEMU sends; which fields are set tells what it is.
type message struct {
	QMP       *versionGreeting `json:"QMP"`
	Event     string           `json:"event"`
	Data      json.RawMessage  `json:"data"`
	Timestamp *struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
	ID     json.RawMessage `json:"id"`
	Return json.RawMessage `json:"return"`
	Error  *Error          `json:"error"`
}

type response struct {
	ret json.RawMessage
	err *Error
}

type commandMsg struct {
	Execute   string `json:"execute"`
	Arguments any    `json:"arguments,omitempty"`
	ID        string `json:"id"`
}

// Dial connects to the QMP socket at path, reads the greeting and negotiates
// capabilities. ctx bounds the whole handshake: give it a deadline, since a
// socket that already has a client never greets (see the package doc).
func Dial(ctx context.Context, path string, opts ...Option) (*Monitor, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("qmp: dial %s: %w", path, err)
	}
	m, err := NewMonitor(ctx, conn, opts...)
	if err != nil {
		return nil, fmt.Errorf("qmp: %s: %w", path, err)
	}
	return m, nil
}

// NewMonitor runs the QMP handshake over an established connection (for
// example one end of a socketpair handed to QEMU as -qmp fd) and takes
// ownership of conn: it is closed when the Monitor ends or the handshake fails.
func NewMonitor(ctx context.Context, conn net.Conn, opts ...Option) (*Monitor, error) {
	m := &Monitor{
		conn:     conn,
		log:      slog.New(slog.DiscardHandler),
		eventBuf: 256,
		wsem:     make(chan struct{}, 1),
		greet:    make(chan versionGreeting, 1),
		pending:  make(map[string]chan response),
		subs:     make(map[*Subscription]struct{}),
		done:     make(chan struct{}),
	}
	for _, o := range opts {
		o(m)
	}
	go m.readLoop()

	select {
	case g := <-m.greet:
		m.version = g.Version.version()
		m.caps = g.Capabilities
	case <-ctx.Done():
		m.Close()
		return nil, fmt.Errorf("waiting for greeting (is another client connected?): %w", ctx.Err())
	case <-m.done:
		return nil, fmt.Errorf("waiting for greeting: %w", m.Err())
	}
	// Without capabilities negotiation QEMU refuses every other command.
	if err := m.Execute(ctx, "qmp_capabilities", nil, nil); err != nil {
		m.Close()
		return nil, fmt.Errorf("negotiating capabilities: %w", err)
	}
	return m, nil
}

// Version is the QEMU version from the greeting.
func (m *Monitor) Version() Version { return m.version }

// Capabilities lists the optional protocol capabilities QEMU offered in the
// greeting (e.g. "oob"). None are enabled.
func (m *Monitor) Capabilities() []string { return append([]string(nil), m.caps...) }

// Done is closed when the connection has ended, for whatever reason.
func (m *Monitor) Done() <-chan struct{} { return m.done }

// Err is nil while the connection is up. Afterwards it is ErrClosed after
// Close, or ErrClosed wrapping the cause (io.EOF when QEMU exited, a
// connection reset or a JSON syntax error) otherwise.
func (m *Monitor) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Close ends the connection and waits until the reader has stopped, so that
// afterwards Done is closed and every pending Execute has returned ErrClosed.
// QEMU keeps running. Close is idempotent and always returns nil.
func (m *Monitor) Close() error {
	m.fail(ErrClosed)
	<-m.done
	return nil
}

// fail records the first reason for tearing down and closes the conn, which
// makes the reader return and finish the shutdown.
func (m *Monitor) fail(cause error) {
	m.mu.Lock()
	if m.cause == nil {
		m.cause = cause
	}
	m.mu.Unlock()
	m.conn.Close()
}

// Execute runs command with args (marshalled as "arguments"; nil to omit)
// and decodes the reply's "return" into result (nil to discard it).
//
// A failure reported by QEMU is a *Error. If ctx ends first, Execute returns
// ctx.Err() at once and drops the reply when it arrives; note QEMU may still
// carry the command out. Once the connection ends it returns ErrClosed
// wrapped with the cause, including for calls already waiting.
func (m *Monitor) Execute(ctx context.Context, command string, args, result any) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("qmp %s: %w", command, err)
	}
	id := "corral-" + strconv.FormatUint(m.nextID.Add(1), 10)
	line, err := json.Marshal(commandMsg{Execute: command, Arguments: args, ID: id})
	if err != nil {
		return fmt.Errorf("qmp %s: encoding arguments: %w", command, err)
	}
	line = append(line, '\n')

	ch := make(chan response, 1)
	m.mu.Lock()
	if m.pending == nil {
		err := m.err
		m.mu.Unlock()
		return fmt.Errorf("qmp %s: %w", command, err)
	}
	m.pending[id] = ch // registered before sending so a fast reply finds it
	m.mu.Unlock()

	if err := m.send(ctx, line); err != nil {
		m.forget(id)
		return fmt.Errorf("qmp %s: %w", command, err)
	}

	var r response
	select {
	case r = <-ch:
	case <-ctx.Done():
		m.forget(id)
		return fmt.Errorf("qmp %s: %w", command, ctx.Err())
	case <-m.done:
		select { // the reply may have been delivered just before the end
		case r = <-ch:
		default:
			return fmt.Errorf("qmp %s: %w", command, m.Err())
		}
	}
	if r.err != nil {
		return fmt.Errorf("qmp %s: %w", command, r.err)
	}
	if result != nil {
		if err := json.Unmarshal(r.ret, result); err != nil {
			return fmt.Errorf("qmp %s: decoding reply: %w", command, err)
		}
	}
	return nil
}

func (m *Monitor) forget(id string) {
	m.mu.Lock()
	delete(m.pending, id)
	m.mu.Unlock()
}

// longAgo is a deadline in the past, used to interrupt a blocked Write.
var longAgo = time.Unix(1, 0)

// send writes one command line. Writes are serialised so lines never
// interleave; a caller waiting for its turn, or blocked because QEMU is not
// reading, can leave when ctx ends.
func (m *Monitor) send(ctx context.Context, line []byte) error {
	select {
	case m.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-m.done:
		return m.Err()
	}
	defer func() { <-m.wsem }()

	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		m.conn.SetWriteDeadline(longAgo)
		close(fired)
	})
	n, err := m.conn.Write(line)
	if !stop() {
		<-fired // don't let the past deadline leak to the next writer
		m.conn.SetWriteDeadline(time.Time{})
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded) && n == 0:
		return ctx.Err() // we interrupted the write before it began
	case errors.Is(err, os.ErrDeadlineExceeded):
		// A partial command on the stream cannot be taken back.
		m.fail(fmt.Errorf("command write interrupted after %d of %d bytes: %w", n, len(line), ctx.Err()))
		<-m.done
		return ctx.Err()
	}
	// The peer is gone (EPIPE, ECONNRESET) or Close was called. Closing the
	// conn here would throw away what QEMU sent before exiting (typically the
	// SHUTDOWN event), so let the reader drain it and end the monitor.
	m.log.Debug("qmp: write failed, waiting for the reader to finish", "err", err)
	select {
	case <-m.done:
		return m.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// readLoop is the only reader of conn. It routes replies to the waiting
// Execute by id and events to subscribers, and never blocks on either.
func (m *Monitor) readLoop() {
	dec := json.NewDecoder(m.conn) // no line-length limit: query-* replies can be large
	greeted := false
	var readErr error
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			readErr = err
			if !hangup(err) {
				readErr = fmt.Errorf("reading: %w", err)
			}
			break
		}
		var msg message
		if err := json.Unmarshal(raw, &msg); err != nil {
			// Well-formed JSON of an unexpected shape: skip it, the stream is intact.
			m.log.Debug("qmp: ignoring undecodable message", "err", err, "msg", truncate(raw))
			continue
		}
		if !greeted {
			if msg.QMP == nil {
				readErr = fmt.Errorf("protocol error: expected greeting, got %s", truncate(raw))
				break
			}
			greeted = true
			m.greet <- *msg.QMP
			continue
		}
		switch {
		case msg.Event != "":
			m.dispatchEvent(msg)
		case msg.Return != nil || msg.Error != nil:
			m.deliver(msg, raw)
		default:
			m.log.Debug("qmp: ignoring unknown message", "msg", truncate(raw))
		}
	}
	m.finish(readErr)
}

func (m *Monitor) deliver(msg message, raw json.RawMessage) {
	var id string
	if err := json.Unmarshal(msg.ID, &id); err != nil {
		// Not one of ours (we always send string ids); QEMU also answers
		// unparseable input with an id-less error.
		m.log.Debug("qmp: ignoring reply without our id", "msg", truncate(raw))
		return
	}
	m.mu.Lock()
	ch, ok := m.pending[id]
	delete(m.pending, id)
	m.mu.Unlock()
	if !ok {
		m.log.Debug("qmp: dropping reply nobody waits for", "id", id)
		return
	}
	ch <- response{ret: msg.Return, err: msg.Error} // buffered, never blocks
}

func (m *Monitor) dispatchEvent(msg message) {
	ev := Event{Name: msg.Event, Data: msg.Data}
	if ts := msg.Timestamp; ts != nil && ts.Seconds >= 0 {
		ev.Timestamp = time.Unix(ts.Seconds, ts.Microseconds*int64(time.Microsecond))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for s := range m.subs {
		s.push(ev)
	}
}

// finish runs once, when the reader stops: it fixes Err, wakes every pending
// Execute via done and lets subscriptions drain and close.
func (m *Monitor) finish(readErr error) {
	m.conn.Close()
	m.mu.Lock()
	switch {
	case m.cause == ErrClosed:
		m.err = ErrClosed
	case m.cause != nil:
		m.err = fmt.Errorf("%w: %w", ErrClosed, m.cause)
	case hangup(readErr):
		m.err = fmt.Errorf("%w: QEMU closed the connection: %w", ErrClosed, readErr)
	default:
		m.err = fmt.Errorf("%w: %w", ErrClosed, readErr)
	}
	m.pending = nil
	subs := m.subs
	m.subs = nil
	m.mu.Unlock()
	close(m.done)
	for s := range subs {
		s.end()
	}
}

// hangup reports whether err means QEMU went away: it exited (EOF), or was
// killed with commands unread (ECONNRESET), or died mid-message.
func hangup(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

func truncate(raw []byte) string {
	const limit = 200
	if len(raw) > limit {
		return string(raw[:limit]) + "..."
	}
	return string(raw)
}
