//! Winograd's forward and backward passes against the convolution's
//! definition, in f64 (equal up to rounding) and f32 (within a stated
//! bound), on odd sizes, several blocks and both thread counts.

use super::*;

/// `(N, C, H, W, O, padding)`: odd and even outputs, a last block cut
/// short, the presets' layers (28×28, 14×14 and 7×7 with padding 1; 26×26
/// and 10×10 without).
const CASES: [(usize, usize, usize, usize, usize, usize); 6] = [
    (3, 8, 5, 7, 8, 0),
    (2, 9, 6, 5, 10, 1),
    (5, 16, 7, 7, 16, 1),
    (1, 8, 4, 4, 8, 2),
    (9, 8, 14, 14, 12, 1),
    (2, 12, 26, 26, 9, 0),
];

fn window(c: usize, h: usize, w: usize, p: usize) -> Window {
    Window {
        channels: c,
        height: h,
        width: w,
        kernel_h: 3,
        kernel_w: 3,
        stride: 1,
        padding: p,
    }
}

/// Reproducible values in [-1, 1).
fn values(len: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect()
}

/// The input pixel `(c, y + i − p, x + j − p)`, or 0 in the padding.
fn pixel(image: &[f64], win: &Window, c: usize, y: usize, x: usize) -> f64 {
    let (iy, ix) = (
        y as isize - win.padding as isize,
        x as isize - win.padding as isize,
    );
    if iy < 0 || ix < 0 || iy as usize >= win.height || ix as usize >= win.width {
        return 0.0;
    }
    image[(c * win.height + iy as usize) * win.width + ix as usize]
}

/// The forward pass by its definition.
fn naive_forward(images: &[f64], weight: &[f64], bias: &[f64], win: &Window, o: usize) -> Vec<f64> {
    let (oh, ow) = (win.out_h().unwrap(), win.out_w().unwrap());
    let mut out = Vec::new();
    for image in images.chunks_exact(win.image_len()) {
        for k in 0..o {
            for y in 0..oh {
                for x in 0..ow {
                    let mut sum = bias[k];
                    for c in 0..win.channels {
                        for i in 0..3 {
                            for j in 0..3 {
                                let w = weight[((k * win.channels + c) * 3 + i) * 3 + j];
                                sum += w * pixel(image, win, c, y + i, x + j);
                            }
                        }
                    }
                    out.push(sum);
                }
            }
        }
    }
    out
}

/// The gradients by their definition: `dx` scatters each output's gradient
/// over its window, `dW` sums gradient times pixel.
fn naive_backward(
    images: &[f64],
    weight: &[f64],
    grad: &[f64],
    win: &Window,
    o: usize,
) -> (Vec<f64>, Vec<f64>) {
    let (oh, ow) = (win.out_h().unwrap(), win.out_w().unwrap());
    let (c_n, h, w, p) = (win.channels, win.height, win.width, win.padding);
    let mut dx = vec![0.0; images.len()];
    let mut dw = vec![0.0; weight.len()];
    for (n, image) in images.chunks_exact(win.image_len()).enumerate() {
        for k in 0..o {
            for y in 0..oh {
                for x in 0..ow {
                    let g = grad[((n * o + k) * oh + y) * ow + x];
                    for c in 0..c_n {
                        for i in 0..3 {
                            for j in 0..3 {
                                let wi = ((k * c_n + c) * 3 + i) * 3 + j;
                                dw[wi] += g * pixel(image, win, c, y + i, x + j);
                                let (iy, ix) =
                                    ((y + i) as isize - p as isize, (x + j) as isize - p as isize);
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    dx[n * win.image_len()
                                        + (c * h + iy as usize) * w
                                        + ix as usize] += g * weight[wi];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, dw)
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn only_stride_one_3x3_kernels_with_enough_channels_apply() {
    assert!(winograd_applies(&window(16, 28, 28, 1), 16));
    assert!(winograd_applies(&window(32, 24, 24, 0), 32));
    assert!(winograd_applies(&window(8, 3, 3, 0), 8));
    assert!(
        !winograd_applies(&window(1, 28, 28, 1), 16),
        "one input channel"
    );
    assert!(!winograd_applies(&window(16, 28, 28, 1), 4), "four outputs");
    assert!(!winograd_applies(&window(16, 2, 2, 0), 16), "does not fit");
    let mut strided = window(16, 28, 28, 1);
    strided.stride = 2;
    assert!(!winograd_applies(&strided, 16));
    let mut five = window(16, 28, 28, 1);
    (five.kernel_h, five.kernel_w) = (5, 5);
    assert!(!winograd_applies(&five, 16));
    assert_eq!(Winograd::new(&five, 16), None);
}

/// Blocks hold whole images and at least `BLOCK_TILES` tiles: one image of
/// 28×28 (196 tiles) is not enough, two are.
#[test]
fn blocks_depend_on_the_layer_only() {
    assert_eq!(Winograd::new(&window(16, 28, 28, 1), 16).unwrap().block, 2);
    assert_eq!(Winograd::new(&window(64, 7, 7, 1), 64).unwrap().block, 13);
    assert_eq!(Winograd::new(&window(32, 26, 26, 0), 32).unwrap().block, 2);
}

#[test]
fn forward_and_backward_match_the_definition_in_f64() {
    for (seed, &(n, c, h, w, o, p)) in CASES.iter().enumerate() {
        let win = window(c, h, w, p);
        let plan = Winograd::new(&win, o).unwrap();
        let images = values(n * win.image_len(), seed as u64);
        let weight = values(o * c * 9, 100 + seed as u64);
        let bias = values(o, 200 + seed as u64);
        let mut out = vec![f64::NAN; n * o * win.positions()];
        plan.forward(&images, &weight, Some(&bias), &mut out);
        let want = naive_forward(&images, &weight, &bias, &win, o);
        assert!(max_abs_diff(&out, &want) < 1e-12, "{win:?}: forward");

        let grad = values(out.len(), 300 + seed as u64);
        let (mut dx, mut dw) = (vec![f64::NAN; images.len()], vec![f64::NAN; weight.len()]);
        plan.backward(&images, &weight, &grad, Some(&mut dx), Some(&mut dw));
        let (want_dx, want_dw) = naive_backward(&images, &weight, &grad, &win, o);
        assert!(
            max_abs_diff(&dx, &want_dx) < 1e-12,
            "{win:?}: input gradient"
        );
        assert!(
            max_abs_diff(&dw, &want_dw) < 1e-11,
            "{win:?}: weight gradient"
        );

        // Each gradient alone is the same as both together.
        let mut dx_alone = vec![f64::NAN; images.len()];
        plan.backward(&images, &weight, &grad, Some(&mut dx_alone), None);
        assert_eq!(dx_alone, dx);
        let mut dw_alone = vec![f64::NAN; weight.len()];
        plan.backward(&images, &weight, &grad, None, Some(&mut dw_alone));
        assert_eq!(dw_alone, dw);
    }
}

/// In f32 the transforms round differently from a direct sum: every output
/// and input gradient stays within 2⁻¹⁵·√(terms) of the f64 definition
/// (about 256·√terms units in the last place of 1, for terms of size ≤ 1),
/// and every weight gradient within four times that.
#[test]
fn f32_stays_within_a_stated_bound_of_the_definition() {
    let bound = 2f64.powi(-15);
    for (seed, &(n, c, h, w, o, p)) in CASES.iter().enumerate() {
        let win = window(c, h, w, p);
        let plan = Winograd::new(&win, o).unwrap();
        let images = values(n * win.image_len(), seed as u64);
        let weight = values(o * c * 9, 100 + seed as u64);
        let bias = vec![0.0; o];
        let grad = values(n * o * win.positions(), 300 + seed as u64);
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        let (images32, weight32, grad32) = (f32s(&images), f32s(&weight), f32s(&grad));
        let mut out = vec![0f32; grad.len()];
        plan.forward(&images32, &weight32, None, &mut out);
        let (mut dx, mut dw) = (vec![0f32; images.len()], vec![0f32; weight.len()]);
        plan.backward(&images32, &weight32, &grad32, Some(&mut dx), Some(&mut dw));
        // The references from the same f32 inputs, summed in f64.
        let (images, weight, grad) = (f64s(&images32), f64s(&weight32), f64s(&grad32));
        let want = naive_forward(&images, &weight, &bias, &win, o);
        let (want_dx, want_dw) = naive_backward(&images, &weight, &grad, &win, o);
        let scale = |terms: usize| bound * (terms as f64).sqrt();
        let per_output = c * 9;
        assert!(
            max_abs_diff(&f64s(&out), &want) < scale(per_output),
            "{win:?}: forward"
        );
        assert!(
            max_abs_diff(&f64s(&dx), &want_dx) < scale(o * 9),
            "{win:?}: input gradient"
        );
        let per_weight = n * win.positions();
        assert!(
            max_abs_diff(&f64s(&dw), &want_dw) < scale(per_weight) * 4.0,
            "{win:?}: weight gradient"
        );
    }
}

/// The blocks are fixed by the layer, and the weight gradient adds their
/// shares in block order: the same bits on one thread as on four.
#[test]
fn results_do_not_depend_on_the_number_of_threads() {
    let (n, c, h, w, o, p) = (7, 16, 7, 7, 16, 1);
    let win = window(c, h, w, p);
    let plan = Winograd::new(&win, o).unwrap();
    let to32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
    let images = to32(values(n * win.image_len(), 1));
    let weight = to32(values(o * c * 9, 2));
    let grad = to32(values(n * o * win.positions(), 3));
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut out = vec![0f32; grad.len()];
            plan.forward(&images, &weight, None, &mut out);
            let (mut dx, mut dw) = (vec![0f32; images.len()], vec![0f32; weight.len()]);
            plan.backward(&images, &weight, &grad, Some(&mut dx), Some(&mut dw));
            (out, dx, dw)
        })
    };
    assert_eq!(run(1), run(4));
}
