#!/usr/bin/env python3
"""Draws the MNIST subset that nabla embeds, from the four standard MNIST files.

Usage: python3 scripts/make_embedded_subset.py MNIST_DIR

10,000 training images are drawn uniformly without replacement from the
60,000 of train-*, and 2,000 test images from the 10,000 of t10k-*, with
Python's random.Random(2026) (Mersenne Twister, stable across versions for
`sample`), kept in their original order. The result is written as gzip IDX
files (mtime 0, so the bytes are reproducible) to crates/nabla-data/assets/.
Only the standard library is needed.
"""
import gzip
import os
import random
import struct
import sys

SEED = 2026
TRAIN, TEST = 10_000, 2_000


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = struct.unpack(">" + "I" * rank, data[4 : 4 + 4 * rank])
    return list(dims), data[4 + 4 * rank :]


def write_idx(path, dims, payload):
    header = bytes([0, 0, 8, len(dims)]) + struct.pack(">" + "I" * len(dims), *dims)
    with open(path, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0, filename="") as f:
            f.write(header + payload)


def subset(src, prefix, count, rng, out_dir, out_prefix):
    img_dims, images = read_idx(os.path.join(src, f"{prefix}-images-idx3-ubyte.gz"))
    lab_dims, labels = read_idx(os.path.join(src, f"{prefix}-labels-idx1-ubyte.gz"))
    n, size = img_dims[0], img_dims[1] * img_dims[2]
    assert lab_dims[0] == n
    picked = sorted(rng.sample(range(n), count))
    write_idx(os.path.join(out_dir, f"{out_prefix}-images-idx3-ubyte.gz"), [count] + img_dims[1:],
              b"".join(images[i * size : (i + 1) * size] for i in picked))
    write_idx(os.path.join(out_dir, f"{out_prefix}-labels-idx1-ubyte.gz"), [count],
              bytes(labels[i] for i in picked))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = os.path.join(os.path.dirname(__file__), "..", "crates", "nabla-data", "assets")
    os.makedirs(out, exist_ok=True)
    rng = random.Random(SEED)
    subset(sys.argv[1], "train", TRAIN, rng, out, "train")
    subset(sys.argv[1], "t10k", TEST, rng, out, "t10k")


if __name__ == "__main__":
    main()
