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
        let mut prepared = vec![0.0; input_grad_weights_len::<f64>(&win, o)];
        prepare_input_grad_weights(&win, &weight, &mut prepared);
        let mut scratch = vec![f64::NAN; input_grad_scratch_len::<f64>(&win, o)];
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
        let plan = InputGradPlan::of::<f32>(&win, o);
        if c * k * k < LANES || !matches!(plan, InputGradPlan::Scatter) {
            continue; // no direct input gradient, or the forward kernel's
        }
        let mut rows = vec![0.0; o * g.scatter_plane()];
        g.scatter_rows(&plain, &mut rows);
        let mut prepared = vec![0.0; input_grad_weights_len::<f32>(&win, o)];
        prepare_input_grad_weights(&win, &weight, &mut prepared);
        let (mut dx_fast, mut dx_plain) = (vec![0.0; padded.len()], vec![0.0; padded.len()]);
        dispatch_input_grad(&g, &rows, &prepared, &mut dx_fast);
        input_grad::<f32, [f32; LANES], 4, 3>(&g, &rows, &prepared, &mut dx_plain);
        close(&dx_fast, &dx_plain, "input gradient");
    }
}

/// The output channels in the lanes give `conv_direct`'s bits at each
/// level this CPU has, in f32 and f64 (plain), for channel counts that do
/// and do not fill a block, planes of one pixel to 15 wide, with and
/// without bias.
#[test]
fn channel_lanes_give_the_direct_kernels_bits() {
    use super::channel_lanes::{self, BLOCK_16};
    const CASES: [(usize, usize, usize, usize, usize, usize); 6] = [
        // (C, H, W, O, k, p)
        (64, 7, 7, 64, 3, 1),
        (3, 7, 9, 13, 3, 1),
        (5, 1, 1, 40, 1, 0),
        (2, 5, 15, 16, 3, 0),
        (8, 12, 12, 24, 5, 0),
        (4, 6, 5, 33, 2, 1),
    ];
    fn both<T: Float>(
        (c, h, w, o, k, p): (usize, usize, usize, usize, usize, usize),
        bias: bool,
        to: impl Fn(f64) -> T,
        run: impl Fn(&Geometry, &[T], &[T], &[T], Option<&[T]>) -> (Vec<T>, Vec<T>),
    ) {
        let cast = |v: Vec<f64>| -> Vec<T> { v.into_iter().map(&to).collect() };
        let (image, weight, b) = (
            cast(values(c * h * w, 4)),
            cast(values(o * c * k * k, 5)),
            cast(values(o, 6)),
        );
        let padded = Padded::of(c, h, w, p, p);
        let mut buf = vec![T::ZERO; padded.len()];
        pad_into(&image, (h, w), padded, &mut buf);
        let win = Window::square(c, h, w, k, 1, p);
        let mut prepared = vec![T::ZERO; channel_lanes_weights_len(&win, o)];
        prepare_channel_lanes_weights(&win, &weight, &mut prepared);
        let g = Geometry::new(&buf, padded, k, k, weight.len());
        let (direct, lanes) = run(&g, &buf, &weight, &prepared, bias.then_some(&b[..]));
        let same = direct
            .iter()
            .zip(&lanes)
            .all(|(x, y)| x.to_f64().to_bits() == y.to_f64().to_bits());
        assert!(
            same && direct.len() == lanes.len(),
            "{c}x{h}x{w} → {o}, k {k} p {p}, bias {bias}"
        );
    }
    for case in CASES {
        for bias in [false, true] {
            let n = |g: &Geometry| g.outputs * g.oh * g.ow;
            both(
                case,
                bias,
                |v| v,
                |g, image, weight, prepared, bias| {
                    let (mut a, mut b) = (vec![f64::NAN; n(g)], vec![f64::NAN; n(g)]);
                    forward::<f64, [f64; LANES], 4, 3>(g, image, weight, bias, &mut a);
                    channel_lanes::forward::<f64, [f64; LANES], { BLOCK_16.0 }, { BLOCK_16.1 }>(
                        g, image, prepared, bias, &mut b,
                    );
                    (a, b)
                },
            );
            both(
                case,
                bias,
                |v| v as f32,
                |g, image, weight, prepared, bias| {
                    let (mut a, mut b) = (vec![f32::NAN; n(g)], vec![f32::NAN; n(g)]);
                    forward::<f32, [f32; LANES], 4, 3>(g, image, weight, bias, &mut a);
                    channel_lanes::forward::<f32, [f32; LANES], { BLOCK_16.0 }, { BLOCK_16.1 }>(
                        g, image, prepared, bias, &mut b,
                    );
                    (a, b)
                },
            );
            // The AVX-512 kernel in blocks of two vectors of channels and
            // of one (`one`), each against the pixel-row kernel.
            #[cfg(target_arch = "x86_64")]
            for (level, one) in [
                (crate::SimdLevel::Avx2, false),
                (crate::SimdLevel::Avx512, false),
                (crate::SimdLevel::Avx512, true),
            ] {
                if level > crate::detected_simd_level() {
                    continue;
                }
                both(
                    case,
                    bias,
                    |v| v as f32,
                    |g, image, weight, prepared, bias| {
                        let (mut a, mut b) = (vec![f32::NAN; n(g)], vec![f32::NAN; n(g)]);
                        // SAFETY: the CPU has the level's features.
                        unsafe {
                            if level == crate::SimdLevel::Avx2 {
                                compiled::forward_avx2(g, image, weight, bias, &mut a);
                                compiled::channel_lanes_avx2(g, image, prepared, bias, &mut b);
                            } else if one {
                                compiled::forward_avx512(g, image, weight, bias, &mut a);
                                compiled::channel_lanes_avx512_one(
                                    g, image, prepared, bias, &mut b,
                                );
                            } else {
                                compiled::forward_avx512(g, image, weight, bias, &mut a);
                                compiled::channel_lanes_avx512(g, image, prepared, bias, &mut b);
                            }
                        }
                        (a, b)
                    },
                );
            }
        }
    }
}

/// Where the input gradient runs the flipped convolution with the input
/// channels in the lanes (f32, narrow images, whole blocks of channels, on
/// a CPU with AVX2), it gives the flipped convolution's bits.
#[test]
fn the_input_gradient_in_lanes_is_the_flipped_convolution() {
    for (c, h, w, o, k, p) in [
        (32, 7, 7, 8, 3, 1),
        (64, 5, 6, 16, 3, 1),
        (32, 9, 9, 4, 3, 2),
        // Wide images with sixteen channels: in the lanes at AVX-512 only.
        (16, 20, 20, 16, 3, 1),
        (48, 17, 17, 8, 3, 1),
    ] {
        let f32s = |n, seed| -> Vec<f32> { values(n, seed).iter().map(|&v| v as f32).collect() };
        let (weight, win) = (f32s(o * c * k * k, 9), Window::square(c, h, w, k, 1, p));
        let wide = w > super::CHANNEL_LANES_MAX_WIDTH;
        let (oh, ow) = (h + 2 * p - k + 1, w + 2 * p - k + 1);
        let grad = f32s(o * oh * ow, 10);
        let plan = InputGradPlan::of::<f32>(&win, o);
        let Some(padded) = (match plan {
            InputGradPlan::FlippedLanes(padded) => Some(padded),
            _ => None,
        }) else {
            assert!(
                !super::channel_lanes::lanes_on_this_cpu::<f32>()
                    || wide && crate::detected_simd_level() < crate::SimdLevel::Avx512
            );
            continue;
        };
        let mut prepared = vec![0.0; input_grad_weights_len::<f32>(&win, o)];
        prepare_input_grad_weights(&win, &weight, &mut prepared);
        let mut scratch = vec![f32::NAN; input_grad_scratch_len::<f32>(&win, o)];
        let mut dx = vec![f32::NAN; c * h * w];
        conv_direct_input_grad(&win, &grad, &prepared, &mut scratch, &mut dx);
        // The flipped weights [C, O, kh, kw], and the padded gradient.
        let mut flipped = vec![0.0; weight.len()];
        for (i, &v) in weight.iter().enumerate() {
            let (oi, ci, r) = (i / (c * k * k), i / (k * k) % c, i % (k * k));
            flipped[((ci * o + oi) * k + k - 1 - r / k) * k + k - 1 - r % k] = v;
        }
        let mut buf = vec![0.0; padded.len()];
        pad_into(&grad, (oh, ow), padded, &mut buf);
        let mut want = vec![f32::NAN; c * h * w];
        conv_direct(&buf, padded, (k, k), &flipped, None, &mut want);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&dx), bits(&want), "{c}x{h}x{w} → {o}, k {k} p {p}");
    }
}

/// The weight gradient with channels in the lanes: the definition in f64
/// (plain path), f32 within rounding of it at every level this CPU has,
/// the same bits at AVX2 and AVX-512, and the same bits when the taps are
/// shared out in pieces (as between threads), over batches that do and do
/// not fill a chunk of images and taps that do and do not fill a block.
#[test]
fn the_weight_gradient_in_lanes_matches_the_definition() {
    use super::weight_grad_lanes::{self, BLOCK_16};
    for (n, c, h, w, o, k, p) in [
        (5, 3, 7, 7, 32, 3, 1),
        (1, 2, 10, 12, 64, 3, 0),
        (9, 2, 4, 4, 32, 2, 0),
    ] {
        let win = Window::square(c, h, w, k, 1, p);
        assert!(weight_grad_in_lanes(&win, o), "{win:?}");
        let padded = Padded::of(c, h, w, p, p);
        let (oh, ow) = (h + 2 * p - k + 1, w + 2 * p - k + 1);
        let (taps, plane) = (c * k * k, oh * ow);
        let image = values(n * c * h * w, 11);
        let grad = values(n * o * plane, 12);
        let mut images = vec![0.0; n * padded.len()];
        for (src, dst) in image
            .chunks_exact(c * h * w)
            .zip(images.chunks_exact_mut(padded.len()))
        {
            pad_into(src, (h, w), padded, dst);
        }
        let mut want = vec![0.0; taps * o];
        for b in 0..n {
            for oi in 0..o {
                for t in 0..taps {
                    let (ci, i, j) = (t / (k * k), t / k % k, t % k);
                    for q in 0..plane {
                        let (y, x) = (q / ow + i, q % ow + j);
                        let v =
                            images[b * padded.len() + (ci * padded.height + y) * padded.width + x];
                        want[t * o + oi] += grad[(b * o + oi) * plane + q] * v;
                    }
                }
            }
        }
        let mut grads = vec![0.0; grad.len()];
        transpose_grads(&grad, (o, plane), &mut grads);
        let mut dwt = vec![f64::NAN; taps * o];
        conv_direct_weight_grad_lanes(&images, padded, (k, k), (&grads, o), 0..taps, &mut dwt);
        for (a, b) in dwt.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "f64: {a} vs {b}");
        }
        let f32s = |v: &[f64]| -> Vec<f32> { v.iter().map(|&x| x as f32).collect() };
        let (images32, grads32) = (f32s(&images), f32s(&grads));
        let g = Geometry::of(padded, k, k, taps * o);
        let close = |got: &[f32], what: &str| {
            for (a, b) in got.iter().zip(&want) {
                let tol = 1e-5 * (1.0 + b.abs()) * (n * plane) as f64;
                assert!((*a as f64 - b).abs() <= tol, "{what}: {a} vs {b}");
            }
        };
        let mut plain = vec![f32::NAN; taps * o];
        weight_grad_lanes::weight_grad::<f32, [f32; LANES], { BLOCK_16.0 }, { BLOCK_16.1 }>(
            &g,
            &images32,
            &grads32,
            0..taps,
            &mut plain,
        );
        close(&plain, "plain");
        let mut dispatched = vec![f32::NAN; taps * o];
        conv_direct_weight_grad_lanes(
            &images32,
            padded,
            (k, k),
            (&grads32, o),
            0..taps,
            &mut dispatched,
        );
        close(&dispatched, "dispatched");
        let mut pieces = vec![f32::NAN; taps * o];
        let cut = taps / 3 + 1;
        let (low, high) = pieces.split_at_mut(cut * o);
        conv_direct_weight_grad_lanes(&images32, padded, (k, k), (&grads32, o), 0..cut, low);
        conv_direct_weight_grad_lanes(&images32, padded, (k, k), (&grads32, o), cut..taps, high);
        assert_eq!(
            pieces.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            dispatched.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "taps in pieces"
        );
        #[cfg(target_arch = "x86_64")]
        if crate::detected_simd_level() == crate::SimdLevel::Avx512 {
            let (mut a, mut b) = (vec![f32::NAN; taps * o], vec![f32::NAN; taps * o]);
            // SAFETY: the CPU has both levels' features.
            unsafe {
                compiled::weight_grad_lanes_avx2(&g, &images32, &grads32, 0..taps, &mut a);
                compiled::weight_grad_lanes_avx512(&g, &images32, &grads32, 0..taps, &mut b);
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "avx2 against avx512");
        }
    }
}

#[test]
fn pad_into_writes_every_element_of_a_used_buffer() {
    for (c, h, w, ph, pw) in [
        (2, 3, 4, 1, 1),
        (1, 5, 2, 2, 0),
        (3, 2, 2, 0, 3),
        (2, 4, 3, 0, 0),
    ] {
        let image: Vec<f64> = (0..c * h * w).map(|i| i as f64 + 1.0).collect();
        let padded = Padded::of(c, h, w, ph, pw);
        let mut buf = vec![f64::NAN; padded.len()];
        pad_into(&image, (h, w), padded, &mut buf);
        let mut expected = vec![0.0; padded.len()];
        for ci in 0..c {
            for y in 0..h {
                for x in 0..w {
                    expected[ci * padded.plane() + (y + ph) * padded.width + x + pw] =
                        image[(ci * h + y) * w + x];
                }
            }
        }
        assert_eq!(buf, expected, "{c}×{h}×{w} padded by {ph}, {pw}");
    }
}
