#!/usr/bin/env python3
"""PyTorch side of nabla's side-by-side benchmark (run by `cargo run --release -p nabla-bench`).

Times the same workloads as the Rust side, on the same IDX files, with the same
thread count, and prints one JSON object: {"workload name": median seconds, ...}.
Usage: python3 bench/pytorch_bench.py DATA_DIR THREADS REPEATS
Needs torch and numpy (`pip install torch`).
"""
import gzip
import json
import os
import statistics
import sys
import time

import numpy as np
import torch


def read_idx(path):
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def find(data_dir, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return path
    sys.exit(f"{data_dir}: {stem}(.gz) not found")


def mlp(sizes, act):
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return torch.nn.Sequential(*layers)


def deep_cnn():
    """nabla's deep-cnn preset: three pairs of 3x3 padded convolutions."""
    nn = torch.nn
    layers, c = [], 1
    for o in (16, 32, 64):
        layers += [nn.Conv2d(c, o, 3, padding=1), nn.ReLU(), nn.Conv2d(o, o, 3, padding=1), nn.ReLU(),
                   nn.MaxPool2d(2)]
        c = o
    layers += [nn.Flatten(), nn.Linear(576, 50), nn.ReLU(), nn.Dropout(0.5), nn.Linear(50, 10)]
    return nn.Sequential(*layers)


def median_time(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    data_dir, threads, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.from_numpy(read_idx(find(data_dir, "train-images-idx3-ubyte")).reshape(-1, 784).astype(np.float32) / 255.0)
    y = torch.from_numpy(read_idx(find(data_dir, "train-labels-idx1-ubyte")).astype(np.int64))
    loss_fn = torch.nn.CrossEntropyLoss()
    out = {"torch_version": torch.__version__, "threads": threads}

    def epoch(model, opt, batch=100):
        perm = torch.randperm(x.shape[0])
        for i in range(0, x.shape[0], batch):
            idx = perm[i : i + batch]
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()

    for name, sizes, act in (("epoch 784-100-10 sigmoid", [784, 100, 10], torch.nn.Sigmoid),
                             ("epoch 784-128-64-10 relu", [784, 128, 64, 10], torch.nn.ReLU)):
        model = mlp(sizes, act)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        out[name] = median_time(lambda: epoch(model, opt), repeats)

    for batch in (1, 10, 100, 1000):
        model = mlp([784, 100, 10], torch.nn.Sigmoid)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        xb, yb = x[:batch], y[:batch]
        steps = max(20, 2000 // batch)

        def run_steps():
            for _ in range(steps):
                opt.zero_grad()
                loss_fn(model(xb), yb).backward()
                opt.step()

        out[f"step batch {batch}"] = median_time(run_steps, repeats) / steps

    model = mlp([784, 100, 10], torch.nn.Sigmoid)
    for batch in (1, 1000):
        xb = x[:batch]
        calls = max(20, 20000 // batch)

        def infer():
            with torch.no_grad():
                for _ in range(calls):
                    model(xb)

        out[f"inference batch {batch}"] = median_time(infer, repeats) / calls

    # Convolutional networks: the same layer lists as nabla's presets.
    nn = torch.nn
    x_img = x.reshape(-1, 1, 28, 28)

    def lenet():
        return nn.Sequential(nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 5), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 10))

    def cnn():
        return nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))

    def image_epoch(model, opt, images):
        perm = torch.randperm(images)
        for i in range(0, images, 100):
            idx = perm[i : i + 100]
            opt.zero_grad()
            loss_fn(model(x_img[idx]), y[idx]).backward()
            opt.step()

    for name, make, images, optim in (
        ("epoch lenet (SGD momentum)", lenet, x.shape[0], lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9)),
        ("10k images cnn (Adam)", cnn, 10000, lambda p: torch.optim.Adam(p, lr=0.001)),
        ("10k images deep-cnn (Adam)", deep_cnn, 10000, lambda p: torch.optim.Adam(p, lr=0.001)),
    ):
        model = make()
        opt = optim(model.parameters())
        out[name] = median_time(lambda: image_epoch(model, opt, images), repeats)

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    t = median_time(lambda: [a @ b for _ in range(10)], repeats) / 10
    out["sgemm 1024 GFLOP/s"] = 2 * 1024**3 / t / 1e9
    print(json.dumps(out))


if __name__ == "__main__":
    main()
