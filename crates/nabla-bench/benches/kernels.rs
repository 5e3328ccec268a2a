//! Criterion benches of the hot kernels: the GEMM wrapper, a fused layer step
//! (linear forward + backward through the graph), softmax-cross-entropy, and
//! convolution by im2col and GEMM against the direct kernels.
//!
//! `cargo bench -p nabla-bench`

use criterion::{criterion_group, criterion_main, Criterion};
use nabla::autograd::{Reduction, Tape, Target};
use nabla::nn::{Init, Linear};
use nabla::tensor::conv::{
    channel_lanes_pays, channel_lanes_weights_len, col2im, conv_direct, conv_direct_channel_lanes,
    conv_direct_input_grad, conv_direct_weight_grad, conv_direct_weight_grad_lanes,
    convolution_level, im2col, im2col_strided, input_grad_scratch_len, input_grad_weights_len,
    pad_into, prepare_channel_lanes_weights, prepare_input_grad_weights, transpose_grads,
    weight_grad_in_lanes, Padded, Winograd,
};
use nabla::tensor::{gemm_into, gemm_slices, Rng, Tensor, Transpose, Window};
use std::hint::black_box;
use std::time::Instant;

/// The first `rows` MNIST training images of the embedded subset, scaled to
/// [0, 1]: real inputs, 81% of whose pixels are zero.
fn digits(rows: usize) -> Tensor<f32> {
    let train = nabla_data::embedded_mnist().unwrap().train;
    train.images(&(0..rows).collect::<Vec<_>>()).unwrap()
}

/// Products of a shard's inputs with a layer's weights, `X · Wᵀ`: normal
/// random inputs, and digits (`[digits]`), whose zeros the kernel skips.
fn gemm(c: &mut Criterion) {
    let mut rng = Rng::seed(0);
    for &(m, k, n, real) in &[
        (100, 784, 100, false),
        (200, 784, 100, false),
        (50, 784, 100, false),
        (50, 784, 100, true),
        (1, 784, 100, false),
        (1, 784, 100, true),
        // The hidden and output layers of 784-128-64-10 and 784-100-10.
        (50, 128, 64, false),
        (50, 64, 10, false),
        (50, 100, 10, false),
        (1024, 1024, 1024, false),
    ] {
        let a: Tensor<f32> = if real {
            digits(m)
        } else {
            rng.normal(&[m, k], 0.0, 1.0)
        };
        let b: Tensor<f32> = rng.normal(&[n, k], 0.0, 1.0);
        let mut out = Tensor::zeros(&[m, n]);
        let what = if real { " [digits]" } else { "" };
        c.bench_function(&format!("gemm {m}x{k} · ({n}x{k})ᵀ{what}"), |bench| {
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

/// A batch of digits through a 784 → 100 layer for inference, both ways:
/// `x · Wᵀ` with the weights as stored for training (dot products that skip
/// the vectors of zeros) and `x · W` with them stored `[in, out]` (each lit
/// pixel adds its row of weights; in tiles of the depth past a few rows).
/// On the pool's threads, as `Linear::predict` runs it.
fn inference_product(c: &mut Criterion) {
    let mut rng = Rng::seed(0);
    let (k, n) = (784, 100);
    let w: Tensor<f32> = rng.normal(&[n, k], 0.0, 0.05);
    let w_in_out = w.transpose().unwrap();
    for m in [4, 16, 32, 64, 128, 1000] {
        let x = digits(m);
        let mut out = Tensor::zeros(&[m, n]);
        for (what, b, tb) in [
            ("x · Wᵀ", &w, Transpose::Yes),
            ("x · W", &w_in_out, Transpose::No),
        ] {
            c.bench_function(&format!("inference product {m} digits, {what}"), |bench| {
                bench.iter(|| {
                    gemm_into(
                        &mut out,
                        black_box(&x),
                        Transpose::No,
                        black_box(b),
                        tb,
                        false,
                    )
                    .unwrap()
                })
            });
        }
    }
}

/// The weight gradient of a dense layer on a shard, `dZᵀ · X`: `k` rows of
/// output gradients (`k × m`) against the same rows of inputs (`k × n`).
fn weight_gradient(c: &mut Criterion) {
    let mut rng = Rng::seed(0);
    for &(k, m, n, real) in &[
        (1, 100, 784, false),
        (10, 100, 784, false),
        (50, 100, 784, false),
        (50, 100, 784, true),
        (125, 100, 784, false),
        (125, 100, 784, true),
        // The hidden and output layers of 784-128-64-10 and 784-100-10.
        (50, 64, 128, false),
        (50, 10, 64, false),
        (50, 10, 100, false),
    ] {
        let dz: Tensor<f32> = rng.normal(&[k, m], 0.0, 1.0);
        let x: Tensor<f32> = if real {
            digits(k)
        } else {
            rng.normal(&[k, n], 0.0, 1.0)
        };
        let mut out = Tensor::zeros(&[m, n]);
        let what = if real { " [digits]" } else { "" };
        c.bench_function(&format!("gemm ({k}x{m})ᵀ · {k}x{n}{what}"), |bench| {
            bench.iter(|| {
                gemm_into(
                    &mut out,
                    black_box(&dz),
                    Transpose::Yes,
                    black_box(&x),
                    Transpose::No,
                    false,
                )
                .unwrap()
            })
        });
    }
}

/// Products of two matrices as stored, `A · W`: the input gradient of a
/// hidden or output layer on a shard (`m` rows of output gradients times the
/// weights `k × n`), and images (`[digits]`) times a layer's weights stored
/// `[in, out]`, the layout of a layer prepared for inference, whose product
/// reads only the weight rows of the lit pixels (compare `gemm 1x784 ·
/// (100x784)ᵀ [digits]`).
fn input_gradient(c: &mut Criterion) {
    let mut rng = Rng::seed(0);
    for &(m, k, n, real) in &[
        (50, 64, 128, false),
        (50, 10, 64, false),
        (50, 10, 100, false),
        (500, 10, 100, false),
        (1, 784, 100, true),
        (4, 784, 100, true),
        (1, 784, 128, true),
    ] {
        let a: Tensor<f32> = if real {
            digits(m)
        } else {
            rng.normal(&[m, k], 0.0, 1.0)
        };
        let w: Tensor<f32> = rng.normal(&[k, n], 0.0, 1.0);
        let mut out = Tensor::zeros(&[m, n]);
        let what = if real { " [digits]" } else { "" };
        c.bench_function(&format!("gemm {m}x{k} · {k}x{n}{what}"), |bench| {
            bench.iter(|| {
                gemm_into(
                    &mut out,
                    black_box(&a),
                    Transpose::No,
                    black_box(&w),
                    Transpose::No,
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

/// Gathering a shuffled batch of 100 images from bytes to floats in [0, 1],
/// as every training step does (from the embedded subset, which stays in
/// cache: the conversion, not the wait for memory).
fn gather(c: &mut Criterion) {
    let train = nabla_data::embedded_mnist().unwrap().train;
    let mut order: Vec<usize> = (0..train.len()).collect();
    Rng::seed(4).shuffle(&mut order);
    c.bench_function("gather 100 images", |bench| {
        bench.iter(|| black_box(train.images(black_box(&order[..100])).unwrap()))
    });
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

/// One image through each of LeNet's two convolutions (1→8 5×5 on 28×28,
/// 8→16 5×5 on 12×12), the cnn preset's second (20→50 5×5 on 12×12), and each of deep-cnn's six 3×3 padded layers (1→16
/// and 16→16 on 28×28, 16→32 and 32→32 on 14×14, 32→64 and 64→64 on 7×7),
/// and best-cnn's two last (32→64 on 12×12 and 64→64 on 10×10, unpadded):
/// im2col plus the GEMM library against the direct kernels, for the forward
/// product, the weight gradient and the input gradient.
fn conv(c: &mut Criterion) {
    let mut rng = Rng::seed(3);
    for (ch, side, o, k, p) in [
        (1, 28, 8, 5, 0),
        (8, 12, 16, 5, 0),
        // The cnn preset's second layer.
        (20, 12, 50, 5, 0),
        (1, 28, 16, 3, 1),
        (16, 28, 16, 3, 1),
        (16, 14, 32, 3, 1),
        (32, 14, 32, 3, 1),
        (32, 7, 64, 3, 1),
        (64, 7, 64, 3, 1),
        // best-cnn's two last convolutions.
        (32, 12, 64, 3, 0),
        (64, 10, 64, 3, 0),
    ] {
        let win = Window {
            channels: ch,
            height: side,
            width: side,
            kernel_h: k,
            kernel_w: k,
            stride: 1,
            padding: p,
        };
        let (taps, pos) = (win.col_rows(), win.positions());
        let image: Tensor<f32> = rng.uniform(&[ch, side, side], 0.0, 1.0);
        let weight: Tensor<f32> = rng.normal(&[o, taps], 0.0, 0.1);
        let grad: Tensor<f32> = rng.normal(&[o, pos], 0.0, 0.1);
        let mut col = vec![0.0f32; taps * pos];
        let mut out = vec![0.0f32; o * pos];
        let mut dw = vec![0.0f32; o * taps];
        let mut dx = vec![0.0f32; ch * side * side];
        let padded = Padded::of_window(&win);
        let mut buf = vec![0.0f32; padded.len()];
        let name = format!("conv {ch}→{o} {k}x{k} p{p} on {side}x{side}");
        c.bench_function(&format!("{name} forward, im2col + gemm"), |bench| {
            bench.iter(|| {
                im2col(black_box(image.data()), &win, &mut col);
                gemm_slices(
                    &mut out,
                    weight.data(),
                    Transpose::No,
                    &col,
                    Transpose::No,
                    (o, taps, pos),
                    false,
                )
                .unwrap();
            })
        });
        c.bench_function(&format!("{name} forward, direct"), |bench| {
            bench.iter(|| {
                pad_into(black_box(image.data()), (side, side), padded, &mut buf);
                conv_direct(&buf, padded, (k, k), weight.data(), None, &mut out);
            })
        });
        // The output channels in the lanes, where the plan would choose it
        // (the weights' tap-major copy is made once per batch, not timed).
        if channel_lanes_pays(&win, o, convolution_level::<f32>()) {
            let mut prepared = vec![0.0f32; channel_lanes_weights_len(&win, o)];
            prepare_channel_lanes_weights(&win, weight.data(), &mut prepared);
            c.bench_function(&format!("{name} forward, channel lanes"), |bench| {
                bench.iter(|| {
                    pad_into(black_box(image.data()), (side, side), padded, &mut buf);
                    let weights = (prepared.as_slice(), o);
                    conv_direct_channel_lanes(&buf, padded, (k, k), weights, None, &mut out);
                })
            });
        }
        c.bench_function(&format!("{name} weight gradient, im2col + gemm"), |bench| {
            bench.iter(|| {
                im2col(black_box(image.data()), &win, &mut col);
                gemm_slices(
                    &mut dw,
                    grad.data(),
                    Transpose::No,
                    &col,
                    Transpose::Yes,
                    (o, pos, taps),
                    true,
                )
                .unwrap();
            })
        });
        // The direct weight gradient takes a whole batch in one call (its
        // sums run over every image before the lanes are added up); timed
        // on a training shard of 50 images, reported per image.
        let shard = 50;
        let mut bufs = vec![0.0f32; shard * padded.len()];
        let grads = grad.data().repeat(shard);
        c.bench_function(&format!("{name} weight gradient, direct"), |bench| {
            bench.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    for buf in bufs.chunks_exact_mut(padded.len()) {
                        pad_into(black_box(image.data()), (side, side), padded, buf);
                    }
                    conv_direct_weight_grad(&bufs, padded, (k, k), &grads, 0, &mut dw);
                }
                start.elapsed() / shard as u32
            })
        });
        // The channels in the lanes, where the plan would choose it: the
        // shard's output gradients transposed, then `dWᵀ` over all taps.
        if weight_grad_in_lanes(&win, o) {
            let mut transposed = vec![0.0f32; grads.len()];
            let mut dwt = vec![0.0f32; dw.len()];
            c.bench_function(&format!("{name} weight gradient, lanes"), |bench| {
                bench.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        for buf in bufs.chunks_exact_mut(padded.len()) {
                            pad_into(black_box(image.data()), (side, side), padded, buf);
                        }
                        transpose_grads(&grads, (o, pos), &mut transposed);
                        let g = (transposed.as_slice(), o);
                        conv_direct_weight_grad_lanes(&bufs, padded, (k, k), g, 0..taps, &mut dwt);
                    }
                    start.elapsed() / shard as u32
                })
            });
        }
        // The weight gradient of the whole shard as one product: the
        // shard's column matrices side by side (`[taps, 50·positions]`)
        // and its output gradients likewise (`[o, 50·positions]`), then
        // `dW = dY · colᵀ` in the GEMM library, on one thread as the other
        // kernels here.
        let one_thread = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let mut wide_col = vec![0.0f32; taps * shard * pos];
        let mut wide_grad = vec![0.0f32; o * shard * pos];
        c.bench_function(
            &format!("{name} weight gradient, shard im2col + gemm"),
            |bench| {
                bench.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        for b in 0..shard {
                            im2col(black_box(image.data()), &win, &mut col);
                            for (t, row) in col.chunks_exact(pos).enumerate() {
                                let at = t * shard * pos + b * pos;
                                wide_col[at..at + pos].copy_from_slice(row);
                            }
                            for (r, row) in grads[b * o * pos..(b + 1) * o * pos]
                                .chunks_exact(pos)
                                .enumerate()
                            {
                                let at = r * shard * pos + b * pos;
                                wide_grad[at..at + pos].copy_from_slice(row);
                            }
                        }
                        one_thread.install(|| {
                            gemm_slices(
                                &mut dw,
                                &wide_grad,
                                Transpose::No,
                                &wide_col,
                                Transpose::Yes,
                                (o, shard * pos, taps),
                                false,
                            )
                            .unwrap()
                        });
                    }
                    start.elapsed() / shard as u32
                })
            },
        );
        // The forward of the whole shard as one product: the shard's
        // column matrices side by side, `Y = W · col` into `[o,
        // 50·positions]`, then each image's outputs copied to `[o,
        // positions]`, on one thread.
        let mut wide_out = vec![0.0f32; o * shard * pos];
        let mut outs = vec![0.0f32; shard * o * pos];
        c.bench_function(&format!("{name} forward, shard im2col + gemm"), |bench| {
            bench.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    for b in 0..shard {
                        let image = black_box(image.data());
                        im2col_strided(image, &win, &mut wide_col[b * pos..], shard * pos);
                    }
                    one_thread.install(|| {
                        gemm_slices(
                            &mut wide_out,
                            weight.data(),
                            Transpose::No,
                            &wide_col,
                            Transpose::No,
                            (o, taps, shard * pos),
                            false,
                        )
                        .unwrap()
                    });
                    for (r, row) in wide_out.chunks_exact(shard * pos).enumerate() {
                        for (b, src) in row.chunks_exact(pos).enumerate() {
                            let at = (b * o + r) * pos;
                            outs[at..at + pos].copy_from_slice(src);
                        }
                    }
                    black_box(&outs);
                }
                start.elapsed() / shard as u32
            })
        });
        if ch == 1 {
            continue; // a first layer's input needs no gradient
        }
        c.bench_function(&format!("{name} input gradient, gemm + col2im"), |bench| {
            bench.iter(|| {
                gemm_slices(
                    &mut col,
                    weight.data(),
                    Transpose::Yes,
                    black_box(grad.data()),
                    Transpose::No,
                    (taps, o, pos),
                    false,
                )
                .unwrap();
                dx.fill(0.0);
                col2im(&col, &win, &mut dx);
            })
        });
        let mut scratch = vec![0.0f32; input_grad_scratch_len::<f32>(&win, o)];
        let mut prepared = vec![0.0f32; input_grad_weights_len::<f32>(&win, o)];
        prepare_input_grad_weights(&win, weight.data(), &mut prepared);
        c.bench_function(&format!("{name} input gradient, direct"), |bench| {
            bench.iter(|| {
                conv_direct_input_grad(
                    &win,
                    black_box(grad.data()),
                    &prepared,
                    &mut scratch,
                    &mut dx,
                );
            })
        });
    }
}

/// The 3×3 layers of deep-cnn (padded) and best-cnn (not), on a training
/// shard of 50 images on one thread, per image: Winograd's F(2×2, 3×3)
/// against the direct kernels, forward and backward (both gradients).
fn winograd(c: &mut Criterion) {
    let mut rng = Rng::seed(4);
    let shard = 50;
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for (ch, side, o, p) in [
        (16, 28, 16, 1),
        (16, 14, 32, 1),
        (32, 14, 32, 1),
        (32, 7, 64, 1),
        (64, 7, 64, 1),
        (32, 26, 32, 0),
        (32, 12, 64, 0),
        (64, 10, 64, 0),
    ] {
        let win = Window {
            channels: ch,
            height: side,
            width: side,
            kernel_h: 3,
            kernel_w: 3,
            stride: 1,
            padding: p,
        };
        let plan = Winograd::new(&win, o).expect("a 3×3 layer with 8 channels or more");
        let (taps, pos) = (win.col_rows(), win.positions());
        let images: Tensor<f32> = rng.uniform(&[shard, ch, side, side], 0.0, 1.0);
        let weight: Tensor<f32> = rng.normal(&[o, taps], 0.0, 0.1);
        let grad: Tensor<f32> = rng.normal(&[shard, o, pos], 0.0, 0.1);
        let mut out = vec![0.0f32; shard * o * pos];
        let mut dw = vec![0.0f32; o * taps];
        let mut dx = vec![0.0f32; images.len()];
        let padded = Padded::of_window(&win);
        let mut bufs = vec![0.0f32; shard * padded.len()];
        let mut scratch = vec![0.0f32; input_grad_scratch_len::<f32>(&win, o)];
        let mut prepared = vec![0.0f32; input_grad_weights_len::<f32>(&win, o)];
        let name = format!("winograd {ch}→{o} 3x3 p{p} on {side}x{side}");
        let per_image = |bench: &mut criterion::Bencher, run: &mut (dyn FnMut() + Send)| {
            bench.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    one_thread.install(&mut *run);
                }
                start.elapsed() / shard as u32
            })
        };
        c.bench_function(&format!("{name} forward, direct"), |bench| {
            per_image(bench, &mut || {
                let images = images.data().chunks_exact(win.image_len());
                for ((image, buf), out) in images
                    .zip(bufs.chunks_exact_mut(padded.len()))
                    .zip(out.chunks_exact_mut(o * pos))
                {
                    pad_into(black_box(image), (side, side), padded, buf);
                    conv_direct(buf, padded, (3, 3), weight.data(), None, out);
                }
            })
        });
        c.bench_function(&format!("{name} forward, winograd"), |bench| {
            per_image(bench, &mut || {
                plan.forward(black_box(images.data()), weight.data(), None, &mut out)
            })
        });
        c.bench_function(&format!("{name} backward, direct"), |bench| {
            per_image(bench, &mut || {
                let images = images.data().chunks_exact(win.image_len());
                for (image, buf) in images.zip(bufs.chunks_exact_mut(padded.len())) {
                    pad_into(black_box(image), (side, side), padded, buf);
                }
                conv_direct_weight_grad(&bufs, padded, (3, 3), grad.data(), 0, &mut dw);
                prepare_input_grad_weights(&win, weight.data(), &mut prepared);
                let grads = grad.data().chunks_exact(o * pos);
                for (g, dx) in grads.zip(dx.chunks_exact_mut(win.image_len())) {
                    conv_direct_input_grad(&win, g, &prepared, &mut scratch, dx);
                }
            })
        });
        // Both gradients as the plan runs them where the channels go in
        // the lanes: the weight gradient in lanes, the input gradient's
        // flipped convolution (in lanes where its channels allow).
        if weight_grad_in_lanes(&win, o) {
            let mut transposed = vec![0.0f32; grad.len()];
            let mut dwt = vec![0.0f32; dw.len()];
            c.bench_function(&format!("{name} backward, lanes"), |bench| {
                per_image(bench, &mut || {
                    let images = images.data().chunks_exact(win.image_len());
                    for (image, buf) in images.zip(bufs.chunks_exact_mut(padded.len())) {
                        pad_into(black_box(image), (side, side), padded, buf);
                    }
                    transpose_grads(grad.data(), (o, pos), &mut transposed);
                    let g = (transposed.as_slice(), o);
                    conv_direct_weight_grad_lanes(&bufs, padded, (3, 3), g, 0..taps, &mut dwt);
                    prepare_input_grad_weights(&win, weight.data(), &mut prepared);
                    let grads = grad.data().chunks_exact(o * pos);
                    for (g, dx) in grads.zip(dx.chunks_exact_mut(win.image_len())) {
                        conv_direct_input_grad(&win, g, &prepared, &mut scratch, dx);
                    }
                })
            });
        }
        c.bench_function(&format!("{name} backward, winograd"), |bench| {
            per_image(bench, &mut || {
                plan.backward(
                    images.data(),
                    weight.data(),
                    black_box(grad.data()),
                    Some(&mut dx),
                    Some(&mut dw),
                )
            })
        });
    }
}

criterion_group!(
    benches,
    gemm,
    inference_product,
    weight_gradient,
    input_gradient,
    layer_step,
    gather,
    softmax_ce,
    conv,
    winograd
);
criterion_main!(benches);
