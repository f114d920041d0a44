#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs into fuzz/seeds/<target>/ (run from the repository root
after `cargo build --release`): small valid files of each format for libFuzzer to mutate."""

import hashlib
import io
import json
import os
import struct
import subprocess
import tempfile
import zlib

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")


def put(target, name, data):
    with open(os.path.join(SEEDS, target, name), "wb") as f:
        f.write(data)


def main():
    # csv: the first byte picks roles (a cat, b num, c text | a,b num | a,b cat | b num, a text)
    # and strictness (bit 2: predict).
    put("csv", "plain", b"\x00a,b,c\nx,1.5,hello\ny,2,\"quoted, text\"\nx,,NA\n")
    put("csv", "crlf-bom", b"\x01\xef\xbb\xbfa,b\r\n1,2\r\n3,4\r\n")
    put("csv", "semicolon", b"\x01a;b\n1,5;2\n-0,25;3e2\n")
    put("csv", "multiline", b"\x02a,b\n\"x\ny\",z\n\"q\"\"\",w\n")
    put("csv", "predict", b"\x04a,zz\nx,1\n")
    put("csv", "ties", b"\x01a,b\n" + b"".join(b"%d,%d\n" % (i % 5, i % 3) for i in range(40)))
    # npy
    for name, arr in [("f4", np.arange(6, dtype="<f4").reshape(2, 3)), ("f8", np.arange(4, dtype="<f8")),
                      ("i8", np.arange(6, dtype="<i8").reshape(3, 2)), ("i4", np.ones((2, 2), dtype="<i4"))]:
        b = io.BytesIO()
        np.save(b, arr)
        put("npy", name, b.getvalue())
    # model: a small fit with categorical and numeric columns
    with tempfile.TemporaryDirectory() as d:
        csv = os.path.join(d, "t.csv")
        with open(csv, "w") as f:
            f.write("c,x,y\n")
            for i in range(60):
                f.write(f"{'abc'[i % 3]},{i % 7 + 0.1 * (i % 3)},{(i * 37) % 11}\n")
        for cov in ["full", "diag"]:
            out = os.path.join(d, cov)
            subprocess.run([os.path.join(ROOT, "target", "release", "segmix"), "fit", csv, "--cat", "c", "--num",
                            "x,y", "--k", "2", "--n-init", "1", "--covariance", cov, "--out", out, "-q", "--device", "cpu"],
                           check=True)
            with open(os.path.join(out, "model.json")) as f:
                put("model", cov, json.dumps(json.load(f), separators=(",", ":")).encode())
    # cache: header, two records, a torn tail
    dim = 4
    body = b"SEGMIXV2" + struct.pack("<I", dim)
    for text, vec in [("a", [1, 2, 3, 4]), ("b", [0.5, -1, 0, 2])]:
        rec = hashlib.sha256(text.encode()).digest() + struct.pack("<4f", *vec)
        body += rec + struct.pack("<I", zlib.crc32(rec))
    put("cache", "two-records", body)
    put("cache", "torn-tail", body + b"\x01\x02\x03")


if __name__ == "__main__":
    main()
