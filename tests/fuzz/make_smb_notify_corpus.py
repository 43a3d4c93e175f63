#!/usr/bin/env python3
"""Writes the seed corpus of smb_notify_fuzz into corpus/smb_notify/.

Seeds are struct smb3_notify_info buffers (u32 completion_filter, u8
watch_tree, u32 data_len, then FILE_NOTIFY_INFORMATION records per MS-FSCC
2.4.42) and bare record chains. Re-run after changing the decoder:
    python3 tests/fuzz/make_smb_notify_corpus.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "smb_notify")


def chain(records):
    out = b""
    for i, (action, name) in enumerate(records):
        raw = name.encode("utf-16-le")
        body = struct.pack("<II", action, len(raw)) + raw
        length = 4 + len(body)
        last = i + 1 == len(records)
        padded = (length + 3) & ~3
        out += struct.pack("<I", 0 if last else padded) + body
        if not last:
            out += b"\0" * (padded - length)
    return out


def helper_config(server, share, path, user, password, domain, port, mask, recursive, level):
    """The first packet SmbNotify sends rnotify-smb-helper (smb_helper_wire.h)."""
    out = b"C"
    for text in (server, share, path, user, password, domain):
        data = text.encode()
        out += struct.pack("<I", len(data)) + data
    return out + struct.pack("<IIII", port, mask, recursive, level)


def info(data, filter_=0x17, tree=1, spare=0):
    return struct.pack("<IBI", filter_, tree, len(data)) + data + b"\0" * spare


SEEDS = {
    "info_added": info(chain([(1, "new.txt")])),
    "info_rename_pair": info(chain([(4, "old name.txt"), (5, "sub\\new name.txt")])),
    "info_all_actions": info(chain([(a, "f%d" % a) for a in range(1, 9)])),
    "info_unicode": info(chain([(1, "caf\u00e9 \u20ac \U0001F600")])),
    "info_deep": info(chain([(3, "a\\b\\c\\d.txt"), (2, "a\\b")]), tree=1, spare=32),
    "info_untouched": info(b"\0" * 64),
    "info_empty": info(b""),
    "chain_modified": chain([(3, "document.docx"), (8, "document.docx:Zone.Identifier")]),
    "chain_long_name": chain([(1, "x" * 255)]),
    "helper_config": helper_config("127.0.0.1", "share", "a/b", "alice", "secret", "WORKGROUP", 4450, 0x3C6, 1, 2),
    "helper_config_empty": helper_config("", "", "", "", "", "", 0, 0, 0, 0),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
