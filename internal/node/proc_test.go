package node

import (
	"slices"
	"strings"
	"testing"
)

const x86CPUInfo = `processor	: 0
vendor_id	: AuthenticAMD
cpu family	: 25
model		: 1
model name	: AMD EPYC 7B13
cpu MHz		: 2450.000
flags		: fpu vme de pse svm

processor	: 1
vendor_id	: AuthenticAMD
cpu family	: 25
model name	: AMD EPYC 7B13
cpu MHz		: 2450.000
`

const arm32CPUInfo = `Processor	: ARMv7 Processor rev 10 (v7l)
processor	: 0
BogoMIPS	: 1987.37

processor	: 1
BogoMIPS	: 1987.37

Hardware	: Freescale i.MX 6Quad/DualLite (Device Tree)
`

const powerCPUInfo = `processor	: 0
cpu		: POWER9 (raw), altivec supported
clock		: 2166.000000MHz

processor	: 8
cpu		: POWER9 (raw), altivec supported
`

const arm64CPUInfo = `processor	: 0
BogoMIPS	: 50.00
Features	: fp asimd evtstrm aes
CPU implementer	: 0x41
CPU part	: 0xd0c
`

func TestParseCPUInfo(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		wantModel string
		wantCPUs  int
	}{
		{"x86", x86CPUInfo, "AMD EPYC 7B13", 2},
		{"old arm: Hardware preferred over Processor", arm32CPUInfo, "Freescale i.MX 6Quad/DualLite (Device Tree)", 2},
		{"power", powerCPUInfo, "POWER9 (raw), altivec supported", 2},
		{"arm64 without model", arm64CPUInfo, "", 1},
		{"empty", "", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			model, cpus, err := parseCPUInfo(strings.NewReader(tc.in))
			if err != nil {
				t.Fatalf("parseCPUInfo: %v", err)
			}
			if model != tc.wantModel || cpus != tc.wantCPUs {
				t.Errorf("got (%q, %d), want (%q, %d)", model, cpus, tc.wantModel, tc.wantCPUs)
			}
		})
	}
}

func TestParseMeminfo(t *testing.T) {
	const kib = 1024
	tests := []struct {
		name    string
		in      string
		want    meminfo
		wantErr bool
	}{
		{
			name: "modern kernel",
			in: `MemTotal:        8000000 kB
MemFree:          500000 kB
MemAvailable:    6000000 kB
Buffers:          100000 kB
Cached:          2000000 kB
SwapCached:            0 kB
SwapTotal:       1000000 kB
SwapFree:         900000 kB
HugePages_Total:       0
`,
			want: meminfo{MemTotal: 8000000 * kib, MemAvailable: 6000000 * kib, SwapTotal: 1000000 * kib, SwapFree: 900000 * kib},
		},
		{
			name: "no MemAvailable (Linux < 3.14)",
			in: `MemTotal:        8000000 kB
MemFree:          500000 kB
Buffers:          100000 kB
Cached:          2000000 kB
`,
			want: meminfo{MemTotal: 8000000 * kib, MemAvailable: 2600000 * kib},
		},
		{
			name: "no swap",
			in:   "MemTotal: 1024 kB\nMemAvailable: 512 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
			want: meminfo{MemTotal: 1024 * kib, MemAvailable: 512 * kib},
		},
		{
			name: "available clamped to total",
			in:   "MemTotal: 1024 kB\nMemAvailable: 2048 kB\n",
			want: meminfo{MemTotal: 1024 * kib, MemAvailable: 1024 * kib},
		},
		{name: "no MemTotal", in: "MemFree: 1 kB\n", wantErr: true},
		{name: "bad number", in: "MemTotal: lots kB\n", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMeminfo(strings.NewReader(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("error = %v, want error: %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseLoadavg(t *testing.T) {
	tests := []struct {
		in      string
		want    [3]float64
		wantErr bool
	}{
		{in: "0.52 0.58 0.59 1/389 12345\n", want: [3]float64{0.52, 0.58, 0.59}},
		{in: "12.00 8.50 4.25 10/2000 1", want: [3]float64{12, 8.5, 4.25}},
		{in: "0.52 0.58", wantErr: true},
		{in: "a b c d e", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseLoadavg(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error = %v, want error: %v", err, tc.wantErr)
			}
			if !tc.wantErr && got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseUptime(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "12345.67 23456.78\n", want: 12345},
		{in: "0.99 0.10", want: 0},
		{in: "", wantErr: true},
		{in: "soon", wantErr: true},
		{in: "-5 1", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseUptime(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error = %v, want error: %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

func TestCgroup2Mounts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{
			name: "unified",
			in:   "sysfs /sys sysfs rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n",
			want: []string{"/sys/fs/cgroup"},
		},
		{
			name: "hybrid",
			in: "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n" +
				"cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n" +
				"cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n",
			want: []string{"/sys/fs/cgroup/unified"},
		},
		{
			name: "v1 only",
			in:   "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n",
		},
		{
			name: "escaped mount point",
			in:   `none /mnt/my\040cgroup cgroup2 rw 0 0` + "\n",
			want: []string{"/mnt/my cgroup"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cgroup2Mounts(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
