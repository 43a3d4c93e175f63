#!/usr/bin/env bash
# guest_latency.sh BUILD_DIR [N]: server-side change -> event in a qemu guest, on NFS and SMB
# kernel-client mounts, beside the guest's own local inotify, in one run (docs/BENCHMARKS.md,
# "Kernel-client mounts in a guest").
#
# On this host (as root): rnotifyd as tests/vm/kernel_clients_test.sh starts it
# (--export nfs=DIR/nfs --export share=DIR/smb), a trigger (guest_latency_trigger.py) on
# 127.0.0.1 that creates files in DIR/{nfs,smb} on request, and the guest of tests/vm/guest.sh
# with both forwarded into it (10.0.2.100:PORT). In the guest, guest_latency.py times each
# change on the guest's clock: request to the trigger -> the CREATE line of the watcher.
# N samples per fast lane (default 50), 10 per fallback lane (polling, SMB2 change notify),
# 6 for polling with changes 3 s apart. Needs tests/vm/setup.sh. Takes about 2 minutes (with
# N=50); ends itself after 290 s.
# Samples: BUILD_DIR/guest_latency.csv. Not a test (not in ctest).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VM=$(cd "$HERE/../../tests/vm" && pwd)
BUILD=$(realpath "${1:?usage: guest_latency.sh BUILD_DIR [N]}")
N=${2:-50}
RNOTIFYD=$BUILD/src/server/rnotifyd
RNOTIFYWAIT=$BUILD/src/tools/rnotifywait/rnotifywait
[ "$(id -u)" -eq 0 ] || { echo "guest_latency: needs root (smbd, ganesha)" >&2; exit 1; }
for p in "$RNOTIFYD" "$RNOTIFYWAIT" /usr/bin/inotifywait /usr/bin/python3; do
  [ -x "$p" ] || { echo "guest_latency: $p is missing" >&2; exit 1; }
done

# A host path the guest sees (not /tmp: see tests/vm/README.md), of this run only.
DIR=$BUILD/vm-bench.$$
S=$DIR/.vm  # /run/vm in the guest
mkdir -p "$DIR/nfs/w" "$DIR/nfs/p" "$DIR/nfs/q" "$DIR/smb/w" "$DIR/smb/c"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
ok=0
cleanup() {
  bash "$VM/guest.sh" down "$DIR" > /dev/null 2>&1 || true
  local p
  for p in ${daemon:-} ${trigger:-}; do
    kill "$p" 2> /dev/null || true
    wait "$p" 2> /dev/null || true
  done
  if [ -n "${watchdog:-}" ]; then
    pkill -P "$watchdog" sleep 2> /dev/null || true
    kill "$watchdog" 2> /dev/null || true
  fi
  if [ "$ok" = 1 ]; then rm -rf "$DIR"; else echo "kept for a look: $DIR (logs in $DIR/.vm)" >&2; fi
}
trap cleanup EXIT
trap 'echo "guest_latency: stopped by a signal" >&2; exit 1' TERM INT
(sleep 290 && kill -TERM $$) > /dev/null 2>&1 &
watchdog=$!

freeport() { local p; while :; do p=$((20000 + RANDOM % 40000)); ss -Htln "sport = :$p" | grep -q . || { echo $p; return; }; done; }
listening() { local i; for i in $(seq 100); do ss -Htln "sport = :$1" | grep -q . && return 0; sleep 0.1; done; return 1; }
port=$(freeport)
"$RNOTIFYD" --listen "tcp:127.0.0.1:$port" --export "nfs=$DIR/nfs" --export "share=$DIR/smb" \
  --log-level info > "$DIR/rnotifyd.log" 2>&1 &
daemon=$!
tport=$(freeport)
while [ "$tport" = "$port" ]; do tport=$(freeport); done
/usr/bin/python3 "$HERE/guest_latency_trigger.py" "$DIR" "$tport" > "$DIR/trigger.log" 2>&1 &
trigger=$!
listening "$port" || { echo "rnotifyd did not listen: $(cat "$DIR/rnotifyd.log")" >&2; exit 1; }
listening "$tport" || { echo "the trigger did not listen: $(cat "$DIR/trigger.log")" >&2; exit 1; }

VM_FWD="10.0.2.100:$port=127.0.0.1:$port 10.0.2.100:$tport=127.0.0.1:$tport" bash "$VM/guest.sh" up "$DIR"
cat > "$S/config.toml" << EOF
[[server]]
match = "10.0.2.100:/nfs"
endpoint = "tcp:10.0.2.100:$port"

[[server]]
match = "//10.0.2.100/share"
endpoint = "tcp:10.0.2.100:$port"
EOF
cp "$HERE/guest_latency.py" "$S/guest_latency.py"
echo "host: $(nproc) cores, load $load0 before, $(cut -d' ' -f1-3 /proc/loadavg) after boot; guest: $(VM_TIMEOUT=30 bash "$VM/guest.sh" run "$DIR" 'uname -r; nproc' | paste -sd' ')"
VM_TIMEOUT=240 bash "$VM/guest.sh" run "$DIR" \
  "/usr/bin/python3 /run/vm/guest_latency.py --n $N --trigger 10.0.2.100:$tport --rnotifywait $RNOTIFYWAIT \
   --config /run/vm/config.toml --csv /run/vm/guest_latency.csv"
cp "$S/guest_latency.csv" "$BUILD/guest_latency.csv"
echo "host load after: $(cut -d' ' -f1-3 /proc/loadavg); samples: $BUILD/guest_latency.csv"
ok=1
