#!/usr/bin/env python3
"""Writes the golden model file that nabla's tests load, with Python's safetensors.

Usage: pip install safetensors numpy && python3 scripts/make_golden_model.py

The file is a 4-3-2 tanh MLP laid out as a PyTorch nn.Sequential state dict
(0.weight [3, 4], 0.bias [3], 2.weight [2, 3], 2.bias [2]) whose values are
0.01 * k (computed in float64, rounded to float32) for the k-th element of each
tensor, counted from 1, plus nabla's architecture metadata. The test checks
every value.
"""
import json
import os

import numpy as np
from safetensors.numpy import save_file

shapes = {"0.weight": (3, 4), "0.bias": (3,), "2.weight": (2, 3), "2.bias": (2,)}
tensors = {
    name: (0.01 * np.arange(1, int(np.prod(shape)) + 1, dtype=np.float64)).astype(np.float32).reshape(shape)
    for name, shape in shapes.items()
}
spec = {
    "architecture": {"type": "mlp", "input": 4, "hidden": [3], "output": 2, "activation": "tanh"},
    "dataset": "mnist",
    "classes": ["a", "b"],
    "preprocessing": {"height": 2, "width": 2, "scale": 1.0 / 255.0, "ink_is_bright": True},
}
out = os.path.join(os.path.dirname(__file__), "..", "crates", "nabla-nn", "tests", "golden", "mlp_4_3_2_tanh.safetensors")
save_file(tensors, out, metadata={"nabla": json.dumps(spec)})
