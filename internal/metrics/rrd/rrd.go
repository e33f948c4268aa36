// Package rrd is a small round-robin database: a fixed-size file per
// entity that holds, for each of its series, the average and the maximum
// at several resolutions (10 s for an hour, 1 min for a day, 30 min for a
// month, 6 h for a year). It never grows, survives restarts, and an update
// writes a few hundred bytes in place.
//
// Why not rrdtool: its Go bindings need cgo and librrd, and its semantics
// (heartbeats, counters, xff) are more than samplers that already compute
// rates need. Samples here are gauges; every archive consolidates the raw
// samples that fall into its rows, so a 30-minute average is exact, not an
// average of rounded averages.
//
// File layout (little endian): a header (magic, version, series names,
// archives), then per archive a state block (the slot being filled and its
// running sum, count and max per series) and rows*series*2 float32 values
// (per row: the averages, then the maxima). Unknown is NaN.
package rrd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sync"
	"time"
)

// Archive is one resolution: Rows rows of Step each.
type Archive struct {
	Step time.Duration
	Rows int
}

// Default are the archives of every corral series.
var Default = []Archive{
	{10 * time.Second, 360},  // an hour
	{time.Minute, 1440},      // a day
	{30 * time.Minute, 1440}, // a month
	{6 * time.Hour, 1460},    // a year
}

// Consolidation functions.
const (
	Average = "AVERAGE"
	Max     = "MAX"
)

const (
	magic   = "CRRD"
	version = 1
)

// ErrLayout means a file holds other series or archives than asked for.
var ErrLayout = errors.New("rrd: file has a different layout")

// DB is one open round-robin file. Its methods are safe for concurrent use.
type DB struct {
	mu     sync.Mutex
	f      *os.File
	series []string
	arch   []*archive
}

type archive struct {
	Archive
	step    int64 // seconds
	stateAt int64 // file offset of the state block
	dataAt  int64 // file offset of the rows
	// slot is the index (time/step) of the row being filled; 0: none yet.
	slot int64
	sum  []float64
	n    []float64
	max  []float64
}

func (a *archive) stateSize(ns int) int64 { return 8 + int64(ns)*24 }
func (a *archive) rowSize(ns int) int64   { return int64(ns) * 8 }

// Open opens path, creating it for series and archives if it doesn't exist.
// An existing file with a different layout gives ErrLayout.
func Open(path string, series []string, archives []Archive) (*DB, error) {
	if len(series) == 0 || len(archives) == 0 {
		return nil, errors.New("rrd: need at least one series and one archive")
	}
	for _, a := range archives {
		if a.Step < time.Second || a.Step%time.Second != 0 || a.Rows < 1 {
			return nil, fmt.Errorf("rrd: bad archive %v x %d", a.Step, a.Rows)
		}
	}
	db := &DB{series: slices.Clone(series)}
	hdr := db.header(archives)
	off := int64(len(hdr))
	for _, a := range archives {
		ar := &archive{Archive: a, step: int64(a.Step / time.Second)}
		ar.stateAt = off
		ar.dataAt = off + ar.stateSize(len(series))
		off = ar.dataAt + int64(a.Rows)*ar.rowSize(len(series))
		ar.reset(len(series))
		db.arch = append(db.arch, ar)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return db, db.create(path, hdr, off)
	}
	if err != nil {
		return nil, fmt.Errorf("rrd: %w", err)
	}
	db.f = f
	if err := db.load(hdr, off); err != nil {
		f.Close()
		return nil, fmt.Errorf("rrd %s: %w", path, err)
	}
	return db, nil
}

func (a *archive) reset(ns int) {
	a.sum, a.n, a.max = make([]float64, ns), make([]float64, ns), make([]float64, ns)
	for i := range a.max {
		a.max[i] = math.NaN()
	}
}

func (db *DB) header(archives []Archive) []byte {
	var b bytes.Buffer
	b.WriteString(magic)
	binary.Write(&b, binary.LittleEndian, uint32(version))
	binary.Write(&b, binary.LittleEndian, uint32(len(db.series)))
	binary.Write(&b, binary.LittleEndian, uint32(len(archives)))
	for _, s := range db.series {
		b.WriteByte(byte(len(s)))
		b.WriteString(s[:min(len(s), 255)])
	}
	for _, a := range archives {
		binary.Write(&b, binary.LittleEndian, uint32(a.Step/time.Second))
		binary.Write(&b, binary.LittleEndian, uint32(a.Rows))
	}
	for b.Len()%8 != 0 {
		b.WriteByte(0)
	}
	return b.Bytes()
}

// create writes a new file (all unknown) under a temporary name and links
// it into place, so a crash never leaves a half-made file.
func (db *DB) create(path string, hdr []byte, size int64) error {
	buf := make([]byte, size)
	copy(buf, hdr)
	nan := math.Float32bits(float32(math.NaN()))
	for _, a := range db.arch {
		copy(buf[a.stateAt:], db.state(a))
		for off := a.dataAt; off < a.dataAt+int64(a.Rows)*a.rowSize(len(db.series)); off += 4 {
			binary.LittleEndian.PutUint32(buf[off:], nan)
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf, 0o600); err != nil {
		return fmt.Errorf("rrd: create: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rrd: create: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("rrd: %w", err)
	}
	db.f = f
	return nil
}

func (db *DB) load(hdr []byte, size int64) error {
	st, err := db.f.Stat()
	if err != nil {
		return err
	}
	got := make([]byte, len(hdr))
	if _, err := db.f.ReadAt(got, 0); err != nil || !bytes.Equal(got, hdr) || st.Size() != size {
		return ErrLayout
	}
	for _, a := range db.arch {
		b := make([]byte, a.stateSize(len(db.series)))
		if _, err := db.f.ReadAt(b, a.stateAt); err != nil {
			return fmt.Errorf("read state: %w", err)
		}
		a.slot = int64(binary.LittleEndian.Uint64(b))
		for i := range db.series {
			o := 8 + i*24
			a.sum[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[o:]))
			a.n[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[o+8:]))
			a.max[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[o+16:]))
		}
	}
	return nil
}

func (db *DB) state(a *archive) []byte {
	b := make([]byte, a.stateSize(len(db.series)))
	binary.LittleEndian.PutUint64(b, uint64(a.slot))
	for i := range db.series {
		o := 8 + i*24
		binary.LittleEndian.PutUint64(b[o:], math.Float64bits(a.sum[i]))
		binary.LittleEndian.PutUint64(b[o+8:], math.Float64bits(a.n[i]))
		binary.LittleEndian.PutUint64(b[o+16:], math.Float64bits(a.max[i]))
	}
	return b
}

// Series are the DB's series names, in the order of Update's values.
func (db *DB) Series() []string { return slices.Clone(db.series) }

// Close closes the file.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.f == nil {
		return nil
	}
	err := db.f.Close()
	db.f = nil
	return err
}

// ErrOld means a sample is older than the row being filled.
var ErrOld = errors.New("rrd: sample older than the last update")

// Update adds one sample (a value per series, NaN for unknown) taken at t.
// Rows that received no sample stay unknown.
func (db *DB) Update(t time.Time, values []float64) error {
	if len(values) != len(db.series) {
		return fmt.Errorf("rrd: %d values for %d series", len(values), len(db.series))
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.f == nil {
		return errors.New("rrd: closed")
	}
	sec := t.Unix()
	if sec/db.arch[0].step < db.arch[0].slot {
		return ErrOld
	}
	for _, a := range db.arch {
		slot := sec / a.step
		if slot != a.slot {
			if err := db.finish(a, slot); err != nil {
				return err
			}
		}
		for i, v := range values {
			if math.IsNaN(v) {
				continue
			}
			a.sum[i] += v
			a.n[i]++
			if math.IsNaN(a.max[i]) || v > a.max[i] {
				a.max[i] = v
			}
		}
		if _, err := db.f.WriteAt(db.state(a), a.stateAt); err != nil {
			return fmt.Errorf("rrd: write: %w", err)
		}
	}
	return nil
}

// finish writes the row being filled, marks rows skipped since as
// unknown, and starts the row of slot.
func (db *DB) finish(a *archive, slot int64) error {
	ns := len(db.series)
	if a.slot != 0 {
		if err := db.writeRow(a, a.slot, a.row()); err != nil {
			return err
		}
		unknown := make([]float32, 2*ns)
		for i := range unknown {
			unknown[i] = float32(math.NaN())
		}
		for s := a.slot + 1; s < slot && s <= a.slot+int64(a.Rows); s++ {
			if err := db.writeRow(a, s, unknown); err != nil {
				return err
			}
		}
	}
	a.slot = slot
	a.reset(ns)
	return nil
}

// row is the consolidated current row: averages then maxima.
func (a *archive) row() []float32 {
	out := make([]float32, 2*len(a.sum))
	for i := range a.sum {
		avg := math.NaN()
		if a.n[i] > 0 {
			avg = a.sum[i] / a.n[i]
		}
		out[i], out[len(a.sum)+i] = float32(avg), float32(a.max[i])
	}
	return out
}

func (db *DB) writeRow(a *archive, slot int64, vals []float32) error {
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	idx := slot % int64(a.Rows)
	if _, err := db.f.WriteAt(b, a.dataAt+idx*a.rowSize(len(db.series))); err != nil {
		return fmt.Errorf("rrd: write: %w", err)
	}
	return nil
}

// Point is one row of a fetch: its start time and a value per series
// (NaN for unknown).
type Point struct {
	Time   time.Time
	Values []float64
}

// Fetch returns the last n rows (n <= 0: all) of archive ai consolidated
// by cf (Average or Max), oldest first, ending with the row being filled.
// It reads from the file, so an open DB costs little memory.
func (db *DB) Fetch(ai int, cf string, n int) ([]Point, error) {
	if ai < 0 || ai >= len(db.arch) {
		return nil, fmt.Errorf("rrd: no archive %d", ai)
	}
	if cf != Average && cf != Max {
		return nil, fmt.Errorf("rrd: unknown consolidation %q", cf)
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.f == nil {
		return nil, errors.New("rrd: closed")
	}
	a := db.arch[ai]
	if a.slot == 0 {
		return nil, nil
	}
	ns := len(db.series)
	if n <= 0 || n > a.Rows {
		n = a.Rows
	}
	buf := make([]byte, int64(a.Rows)*a.rowSize(ns))
	if _, err := db.f.ReadAt(buf, a.dataAt); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("rrd: read: %w", err)
	}
	cur := a.row()
	out := make([]Point, 0, n)
	for s := a.slot - int64(n) + 1; s <= a.slot; s++ {
		p := Point{Time: time.Unix(s*a.step, 0).UTC(), Values: make([]float64, ns)}
		for i := range p.Values {
			j := i
			if cf == Max {
				j += ns
			}
			switch {
			case s < 1:
				p.Values[i] = math.NaN()
			case s == a.slot:
				p.Values[i] = float64(cur[j])
			default:
				off := (s%int64(a.Rows))*a.rowSize(ns) + int64(4*j)
				p.Values[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(buf[off:])))
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// Archives returns the DB's archives.
func (db *DB) Archives() []Archive {
	out := make([]Archive, len(db.arch))
	for i, a := range db.arch {
		out[i] = a.Archive
	}
	return out
}
