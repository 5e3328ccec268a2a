#!/usr/bin/env bash
# Trains the two models shipped inside the `nabla` binary, which `nabla serve`
# and `nabla predict` use when no --model is given. They are this script's
# output, unedited. Usage: bash scripts/train_shipped_models.sh MNIST_DIR [mlp|cnn]
#
# Both train on the full MNIST training set with augmentation (shifts, turns
# and zooms), because a digit drawn with a mouse is less tidy than MNIST's.
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:?usage: $0 MNIST_DIR [mlp|cnn]}"
which="${2:-all}"
out=crates/nabla-cli/models
mkdir -p "$out"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
train() { cargo run --release --locked -q -- train --data-dir "$data" --seed 7 --augment --augment-zoom 0.1 --quiet "$@"; }
if [ "$which" = all ] || [ "$which" = mlp ]; then
    # 784-100-10 with ReLU: the material's two-layer network, 318 KB.
    train --preset mlp --hidden 100 --activation relu --epochs 12 --out "$out/mlp.safetensors" --checkpoint "$scratch/mlp.ckpt"
fi
if [ "$which" = all ] || [ "$which" = cnn ]; then
    # Two 5×5 convolution stages (16, 32 maps) and a 64-unit dense layer, 187 KB.
    train --layers conv16k5,relu,maxpool2,conv32k5,relu,maxpool2,flatten,linear64,relu,linear10 \
        --epochs 8 --out "$out/cnn.safetensors" --checkpoint "$scratch/cnn.ckpt"
fi
ls -l "$out"
