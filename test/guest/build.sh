#!/usr/bin/env bash
# Builds corral's test guest from Debian packages: Debian's kernel with a
# busybox initramfs, packed as a BIOS-bootable ISO (isolinux), plus a small
# ext4 data disk. The guest prints CORRAL-GUEST-READY on ttyS0, answers
# commands there (`ping` -> `pong`, anything else runs in sh) and powers off
# on the ACPI power button. See README.md beside this file.
#
# Usage: test/guest/build.sh [OUTDIR]      (default: test/guest/out)
#
# Outputs in OUTDIR: guest.iso, disk.raw, vmlinuz, initrd.gz, cmdline.
# A re-run does nothing while all outputs exist and are newer than this
# script. Exit status 77 means "cannot build here" (missing tool or package,
# no package lists); the reason is printed as "SKIP reason: ...".
#
# Root is needed only to apt-get install a missing host tool (xorriso,
# e2fsprogs) or to run apt-get update when no package lists exist; the Debian
# packages that go into the guest are fetched with `apt-get download` and
# unpacked with `dpkg-deb -x`, never installed.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin" LC_ALL=C

log() { echo "guest/build.sh: $*" >&2; }
skip() { echo "SKIP reason: $*" >&2; exit 77; }
is_root() { [ "$(id -u)" -eq 0 ]; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self="$here/$(basename "${BASH_SOURCE[0]}")"
out=${1:-$here/out}
mkdir -p "$out" 2>/dev/null || skip "cannot create the guest output directory $out"
out=$(cd "$out" && pwd)
[ -w "$out" ] || skip "the guest output directory $out is not writable"

outputs=(guest.iso disk.raw vmlinuz initrd.gz cmdline)
# Kernel command line, used by isolinux and written to OUTDIR/cmdline for
# direct kernel boot (-kernel/-initrd/-append).
CMDLINE="console=ttyS0,115200 quiet"

fresh() {
  local f
  for f in "${outputs[@]}"; do
    [[ -f $out/$f && $out/$f -nt $self ]] || return 1
  done
}

# One build at a time per output directory (parallel test packages share it).
command -v flock >/dev/null || skip "flock (util-linux) is missing"
exec 9>"$out/.lock"
flock 9
if fresh; then
  log "up to date: $out"
  exit 0
fi

# --- host tools -------------------------------------------------------------
need_pkgs=()
command -v apt-get >/dev/null || skip "apt-get is missing (not a Debian host)"
command -v dpkg-deb >/dev/null || skip "dpkg-deb is missing (not a Debian host)"
command -v xorriso >/dev/null || need_pkgs+=(xorriso)
command -v mke2fs >/dev/null || need_pkgs+=(e2fsprogs)
command -v gzip >/dev/null || need_pkgs+=(gzip)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  is_root || skip "host packages missing: ${need_pkgs[*]} (install them or run as root)"
  log "installing host packages: ${need_pkgs[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2 ||
    { apt-get update -qq >&2 || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2; } ||
    skip "cannot install host packages: ${need_pkgs[*]}"
fi

# --- Debian packages for the guest -------------------------------------------
kpkg() {
  apt-cache show --no-all-versions linux-image-amd64 2>/dev/null |
    sed -n 's/^Depends:.*\(linux-image-[0-9][^ ,]*-amd64\).*/\1/p' | head -n1
}
kernel_pkg=$(kpkg)
if [ -z "$kernel_pkg" ] && is_root; then
  log "no package lists for linux-image-amd64; running apt-get update"
  apt-get update -qq >&2 || true
  kernel_pkg=$(kpkg)
fi
[ -n "$kernel_pkg" ] || skip "linux-image-amd64 is not known to apt (run apt-get update as root)"

work=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
mkdir "$work/debs"
apt_opts=()
is_root && apt_opts=(-o APT::Sandbox::User=root)
log "downloading $kernel_pkg busybox-static isolinux syslinux-common"
(cd "$work/debs" && apt-get download -qq "${apt_opts[@]}" \
  "$kernel_pkg" busybox-static isolinux syslinux-common >&2) ||
  skip "apt-get download of the guest packages failed"

x="$work/x"
mkdir "$x"
for d in "$work"/debs/*.deb; do
  dpkg-deb -x "$d" "$x"
done
kver=${kernel_pkg#linux-image-}
kmods="$x/lib/modules/$kver"
bb="$x/bin/busybox"
[ -f "$x/boot/vmlinuz-$kver" ] || { log "no vmlinuz-$kver in $kernel_pkg"; exit 1; }
[ -x "$bb" ] || { log "no static busybox in busybox-static"; exit 1; }

# --- initramfs ---------------------------------------------------------------
root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc/acpi/PWRF,proc,sys,dev,tmp,run,mnt/disk,lib/modules}
cp "$bb" "$root/bin/busybox"
"$bb" --list-full | while read -r p; do
  [ "$p" = bin/busybox ] || [ -e "$root/$p" ] || ln -s /bin/busybox "$root/$p"
done

# Kernel modules, with what they depend on. Debian's kernel has the 8250
# serial console, i8042/atkbd, ACPI core and devtmpfs built in; these are
# modules there:
#   button, evdev              ACPI power button as an input device for acpid
#   virtio_pci, virtio_blk     /dev/vda
#   virtio_scsi, ata_piix,     /dev/sda on virtio-scsi, IDE (i440fx) or
#   ahci, sd_mod               SATA (q35)
#   ext4, crc32c_generic       the data disk's filesystem
#   crct10dif_generic,         crypto algorithms sd_mod's helpers look up
#   crc64_rocksoft_generic
#   virtio_net                 NICs, also hot-plugged ones (eth0 appears)
modules=(button evdev virtio_pci virtio_blk virtio_scsi sd_mod ata_piix ahci
  crc32c_generic ext4 crct10dif_generic crc64_rocksoft_generic virtio_net)
# Resolve dependencies from each module's own modinfo "depends=" (modules.dep
# is made by the package's postinst, which we do not run).
declare -A want=() seen=()
need_module() {
  local m=${1//-/_} path dep
  [[ -z ${seen[$m]:-} ]] || return 0
  seen[$m]=1
  path=$(grep -E "/${m//_/[_-]}\.ko\$" "$kmods/modules.order") ||
    { log "module $m not found in $kernel_pkg"; exit 1; }
  want[$path]=1
  for dep in $(tr '\0' '\n' <"$kmods/$path" | sed -n 's/^depends=//p' | tr ',' ' '); do
    need_module "$dep"
  done
}
for m in "${modules[@]}"; do need_module "$m"; done
mdir="$root/lib/modules/$kver"
for f in "${!want[@]}"; do
  mkdir -p "$mdir/$(dirname "$f")"
  cp "$kmods/$f" "$mdir/$f"
done
cp "$kmods/modules.builtin" "$kmods/modules.order" "$mdir/"
"$bb" depmod -b "$root" "$kver"
printf '%s\n' "${modules[@]}" >"$root/etc/modules"

cat >"$root/sbin/corral-poweroff" <<'EOF'
#!/bin/sh
# Clean power-off: flush and unmount the data disk, then ACPI power off.
echo "corral-guest: ${1:-poweroff}, powering off" >/dev/ttyS0
sync
umount /mnt/disk 2>/dev/null
poweroff -f
EOF

# busybox acpid maps the power button's KEY_POWER to /etc/acpi/PWRF/00000080.
cat >"$root/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
exec /sbin/corral-poweroff "ACPI power button"
EOF

cat >"$root/init" <<'EOF'
#!/bin/sh
# corral test guest: PID 1.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/ TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
exec </dev/ttyS0 >/dev/ttyS0 2>&1
# End whatever the firmware and bootloader left on the current line.
echo
hostname corral-guest

for m in $(cat /etc/modules); do
  modprobe "$m" || echo "corral-guest: modprobe $m failed"
done

# The data disk: the first of vda/sda that holds a filesystem we can mount.
for d in vda sda; do
  [ -b /dev/$d ] || continue
  if mount -t ext4 /dev/$d /mnt/disk 2>/dev/null; then
    echo "corral-guest: /dev/$d mounted on /mnt/disk"
    break
  fi
done

acpid -c /etc/acpi -l /run/acpid.log
# Keep later kernel messages off the serial line that carries the answers.
echo 1 >/proc/sys/kernel/printk
stty -F /dev/ttyS0 -echo icrnl onlcr 2>/dev/null

echo CORRAL-GUEST-READY
cr=$(printf '\r')
while :; do
  while IFS= read -r line; do
    line=${line%"$cr"}
    case $line in
      '') ;;
      ping) echo pong ;;
      poweroff) /sbin/corral-poweroff "poweroff command" ;;
      *) sh -c "$line" </dev/null 2>&1 ;;
    esac
  done </dev/ttyS0
  sleep 1
done
EOF
chmod 755 "$root/init" "$root/sbin/corral-poweroff" "$root/etc/acpi/PWRF/00000080"
echo "corral-guest" >"$root/etc/hostname"
echo "root:x:0:0:root:/:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"

(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | "$bb" cpio -o -H newc -R 0:0 2>/dev/null) |
  gzip -9n >"$work/initrd.gz"

# --- ISO (isolinux, BIOS) ----------------------------------------------------
iso="$work/iso"
mkdir -p "$iso/isolinux"
cp "$x/usr/lib/ISOLINUX/isolinux.bin" "$x/usr/lib/syslinux/modules/bios/ldlinux.c32" "$iso/isolinux/"
cp "$x/boot/vmlinuz-$kver" "$iso/isolinux/vmlinuz"
cp "$work/initrd.gz" "$iso/isolinux/initrd.gz"
cat >"$iso/isolinux/isolinux.cfg" <<EOF
SERIAL 0 115200
DEFAULT corral
PROMPT 0
TIMEOUT 0
LABEL corral
  KERNEL vmlinuz
  INITRD initrd.gz
  APPEND $CMDLINE
EOF
xorriso -as mkisofs -quiet -o "$work/guest.iso" -V CORRAL_GUEST -J -R \
  -isohybrid-mbr "$x/usr/lib/ISOLINUX/isohdpfx.bin" \
  -b isolinux/isolinux.bin -c isolinux/boot.cat \
  -no-emul-boot -boot-load-size 4 -boot-info-table "$iso" >&2

# --- data disk (ext4 on the whole device, no partition table) ----------------
disk="$work/disktree"
mkdir -p "$disk"
echo "corral test disk" >"$disk/README"
truncate -s 32M "$work/disk.raw"
mke2fs -q -F -t ext4 -L corral-data -E root_owner=0:0 -d "$disk" "$work/disk.raw"

# --- publish -----------------------------------------------------------------
cp "$x/boot/vmlinuz-$kver" "$work/vmlinuz"
echo "$CMDLINE" >"$work/cmdline"
echo "$kver" >"$work/kernel-version"
for f in "${outputs[@]}" kernel-version; do
  mv -f "$work/$f" "$out/$f"
done
log "built $out ($kernel_pkg): $(cd "$out" && ls -s --block-size=K "${outputs[@]}" | tr '\n' ' ')"
