//! Each kernel family at each SIMD level this CPU has, side by side in one
//! run: the same work with the kernels limited to `plain`, `avx2` and
//! `avx512` (`limit_simd_level`), so that what a wider level buys is
//! measured on the machine at hand. The CPU and the families' levels are
//! printed first.
//!
//! `cargo bench -p nabla-bench --bench levels [-- FILTER]`

use criterion::{criterion_group, criterion_main, Criterion};
use nabla::autograd::Tape;
use nabla::nn::{Init, Linear, Module};
use nabla::optim::{Method, OptimizerConfig};
use nabla::tensor::conv::{
    channel_lanes_weights_len, conv_direct, conv_direct_channel_lanes, conv_direct_weight_grad,
    pad_into, prepare_channel_lanes_weights, Padded,
};
use nabla::tensor::{
    cpu_description, detected_simd_level, gemm_into, limit_simd_level, Rng, SimdLevel, Tensor,
    Transpose, Window,
};
use std::hint::black_box;

/// The levels this CPU runs, from the narrowest.
fn levels() -> Vec<SimdLevel> {
    SimdLevel::ALL
        .into_iter()
        .filter(|&l| l <= detected_simd_level())
        .collect()
}

/// Benches `work` once per level, as `"{name} @ {level}"`.
fn at_each_level(c: &mut Criterion, name: &str, mut work: impl FnMut()) {
    for level in levels() {
        limit_simd_level(Some(level));
        c.bench_function(&format!("{name} @ {level}"), |b| b.iter(&mut work));
    }
    limit_simd_level(None);
}

fn digits(rows: usize) -> Tensor<f32> {
    let train = nabla_data::embedded_mnist().unwrap().train;
    train.images(&(0..rows).collect::<Vec<_>>()).unwrap()
}

fn families(c: &mut Criterion) {
    println!("CPU: {}", cpu_description());
    let mut rng = Rng::seed(7);

    // One matrix product `op(a) · op(b)` into `out`, per level; the plan
    // picks the family from the shapes and the operands' zeros.
    let mut product =
        |name: &str, out: &mut Tensor<f32>, a: &Tensor<f32>, ta, b: &Tensor<f32>, tb| {
            at_each_level(c, name, || {
                gemm_into(out, black_box(a), ta, b, tb, false).unwrap()
            })
        };
    use Transpose::{No, Yes};

    // Dot products: a shard of 50 rows times a 784 → 100 layer, x · Wᵀ.
    let x: Tensor<f32> = rng.normal(&[50, 784], 0.0, 1.0);
    let w: Tensor<f32> = rng.normal(&[100, 784], 0.0, 0.1);
    let mut out = Tensor::zeros(&[50, 100]);
    product(
        "dot products 50x784 · (100x784)ᵀ",
        &mut out,
        &x,
        No,
        &w,
        Yes,
    );

    // Axpy: one digit times a 784 → 512 layer stored [in, out].
    let w_in_out: Tensor<f32> = rng.normal(&[784, 512], 0.0, 0.1);
    let mut out = Tensor::zeros(&[1, 512]);
    product(
        "axpy digit · 784x512",
        &mut out,
        &digits(1),
        No,
        &w_in_out,
        No,
    );

    // Transposed products: a layer's weight gradient on a shard of digits.
    let dz: Tensor<f32> = rng.normal(&[50, 100], 0.0, 1.0);
    let mut dw = Tensor::zeros(&[100, 784]);
    product(
        "transposed (50x100)ᵀ · digits 50x784",
        &mut dw,
        &dz,
        Yes,
        &digits(50),
        No,
    );

    // Outer products: a weight gradient at batch 1.
    let u: Tensor<f32> = rng.normal(&[512, 1], 0.0, 1.0);
    let v: Tensor<f32> = rng.normal(&[1, 784], 0.0, 1.0);
    let mut uv = Tensor::zeros(&[512, 784]);
    product("outer 512x1 · 1x784", &mut uv, &u, No, &v, No);

    // Direct convolution: deep-cnn's 64 → 64 3×3 layer on 7×7, forward and
    // weight gradient of one image.
    let win = Window {
        channels: 64,
        height: 7,
        width: 7,
        kernel_h: 3,
        kernel_w: 3,
        stride: 1,
        padding: 1,
    };
    let image: Tensor<f32> = rng.uniform(&[64, 7, 7], 0.0, 1.0);
    let weight: Tensor<f32> = rng.normal(&[64, win.col_rows()], 0.0, 0.1);
    let grad: Tensor<f32> = rng.normal(&[64, win.positions()], 0.0, 0.1);
    let padded = Padded::of_window(&win);
    let mut buf = vec![0.0f32; padded.len()];
    pad_into(image.data(), (7, 7), padded, &mut buf);
    let mut conv_out = vec![0.0f32; 64 * win.positions()];
    at_each_level(c, "conv 64→64 3x3 on 7x7 forward", || {
        conv_direct(
            black_box(&buf),
            padded,
            (3, 3),
            weight.data(),
            None,
            &mut conv_out,
        )
    });
    let mut prepared = vec![0.0f32; channel_lanes_weights_len(&win, 64)];
    prepare_channel_lanes_weights(&win, weight.data(), &mut prepared);
    at_each_level(c, "conv 64→64 3x3 on 7x7 forward, channel lanes", || {
        conv_direct_channel_lanes(
            black_box(&buf),
            padded,
            (3, 3),
            (&prepared, 64),
            None,
            &mut conv_out,
        )
    });
    let mut conv_dw = vec![0.0f32; 64 * win.col_rows()];
    at_each_level(c, "conv 64→64 3x3 on 7x7 weight gradient", || {
        conv_direct_weight_grad(
            black_box(&buf),
            padded,
            (3, 3),
            grad.data(),
            0,
            &mut conv_dw,
        )
    });

    // The sigmoid of a batch of 100 through a 1000-unit layer.
    let z: Tensor<f32> = rng.normal(&[100, 1000], 0.0, 3.0);
    at_each_level(c, "sigmoid 100x1000", || {
        black_box(black_box(&z).sigmoid());
    });

    // Adam's and momentum's updates of a 784 → 512 layer (401,920 parameters).
    let mut fc = Linear::<f32>::new(784, 512, Init::He, &mut rng);
    let xb: Tensor<f32> = rng.uniform(&[10, 784], 0.0, 1.0);
    let tape = Tape::new();
    let y = fc.forward(tape.constant(xb)).unwrap().sum().unwrap();
    let grads = tape.backward(y).unwrap();
    let mut adam = OptimizerConfig::new(Method::adam(), 1e-3).init::<f32>();
    at_each_level(c, "adam update 784x512", || {
        adam.step(&mut fc.params_mut(), &grads).unwrap()
    });
    let mut momentum = OptimizerConfig::new(Method::momentum(), 1e-2).init::<f32>();
    at_each_level(c, "momentum update 784x512", || {
        momentum.step(&mut fc.params_mut(), &grads).unwrap()
    });

    // Gathering a shuffled batch of 100 images, bytes to [0, 1].
    let train = nabla_data::embedded_mnist().unwrap().train;
    let mut order: Vec<usize> = (0..train.len()).collect();
    Rng::seed(4).shuffle(&mut order);
    at_each_level(c, "gather 100 images", || {
        black_box(train.images(black_box(&order[..100])).unwrap());
    });
}

criterion_group!(benches, families);
criterion_main!(benches);
