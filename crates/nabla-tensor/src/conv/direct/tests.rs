//! The direct kernels against the definition, and the vector paths against the plain ones.

use super::input_grad::{dispatch_input_grad, input_grad, InputGradPlan};
use super::weight_grad::weight_grad;
use super::*;

/// The definition, on an unpadded image with zero padding `p` inside.
fn naive(
    image: &[f64],
    (c, h, w): (usize, usize, usize),
    weight: &[f64],
    (o, k): (usize, usize),
    p: usize,
) -> Vec<f64> {
    let (oh, ow) = (h + 2 * p - k + 1, w + 2 * p - k + 1);
    let mut out = vec![0.0; o * oh * ow];
    for oi in 0..o {
        for y in 0..oh {
            for x in 0..ow {
                let mut s = 0.0;
                for ci in 0..c {
                    for i in 0..k {
                        for j in 0..k {
                            let (iy, ix) =
                                ((y + i) as isize - p as isize, (x + j) as isize - p as isize);
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                s += weight[((oi * c + ci) * k + i) * k + j]
                                    * image[(ci * h + iy as usize) * w + ix as usize];
                            }
                        }
                    }
                }
                out[(oi * oh + y) * ow + x] = s;
            }
        }
    }
    out
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn values(n: usize, seed: usize) -> Vec<f64> {
    (0..n)
        .map(|i| (((i * 37 + seed * 11) % 23) as f64 - 11.0) / 8.0)
        .collect()
}

/// Shapes with channel and tile counts that do and do not fill a block.
const SHAPES: [(usize, usize, usize, usize, usize, usize); 9] = [
    // (C, H, W, O, k, p)
    (1, 28, 28, 8, 5, 0),
    (8, 12, 12, 16, 5, 0),
    (3, 7, 9, 5, 3, 1),
    (2, 5, 5, 3, 3, 2),
    (1, 4, 20, 1, 1, 0), // 1 tap: forward and weight gradient only
    (8, 4, 21, 2, 1, 0),
    (6, 14, 14, 7, 3, 1),
    // Input gradients by scatter: a partial channel block and 5 rows;
    // two channel blocks, 3 tiles a row and padding past the kernel.
    (3, 9, 10, 5, 5, 0),
    (10, 6, 13, 3, 2, 3),
];

#[test]
fn forward_and_weight_gradient_match_the_definition() {
    for (c, h, w, o, k, p) in SHAPES {
        let image = values(c * h * w, 1);
        let weight = values(o * c * k * k, 2);
        let bias = values(o, 3);
        let padded = Padded::of(c, h, w, p, p);
        let mut buf = vec![f64::NAN; padded.len()];
        pad_into(&image, (h, w), padded, &mut buf);
        let (oh, ow) = padded.out_size(k, k).unwrap();
        let mut out = vec![f64::NAN; o * oh * ow];
        conv_direct(&buf, padded, (k, k), &weight, Some(&bias), &mut out);
        let want = naive(&image, (c, h, w), &weight, (o, k), p);
        for (i, (a, b)) in out.iter().zip(&want).enumerate() {
            let b = b + bias[i / (oh * ow)];
            assert!(
                (a - b).abs() < 1e-12,
                "{c} {h} {w} {o} {k} {p}: out[{i}] {a} vs {b}"
            );
        }
        // dW over a batch of two images is the adjoint in the weight:
        // Σₙ ⟨conv(xₙ; W), Gₙ⟩ = ⟨W, dW⟩.
        let second = values(c * h * w, 9);
        let mut bufs = buf.clone();
        bufs.resize(2 * padded.len(), f64::NAN);
        pad_into(&second, (h, w), padded, &mut bufs[padded.len()..]);
        let grad = values(2 * out.len(), 4);
        let (grad0, grad1) = grad.split_at(out.len());
        let mut dw = vec![0.0; weight.len()];
        conv_direct_weight_grad(&bufs, padded, (k, k), &grad, 0, &mut dw);
        for (t, d) in dw.iter().enumerate() {
            let mut unit = vec![0.0; weight.len()];
            unit[t] = 1.0;
            let lhs = dot(&naive(&image, (c, h, w), &unit, (o, k), p), grad0)
                + dot(&naive(&second, (c, h, w), &unit, (o, k), p), grad1);
            assert!(
                (lhs - d).abs() < 1e-9,
                "{c} {h} {w} {o} {k} {p}: dw[{t}] {d} vs {lhs}"
            );
        }
        // Rows of output channels taken apart give the same bits.
        let taps = c * k * k;
        for split in 1..o {
            let mut parts = vec![0.0; weight.len()];
            let (low, high) = parts.split_at_mut(split * taps);
            conv_direct_weight_grad(&bufs, padded, (k, k), &grad, 0, low);
            conv_direct_weight_grad(&bufs, padded, (k, k), &grad, split, high);
            assert_eq!(parts, dw, "{c} {h} {w} {o} {k} {p}: split at {split}");
        }
    }
}

#[test]
fn the_input_gradient_is_the_adjoint_in_the_image() {
    for (c, h, w, o, k, p) in SHAPES.into_iter().filter(|s| s.0 * s.4 * s.4 >= LANES) {
        let weight = values(o * c * k * k, 5);
        let (oh, ow) = (h + 2 * p - k + 1, w + 2 * p - k + 1);
        let grad = values(o * oh * ow, 6);
        let win = Window::square(c, h, w, k, 1, p);
        let mut prepared = vec![0.0; input_grad_weights_len(&win, o)];
        prepare_input_grad_weights(&win, &weight, &mut prepared);
        let mut scratch = vec![f64::NAN; input_grad_scratch_len(&win, o)];
        let mut dx = vec![f64::NAN; c * h * w];
        conv_direct_input_grad(&win, &grad, &prepared, &mut scratch, &mut dx);
        // ⟨conv(x), G⟩ = ⟨x, dx⟩ for every unit image x.
        for (t, d) in dx.iter().enumerate() {
            let mut unit = vec![0.0; c * h * w];
            unit[t] = 1.0;
            let lhs = dot(&naive(&unit, (c, h, w), &weight, (o, k), p), &grad);
            assert!(
                (lhs - d).abs() < 1e-9,
                "{c} {h} {w} {o} {k} {p}: dx[{t}] {d} vs {lhs}"
            );
        }
    }
}

/// On a CPU with AVX2 and FMA, `f32` runs in AVX registers with fused
/// multiply-adds: it must agree with the portable kernels to rounding.
#[test]
fn the_plain_kernels_agree_with_the_dispatched_ones() {
    let close = |a: &[f32], b: &[f32], what: &str| {
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                "{what}: {x} vs {y}"
            );
        }
    };
    for (c, h, w, o, k, p) in SHAPES {
        let f32s = |n, seed| -> Vec<f32> { values(n, seed).iter().map(|&v| v as f32).collect() };
        let (image, weight) = (f32s(c * h * w, 7), f32s(o * c * k * k, 8));
        let padded = Padded::of(c, h, w, p, p);
        let mut buf = vec![0.0; padded.len()];
        pad_into(&image, (h, w), padded, &mut buf);
        let g = Geometry::new(&buf, padded, k, k, weight.len());
        let mut fast = vec![0.0; o * g.oh * g.ow];
        let mut plain = fast.clone();
        conv_direct(&buf, padded, (k, k), &weight, None, &mut fast);
        forward::<f32, [f32; LANES], 4, 3>(&g, &buf, &weight, None, &mut plain);
        close(&fast, &plain, "forward");
        let (mut dw_fast, mut dw_plain) = (vec![0.0; weight.len()], vec![0.0; weight.len()]);
        conv_direct_weight_grad(&buf, padded, (k, k), &plain, 0, &mut dw_fast);
        weight_grad::<f32, [f32; LANES], 4, 2>(&g, &buf, &plain, 0..o, &mut dw_plain);
        close(&dw_fast, &dw_plain, "weight gradient");
        let mut parts = vec![0.0; weight.len()];
        let (low, high) = parts.split_at_mut(o / 2 * c * k * k);
        conv_direct_weight_grad(&buf, padded, (k, k), &plain, 0, low);
        conv_direct_weight_grad(&buf, padded, (k, k), &plain, o / 2, high);
        assert_eq!(parts, dw_fast, "weight gradient by halves");
        let win = Window::square(c, h, w, k, 1, p);
        if c * k * k < LANES || !matches!(InputGradPlan::of(&win, o), InputGradPlan::Scatter) {
            continue; // no direct input gradient, or the forward kernel's
        }
        let mut rows = vec![0.0; o * g.scatter_plane()];
        g.scatter_rows(&plain, &mut rows);
        let mut prepared = vec![0.0; input_grad_weights_len(&win, o)];
        prepare_input_grad_weights(&win, &weight, &mut prepared);
        let (mut dx_fast, mut dx_plain) = (vec![0.0; padded.len()], vec![0.0; padded.len()]);
        dispatch_input_grad(&g, &rows, &prepared, &mut dx_fast);
        input_grad::<f32, [f32; LANES], 4, 3>(&g, &rows, &prepared, &mut dx_plain);
        close(&dx_fast, &dx_plain, "input gradient");
    }
}
