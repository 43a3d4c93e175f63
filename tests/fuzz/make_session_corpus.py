#!/usr/bin/env python3
"""Writes the seed corpus of session_fuzz into corpus/session/ (next to this file).

A seed is a program for session_fuzz.cc (its Program and step() are the
reference): one byte for who the client is (0 root, 1 nobody over a unix
socket, 2 unauthenticated, 3 a TLS client that must send a token), then steps,
each an opcode byte and its fields. Re-run after changing the opcodes:
    python3 tests/fuzz/make_session_corpus.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "session")

(HELLO, WATCH, UNWATCH, SNAPSHOT, ATTACH, ACK, PING, PONG, DECLARE, AUTH, FATAL,
 CREATE, REMOVE, RENAME, MKDIR, CHMOD, RECONNECT, RAW) = range(18)

ROOT, NOBODY, NONE, TOKEN = range(4)

# Path table indices (pickPath).
P_EXPORT, P_DIR, P_SUB, P_PRIVATE, P_LINK, P_LINK_SECRET, P_SCRATCH = range(7)
P_SCRATCH_N, P_OUTSIDE, P_DOTDOT = 7, 9, 10  # P_SCRATCH_N: then a byte, scratch/n<byte % 4>

CAP_RESUME, CAP_ORIGIN, CAP_STAT, CAP_RESYNC, CAP_AUTH = 1, 2, 4, 8, 16
ALL_CAPS = 0x1F
RECURSIVE, STAT = 1, 8


def text(b):
    return bytes([len(b)]) + b


def hello(caps=ALL_CAPS, name=b"rnotify/0.1 seed"):
    return bytes([HELLO, caps]) + text(name)


def watch(req, path_index, flags=0, mask_choice=0):
    return bytes([WATCH, req, flags, mask_choice, path_index])


def unwatch(req, watch_id):
    return bytes([UNWATCH, req, watch_id])


def snapshot(req, watch_id):
    return bytes([SNAPSHOT, req, watch_id])


def attach(req, token_byte, positions=()):
    out = bytes([ATTACH, req, token_byte, len(positions)])
    for watch_id, seq in positions:
        out += bytes([watch_id, seq])
    return out


def ack(positions):
    out = bytes([ACK, len(positions)])
    for watch_id, seq in positions:
        out += bytes([watch_id, seq])
    return out


def auth(req, flags, user=b"", token=b""):
    out = bytes([AUTH, req, flags])
    if not flags & 3:
        out += text(user)
    if not flags & 4:
        out += text(token)
    return out


def create(name_byte, content=b"x"):
    return bytes([CREATE, name_byte]) + text(content)


def remove(name_byte):
    return bytes([REMOVE, name_byte])


def rename(a, b):
    return bytes([RENAME, a, b])


def mkdir(name_byte):
    return bytes([MKDIR, name_byte])


def chmod(name_byte, private):
    return bytes([CHMOD, name_byte, 1 if private else 0])


def ping(token=1):
    return bytes([PING]) + struct.pack("<Q", token)


def declare(req, origins):
    out = bytes([DECLARE, req, len(origins)])
    for o in origins:
        out += text(o)
    return out


SEEDS = {
    "watch_events": bytes([ROOT]) + hello() + watch(1, P_SCRATCH, RECURSIVE | STAT) + mkdir(0) + create(0x81)
    + rename(0x81, 0x84) + remove(0) + ping(),
    "watch_as_nobody": bytes([NOBODY]) + hello() + watch(1, P_PRIVATE) + watch(2, P_EXPORT, RECURSIVE)
    + watch(3, P_LINK) + watch(4, P_DOTDOT) + create(1) + chmod(1, True),
    "snapshot": bytes([ROOT]) + hello() + watch(1, P_EXPORT, RECURSIVE) + snapshot(2, 1) + snapshot(3, 1)
    + unwatch(4, 1) + snapshot(5, 1),
    "resume": bytes([ROOT]) + hello() + attach(1, 1) + watch(2, P_SCRATCH) + create(2) + create(3)
    + ack([(1, 1)]) + bytes([RECONNECT]) + hello() + attach(3, 0x40, [(1, 1)]) + create(1),
    # The same as nobody: the oracle judges the resumed watch's live events.
    "resume_as_nobody": bytes([NOBODY]) + hello() + attach(1, 1) + watch(2, P_SCRATCH) + create(2) + create(3)
    + ack([(1, 1)]) + bytes([RECONNECT]) + hello() + attach(3, 0x40, [(1, 1)]) + create(1),
    "acks_for_unknown_watches": bytes([ROOT]) + hello() + attach(1, 2) + ack([(5, 9), (7, 3), (11, 30)])
    + ack([(9, 1)]),
    "token": bytes([TOKEN]) + hello() + auth(1, 1 | 4) + watch(2, P_DIR),
    "token_wrong": bytes([TOKEN]) + hello() + auth(1, 1, token=b"guess") + watch(2, P_DIR),
    "unauthenticated": bytes([NONE]) + hello() + watch(1, P_PRIVATE) + watch(2, P_SUB),
    "declare": bytes([ROOT]) + hello() + declare(1, [b"ssh 192.0.2.7 50412"]) + watch(2, P_SCRATCH, 2),
    "before_hello": bytes([ROOT]) + watch(1, P_EXPORT) + hello(),
    # The confinement oracle's cases: a subdirectory made private under a
    # recursive watch (no event about its entries may reach nobody); a watch
    # root renamed (its events are judged where the root is now, not where a
    # new directory took its old name); a watch root renamed, then made
    # private (judged by its old path, a leak there would go unseen).
    "private_subdirectory": bytes([NOBODY]) + hello() + watch(1, P_SCRATCH, RECURSIVE) + mkdir(0)
    + chmod(0, True) + create(0x84) + ping(),
    "renamed_root": bytes([NOBODY]) + hello() + mkdir(0) + watch(1, P_SCRATCH_N, 0) + bytes([0])
    + rename(0, 2) + mkdir(0) + chmod(0, True) + create(0x86) + ping(),
    "renamed_root_made_private": bytes([NOBODY]) + hello() + mkdir(0) + watch(1, P_SCRATCH_N, 0) + bytes([0])
    + rename(0, 2) + chmod(2, True) + create(0x86) + ping(),
    "raw_garbage": bytes([ROOT]) + hello() + bytes([RAW]) + text(b"\x05\x00\x00\x00\x10\x01\x02"),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
