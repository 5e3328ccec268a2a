"""Where PyTorch's time goes on the deep-cnn workload of nabla-bench.

Trains the same network as `10k images deep-cnn (Adam)` in
`pytorch_bench.py` (10,000 images, batch 100) under `torch.profiler` and
prints the operators by self CPU time, with the input shapes of the
convolutions, so that each 3x3 padded layer's forward and backward can be
set beside nabla's kernels (`perf record` on `nabla-bench --only deep-cnn`).

    python3 bench/pytorch_conv_profile.py MNIST_DIR [--threads 2]
"""

import argparse
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from pytorch_bench import deep_cnn, find, read_idx  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=10000)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.from_numpy(read_idx(find(args.data_dir, "train-images-idx3-ubyte"))[: args.images].copy()).float() / 255.0
    y = torch.from_numpy(read_idx(find(args.data_dir, "train-labels-idx1-ubyte"))[: args.images].copy()).long()
    x = x.reshape(-1, 1, 28, 28)
    model = deep_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch():
        perm = torch.randperm(args.images)
        for i in range(0, args.images, 100):
            idx = perm[i : i + 100]
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()

    epoch()  # warm-up
    start = time.perf_counter()
    epoch()
    plain = time.perf_counter() - start
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        epoch()
    print(f"PyTorch {torch.__version__}, {args.threads} threads, {args.images} images: "
          f"{plain:.3f} s unprofiled")
    print(prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=30, max_name_column_width=40,
        max_shapes_column_width=70))


if __name__ == "__main__":
    main()
