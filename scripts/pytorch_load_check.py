#!/usr/bin/env python3
"""Loads a nabla model file into the equivalent PyTorch nn.Sequential with
load_state_dict(strict=True) and checks that PyTorch classifies the MNIST
test set exactly as nabla does.

Usage: pip install torch safetensors numpy
       python3 scripts/pytorch_load_check.py MODEL.safetensors MNIST_DIR [NABLA_BINARY]

MNIST_DIR holds t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz).
The module comes from `nabla inspect --pytorch`; nabla's own accuracy from
`nabla eval --json`. Exits non-zero if loading fails or the accuracies differ
by more than one image.
"""
import gzip
import json
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file


def read_idx(directory, stem):
    for name in (stem, stem + ".gz"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rb") as f:
                data = f.read()
            dims = data[3]
            shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
            return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)
    sys.exit(f"{directory}: no {stem}(.gz)")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    model_path, mnist = sys.argv[1], sys.argv[2]
    nabla = sys.argv[3] if len(sys.argv) > 3 else "nabla"
    source = subprocess.run(
        [nabla, "inspect", "--model", model_path, "--pytorch"], check=True, capture_output=True, text=True
    ).stdout
    scope = {}
    exec(source, scope)
    model = scope["model"]
    model.load_state_dict(load_file(model_path), strict=True)
    model.eval()
    images = read_idx(mnist, "t10k-images-idx3-ubyte")
    labels = read_idx(mnist, "t10k-labels-idx1-ubyte")
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    first = next(iter(model.children()))
    x = x.reshape(len(x), 1, 28, 28) if isinstance(first, nn.Conv2d) else x.reshape(len(x), -1)
    with torch.no_grad():
        predicted = torch.cat([model(b).argmax(1) for b in x.split(1000)]).numpy()
    torch_correct = int((predicted == labels).sum())
    report = json.loads(
        subprocess.run(
            [nabla, "eval", "--model", model_path, "--data-dir", mnist, "--json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    nabla_correct = round(report["accuracy"] * report["samples"])
    print(f"{model_path}: loaded into PyTorch with strict=True")
    print(source.strip())
    print(f"test accuracy: PyTorch {torch_correct / len(labels):.4%}, nabla {report['accuracy']:.4%}")
    if abs(torch_correct - nabla_correct) > 1:
        sys.exit(f"PyTorch gets {torch_correct} right, nabla {nabla_correct}")


if __name__ == "__main__":
    main()
