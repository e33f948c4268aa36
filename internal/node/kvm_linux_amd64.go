package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/corral-project/corral/api"
)

// ioctl numbers and layouts from linux/kvm.h and asm/kvm.h (x86_64),
// checked against linux-libc-dev 6.1 with a C program printing the macros,
// sizeof and offsetof values. kvm_structs_test.go pins the struct sizes.
const (
	kvmAPIVersion = 12 // KVM_API_VERSION; stable since Linux 2.6.22

	kvmGetAPIVersion       = 0xAE00     // _IO(KVMIO, 0x00)
	kvmCreateVM            = 0xAE01     // _IO(KVMIO, 0x01)
	kvmGetVCPUMmapSize     = 0xAE04     // _IO(KVMIO, 0x04)
	kvmCreateVCPU          = 0xAE41     // _IO(KVMIO, 0x41)
	kvmSetUserMemoryRegion = 0x4020AE46 // _IOW(KVMIO, 0x46, struct kvm_userspace_memory_region)
	kvmSetTSSAddr          = 0xAE47     // _IO(KVMIO, 0x47)
	kvmRun                 = 0xAE80     // _IO(KVMIO, 0x80)
	kvmSetRegs             = 0x4090AE82 // _IOW(KVMIO, 0x82, struct kvm_regs)
	kvmGetSregs            = 0x8138AE83 // _IOR(KVMIO, 0x83, struct kvm_sregs)
	kvmSetSregs            = 0x4138AE84 // _IOW(KVMIO, 0x84, struct kvm_sregs)

	// struct kvm_run offsets.
	kvmRunImmediateExit = 1  // __u8 immediate_exit
	kvmRunExitReason    = 8  // __u32 exit_reason
	kvmRunIODirection   = 32 // union: io.direction (__u8)
	kvmRunIOSize        = 33 // io.size (__u8)
	kvmRunIOPort        = 34 // io.port (__u16)
	kvmRunIOCount       = 36 // io.count (__u32)
	kvmRunIODataOffset  = 40 // io.data_offset (__u64), from start of kvm_run
	kvmRunUnion         = 32 // fail_entry.hardware_entry_failure_reason, internal.suberror

	// exit reasons
	kvmExitIO            = 2
	kvmExitHLT           = 5
	kvmExitShutdown      = 8
	kvmExitFailEntry     = 9
	kvmExitIntr          = 10
	kvmExitInternalError = 17

	kvmInternalErrorEmulation = 1 // KVM_INTERNAL_ERROR_EMULATION

	kvmExitIOOut = 1

	// The test guest: one page at guest-physical 0x1000 executed in real
	// mode from CS:IP = 0:0x1000.
	guestAddr    = 0x1000
	probePort    = 0x10
	probeStarted = 0x41   // written first
	probeByte    = 0x42   // written after the x87/SSE instructions
	cr4OSFXSR    = 1 << 9 // lets the guest use SSE instructions
	// TSS address QEMU uses: Intel without unrestricted-guest support needs
	// one to emulate real mode; other backends ignore it.
	tssAddr = 0xfffbd000

	// interruptWait bounds how long a hung KVM_RUN is kicked with signals
	// before the probe gives up on its thread.
	interruptWait = 500 * time.Millisecond
)

// guestCode is the test guest, entered in real mode at CS:IP = 0:guestAddr:
//
//	B0 41     mov al, 0x41
//	E6 10     out 0x10, al      ; the vCPU executes at all
//	9B        fwait             ; x87: OVMF's early FPU setup
//	DB E3     fninit            ;   starts with exactly these two
//	0F 57 C0  xorps xmm0, xmm0  ; SSE, enabled by CR4.OSFXSR
//	B0 42     mov al, 0x42
//	E6 10     out 0x10, al      ; everything executed
//	F4        hlt
//
// Why x87 and SSE: with hardware virtualization (VMX with unrestricted
// guest, or SVM) these run natively. Software KVM backends for nested clouds
// (kvm_pvm, found on the development machine) instead feed guest code
// through KVM's instruction emulator, which lacks them: there SeaBIOS happens
// to boot, but OVMF and guest kernels stop with KVM_EXIT_INTERNAL_ERROR
// (emulation failure), which QEMU shows as a paused, "hung" guest. A probe of
// only `out; hlt` passes on such hosts.
var guestCode = []byte{
	0xB0, probeStarted, 0xE6, probePort,
	0x9B, 0xDB, 0xE3,
	0x0F, 0x57, 0xC0,
	0xB0, probeByte, 0xE6, probePort,
	0xF4,
}

type kvmUserspaceMemoryRegion struct {
	Slot          uint32
	Flags         uint32
	GuestPhysAddr uint64
	MemorySize    uint64
	UserspaceAddr uint64
}

type kvmRegs struct {
	RAX, RBX, RCX, RDX uint64
	RSI, RDI, RSP, RBP uint64
	R8, R9, R10, R11   uint64
	R12, R13, R14, R15 uint64
	RIP, RFLAGS        uint64
}

type kvmSegment struct {
	Base                           uint64
	Limit                          uint32
	Selector                       uint16
	Type                           uint8
	Present, DPL, DB, S, L, G, AVL uint8
	Unusable                       uint8
	Padding                        uint8
}

type kvmDtable struct {
	Base    uint64
	Limit   uint16
	Padding [3]uint16
}

type kvmSregs struct {
	CS, DS, ES, FS, GS, SS  kvmSegment
	TR, LDT                 kvmSegment
	GDT, IDT                kvmDtable
	CR0, CR2, CR3, CR4, CR8 uint64
	EFER                    uint64
	APICBase                uint64
	InterruptBitmap         [4]uint64 // (KVM_NR_INTERRUPTS + 63) / 64
}

func ioctl(fd int, req uintptr, arg uintptr) (uintptr, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg)
	if errno != 0 {
		return r, errno
	}
	return r, nil
}

// guestOutcome is what the vCPU thread saw.
type guestOutcome struct {
	ok          bool
	interrupted bool   // KVM_RUN returned EINTR / KVM_EXIT_INTR
	detail      string // why not ok
}

// probeKVM boots the test guest and classifies the result. Every setup step
// names itself in Detail on failure, so an operator sees exactly how far
// KVM got on this host.
func probeKVM(timeout time.Duration) api.Capability {
	start := time.Now()
	c := probeKVMCode(timeout, guestCode)
	slog.Debug("KVM probe finished", "available", c.Available, "version", c.Version,
		"detail", c.Detail, "took", time.Since(start))
	return c
}

// probeKVMCode runs code as a real-mode guest; tests use it with other code.
func probeKVMCode(timeout time.Duration, code []byte) (res api.Capability) {
	backend := kvmBackend()
	fail := func(format string, args ...any) api.Capability {
		res.Detail = fmt.Sprintf(format, args...)
		return res
	}

	kvm, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return fail("/dev/kvm does not exist (KVM module not loaded or no hardware virtualization); guests will run under TCG")
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return fail("no permission to open /dev/kvm: %v", err)
	case err != nil:
		return fail("opening /dev/kvm: %v", err)
	}
	// Every resource is released on return unless the vCPU thread is stuck
	// inside KVM_RUN: then the kernel may still use guest memory and the
	// run structure, so they are deliberately leaked with the thread.
	leak := false
	defer func() {
		if !leak {
			unix.Close(kvm)
		}
	}()

	v, err := ioctl(kvm, kvmGetAPIVersion, 0)
	if err != nil {
		return fail("KVM_GET_API_VERSION: %v", err)
	}
	if v != kvmAPIVersion {
		return fail("KVM API version %d, want %d", v, kvmAPIVersion)
	}
	res.Version = fmt.Sprintf("API %d", v)
	if backend != "" {
		res.Version += " (" + backend + ")"
	}

	vmfd, err := ioctl(kvm, kvmCreateVM, 0)
	if err != nil {
		return fail("KVM_CREATE_VM: %v", err)
	}
	vm := int(vmfd)
	defer func() {
		if !leak {
			unix.Close(vm)
		}
	}()
	// Best effort: only matters on Intel without unrestricted guest.
	if _, err := ioctl(vm, kvmSetTSSAddr, tssAddr); err != nil {
		slog.Debug("KVM probe: KVM_SET_TSS_ADDR failed", "err", err)
	}

	mem, err := unix.Mmap(-1, 0, unix.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return fail("mmap guest memory: %v", err)
	}
	defer func() {
		if !leak {
			unix.Munmap(mem)
		}
	}()
	copy(mem, code)
	region := kvmUserspaceMemoryRegion{
		Slot:          0,
		GuestPhysAddr: guestAddr,
		MemorySize:    uint64(len(mem)),
		UserspaceAddr: uint64(uintptr(unsafe.Pointer(&mem[0]))),
	}
	if _, err := ioctl(vm, kvmSetUserMemoryRegion, uintptr(unsafe.Pointer(&region))); err != nil {
		return fail("KVM_SET_USER_MEMORY_REGION: %v", err)
	}

	runSize, err := ioctl(kvm, kvmGetVCPUMmapSize, 0)
	if err != nil {
		return fail("KVM_GET_VCPU_MMAP_SIZE: %v", err)
	}
	if runSize < kvmRunIODataOffset+8 {
		return fail("KVM_GET_VCPU_MMAP_SIZE returned %d bytes, too small for struct kvm_run", runSize)
	}
	vcpufd, err := ioctl(vm, kvmCreateVCPU, 0)
	if err != nil {
		return fail("KVM_CREATE_VCPU: %v", err)
	}
	vcpu := int(vcpufd)
	defer func() {
		if !leak {
			unix.Close(vcpu)
		}
	}()
	run, err := unix.Mmap(vcpu, 0, int(runSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail("mmap kvm_run: %v", err)
	}
	defer func() {
		if !leak {
			unix.Munmap(run)
		}
	}()

	var sregs kvmSregs
	if _, err := ioctl(vcpu, kvmGetSregs, uintptr(unsafe.Pointer(&sregs))); err != nil {
		return fail("KVM_GET_SREGS: %v", err)
	}
	sregs.CS.Base, sregs.CS.Selector = 0, 0
	sregs.CR4 |= cr4OSFXSR
	if _, err := ioctl(vcpu, kvmSetSregs, uintptr(unsafe.Pointer(&sregs))); err != nil {
		return fail("KVM_SET_SREGS: %v", err)
	}
	regs := kvmRegs{RIP: guestAddr, RFLAGS: 2} // bit 1 of RFLAGS is reserved, always 1
	if _, err := ioctl(vcpu, kvmSetRegs, uintptr(unsafe.Pointer(&regs))); err != nil {
		return fail("KVM_SET_REGS: %v", err)
	}

	// KVM_RUN blocks in the kernel, so it runs on its own locked thread
	// that can be targeted with a signal. The goroutine never unlocks: when
	// it returns, the runtime throws the thread away rather than reusing a
	// thread that was a vCPU.
	tidc := make(chan int, 1)
	outc := make(chan guestOutcome, 1)
	go func() {
		runtime.LockOSThread()
		tidc <- unix.Gettid()
		outc <- runGuest(vcpu, run)
	}()
	tid := <-tidc

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var out guestOutcome
	select {
	case out = <-outc:
	case <-timer.C:
		if stuck := interruptVCPU(run, tid, outc); stuck {
			leak = true
			return fail("%s; the probe thread is stuck in KVM_RUN and could not be interrupted", hungDetail(timeout))
		}
		return fail("%s", hungDetail(timeout))
	}
	if !out.ok {
		return fail("%s; guests will run under TCG", out.detail)
	}
	res.Available = true
	return res
}

// hungDetail is kvmHungDetail for the default timeout; tests use shorter
// ones and still want an accurate message.
func hungDetail(timeout time.Duration) string {
	if timeout == KVMProbeTimeout {
		return kvmHungDetail
	}
	return fmt.Sprintf("KVM_RUN did not return within %v (nested virtualization not usable?); guests will run under TCG", timeout)
}

// interruptVCPU kicks a vCPU thread out of KVM_RUN, the way QEMU does:
// set kvm_run.immediate_exit, so a KVM_RUN entered after the kick returns
// EINTR at once, then signal the thread, so one already running returns
// EINTR. The signal is SIGURG, which the Go runtime itself sends to threads
// for goroutine preemption: its handler is always installed (KVM_RUN then
// returns EINTR rather than being restarted) and ignores stray deliveries, so
// it cannot kill the process or confuse the runtime. The signal is repeated
// because delivery and kernel re-entry race. It reports whether the thread
// is still stuck after interruptWait.
func interruptVCPU(run []byte, tid int, outc <-chan guestOutcome) (stuck bool) {
	// immediate_exit shares a naturally aligned 32-bit word with
	// request_interrupt_window and padding; set it atomically so the Go
	// side is race-free (the kernel reads it on KVM_RUN entry).
	word := (*uint32)(unsafe.Pointer(&run[0]))
	atomic.OrUint32(word, 1<<(8*kvmRunImmediateExit)) // little endian
	pid := unix.Getpid()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(interruptWait)
	for {
		// The vCPU goroutine is locked to tid until it returns, and we only
		// signal while it has not, so tid cannot have been reused.
		if err := unix.Tgkill(pid, tid, unix.SIGURG); err != nil {
			slog.Debug("KVM probe: tgkill", "tid", tid, "err", err)
		}
		select {
		case out := <-outc:
			slog.Debug("KVM probe: vCPU interrupted", "interrupted", out.interrupted, "detail", out.detail)
			return false
		case <-deadline:
			slog.Warn("KVM probe: vCPU thread stuck in KVM_RUN; leaving it blocked", "tid", tid)
			return true
		case <-tick.C:
		}
	}
}

// runGuest runs the vCPU until the guest halts, checking that it wrote
// probeStarted and then probeByte to probePort on the way.
func runGuest(vcpu int, run []byte) guestOutcome {
	started, finished := false, false
	for range 8 {
		if _, err := ioctl(vcpu, kvmRun, 0); err != nil {
			if errors.Is(err, unix.EINTR) {
				return guestOutcome{interrupted: true, detail: "KVM_RUN interrupted"}
			}
			return guestOutcome{detail: fmt.Sprintf("KVM_RUN: %v", err)}
		}
		reason := binary.LittleEndian.Uint32(run[kvmRunExitReason:])
		switch reason {
		case kvmExitIO:
			dir, size := run[kvmRunIODirection], run[kvmRunIOSize]
			port := binary.LittleEndian.Uint16(run[kvmRunIOPort:])
			count := binary.LittleEndian.Uint32(run[kvmRunIOCount:])
			off := binary.LittleEndian.Uint64(run[kvmRunIODataOffset:])
			if dir != kvmExitIOOut || size != 1 || port != probePort || count != 1 || off >= uint64(len(run)) {
				return guestOutcome{detail: fmt.Sprintf(
					"test guest did unexpected I/O: direction %d size %d port %#x count %d", dir, size, port, count)}
			}
			switch got := run[off]; {
			case got == probeStarted && !started:
				started = true
			case got == probeByte && started:
				finished = true
			default:
				return guestOutcome{detail: fmt.Sprintf("test guest wrote unexpected value %#x to port %#x", got, port)}
			}
		case kvmExitHLT:
			if !finished {
				return guestOutcome{detail: "test guest halted without doing its port writes"}
			}
			return guestOutcome{ok: true}
		case kvmExitIntr:
			return guestOutcome{interrupted: true, detail: "KVM_RUN interrupted"}
		case kvmExitInternalError:
			sub := binary.LittleEndian.Uint32(run[kvmRunUnion:])
			if started && sub == kvmInternalErrorEmulation {
				return guestOutcome{detail: "KVM_EXIT_INTERNAL_ERROR (emulation failure) on the test guest's " +
					"x87/SSE instructions: this KVM emulates guest code instead of running it with hardware " +
					"virtualization, and firmware and guest kernels stop the same way"}
			}
			return guestOutcome{detail: fmt.Sprintf("KVM_EXIT_INTERNAL_ERROR: suberror %d (guest started: %v)", sub, started)}
		case kvmExitFailEntry:
			return guestOutcome{detail: fmt.Sprintf("KVM_EXIT_FAIL_ENTRY: hardware entry failure reason %#x",
				binary.LittleEndian.Uint64(run[kvmRunUnion:]))}
		case kvmExitShutdown:
			return guestOutcome{detail: "test guest triple-faulted (KVM_EXIT_SHUTDOWN)"}
		default:
			return guestOutcome{detail: fmt.Sprintf("test guest stopped with unexpected exit reason %d", reason)}
		}
	}
	return guestOutcome{detail: "test guest did not halt after 8 exits"}
}
