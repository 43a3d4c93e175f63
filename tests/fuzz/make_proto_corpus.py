#!/usr/bin/env python3
"""Writes the seed corpus of proto_fuzz into corpus/proto/ (next to this file).

Each seed is: one byte choosing the frame limit (limit = 1 + b * 4111), one
byte choosing the feed chunk size (0 = all at once), then a byte stream of
protocol v1 frames (docs/PROTOCOL.md). Re-run after changing the protocol:
    python3 tests/fuzz/make_proto_corpus.py
"""
import os
import struct

MAGIC = 0x59464E52
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "proto")


def string(b):
    return struct.pack("<H", len(b)) + b


def frame(type_, payload):
    return struct.pack("<IB", len(payload) + 1, type_) + payload


def hello(name=b"rnotify/0.1"):
    return frame(0x01, struct.pack("<IHHQ", MAGIC, 1, 1, 0) + string(name))


def welcome():
    return frame(0x02, struct.pack("<HQQI", 1, 0, 0x0123456789ABCDEF, 1 << 20) + string(b"rnotifyd/0.1"))


def watch(req, path, flags=1, mask=0xFFF):
    return frame(0x10, struct.pack("<III", req, flags, mask) + string(path))


def record(watch_id, seq, mask, dir_, name, cookie=0, extension=b""):
    body = struct.pack("<IQII", watch_id, seq, mask, cookie) + string(dir_) + string(name) + extension
    return struct.pack("<H", len(body)) + body


def events(*records):
    return frame(0x20, struct.pack("<I", len(records)) + b"".join(records))


SEEDS = {
    "hello": b"\xff\x00" + hello(),
    "handshake_bytewise": b"\xff\x01" + hello() + welcome(),
    "watch_reply": b"\x10\x00" + watch(1, b"/srv/data")
    + frame(0x12, struct.pack("<IiI", 1, 0, 1) + string(b"/srv/data"))
    + frame(0x11, struct.pack("<II", 2, 1)),
    "events_create": b"\xff\x00" + events(record(3, 7, 0x100, b"src", b"a.c")),
    "events_rename_ext": b"\xff\x07" + events(
        record(1, 1, 0x40, b"a/b", b"old", cookie=9),
        record(1, 2, 0x80, b"c", b"new\xff\xfe", cookie=9, extension=b"\x01\x00\x03"),
        record(0, 0, 0x4000, b"", b"")),
    "declare": b"\xff\x00" + frame(0x13, struct.pack("<IH", 4, 2) + string(b"ssh 192.0.2.7 50412")
                                      + string(b"ssh ::1 22")),
    "events_origin_stat": b"\xff\x00" + events(
        record(2, 1, 0x2, b"", b"f", extension=b"\x02\x00"),
        record(2, 2, 0x4, b"d", b"f", extension=b"\x01\x01" + struct.pack("<QqIIIIQ", 6, 1700000000, 5, 0o100644,
                                                                             1000, 100, 42))),
    "snapshot_entries": b"\xff\x00" + frame(0x14, struct.pack("<II", 5, 1)) + frame(0x21, struct.pack("<II", 5, 2)
        + struct.pack("<H", 2 + 0 + 2 + 1 + 40) + string(b"") + string(b"a")
        + struct.pack("<QqIIIIQ", 0, 1, 2, 0o40755, 0, 0, 7)
        + struct.pack("<H", 2 + 3 + 2 + 1 + 40) + string(b"a/b") + string(b"c")
        + struct.pack("<QqIIIIQ", 9, 1, 2, 0o100644, 0, 0, 8)),
    "ping_pong_fatal": b"\x01\x03" + frame(0x30, struct.pack("<Q", 42)) + frame(0x31, struct.pack("<Q", 42))
    + frame(0x3F, struct.pack("<i", 90) + string(b"frame of 4294967295 bytes exceeds the limit of 1048576")),
    "attach_ack": b"\xff\x00" + frame(0x15, struct.pack("<IQQQI", 6, 0x1122334455667788, 1, 0x0123456789ABCDEF, 2)
        + struct.pack("<IQ", 1, 7) + struct.pack("<IQ", 3, 0))
    + frame(0x16, struct.pack("<I", 1) + struct.pack("<IQ", 1, 9)),
    "attach_new": b"\x10\x01" + frame(0x15, struct.pack("<IQQQI", 1, 5, 5, 0, 0)),
    "auth": b"\xff\x00" + hello() + welcome() + frame(0x17, struct.pack("<I", 1) + string(b"alice")
                                                       + string(b"0123456789abcdef0123456789abcdef"))
    + frame(0x12, struct.pack("<IiI", 1, 0, 0) + string(b"authenticated as alice")),
    "auth_bad_user": b"\x10\x00" + frame(0x17, struct.pack("<I", 2) + string(b"../root") + string(b"t")),
    "oversized": b"\x00\x00" + b"\xff\xff\xff\xff\x01",
    "truncated_events": b"\xff\x02" + events(record(1, 1, 0x100, b"", b"x"))[:-1],
}

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(f"wrote {len(SEEDS)} seeds to {OUT}")
