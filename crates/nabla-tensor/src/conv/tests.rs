//! im2col, col2im, the window's sizes and pooling against their definitions.

use super::*;

/// im2col written the obvious way, to compare the fast paths against.
fn naive_im2col(image: &[f64], w: &Window) -> Vec<f64> {
    let (oh, ow) = (w.out_h().unwrap(), w.out_w().unwrap());
    let mut col = Vec::new();
    for c in 0..w.channels {
        for i in 0..w.kernel_h {
            for j in 0..w.kernel_w {
                for y in 0..oh {
                    for x in 0..ow {
                        let iy = (y * w.stride + i) as isize - w.padding as isize;
                        let ix = (x * w.stride + j) as isize - w.padding as isize;
                        let inside = iy >= 0
                            && ix >= 0
                            && (iy as usize) < w.height
                            && (ix as usize) < w.width;
                        col.push(if inside {
                            image[c * w.height * w.width + iy as usize * w.width + ix as usize]
                        } else {
                            0.0
                        });
                    }
                }
            }
        }
    }
    col
}

#[test]
fn output_sizes_follow_pytorch() {
    assert_eq!(Window::square(1, 28, 28, 5, 1, 0).out_h(), Some(24));
    assert_eq!(Window::square(1, 28, 28, 3, 1, 1).out_h(), Some(28));
    assert_eq!(Window::square(1, 7, 7, 2, 2, 0).out_h(), Some(3));
    assert_eq!(Window::square(1, 5, 5, 3, 2, 1).out_w(), Some(3));
    assert_eq!(Window::square(1, 2, 2, 5, 1, 0).out_h(), None);
    assert_eq!(Window::square(1, 4, 4, 2, 0, 0).out_h(), None);
    assert_eq!(
        Window::square(1, 4, 4, 3, 1, usize::MAX / 2 + 1).out_h(),
        None,
        "overflow"
    );
}

#[test]
fn im2col_matches_the_definition_and_col2im_is_its_adjoint() {
    for (c, h, wd, k, s, p) in [
        (1, 5, 5, 3, 1, 0),
        (2, 5, 6, 3, 1, 1),
        (3, 7, 5, 3, 2, 1),
        (2, 6, 6, 2, 2, 0),
        (1, 4, 4, 5, 1, 2),
        (2, 3, 3, 1, 1, 0),
    ] {
        let w = Window::square(c, h, wd, k, s, p);
        let image: Vec<f64> = (0..w.image_len()).map(|i| i as f64 * 0.5 - 3.0).collect();
        let mut col = vec![f64::NAN; w.col_rows() * w.positions()];
        im2col(&image, &w, &mut col);
        assert_eq!(col, naive_im2col(&image, &w), "{w:?}");
        // ⟨im2col(x), y⟩ = ⟨x, col2im(y)⟩ for any y.
        let y: Vec<f64> = (0..col.len())
            .map(|i| ((i * 7) % 11) as f64 - 5.0)
            .collect();
        let mut back = vec![0.0; image.len()];
        col2im(&y, &w, &mut back);
        let lhs: f64 = col.iter().zip(&y).map(|(a, b)| a * b).sum();
        let rhs: f64 = image.iter().zip(&back).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-9, "{w:?}: {lhs} vs {rhs}");
    }
}

/// The layers of the presets that take the weight gradient as one
/// product: deep-cnn's on 7×7 planes; not cnn's second (50 outputs) nor
/// LeNet's (16), nor any on 14×14 or larger, nor strides other than 1,
/// nor a batch whose column matrices would pass 2²³ elements.
#[test]
fn small_planes_with_many_outputs_take_the_weight_gradient_as_a_product() {
    let layer = |c, side, k, p| Window::square(c, side, side, k, 1, p);
    let shard = 50;
    assert!(weight_grad_as_product(&layer(32, 7, 3, 1), 64, shard));
    assert!(weight_grad_as_product(&layer(64, 7, 3, 1), 64, shard));
    assert!(!weight_grad_as_product(&layer(20, 12, 5, 0), 50, shard));
    assert!(!weight_grad_as_product(&layer(8, 12, 5, 0), 16, shard));
    assert!(!weight_grad_as_product(&layer(32, 14, 3, 1), 32, shard));
    assert!(!weight_grad_as_product(&layer(64, 14, 3, 1), 128, shard));
    let strided = Window::square(32, 7, 7, 3, 2, 1);
    assert!(!weight_grad_as_product(&strided, 64, shard));
    // The edges: 8×8 positions and 64 outputs in, 9×8 or 63 out.
    let (eight, nine) = (
        Window::square(1, 10, 10, 3, 1, 0),
        Window::square(1, 11, 10, 3, 1, 0),
    );
    assert!(weight_grad_as_product(&eight, 64, shard));
    assert!(!weight_grad_as_product(&nine, 64, shard));
    assert!(!weight_grad_as_product(&eight, 63, shard));
    // 64→64 on 7×7 lays out 576 · 49 elements an image: 297 images fit.
    let last = WEIGHT_GRAD_PRODUCT_MAX_ELEMENTS / (576 * 49);
    assert!(weight_grad_as_product(&layer(64, 7, 3, 1), 64, last));
    assert!(!weight_grad_as_product(&layer(64, 7, 3, 1), 64, last + 1));
    assert!(!weight_grad_as_product(&layer(64, 7, 3, 1), 64, usize::MAX));
}

/// Three images' column matrices side by side in one matrix: each
/// image's columns are its own im2col, and nothing else is written.
#[test]
fn strided_im2col_puts_a_batch_side_by_side() {
    for w in [
        Window::square(2, 5, 5, 3, 1, 1),
        Window::square(3, 7, 5, 3, 2, 1),
    ] {
        let (rows, pos, n) = (w.col_rows(), w.positions(), 3);
        let mut wide = vec![f64::NAN; rows * n * pos];
        for b in 0..n {
            let image: Vec<f64> = (0..w.image_len()).map(|i| (i * (b + 2)) as f64).collect();
            im2col_strided(&image, &w, &mut wide[b * pos..], n * pos);
            let own = naive_im2col(&image, &w);
            for r in 0..rows {
                let at = r * n * pos + b * pos;
                assert_eq!(&wide[at..at + pos], &own[r * pos..(r + 1) * pos], "{w:?}");
            }
            // The later images' columns are still untouched.
            for r in 0..rows {
                let later = r * n * pos + (b + 1) * pos..(r + 1) * n * pos;
                assert!(wide[later].iter().all(|v| v.is_nan()), "{w:?}");
            }
        }
    }
}

#[test]
fn pooling_takes_the_max_and_the_mean_of_each_window() {
    let w = Window::square(1, 4, 4, 2, 2, 0);
    let plane: Vec<f64> = (0..16).map(f64::from).collect();
    let (mut out, mut at) = (vec![0.0; 4], vec![0; 4]);
    max_pool_plane(&plane, &w, &mut out, &mut at);
    assert_eq!(out, [5.0, 7.0, 13.0, 15.0]);
    assert_eq!(at, [5, 7, 13, 15]);
    // The general path (a 3×3 window, stride 1) agrees on where maxima are.
    let w3 = Window::square(1, 4, 4, 3, 1, 0);
    let (mut out3, mut at3) = (vec![0.0; 4], vec![0; 4]);
    max_pool_plane(&plane, &w3, &mut out3, &mut at3);
    assert_eq!(
        (out3, at3),
        (vec![10.0, 11.0, 14.0, 15.0], vec![10, 11, 14, 15])
    );
    avg_pool_plane(&plane, &w, &mut out, 0.25);
    assert_eq!(out, [2.5, 4.5, 10.5, 12.5]);
    let mut grad = vec![0.0; 16];
    max_pool_scatter(&[1.0, 2.0, 3.0, 4.0], &at, &mut grad);
    assert_eq!((grad[5], grad[7], grad[13], grad[15]), (1.0, 2.0, 3.0, 4.0));
    assert_eq!(grad.iter().sum::<f64>(), 10.0);
}

/// The presets' layers and their algorithms at AVX2: forward passes by the
/// direct kernels (stride 1) or im2col; the backward passes of best-cnn's
/// 3×3 layers (32 channels and more, 8×8 outputs and more) by Winograd, the
/// others as their forward passes.
#[test]
fn each_layer_has_one_plan() {
    let plan = |c, side, k, s, p, o| {
        conv_plan(&Window::square(c, side, side, k, s, p), o, SimdLevel::Avx2)
    };
    let winograd_backward = |c, side, p, o| {
        let plan = plan(c, side, 3, 1, p, o);
        matches!(plan.backward, ConvAlgorithm::Winograd(_))
    };
    let forward = |c, side, p, o| plan(c, side, 3, 1, p, o).forward;
    assert!(winograd_backward(32, 26, 0, 32), "best-cnn's second layer");
    // Where the channels go in the lanes, their backward pass beats Winograd.
    assert!(!winograd_backward(32, 12, 0, 64), "best-cnn's third layer");
    assert!(!winograd_backward(64, 10, 0, 64), "best-cnn's fourth layer");
    assert!(!winograd_backward(32, 14, 1, 32), "deep-cnn's fourth layer");
    for (c, side, p, o) in [(32, 12, 0, 64), (64, 10, 0, 64), (32, 14, 1, 32)] {
        let plain = conv_plan(&Window::square(c, side, side, 3, 1, p), o, SimdLevel::Plain);
        assert!(
            matches!(plain.backward, ConvAlgorithm::Winograd(_)),
            "{c}→{o} on plain arrays"
        );
    }
    assert!(
        !winograd_backward(16, 28, 1, 16),
        "deep-cnn's second layer: 16 channels"
    );
    assert!(
        !winograd_backward(64, 7, 1, 64),
        "deep-cnn's last layer: 7×7 outputs"
    );
    assert!(!winograd_backward(32, 8, 0, 32), "6×6 outputs");
    // The output channels in the lanes on planes narrower than two tiles.
    use ConvAlgorithm::{ChannelLanes, Direct};
    assert_eq!(forward(32, 26, 0, 32), Direct, "best-cnn's second layer");
    assert_eq!(forward(32, 12, 0, 64), ChannelLanes, "best-cnn's third");
    assert_eq!(forward(64, 10, 0, 64), ChannelLanes, "best-cnn's fourth");
    assert_eq!(forward(16, 28, 1, 16), Direct, "deep-cnn's second");
    assert_eq!(forward(16, 14, 1, 32), ChannelLanes, "deep-cnn's third");
    assert_eq!(forward(64, 7, 1, 64), ChannelLanes, "deep-cnn's last");
    assert_eq!(
        forward(32, 7, 1, 48),
        Direct,
        "not whole blocks of channels"
    );
    assert_eq!(
        forward(32, 18, 0, 64),
        Direct,
        "16×16 outputs: two whole tiles"
    );
    let unvectorised = conv_plan(&Window::square(64, 7, 7, 3, 1, 1), 64, SimdLevel::Plain);
    assert_eq!(unvectorised.forward, Direct, "plain arrays");
    assert_eq!(unvectorised.backward, Direct, "and the backward pass");
    assert_eq!(plan(64, 7, 3, 1, 1, 64).backward, Direct);
    let direct = ConvPlan {
        forward: ConvAlgorithm::Direct,
        backward: ConvAlgorithm::Direct,
    };
    assert_eq!(
        plan(1, 28, 3, 1, 1, 16),
        direct,
        "a first layer on grey images"
    );
    assert_eq!(plan(20, 12, 5, 1, 0, 50), direct, "cnn's second layer");
    let im2col = ConvPlan {
        forward: ConvAlgorithm::Im2col,
        backward: ConvAlgorithm::Im2col,
    };
    assert_eq!(plan(32, 24, 5, 2, 2, 32), im2col, "a strided layer");
    assert_eq!(plan(1, 5, 2, 1, 0, 3), im2col, "fewer than 8 taps");
}

/// At AVX-512 the output channels go in the lanes on any plane where they
/// fill three quarters of their vectors of sixteen and the sums have at
/// least 32 taps; the
/// backward passes are chosen as at AVX2.
#[test]
fn at_avx512_sixteen_channels_go_in_the_lanes_on_wide_planes() {
    use ConvAlgorithm::{ChannelLanes, Direct};
    let plan = |c, side, p, o, level| conv_plan(&Window::square(c, side, side, 3, 1, p), o, level);
    let (wide, narrow) = (SimdLevel::Avx512, SimdLevel::Avx2);
    assert_eq!(
        plan(16, 28, 1, 16, wide).forward,
        ChannelLanes,
        "deep-cnn's second"
    );
    assert_eq!(
        plan(32, 26, 0, 32, wide).forward,
        ChannelLanes,
        "best-cnn's second"
    );
    assert_eq!(plan(1, 28, 1, 16, wide).forward, Direct, "9 taps");
    assert_eq!(plan(16, 28, 1, 20, wide).forward, Direct, "20 of 32 lanes");
    assert_eq!(
        plan(16, 28, 1, 24, wide).forward,
        ChannelLanes,
        "24 of 32 lanes"
    );
    assert_eq!(plan(16, 28, 1, 24, narrow).forward, Direct, "at AVX2");
    let cnn_second = conv_plan(&Window::square(20, 12, 12, 5, 1, 0), 50, wide);
    assert_eq!(cnn_second.forward, ChannelLanes, "cnn's second: 50 of 64");
    assert_eq!(
        plan(64, 7, 1, 64, wide).forward,
        ChannelLanes,
        "deep-cnn's last"
    );
    for (c, side, p, o) in [
        (16, 28, 1, 16),
        (32, 26, 0, 32),
        (64, 7, 1, 64),
        (32, 12, 0, 64),
    ] {
        assert_eq!(
            plan(c, side, p, o, wide).backward,
            plan(c, side, p, o, narrow).backward,
            "{c}→{o} on {side}×{side}"
        );
    }
}
