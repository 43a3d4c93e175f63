#!/usr/bin/env bash
# kernel_clients_test.sh BUILD_DIR: NFS and SMB through real kernel clients.
#
# A qemu guest (guest.sh: Debian's 6.1 kernel under TCG) mounts, over qemu's
# user network, an NFSv4.1 export of nfs-ganesha (pseudo path /nfs) and an
# SMB 3.1.1 share of smbd (//host/share), both serving directories of this
# host. rnotifyd runs on this host beside them, with the exports named as
# the clients know them, and the guest's rnotifywait reaches it with the
# two-line [[server]] entry README.md shows (match and endpoint, nothing
# else). Checked, for each mount, as a user would:
#   - 8 changes made on the server side (create, write, chmod, rename, mkdir,
#     create inside it, delete, rmdir) come in order, each REMOTE, with the
#     masks local inotify would give;
#   - the guest's own reads (cat, ls -la) bring no read-side event from the
#     server (the file server opening files to serve this very client).
#   - SMB without rnotifyd (the cifs client's change notify): the server's
#     first change comes, and the source's own opening of the directory is
#     not reported as a read.
#   - the guest's own changes (create and write, mkdir, rename, delete,
#     rmdir) come once each, as local inotify gives them, not REMOTE (on NFS
#     the server's copy waits for its local twin while the NFS client is busy;
#     on SMB rnotifyd attributes them to the smbd serving the guest; not
#     checked there for smbd's ATTRIB of the new directory).
# Printed, not yet checked (issue 17): what SMB2 change notify tells of
# changes made back to back.
# Needs root and tests/vm/setup.sh (scripts/setup runs it); without them it
# exits 77 (ctest: skipped). It ends itself after 480 s (ctest's limit: 600).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=$(realpath "${1:?usage: kernel_clients_test.sh BUILD_DIR}")
RNOTIFYD=$BUILD/src/server/rnotifyd
RNOTIFYWAIT=$BUILD/src/tools/rnotifywait/rnotifywait
C=${VM_CACHE:-$HERE/cache}
[ -n "${VM_CACHE:-}" ] || [ -f "$C/vmlinuz" ] || C=/var/cache/rnotify-vm
if [ ! -f "$C/vmlinuz" ]; then
  echo "kernel_clients_test: the guest kernel is missing: run tests/vm/setup.sh (scripts/setup does)" >&2
  exit 77
fi
[ "$(id -u)" -eq 0 ] || { echo "kernel_clients_test: needs root (smbd, ganesha)" >&2; exit 77; }
for p in "$RNOTIFYD" "$RNOTIFYWAIT"; do [ -x "$p" ] || { echo "kernel_clients_test: $p is not built" >&2; exit 1; }; done

# The guest sees this host's / read-only and the checkout without cache: the
# state directory must be a host path it sees (not /tmp), so it is in BUILD.
DIR=$BUILD/vm-test.$$
mkdir -p "$DIR/nfs/w" "$DIR/smb/w"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
cleanup() {
  bash "$HERE/guest.sh" down "$DIR" > /dev/null 2>&1 || true
  if [ -n "${daemon:-}" ]; then
    kill "$daemon" 2> /dev/null || true
    wait "$daemon" 2> /dev/null || true
  fi
  if [ -n "${watchdog:-}" ]; then
    pkill -P "$watchdog" sleep 2> /dev/null || true
    kill "$watchdog" 2> /dev/null || true
  fi
  if [ "$failures" -eq 0 ]; then rm -rf "$DIR"; else echo "kept for a look: $DIR (logs in $DIR/.vm)" >&2; fi
}
trap cleanup EXIT
trap 'fail "stopped by a signal"; exit 1' TERM INT
# An end of its own, before ctest's: a kill by ctest would leave qemu running.
# (Its output away from ctest's pipe, which a leftover sleep would hold.)
(sleep 480 && kill -TERM $$) > /dev/null 2>&1 &
watchdog=$!

freeport() { local p; while :; do p=$((20000 + RANDOM % 40000)); ss -Htln "sport = :$p" | grep -q . || { echo $p; return; }; done; }
port=$(freeport)
# The exports under the names the clients know: ganesha's pseudo path /nfs,
# and the SMB share "share".
"$RNOTIFYD" --listen "tcp:127.0.0.1:$port" --export "nfs=$DIR/nfs" --export "share=$DIR/smb" \
  --log-level info > "$DIR/rnotifyd.log" 2>&1 &
daemon=$!
# Booting is the harness, not what is tested: once more if it fails (qemu
# once exited at start here, 1 boot in about 20); its logs are kept.
if ! VM_FWD="10.0.2.100:$port=127.0.0.1:$port" bash "$HERE/guest.sh" up "$DIR"; then
  cp -r "$DIR/.vm" "$DIR/first-boot" 2> /dev/null || true
  echo "kernel_clients_test: the guest did not start; once more (first attempt's logs: $DIR/first-boot)" >&2
  if ! VM_FWD="10.0.2.100:$port=127.0.0.1:$port" bash "$HERE/guest.sh" up "$DIR"; then
    fail "the guest did not start twice (logs in $DIR/.vm)"
    exit 1
  fi
fi
S=$DIR/.vm  # /run/vm in the guest
cat > "$S/config.toml" << EOF
[[server]]
match = "10.0.2.100:/nfs"
endpoint = "tcp:10.0.2.100:$port"

[[server]]
match = "//10.0.2.100/share"
endpoint = "tcp:10.0.2.100:$port"
EOF

guest() { VM_TIMEOUT=60 bash "$HERE/guest.sh" run "$DIR" "$1"; }
# Waits (at most $2 s) until file $1, written by the guest, has a line matching $3.
await() {
  local file=$1 limit=$2 pattern=$3 t0=$SECONDS
  until grep -qE -- "$pattern" "$file" 2> /dev/null; do
    ((SECONDS - t0 < limit)) || return 1
    sleep 0.05
  done
}

for m in nfs smb; do
  guest "RNOTIFY_CONFIG=/run/vm/config.toml $RNOTIFYWAIT -m -r -v /mnt/$m/w > /run/vm/$m.out 2> /run/vm/$m.err &"
done
for m in nfs smb; do
  await "$S/$m.err" 60 '^Watches established' || fail "$m: rnotifywait did not start: $(cat "$S/$m.err")"
  grep -q "through rnotifyd at tcp:10.0.2.100:$port" "$S/$m.err" \
    || fail "$m: not watched through rnotifyd: $(grep -v '^Setting\|^Watches' "$S/$m.err")"
done

# The server-side changes, one mount after the other, then a barrier. What
# is written into the new directory waits for its CREATE: before rnotifyd's
# watch on it exists, only what its listing finds can be told (CREATE), as
# with inotifywait.
for m in nfs smb; do
  (
    cd "$DIR/$m/w"
    echo a > f1
    echo more >> f1
    chmod 600 f1
    mv f1 f2
    mkdir d
  )
done
for m in nfs smb; do
  await "$S/$m.out" 30 'CREATE,ISDIR,REMOTE d$' || fail "$m: no CREATE of d"
  (
    cd "$DIR/$m/w"
    echo x > d/inner
    rm d/inner
    rmdir d
    rm f2
    touch end
  )
done
expected() {
  local w=/mnt/$1/w/
  cat << EOF
$w CREATE,REMOTE f1
$w MODIFY,REMOTE f1
$w CLOSE_WRITE,CLOSE,REMOTE f1
$w MODIFY,REMOTE f1
$w CLOSE_WRITE,CLOSE,REMOTE f1
$w ATTRIB,REMOTE f1
$w MOVED_FROM,REMOTE f1
$w MOVED_TO,REMOTE f2
$w CREATE,ISDIR,REMOTE d
${w}d/ CREATE,REMOTE inner
${w}d/ MODIFY,REMOTE inner
${w}d/ CLOSE_WRITE,CLOSE,REMOTE inner
${w}d/ DELETE,REMOTE inner
$w DELETE,ISDIR,REMOTE d
$w DELETE,REMOTE f2
EOF
}
# d's own DELETE_SELF is checked apart: the kernel queues it when the last
# reference to the directory goes, so on the server it comes before the
# DELETE of d, or after it, or seconds later when another process holds the
# directory open (nfs-ganesha keeps descriptors of directories it served;
# rnotifyd, of one whose entries it has just described), as inotifywait
# there would show it.
for m in nfs smb; do
  if ! await "$S/$m.out" 30 'CREATE,REMOTE end$'; then
    fail "$m: the server's changes did not come within 30 s"
    continue
  fi
  got=$(sed '/ end$/,$d' "$S/$m.out" | grep -v '/d/ DELETE_SELF,REMOTE $' || true)
  if [ "$got" != "$(expected $m)" ]; then
    fail "$m: the server's changes came otherwise"
    diff <(expected $m) <(echo "$got") | sed 's/^/  /' >&2 || true
  elif ! await "$S/$m.out" 30 '/d/ DELETE_SELF,REMOTE $'; then
    fail "$m: no DELETE_SELF of d"
  else
    echo "$m: 16 events of 8 server-side changes, in order (d's DELETE_SELF apart), each REMOTE"
  fi
done

# This host's own reads, then its own changes; a server-side barrier after.
for m in nfs smb; do
  echo keep > "$DIR/$m/w/keep"
  await "$S/$m.out" 30 'CREATE,REMOTE keep$' || fail "$m: no CREATE of keep"
  before=$(wc -l < "$S/$m.out")
  guest "cat /mnt/$m/w/keep > /dev/null; ls -la /mnt/$m/w > /dev/null; echo own > /mnt/$m/w/own; mkdir /mnt/$m/w/ownd; \
    mv /mnt/$m/w/own /mnt/$m/w/own2; rm /mnt/$m/w/own2; rmdir /mnt/$m/w/ownd"
  touch "$DIR/$m/w/end2"
  await "$S/$m.out" 30 'CREATE,REMOTE end2$' || fail "$m: no CREATE of end2"
  # A local report whose server copy never came is delivered when its hold
  # (250 ms) ends: let that pass before the last barrier, so that a doubled
  # event would be seen.
  sleep 1
  touch "$DIR/$m/w/end3"
  await "$S/$m.out" 30 'CREATE,REMOTE end3$' || fail "$m: no CREATE of end3"
  after=$(tail -n +"$((before + 1))" "$S/$m.out" | sed '/ end3$/,$d' | grep -vE ' end2$' || true)
  reads=$(echo "$after" | grep -cE '(OPEN|ACCESS|CLOSE_NOWRITE).*REMOTE' || true)
  if [ "$reads" -ne 0 ]; then
    fail "$m: $reads read-side events of the server came for this host's own reads"
    echo "$after" | sed 's/^/  /' >&2
  else
    echo "$m: no read-side event of the server for this host's own reads"
  fi
  mine=$(echo "$after" | grep -E ' (own|own2|ownd)$|/ownd/ ' || true)
  echo "$m: this host's own changes:"
  echo "$mine" | sed 's/^/  /'
  # Each of them once, in the form local inotify gives.
  for e in 'CREATE own' 'CREATE,ISDIR ownd' 'MOVED_FROM own' 'MOVED_TO own2' 'DELETE own2' 'DELETE,ISDIR ownd'; do
    n=$(echo "$mine" | grep -cE " $e\$" || true)
    [ "$n" -eq 1 ] || fail "$m: this host's '$e' came $n times, not once"
  done
  # None marked REMOTE. Known gap on SMB (issue 17): smbd's ATTRIB of a
  # directory it has just made sometimes comes without the acting pid (the
  # pid probe has no record for it), so unattributed: printed, not checked.
  checked=$mine
  [ "$m" = smb ] && checked=$(echo "$mine" | grep -vE ' ATTRIB,ISDIR(,REMOTE)? ownd$' || true)
  remote=$(echo "$checked" | grep -c REMOTE || true)
  if [ "$remote" -ne 0 ]; then
    fail "$m: $remote of this host's own changes came marked REMOTE"
  else
    echo "$m: none of this host's own changes marked REMOTE"
  fi
done

# SMB without rnotifyd: the cifs client's own change notify (an empty
# configuration). Its opening of the directory is not reported as a read.
# Each CIFS_IOC_NOTIFY_INFO opens the directory anew (the kernel's
# smb3_notify: open, CHANGE_NOTIFY, close), and what changes between two of
# them is not told, nor before the first reaches the server: a file is made
# every 3 s until one is told. Then changes made back to back, for the
# record: of them most are lost (issue 17).
mkdir -p "$DIR/smb/w2"
guest "RNOTIFY_CONFIG=/dev/null $RNOTIFYWAIT -m -r -v /mnt/smb/w2 > /run/vm/cifs.out 2> /run/vm/cifs.err &"
await "$S/cifs.err" 60 '^Watches established' || fail "cifs: rnotifywait did not start: $(cat "$S/cifs.err")"
grep -q "through SMB2 change notify (the cifs client's CIFS_IOC_NOTIFY_INFO)" "$S/cifs.err" \
  || fail "cifs: not watched through the cifs client's change notify: $(grep -v '^Setting\|^Watches' "$S/cifs.err")"
# `told TRIES CMD PATH PATTERN`: runs CMD PATH1, CMD PATH2, ... every 3 s
# until cifs.out has a line matching PATTERN; false after TRIES.
told() {
  local tries=$1 cmd=$2 path=$3 pattern=$4 i
  for i in $(seq 1 "$tries"); do
    "$cmd" "$path$i"
    await "$S/cifs.out" 3 "$pattern" && return 0
  done
  return 1
}
told 20 touch "$DIR/smb/w2/probe" "CREATE,REMOTE probe[0-9]+$" || fail "cifs: none of the server's changes came in 60 s"
# SMB2 does not say what is a directory: the entry is looked at.
if ! told 10 mkdir "$DIR/smb/w2/dir" " CREATE(,ISDIR)?,REMOTE dir[0-9]+$"; then
  fail "cifs: none of the server's mkdirs came in 30 s"
elif ! grep -qE " CREATE,ISDIR,REMOTE dir[0-9]+$" "$S/cifs.out"; then
  fail "cifs: the server's mkdir came without ISDIR: $(grep -E ' dir[0-9]+$' "$S/cifs.out")"
else
  echo "cifs: the server's mkdir came as CREATE,ISDIR"
fi
if grep -qE 'OPEN|ACCESS|CLOSE_NOWRITE' "$S/cifs.out"; then
  fail "cifs: read-side events that nobody made"
  sed 's/^/  /' "$S/cifs.out" >&2
fi
before=$(wc -l < "$S/cifs.out")
(
  cd "$DIR/smb/w2"
  echo a > f1
  chmod 600 f1
  mkdir d
  mv f1 f2
  rm f2
  touch end
)
await "$S/cifs.out" 10 'CREATE,REMOTE end$' || true
echo "cifs: of the server's create, chmod, mkdir, rename, delete, touch made back to back, SMB2 change notify told (not yet checked: issue 17):"
tail -n +"$((before + 1))" "$S/cifs.out" | sed 's/^/  /'

# NFS without rnotifyd: polling (an empty configuration). An append and a
# chmod change no directory: they show only in the files' attributes, which
# the NFS client caches (acregmin 3 s to acregmax 60 s); the scans ask the
# server. The guest reads both files first, so that their attributes are
# cached, as a user's would be.
mkdir -p "$DIR/nfs/w3"
echo x > "$DIR/nfs/w3/a"
echo y > "$DIR/nfs/w3/b"
guest "cat /mnt/nfs/w3/a /mnt/nfs/w3/b > /dev/null; \
  RNOTIFY_CONFIG=/dev/null $RNOTIFYWAIT -m -r -v -e modify,attrib,create /mnt/nfs/w3 > /run/vm/poll.out 2> /run/vm/poll.err &"
await "$S/poll.err" 60 '^Watches established' || fail "nfs polling: rnotifywait did not start: $(cat "$S/poll.err")"
t0=$(date +%s%N)
echo more >> "$DIR/nfs/w3/a"
chmod 600 "$DIR/nfs/w3/b"
if await "$S/poll.out" 20 'MODIFY,REMOTE,POLLED a$' && await "$S/poll.out" 20 'ATTRIB,REMOTE,POLLED b$'; then
  echo "nfs polling: the server's append and chmod told after $((($(date +%s%N) - t0) / 1000000)) ms"
else
  fail "nfs polling: the server's append or chmod not told in 20 s: $(cat "$S/poll.out")"
fi

echo "rnotifyd's log:"
sed 's/^/  /' "$DIR/rnotifyd.log" | tail -5
if [ "$failures" -ne 0 ]; then
  echo "kernel_clients_test: $failures failures" >&2
  exit 1
fi
echo "kernel_clients_test: passed"
