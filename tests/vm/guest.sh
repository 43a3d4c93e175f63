#!/usr/bin/env bash
# guest.sh up DIR          start nfs-ganesha (exports DIR/nfs) and smbd (share DIR/smb) on free
#                          127.0.0.1 ports, boot the qemu (TCG) guest, mount them at /mnt/nfs, /mnt/smb
# guest.sh run DIR 'CMD'   run CMD with /bin/sh in the guest; prints its stdout/stderr, exits with its rc
# guest.sh down DIR        stop everything `up` started (by recorded PID / process group)
# guest.sh status DIR      show what is running
# State, configs and logs: DIR/.vm/. Env: VM_SMP (2), VM_MEM (1024 MiB), VM_TIMEOUT (run, 600 s),
# VM_NOCACHE (":"-list of host dirs re-shared without guest page cache, default: the project checkout, two levels up),
# VM_NFS_OPTS (vers=4.1), VM_SMB_OPTS (extra cifs options), VM_FWD (extra guestfwd rules,
# space-separated GUESTIP:PORT=HOSTIP:PORT, e.g. "10.0.2.100:7311=127.0.0.1:7311").
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd); C=${VM_CACHE:-$HERE/cache}
[ -n "${VM_CACHE:-}" ] || [ -f "$C/vmlinuz" ] || C=/var/cache/rnotify-vm   # where setup.sh put it
usage() { sed -n '2,11p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
op=$1; DIR=$(realpath -m "$2"); S=$DIR/.vm
SMB_USER=root SMB_PASS=vm-throwaway-pw   # only in this private passdb, only on 127.0.0.1

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}'; }
freeport() { local p; while :; do p=$((20000 + RANDOM % 40000)); ss -Htln "sport = :$p" | grep -q . || { echo $p; return; }; done; }
declare -A COMM=([qemu]=qemu-system-x86 [ganesha]=ganesha.nfsd [smbd]=smbd)
alive() {  # NAME: its recorded pid is running and is still that program (guards against pid reuse)
  local p; [ -f "$S/$1.pid" ] && p=$(cat "$S/$1.pid") && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "${COMM[$1]}" ]; }
start() {  # NAME CMD...: own session, so its process group id = the recorded pid
  local n=$1; shift
  setsid "$@" > "$S/$n.log" 2>&1 < /dev/null &
  echo $! > "$S/$n.pid"
}
stop() {   # NAME...: TERM each recorded process group, wait up to 10 s, then KILL what is left
  local n p ps=()
  for n; do alive "$n" && p=$(cat "$S/$n.pid") && ps+=("$p") && { kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p"; }; done
  for _ in $(seq 100); do
    n=0; for p in "${ps[@]}"; do kill -0 "$p" 2>/dev/null && n=1; done
    [ $n = 0 ] && break; sleep 0.1
  done
  for p in "${ps[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
  for n; do rm -f "$S/$n.pid"; done
}
wait_port() { for _ in $(seq 100); do ss -Htln "sport = :$1" | grep -q . && return 0; sleep 0.1; done; return 1; }

run() {    # CMD: submit a job to the guest agent's spool, wait for rc
  local id j rc t0=$SECONDS limit=${VM_TIMEOUT:-600}
  id=$(date +%s%N).$$.$RANDOM; j=$S/jobs/$id
  mkdir "$S/jobs/.$id"; printf '%s\n' "$1" > "$S/jobs/.$id/cmd"; mv "$S/jobs/.$id" "$j"
  until [ -f "$j/rc" ]; do
    alive qemu || { echo "guest.sh: guest not running (see $S/console.log)" >&2; return 255; }
    if (( SECONDS - t0 > limit )); then
      touch "$j/kill"; for _ in $(seq 100); do [ -f "$j/rc" ] && break; sleep 0.05; done
      cat "$j/out" 2>/dev/null; cat "$j/err" >&2 2>/dev/null; rm -rf "$j"
      echo "guest.sh: timed out after ${limit}s" >&2; return 124
    fi
    sleep 0.02
  done
  cat "$j/out"; cat "$j/err" >&2; rc=$(cat "$j/rc"); rm -rf "$j"; return "$rc"
}

up() {
  alive qemu && { echo "guest.sh: already up for $DIR" >&2; exit 1; }
  [ -f "$C/vmlinuz" ] && [ -f "$C/initrd.img" ] || { echo "run $HERE/setup.sh first" >&2; exit 1; }
  local t0; t0=$(now)
  mkdir -p "$DIR/nfs" "$DIR/smb" "$S"
  rm -rf "${S:?}/jobs" "$S/samba" "$S/ganesha-recov" "$S/ready"; mkdir -p "$S/jobs" "$S/samba/private" "$S/ganesha-recov"
  mkdir -p "$S/bin" "$S/etc"; cp "$HERE/agent.py" "$S/agent.py"   # guest: /run/vm/bin is first in PATH
  printf '127.0.0.1 localhost\n10.0.2.15 vmguest\n10.0.2.100 vmhost\n' > "$S/etc/hosts"
  echo 'nameserver 127.0.0.1' > "$S/etc/resolv.conf"
  printf '#!/bin/sh\nexec /sbin/modprobe -d %s "$@"\n' "$C/kroot" > "$S/bin/modprobe"; chmod +x "$S/bin/modprobe"
  local np sp; np=$(freeport); sp=$(freeport)
  echo "NFS_PORT=$np SMB_PORT=$sp" > "$S/ports"

  cat > "$S/ganesha.conf" <<EOF
NFS_CORE_PARAM { Protocols = 4; NFS_Port = $np; Bind_addr = 127.0.0.1; Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false; }
NFSV4 { Graceless = true; Minor_Versions = 1, 2; RecoveryBackend = fs; RecoveryRoot = "$S/ganesha-recov"; }
MDCACHE { Dir_Chunk = 0; }
EXPORT {
  Export_Id = 1; Path = "$DIR/nfs"; Pseudo = "/nfs"; Access_Type = RW; Squash = No_Root_Squash;
  SecType = sys; Protocols = 4; Transports = TCP; Attr_Expiration_Time = 0;
  FSAL { Name = VFS; }
}
EOF
  local sd=$S/samba
  cat > "$sd/smb.conf" <<EOF
[global]
  server role = standalone server
  smb ports = $sp
  interfaces = 127.0.0.1
  bind interfaces only = yes
  disable netbios = yes
  private dir = $sd/private
  lock directory = $sd
  state directory = $sd
  cache directory = $sd
  pid directory = $sd
  ncalrpc dir = $sd/ncalrpc
  passdb backend = tdbsam:$sd/private/passdb.tdb
  log file = $sd/log.%m
  load printers = no
  printcap name = /dev/null
  disable spoolss = yes
[share]
  path = $DIR/smb
  read only = no
EOF
  printf '%s\n%s\n' "$SMB_PASS" "$SMB_PASS" | smbpasswd -c "$sd/smb.conf" -s -a "$SMB_USER" >/dev/null
  start ganesha ganesha.nfsd -F -f "$S/ganesha.conf" -L "$S/ganesha.log" -p "$S/ganesha.pidfile" -N NIV_EVENT
  start smbd smbd -F --no-process-group --debug-stdout -s "$sd/smb.conf"

  : > "$S/nocache"; local i=0 d shares=()
  IFS=: read -ra nc <<< "${VM_NOCACHE-$(cd "$HERE/../.." && pwd)}"
  for d in "${nc[@]}"; do [ -d "$d" ] || continue
    shares+=(-virtfs "local,path=$d,mount_tag=nc$i,security_model=passthrough,readonly=on,multidevs=remap"); echo "nc$i $d" >> "$S/nocache"; i=$((i+1)); done
  # restrict=on: the guest reaches nothing but these two forwards (10.0.2.100:2049 NFS, :445 SMB)
  local fwd="guestfwd=tcp:10.0.2.100:2049-cmd:/bin/busybox nc 127.0.0.1 $np,guestfwd=tcp:10.0.2.100:445-cmd:/bin/busybox nc 127.0.0.1 $sp"
  # VM_FWD: extra forwards, space-separated GUESTIP:PORT=HOSTIP:PORT (e.g. an rnotifyd on the host)
  local f h; for f in ${VM_FWD:-}; do h=${f#*=}; fwd+=",guestfwd=tcp:${f%%=*}-cmd:/bin/busybox nc ${h%:*} ${h##*:}"; done
  start qemu qemu-system-x86_64 -accel tcg -cpu max -smp "${VM_SMP:-2}" -m "${VM_MEM:-1024}" \
    -nodefaults -no-user-config -display none -no-reboot -serial "file:$S/console.log" \
    -kernel "$C/vmlinuz" -initrd "$C/initrd.img" \
    -append "console=ttyS0 quiet panic=-1" \
    -netdev "user,id=n0,restrict=on,ipv6=off,$fwd" -device virtio-net-pci,netdev=n0 \
    -virtfs "local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap" \
    -virtfs "local,path=$S,mount_tag=state,security_model=passthrough" "${shares[@]}"

  wait_port "$np" || { echo "ganesha did not listen, see $S/ganesha.log" >&2; down; exit 1; }
  wait_port "$sp" || { echo "smbd did not listen, see $S/smbd.log" >&2; down; exit 1; }
  echo "servers up: nfs 127.0.0.1:$np smb 127.0.0.1:$sp ($(since "$t0") s)"
  for _ in $(seq 1200); do [ -f "$S/ready" ] && break; alive qemu || break; sleep 0.1; done
  [ -f "$S/ready" ] || { echo "guest did not come up, see $S/console.log" >&2; down; exit 1; }
  echo "guest agent ready ($(since "$t0") s)"
  run "date -s @$(now) >/dev/null" || true   # the RTC only gives whole seconds: ~0.5 s behind otherwise
  local t1; t1=$(now)
  run "mount -t nfs4 -o ${VM_NFS_OPTS:-vers=4.1} 10.0.2.100:/nfs /mnt/nfs" || { echo "NFS mount failed" >&2; exit 1; }
  echo "nfs mounted at /mnt/nfs ($(since "$t1") s)"; t1=$(now)
  run "mount -t cifs //10.0.2.100/share /mnt/smb -o username=$SMB_USER,password=$SMB_PASS${VM_SMB_OPTS:+,$VM_SMB_OPTS}" \
    || { echo "CIFS mount failed" >&2; exit 1; }
  echo "smb mounted at /mnt/smb ($(since "$t1") s); total $(since "$t0") s"
}

down() {
  stop qemu smbd ganesha
  rm -rf "${S:?}/jobs" "$S/ready"
  echo "down: $DIR"
}

status() {
  local n; for n in qemu ganesha smbd; do
    if alive $n; then echo "$n: pid $(cat "$S/$n.pid")"; else echo "$n: not running"; fi; done
  [ -f "$S/ports" ] && cat "$S/ports"; return 0
}

case $op in
  up) up ;;
  run) [ $# -ge 3 ] || usage; [ -d "$S/jobs" ] || { echo "guest.sh: not up" >&2; exit 1; }; run "$3" ;;
  down) down ;;
  status) status ;;
  *) usage ;;
esac
