#!/usr/bin/python3
"""The guest side of bench/vm/guest_latency.sh (runs in the qemu guest, started by the driver).

One clock, the guest's (time.monotonic): a sample is
  t0; ask the host's trigger to create w/NAME in the export (one line over TCP, through
  qemu's forward), or, in the local lanes, create /tmp/.../NAME here; read the watcher's
  stdout until the CREATE line of NAME (its time is taken by the thread that reads it); t1.
The `ping` lane times the trigger's round trip alone ("ping" -> "pong").

Lanes (blocks of 10 samples, taking turns, the order rotating every round):
  nfs-rnotifyd       rnotifywait -m -r on /mnt/nfs/w, config's [[server]] -> rnotifyd on the host
  smb-rnotifyd       the same on /mnt/smb/w
  local-inotifywait  inotifywait -m -r on a guest tmpfs directory, the guest creates the file (baseline)
  local-rnotifywait  rnotifywait on a guest tmpfs directory (plain inotify through rnotify's tool)
  ping               the trigger's round trip alone
then, one after the other, with only their own watcher running:
  nfs-poll           rnotifywait, empty config, on /mnt/nfs/p: the polling fallback, changes
                     --pause apart (its interval stays at 250 ms "after a change")
  nfs-poll-quiet     the same on /mnt/nfs/q, changes --quiet-pause (3 s) apart (6 samples)
  smb-notify         rnotifywait, empty config, on /mnt/smb/c: the cifs client's SMB2 change notify
Prints a table (p50, p90, max in ms; ratios to local-inotifywait) and writes every sample to
--csv. Every wait is bounded: a CREATE that does not come within the lane's limit is "lost".
"""
import argparse
import collections
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time

LINE = re.compile(r'^(\S+) (\S+) (.*)$')


class Watcher:
    """A watcher process whose stdout lines are timestamped as they arrive."""

    def __init__(self, argv, env):
        self.argv = argv
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env)
        self.q = queue.Queue()
        self.err = []
        self.ready = threading.Event()
        self.masks = collections.Counter()  # the CREATE lines' masks
        self.others = collections.Counter()  # the other lines' masks
        threading.Thread(target=self._out, daemon=True).start()
        threading.Thread(target=self._err, daemon=True).start()

    def _out(self):
        for raw in self.p.stdout:
            self.q.put((time.monotonic(), raw.decode(errors='replace').rstrip('\n')))
        self.q.put((time.monotonic(), None))

    def _err(self):
        for raw in self.p.stderr:
            line = raw.decode(errors='replace').rstrip('\n')
            self.err.append(line)
            if line.startswith('Watches established'):
                self.ready.set()

    def await_create(self, name, limit):
        """The time the CREATE line of NAME was read, or None after LIMIT seconds."""
        deadline = time.monotonic() + limit
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                t, line = self.q.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                raise RuntimeError('%s ended: %s' % (self.argv[0], ' | '.join(self.err[-5:])))
            m = LINE.match(line)
            if not m:
                self.others['(unparsed) ' + line] += 1
                continue
            events = m.group(2).split(',')
            if 'CREATE' in events and m.group(3) == name:
                self.masks[m.group(2)] += 1
                return t
            self.others[m.group(2)] += 1

    def notes(self):
        return [l for l in self.err if not l.startswith(('Setting up watches', 'Watches established'))]

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(5)


class Trigger:
    def __init__(self, addr):
        host, port = addr.rsplit(':', 1)
        self.s = socket.create_connection((host, int(port)), timeout=10)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.s.makefile('rb')

    def send(self, line):
        self.s.sendall((line + '\n').encode())

    def reply(self):
        r = self.f.readline().decode().strip()  # bounded by the socket's timeout
        if not r:
            raise RuntimeError('the trigger closed the connection')
        return r


class Lane:
    def __init__(self, name, kind, path=None, rel=None, watcher=None, limit=5.0):
        self.name, self.kind, self.path, self.rel, self.w, self.limit = name, kind, path, rel, watcher, limit
        self.ms = []
        self.lost = []

    def sample(self, trig, fname):
        """One timed change; returns ms or None (lost)."""
        if self.kind == 'ping':
            t0 = time.monotonic()
            trig.send('ping')
            r = trig.reply()
            t1 = time.monotonic()
            if r != 'pong':
                raise RuntimeError('ping: ' + r)
            return (t1 - t0) * 1e3
        t0 = time.monotonic()
        if self.kind == 'remote':
            trig.send('touch %s/%s' % (self.rel, fname))
        else:
            os.close(os.open(os.path.join(self.path, fname), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
        t1 = self.w.await_create(fname, self.limit)
        if self.kind == 'remote':
            r = trig.reply()
            if r != 'ok':
                raise RuntimeError('touch: ' + r)
        return None if t1 is None else (t1 - t0) * 1e3

    def run(self, trig, names, pause):
        for fname in names:
            v = self.sample(trig, fname)
            if v is None:
                self.lost.append(fname)
            else:
                self.ms.append(v)
            time.sleep(pause)  # a pause between samples, not a synchronisation

    def warm(self, trig, tries, pause):
        """Untimed changes until one is told (a watch that is not armed yet loses them)."""
        for i in range(tries):
            if self.sample(trig, 'warm%d' % i) is not None:
                time.sleep(pause)
                return i + 1
        raise RuntimeError('%s: none of %d warm-up changes was told' % (self.name, tries))


def pct(xs, p):
    """Nearest-rank percentile."""
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, -(-p * len(s) // 100) - 1))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--n', type=int, default=50)
    ap.add_argument('--n-fallback', type=int, default=10)
    ap.add_argument('--pause', type=float, default=0.1)
    ap.add_argument('--n-quiet', type=int, default=6)
    ap.add_argument('--quiet-pause', type=float, default=3.0)
    ap.add_argument('--trigger', required=True)
    ap.add_argument('--rnotifywait', required=True)
    ap.add_argument('--inotifywait', default='/usr/bin/inotifywait')
    ap.add_argument('--config', required=True)
    ap.add_argument('--csv', required=True)
    a = ap.parse_args()

    env = dict(os.environ)
    rn = lambda path, cfg: Watcher([a.rnotifywait, '-m', '-r', '-v', path], dict(env, RNOTIFY_CONFIG=cfg))
    for d in ('/tmp/bench/li', '/tmp/bench/lr'):
        os.makedirs(d, exist_ok=True)
    for d in ('/mnt/nfs/w', '/mnt/smb/w', '/mnt/nfs/p', '/mnt/nfs/q', '/mnt/smb/c'):
        if not os.path.isdir(d):
            raise RuntimeError(d + ' is missing (the driver makes it on the server)')

    trig = Trigger(a.trigger)
    watchers = []
    t = time.monotonic()
    try:
        fast = [
            Lane('nfs-rnotifyd', 'remote', rel='nfs/w', watcher=rn('/mnt/nfs/w', a.config)),
            Lane('smb-rnotifyd', 'remote', rel='smb/w', watcher=rn('/mnt/smb/w', a.config)),
            Lane('local-inotifywait', 'local', path='/tmp/bench/li',
                 watcher=Watcher([a.inotifywait, '-m', '-r', '/tmp/bench/li'], env)),
            Lane('local-rnotifywait', 'local', path='/tmp/bench/lr', watcher=rn('/tmp/bench/lr', '/dev/null')),
            Lane('ping', 'ping'),
        ]
        watchers += [l.w for l in fast if l.w]
        for l in fast:
            if l.w and not l.w.ready.wait(60):
                raise RuntimeError('%s: no "Watches established" in 60 s: %s' % (l.name, ' | '.join(l.w.err)))
        print('fast lanes: watchers up in %.1f s' % (time.monotonic() - t), flush=True)
        for l in fast:
            if l.w:
                l.warm(trig, 3, a.pause)
        block = 10
        rounds = -(-a.n // block)
        for r in range(rounds):
            order = fast[r % len(fast):] + fast[:r % len(fast)]
            for l in order:
                k = min(block, a.n - r * block)
                l.run(trig, ['b%d' % (r * block + i) for i in range(k)], a.pause)
        print('fast lanes: %d samples each in %.1f s' % (a.n, time.monotonic() - t), flush=True)
        for w in watchers:
            w.stop()

        slow = []
        for name, mount, rel, limit, tries, n, pause in (
                ('nfs-poll', '/mnt/nfs/p', 'nfs/p', 15.0, 2, a.n_fallback, a.pause),
                ('nfs-poll-quiet', '/mnt/nfs/q', 'nfs/q', 15.0, 2, a.n_quiet, a.quiet_pause),
                ('smb-notify', '/mnt/smb/c', 'smb/c', 5.0, 5, a.n_fallback, a.pause)):
            if n == 0:
                continue
            t = time.monotonic()
            w = rn(mount, '/dev/null')
            watchers.append(w)
            if not w.ready.wait(60):
                raise RuntimeError('%s: no "Watches established" in 60 s: %s' % (name, ' | '.join(w.err)))
            l = Lane(name, 'remote', rel=rel, watcher=w, limit=limit)
            warm = l.warm(trig, tries, pause)
            l.run(trig, ['b%d' % i for i in range(n)], pause)
            w.stop()
            slow.append(l)
            print('%s: %d samples, %.1f s apart, in %.1f s (%d warm-up changes until one was told)'
                  % (name, n, pause, time.monotonic() - t, warm), flush=True)
    finally:
        for w in watchers:
            if w.p.poll() is None:
                w.stop()

    lanes = fast + slow
    base = next(l for l in lanes if l.name == 'local-inotifywait')
    with open(a.csv, 'w') as f:
        f.write('lane,i,ms\n')
        for l in lanes:
            for i, v in enumerate(l.ms):
                f.write('%s,%d,%.3f\n' % (l.name, i, v))
    print()
    print('| lane | n | lost | p50 ms | p90 ms | max ms | p50 / local | p90 / local |')
    print('|---|---:|---:|---:|---:|---:|---:|---:|')
    b50, b90 = pct(base.ms, 50), pct(base.ms, 90)
    for l in lanes:
        if not l.ms:
            print('| %s | 0 | %d | | | | | |' % (l.name, len(l.lost)))
            continue
        p50, p90 = pct(l.ms, 50), pct(l.ms, 90)
        print('| %s | %d | %d | %.2f | %.2f | %.2f | %.1f | %.1f |'
              % (l.name, len(l.ms), len(l.lost), p50, p90, max(l.ms), p50 / b50, p90 / b90))
    print()
    for l in lanes:
        if not l.w:
            continue
        print('%s: CREATE masks %s; other lines %s%s' % (
            l.name, dict(l.w.masks), dict(l.w.others), '; lost ' + ' '.join(l.lost) if l.lost else ''))
        for n in l.w.notes()[:6]:
            print('  stderr: ' + n)


if __name__ == '__main__':
    try:
        main()
    except RuntimeError as e:
        print('guest_latency.py: %s' % e, file=sys.stderr)
        sys.exit(1)
