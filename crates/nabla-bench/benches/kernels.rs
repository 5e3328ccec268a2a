//! Criterion benches of the hot kernels: the GEMM wrapper, a fused layer step
//! (linear forward + backward through the graph), and softmax-cross-entropy.
//!
//! `cargo bench -p nabla-bench`

use criterion::{criterion_group, criterion_main, Criterion};
use nabla::autograd::{Reduction, Tape, Target};
use nabla::nn::{Init, Linear, Module};
use nabla::tensor::{gemm_into, Rng, Tensor, Transpose};
use std::hint::black_box;

fn gemm(c: &mut Criterion) {
    let mut rng = Rng::seed(0);
    for &(m, k, n) in &[(100, 784, 100), (1, 784, 100), (1024, 1024, 1024)] {
        let a: Tensor<f32> = rng.normal(&[m, k], 0.0, 1.0);
        let b: Tensor<f32> = rng.normal(&[n, k], 0.0, 1.0);
        let mut out = Tensor::zeros(&[m, n]);
        c.bench_function(&format!("gemm {m}x{k} · ({n}x{k})ᵀ"), |bench| {
            bench.iter(|| {
                gemm_into(
                    &mut out,
                    black_box(&a),
                    Transpose::No,
                    black_box(&b),
                    Transpose::Yes,
                    false,
                )
                .unwrap()
            })
        });
    }
}

fn layer_step(c: &mut Criterion) {
    let mut rng = Rng::seed(1);
    let fc = Linear::<f32>::new(784, 100, Init::Xavier, &mut rng);
    let x: Tensor<f32> = rng.uniform(&[100, 784], 0.0, 1.0);
    c.bench_function(
        "linear 784→100 sigmoid forward+backward, batch 100",
        |bench| {
            bench.iter(|| {
                let tape = Tape::new();
                let y = fc
                    .forward(tape.constant(x.clone()))
                    .unwrap()
                    .sigmoid()
                    .unwrap()
                    .sum()
                    .unwrap();
                black_box(tape.backward(y).unwrap());
            })
        },
    );
}

fn softmax_ce(c: &mut Criterion) {
    let mut rng = Rng::seed(2);
    let logits: Tensor<f32> = rng.normal(&[100, 10], 0.0, 1.0);
    let labels: Vec<usize> = (0..100).map(|i| i % 10).collect();
    c.bench_function(
        "softmax cross-entropy forward+backward [100, 10]",
        |bench| {
            bench.iter(|| {
                let tape = Tape::new();
                let x = tape.var(logits.clone());
                let l = x
                    .softmax_cross_entropy(Target::Indices(labels.clone()), Reduction::Mean)
                    .unwrap();
                black_box(tape.backward(l).unwrap());
            })
        },
    );
}

criterion_group!(benches, gemm, layer_step, softmax_ce);
criterion_main!(benches);
