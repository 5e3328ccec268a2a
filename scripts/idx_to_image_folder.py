#!/usr/bin/env python3
"""Writes MNIST-format IDX files as an image folder: one sub-folder per class
(named by the dataset's class names), one grayscale PNG per image.

    python3 scripts/idx_to_image_folder.py IDX_DIR OUT_DIR [--limit N]

makes OUT_DIR/train/<class>/<index>.png and OUT_DIR/test/<class>/<index>.png
from train-*-idx?-ubyte(.gz) and t10k-*, so that `nabla train --images
OUT_DIR/train --test-split 0` and `nabla eval --images OUT_DIR/test` can be
compared with `nabla train --data-dir IDX_DIR` on the same images. Standard
library only (PNG written with zlib).
"""
import argparse
import gzip
import os
import struct
import sys
import zlib


def read_idx(path):
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, kind, rank = struct.unpack(">HBB", data[:4])
    if zero != 0 or kind != 8:
        sys.exit(f"{path}: not an IDX file of unsigned bytes")
    dims = struct.unpack(">" + "I" * rank, data[4 : 4 + 4 * rank])
    return dims, data[4 + 4 * rank :]


def find(dir, stem):
    for name in (stem + ".gz", stem):
        p = os.path.join(dir, name)
        if os.path.isfile(p):
            return p
    sys.exit(f"{dir}: no {stem}(.gz)")


def png(width, height, pixels):
    raw = b"".join(b"\x00" + pixels[r * width : (r + 1) * width] for r in range(height))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("idx_dir")
    p.add_argument("out_dir")
    p.add_argument("--limit", type=int, default=0, help="at most this many images per split (0: all)")
    a = p.parse_args()
    for split, prefix in (("train", "train"), ("test", "t10k")):
        (n, h, w), images = read_idx(find(a.idx_dir, f"{prefix}-images-idx3-ubyte"))
        (m,), labels = read_idx(find(a.idx_dir, f"{prefix}-labels-idx1-ubyte"))
        if n != m:
            sys.exit(f"{prefix}: {n} images but {m} labels")
        count = min(n, a.limit) if a.limit else n
        for label in sorted(set(labels[:count])):
            os.makedirs(os.path.join(a.out_dir, split, str(label)), exist_ok=True)
        for i in range(count):
            pixels = images[i * h * w : (i + 1) * h * w]
            path = os.path.join(a.out_dir, split, str(labels[i]), f"{i:05d}.png")
            with open(path, "wb") as f:
                f.write(png(w, h, pixels))
        print(f"{split}: {count} images in {os.path.join(a.out_dir, split)}")


if __name__ == "__main__":
    main()
