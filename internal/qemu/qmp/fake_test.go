package qmp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A scripted QMP server over net.Pipe, for what real QEMU will not do on
// demand: reorder replies, send garbage, hang, or drop the connection
// mid-call.

const greeting = `{"QMP": {"version": {"qemu": {"micro": 1, "minor": 2, "major": 9}, "package": "fake"}, "capabilities": ["oob"]}}`

type fakeQMP struct {
	t    *testing.T
	conn net.Conn
	dec  *json.Decoder
	wmu  sync.Mutex
}

type fakeCmd struct {
	Execute   string          `json:"execute"`
	Arguments json.RawMessage `json:"arguments"`
	ID        string          `json:"id"`
}

func (f *fakeQMP) send(lines ...string) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	for _, l := range lines {
		if _, err := io.WriteString(f.conn, l+"\r\n"); err != nil {
			f.t.Errorf("fake server: write: %v", err)
			return
		}
	}
}

func (f *fakeQMP) recv() fakeCmd {
	var c fakeCmd
	if err := f.dec.Decode(&c); err != nil {
		f.t.Errorf("fake server: read: %v", err)
	}
	return c
}

func (f *fakeQMP) reply(id string, ret any) {
	b, err := json.Marshal(map[string]any{"return": ret, "id": id})
	if err != nil {
		f.t.Error(err)
	}
	f.send(string(b))
}

// startFake returns a Monitor connected to a fake server that has completed
// the handshake.
func startFake(t *testing.T, opts ...Option) (*Monitor, *fakeQMP) {
	t.Helper()
	client, server := net.Pipe()
	f := &fakeQMP{t: t, conn: server, dec: json.NewDecoder(server)}
	t.Cleanup(func() { server.Close() })
	go func() {
		f.send(greeting)
		c := f.recv()
		if c.Execute != "qmp_capabilities" {
			t.Errorf("first command %q, want qmp_capabilities", c.Execute)
		}
		f.reply(c.ID, struct{}{})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := NewMonitor(ctx, client, opts...)
	if err != nil {
		t.Fatalf("NewMonitor: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if got := m.Version(); got != (Version{9, 2, 1, "fake"}) {
		t.Fatalf("Version = %+v", got)
	}
	return m, f
}

func TestFakeHandshake(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		server  func(f *fakeQMP)
		check   func(t *testing.T, err error)
	}{
		{
			name:    "silent server",
			timeout: 100 * time.Millisecond,
			server:  func(f *fakeQMP) {},
			check: func(t *testing.T, err error) {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("err = %v, want DeadlineExceeded", err)
				}
			},
		},
		{
			name:   "no greeting",
			server: func(f *fakeQMP) { f.send(`{"return": {}}`) },
			check: func(t *testing.T, err error) {
				if !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "greeting") {
					t.Errorf("err = %v, want ErrClosed about the greeting", err)
				}
			},
		},
		{
			name:   "hang up",
			server: func(f *fakeQMP) { f.conn.Close() },
			check: func(t *testing.T, err error) {
				if !errors.Is(err, ErrClosed) || !errors.Is(err, io.EOF) {
					t.Errorf("err = %v, want ErrClosed wrapping EOF", err)
				}
			},
		},
		{
			name: "capabilities refused",
			server: func(f *fakeQMP) {
				f.send(greeting)
				c := f.recv()
				f.send(fmt.Sprintf(`{"error": {"class": "GenericError", "desc": "nope"}, "id": %q}`, c.ID))
			},
			check: func(t *testing.T, err error) {
				var qerr *Error
				if !errors.As(err, &qerr) || qerr.Desc != "nope" {
					t.Errorf("err = %v, want *Error nope", err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer server.Close()
			f := &fakeQMP{t: t, conn: server, dec: json.NewDecoder(server)}
			go tc.server(f)
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			m, err := NewMonitor(ctx, client)
			if err == nil {
				m.Close()
				t.Fatal("NewMonitor succeeded")
			}
			tc.check(t, err)
			// The failed handshake must not leak the connection.
			server.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.Copy(io.Discard, server); err != nil && !errors.Is(err, io.ErrClosedPipe) {
				t.Errorf("client end not closed: %v", err)
			}
		})
	}
}

func TestDialMissingSocket(t *testing.T) {
	_, err := Dial(context.Background(), "/nonexistent/qmp.sock")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/qmp.sock") {
		t.Fatalf("err = %v, want an error naming the path", err)
	}
}

// TestFakeInterleaved has the server answer 50 concurrent commands in
// reverse order with an event before every reply, as QEMU does for cont.
func TestFakeInterleaved(t *testing.T) {
	const n = 50
	m, f := startFake(t)
	sub := m.Subscribe()
	defer sub.Close()

	go func() {
		cmds := make([]fakeCmd, n)
		for i := range cmds {
			cmds[i] = f.recv()
		}
		for i := n - 1; i >= 0; i-- {
			f.send(fmt.Sprintf(`{"timestamp": {"seconds": 1700000000, "microseconds": %d}, "event": "TICK", "data": {"i": %d}}`, i, i))
			var args struct{ N int }
			json.Unmarshal(cmds[i].Arguments, &args)
			f.reply(cmds[i].ID, args.N*10)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var got int
			if err := m.Execute(ctx, "echo", map[string]int{"n": i}, &got); err != nil {
				t.Errorf("call %d: %v", i, err)
			} else if got != i*10 {
				t.Errorf("call %d got %d, someone else's reply", i, got)
			}
		})
	}
	wg.Wait()

	for want := n - 1; want >= 0; want-- {
		ev := <-sub.C
		var d struct{ I int }
		if err := ev.DecodeData(&d); err != nil || ev.Name != "TICK" || d.I != want {
			t.Fatalf("event %+v (%v), want TICK %d", ev, err, want)
		}
		if ts := time.Unix(1700000000, int64(want)*1000); !ev.Timestamp.Equal(ts) {
			t.Fatalf("timestamp %v, want %v", ev.Timestamp, ts)
		}
	}
}

// TestFakeIgnoresStrayMessages: well-formed JSON that is not a reply to a
// waiting call must be skipped without disturbing the stream.
func TestFakeIgnoresStrayMessages(t *testing.T) {
	m, f := startFake(t)
	go func() {
		c := f.recv()
		f.send(
			`[1, 2]`, `"hello"`, `42`, `null`, `{}`,
			`{"return": {}, "id": 7}`,                                          // not our id type
			`{"return": "stale", "id": "corral-999"}`,                          // nobody waits
			`{"error": {"class": "GenericError", "desc": "JSON parse error"}}`, // id-less
			`{"event": "X"}`, // no timestamp, no data
		)
		f.reply(c.ID, "mine")
	}()
	sub := m.Subscribe()
	defer sub.Close()
	var got string
	if err := m.Execute(context.Background(), "x", nil, &got); err != nil || got != "mine" {
		t.Fatalf("Execute = %q, %v", got, err)
	}
	ev := <-sub.C
	if ev.Name != "X" || ev.Data != nil || !ev.Timestamp.IsZero() {
		t.Fatalf("event %+v", ev)
	}
	if err := ev.DecodeData(&struct{}{}); err != nil {
		t.Fatal(err)
	}
}

func TestFakeConnectionEnds(t *testing.T) {
	tests := []struct {
		name string
		end  func(m *Monitor, f *fakeQMP)
		want func(t *testing.T, err error)
	}{
		{
			name: "garbage",
			end:  func(m *Monitor, f *fakeQMP) { f.send(`{"return": }} not json`) },
			want: func(t *testing.T, err error) {
				var syn *json.SyntaxError
				if !errors.As(err, &syn) {
					t.Errorf("err = %v, want a wrapped *json.SyntaxError", err)
				}
			},
		},
		{
			name: "disconnect mid-call",
			end:  func(m *Monitor, f *fakeQMP) { f.conn.Close() },
			want: func(t *testing.T, err error) {
				if !errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "QEMU closed the connection") {
					t.Errorf("err = %v, want EOF cause", err)
				}
			},
		},
		{
			name: "truncated message",
			end: func(m *Monitor, f *fakeQMP) {
				io.WriteString(f.conn, `{"return": {"status": "runn`)
				f.conn.Close()
			},
			want: func(t *testing.T, err error) {
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("err = %v, want ErrUnexpectedEOF cause", err)
				}
			},
		},
		{
			name: "Close",
			end:  func(m *Monitor, f *fakeQMP) { m.Close() },
			want: func(t *testing.T, err error) {
				if err != ErrClosed {
					t.Errorf("err = %v, want exactly ErrClosed", err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, f := startFake(t)
			sub := m.Subscribe()
			if m.Err() != nil {
				t.Fatalf("Err = %v while open", m.Err())
			}
			pending := make(chan error, 1)
			go func() { pending <- m.Execute(context.Background(), "query-status", nil, nil) }()
			f.recv() // the call is now waiting for its reply
			tc.end(m, f)

			select {
			case err := <-pending:
				if !errors.Is(err, ErrClosed) {
					t.Fatalf("pending Execute = %v, want ErrClosed", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("pending Execute did not return")
			}
			select {
			case <-m.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("Done did not fire")
			}
			if err := m.Err(); !errors.Is(err, ErrClosed) {
				t.Fatalf("Err = %v, want ErrClosed", err)
			}
			tc.want(t, m.Err())
			if err := m.Execute(context.Background(), "query-status", nil, nil); !errors.Is(err, ErrClosed) {
				t.Fatalf("Execute afterwards = %v, want ErrClosed", err)
			}
			if _, ok := <-sub.C; ok {
				t.Fatal("subscription not closed")
			}
			if _, ok := <-m.Subscribe().C; ok {
				t.Fatal("subscription on an ended monitor not closed")
			}
			m.Close() // idempotent
		})
	}
}

// TestFakeTimeout: a caller that gives up returns at once, and the reply
// arriving later is dropped instead of reaching the next caller.
func TestFakeTimeout(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, func())
		want error
	}{
		{"deadline", func() (context.Context, func()) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancel", func() (context.Context, func()) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, f := startFake(t)
			late := make(chan struct{})
			go func() {
				first := f.recv()
				<-late
				f.reply(first.ID, "stale")
				second := f.recv()
				f.reply(second.ID, "fresh")
			}()

			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			err := m.Execute(ctx, "slow", nil, nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("returned after %v", d)
			}
			close(late)

			var got string
			if err := m.Execute(context.Background(), "next", nil, &got); err != nil || got != "fresh" {
				t.Fatalf("next Execute = %q, %v; want fresh", got, err)
			}
			m.mu.Lock()
			left := len(m.pending)
			m.mu.Unlock()
			if left != 0 {
				t.Fatalf("%d pending entries leaked", left)
			}
		})
	}
}

// TestFakeWriteBlocked: QEMU not reading its socket must not trap callers,
// neither the one writing nor those queued for the write lock, and an
// abandoned write that sent nothing must leave the stream usable.
func TestFakeWriteBlocked(t *testing.T) {
	m, f := startFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if err := m.Execute(ctx, "blocked", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want DeadlineExceeded", err)
			}
		})
	}
	wg.Wait() // net.Pipe writes block until the server reads, which it does not

	go func() {
		c := f.recv()
		f.reply(c.ID, 1)
	}()
	var got int
	if err := m.Execute(context.Background(), "ok", nil, &got); err != nil || got != 1 {
		t.Fatalf("Execute after blocked writes = %d, %v", got, err)
	}
}

func TestFakeExecuteErrors(t *testing.T) {
	tests := []struct {
		name   string
		reply  string // %q is the id
		result any
		check  func(t *testing.T, err error)
	}{
		{
			name:  "qemu error",
			reply: `{"error": {"class": "DeviceNotFound", "desc": "Device 'x' not found"}, "id": %q}`,
			check: func(t *testing.T, err error) {
				var qerr *Error
				if !errors.As(err, &qerr) || qerr.Class != ClassDeviceNotFound {
					t.Errorf("err = %v, want *Error DeviceNotFound", err)
				}
				if want := "qmp cmd: DeviceNotFound: Device 'x' not found"; err.Error() != want {
					t.Errorf("message %q, want %q", err, want)
				}
			},
		},
		{
			name:   "result type mismatch",
			reply:  `{"return": "text", "id": %q}`,
			result: new(int),
			check: func(t *testing.T, err error) {
				var qerr *Error
				if err == nil || errors.As(err, &qerr) || !strings.Contains(err.Error(), "decoding reply") {
					t.Errorf("err = %v, want a decoding error", err)
				}
			},
		},
		{
			name:   "nil result discards",
			reply:  `{"return": {"big": [1, 2, 3]}, "id": %q}`,
			result: nil,
			check: func(t *testing.T, err error) {
				if err != nil {
					t.Error(err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, f := startFake(t)
			go func() {
				c := f.recv()
				f.send(fmt.Sprintf(tc.reply, c.ID))
			}()
			tc.check(t, m.Execute(context.Background(), "cmd", nil, tc.result))
		})
	}

	t.Run("unencodable arguments", func(t *testing.T) {
		m, _ := startFake(t)
		err := m.Execute(context.Background(), "cmd", map[string]any{"f": func() {}}, nil)
		if err == nil || !strings.Contains(err.Error(), "encoding arguments") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("arguments on the wire", func(t *testing.T) {
		m, f := startFake(t)
		got := make(chan fakeCmd, 2)
		go func() {
			for range 2 {
				c := f.recv()
				got <- c
				f.reply(c.ID, struct{}{})
			}
		}()
		m.Execute(context.Background(), "noargs", nil, nil)
		m.Execute(context.Background(), "args", map[string]string{"id": "net0"}, nil)
		if c := <-got; c.Execute != "noargs" || c.Arguments != nil {
			t.Errorf("noargs sent %+v", c)
		}
		if c := <-got; c.Execute != "args" || string(c.Arguments) != `{"id":"net0"}` {
			t.Errorf("args sent %+v", c)
		}
	})
}

// TestFakeLargeReply: query-* replies can be megabytes on one line.
func TestFakeLargeReply(t *testing.T) {
	m, f := startFake(t)
	big := strings.Repeat("x", 2<<20) // far past any line-scanner default
	go func() {
		c := f.recv()
		f.reply(c.ID, map[string]string{"blob": big})
	}()
	var got struct{ Blob string }
	if err := m.Execute(context.Background(), "query-big", nil, &got); err != nil {
		t.Fatal(err)
	}
	if got.Blob != big {
		t.Fatalf("got %d bytes, want %d", len(got.Blob), len(big))
	}
}

func TestFakeQuit(t *testing.T) {
	tests := []struct {
		name   string
		server func(f *fakeQMP)
	}{
		{"reply then close", func(f *fakeQMP) {
			c := f.recv()
			f.send(`{"timestamp": {"seconds": 1, "microseconds": 0}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}`)
			f.reply(c.ID, struct{}{})
			f.conn.Close()
		}},
		{"close without reply", func(f *fakeQMP) {
			f.recv()
			f.conn.Close()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, f := startFake(t)
			go tc.server(f)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := m.Quit(ctx); err != nil {
				t.Fatalf("Quit: %v", err)
			}
			select {
			case <-m.Done():
			default:
				t.Fatal("Quit returned before the connection ended")
			}
		})
	}

	t.Run("already closed", func(t *testing.T) {
		m, _ := startFake(t)
		m.Close()
		if err := m.Quit(context.Background()); !errors.Is(err, ErrClosed) {
			t.Fatalf("Quit on closed monitor = %v, want ErrClosed", err)
		}
	})

	t.Run("QEMU does not exit", func(t *testing.T) {
		m, f := startFake(t)
		go func() {
			c := f.recv()
			f.reply(c.ID, struct{}{})
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := m.Quit(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Quit = %v, want DeadlineExceeded", err)
		}
	})
}

// gatedConn, once armed, lets one more Read return data and then holds the
// monitor's reader before its next Read until release is closed, so that
// what QEMU sends meanwhile stays in the kernel's socket buffer.
type gatedConn struct {
	net.Conn
	armed, held atomic.Bool
	release     chan struct{}
}

func (c *gatedConn) Read(p []byte) (int, error) {
	if c.held.Load() {
		<-c.release
	}
	n, err := c.Conn.Read(p)
	if n > 0 && c.armed.Load() {
		c.held.Store(true)
	}
	return n, err
}

// TestFakeLastWordsAfterWriteError: when a command cannot be written
// because QEMU has exited, what QEMU sent before exiting (typically the
// SHUTDOWN event) must still be delivered: a regression test for closing
// the connection on a write error, which discarded the unread buffer.
func TestFakeLastWordsAfterWriteError(t *testing.T) {
	dir, err := os.MkdirTemp("", "qmp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("unix", filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *fakeQMP, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			t.Error(err)
			close(accepted)
			return
		}
		f := &fakeQMP{t: t, conn: conn, dec: json.NewDecoder(conn)}
		f.send(greeting)
		c := f.recv()
		f.reply(c.ID, struct{}{})
		accepted <- f
	}()
	raw, err := net.Dial("unix", filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	conn := &gatedConn{Conn: raw, release: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := NewMonitor(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	f := <-accepted
	sub := m.Subscribe()

	conn.armed.Store(true)
	f.send(`{"event": "FIRST"}`) // the reader's last Read before the gate
	if ev := <-sub.C; ev.Name != "FIRST" {
		t.Fatalf("got %s", ev.Name)
	}
	f.send(`{"event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}`)
	f.conn.Close()

	result := make(chan error, 1)
	go func() { result <- m.Execute(ctx, "query-status", nil, nil) }()
	time.Sleep(50 * time.Millisecond) // let the write fail with EPIPE
	close(conn.release)

	if err := <-result; !errors.Is(err, ErrClosed) {
		t.Fatalf("Execute = %v, want ErrClosed", err)
	}
	if ev, ok := <-sub.C; !ok || ev.Name != EventShutdown {
		t.Fatalf("got %+v, %v; want the SHUTDOWN sent before exit", ev, ok)
	}
	if err := m.Err(); !errors.Is(err, io.EOF) {
		t.Fatalf("Err = %v, want the EOF cause", err)
	}
}

// TestFakePartialWrite: a write abandoned halfway leaves half a command on
// the stream; nothing sent after it could be trusted, so the monitor ends.
func TestFakePartialWrite(t *testing.T) {
	m, f := startFake(t)
	go func() {
		buf := make([]byte, 5)
		io.ReadFull(f.conn, buf) // then stop reading
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := m.Execute(ctx, "query-status", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Execute = %v, want DeadlineExceeded", err)
	}
	select {
	case <-m.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("monitor still open after a partial write")
	}
	if err := m.Err(); !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "interrupted after 5 of") {
		t.Fatalf("Err = %v", err)
	}
}
