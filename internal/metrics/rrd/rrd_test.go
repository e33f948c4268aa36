package rrd

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// t0 is a fake clock's start, aligned to every archive's step.
var t0 = time.Unix(1_700_000_000/21600*21600, 0)

func open(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(path, []string{"cpu", "mem"}, Default)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func near(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= 1e-4*math.Max(1, math.Abs(b))
}

// Every archive consolidates the raw 10 s samples of its rows: fed a known
// sequence with a fake clock, the 10 s, 1 min, 30 min and 6 h rows hold
// the exact averages and maxima, and rows without samples are unknown.
func TestConsolidationAcrossResolutions(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "a.rrd"))
	defer db.Close()
	// 13 hours of samples every 10 s: cpu counts 0,1,2,... per sample
	// within each minute (0..5), mem is the sample's index.
	const n = 13 * 360
	for i := 0; i < n; i++ {
		if err := db.Update(t0.Add(time.Duration(i)*10*time.Second), []float64{float64(i % 6), float64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	last := n - 1
	cases := []struct {
		name    string
		ai      int
		rows    int
		perRow  int // samples per row
		firstAt int // index of the first sample of the last full row
	}{
		{"10s", 0, 360, 1, last - 1},
		{"1min", 1, 1440, 6, last/6*6 - 6},
		{"30min", 2, 1440, 180, last/180*180 - 180},
		{"6h", 3, 1460, 2160, last/2160*2160 - 2160},
	}
	for _, c := range cases {
		avg, err := db.Fetch(c.ai, Average, 0)
		if err != nil {
			t.Fatal(err)
		}
		mx, _ := db.Fetch(c.ai, Max, 0)
		if len(avg) != c.rows || len(mx) != c.rows {
			t.Fatalf("%s: %d/%d rows, want %d", c.name, len(avg), len(mx), c.rows)
		}
		// The second-newest row is complete; check it exactly.
		row, mrow := avg[len(avg)-2], mx[len(mx)-2]
		wantT := t0.Add(time.Duration(c.firstAt) * 10 * time.Second)
		if !row.Time.Equal(wantT) {
			t.Errorf("%s: row time %v, want %v", c.name, row.Time, wantT)
		}
		var sum, max float64
		var cpuSum, cpuMax float64
		for i := c.firstAt; i < c.firstAt+c.perRow; i++ {
			sum += float64(i)
			max = float64(i)
			cpuSum += float64(i % 6)
			cpuMax = math.Max(cpuMax, float64(i%6))
		}
		if !near(row.Values[1], sum/float64(c.perRow)) || !near(mrow.Values[1], max) {
			t.Errorf("%s mem: avg %v max %v, want %v %v", c.name, row.Values[1], mrow.Values[1], sum/float64(c.perRow), max)
		}
		if !near(row.Values[0], cpuSum/float64(c.perRow)) || !near(mrow.Values[0], cpuMax) {
			t.Errorf("%s cpu: avg %v max %v, want %v %v", c.name, row.Values[0], mrow.Values[0], cpuSum/float64(c.perRow), cpuMax)
		}
		// The newest row is the one being filled.
		if cur := avg[len(avg)-1]; !near(cur.Values[1], meanFrom(wantT.Add(time.Duration(c.perRow)*10*time.Second), last)) {
			t.Errorf("%s: current row avg %v", c.name, cur.Values[1])
		}
	}
	// 13 h of data: the year archive has 3 rows of data, the rest unknown.
	yr, _ := db.Fetch(3, Average, 0)
	known := 0
	for _, p := range yr {
		if !math.IsNaN(p.Values[1]) {
			known++
		}
	}
	if known != 3 {
		t.Errorf("6h archive: %d known rows, want 3", known)
	}
}

// meanFrom is the mean of sample indexes from the one taken at t to last.
func meanFrom(t time.Time, last int) float64 {
	first := int(t.Sub(t0) / (10 * time.Second))
	return float64(first+last) / 2
}

// A gap in sampling leaves unknown rows, not stale ones, and a sample from
// the past is refused.
func TestGapsAreUnknownAndOldSamplesRefused(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "g.rrd"))
	defer db.Close()
	for i := 0; i < 360; i++ { // fill the hour archive completely
		db.Update(t0.Add(time.Duration(i)*10*time.Second), []float64{1, 1})
	}
	// Ten minutes without samples, then one more.
	resume := t0.Add(3600*time.Second + 10*time.Minute)
	if err := db.Update(resume, []float64{2, math.NaN()}); err != nil {
		t.Fatal(err)
	}
	pts, _ := db.Fetch(0, Average, 0)
	unknown := 0
	for _, p := range pts[:len(pts)-1] {
		if math.IsNaN(p.Values[0]) {
			unknown++
		}
	}
	if unknown != 60 {
		t.Errorf("%d unknown rows after a 10 min gap, want 60", unknown)
	}
	if cur := pts[len(pts)-1]; cur.Values[0] != 2 || !math.IsNaN(cur.Values[1]) {
		t.Errorf("current row %v", cur.Values)
	}
	if err := db.Update(resume.Add(-time.Minute), []float64{1, 1}); !errors.Is(err, ErrOld) {
		t.Errorf("old sample: %v", err)
	}
	if err := db.Update(resume, []float64{1}); err == nil {
		t.Error("wrong number of values accepted")
	}
}

// Closing and reopening (a daemon restart) keeps the history and the row
// being filled; the file's size never changes.
func TestRestartKeepsHistoryAndSizeIsFixed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.rrd")
	db := open(t, path)
	st, _ := os.Stat(path)
	size := st.Size()
	for i := 0; i < 100; i++ {
		db.Update(t0.Add(time.Duration(i)*10*time.Second), []float64{float64(i), 5})
	}
	before, _ := db.Fetch(1, Max, 20)
	db.Close()

	db = open(t, path)
	defer db.Close()
	after, _ := db.Fetch(1, Max, 20)
	for i := range before {
		for j := range before[i].Values {
			if !near(before[i].Values[j], after[i].Values[j]) {
				t.Fatalf("row %d series %d: %v before restart, %v after", i, j, before[i].Values[j], after[i].Values[j])
			}
		}
	}
	// The partly filled minute continues where it was.
	for i := 100; i < 2000; i++ {
		db.Update(t0.Add(time.Duration(i)*10*time.Second), []float64{float64(i), 5})
	}
	pts, _ := db.Fetch(1, Average, 0)
	row := pts[len(pts)-1-(1999/6-96/6)]
	if want := float64(96+97+98+99+100+101) / 6; !near(row.Values[0], want) {
		t.Errorf("minute spanning the restart: avg %v, want %v", row.Values[0], want)
	}
	if st, _ := os.Stat(path); st.Size() != size {
		t.Errorf("file grew from %d to %d bytes", size, st.Size())
	}
	// A different layout is refused, not misread.
	if _, err := Open(path, []string{"cpu"}, Default); !errors.Is(err, ErrLayout) {
		t.Errorf("open with other series: %v", err)
	}
}
