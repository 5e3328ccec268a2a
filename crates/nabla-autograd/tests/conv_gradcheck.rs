//! Convolution, pooling, batch normalisation and dropout: backward against
//! central differences in f64 on several shapes, forward against the
//! definitions written out as loops.

use nabla_autograd::ops::norm::channel_moments;
use nabla_autograd::{gradcheck, GradcheckOptions, Result, Tape, Var};
use nabla_tensor::{Rng, Tensor};

fn check<F>(f: F, inputs: &[Tensor<f64>])
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Result<Var<'t, f64>>,
{
    let report = gradcheck(f, inputs, &GradcheckOptions::default()).unwrap();
    assert!(report.passed(), "gradient check failed:\n{report}");
}

/// Distinct values in a random order, spaced 0.05 apart: no two elements of
/// a pooling window are within the check's step of each other (no ties).
fn distinct(rng: &mut Rng, dims: &[usize]) -> Tensor<f64> {
    let n: usize = dims.iter().product();
    let mut values: Vec<f64> = (0..n).map(|i| i as f64 * 0.05 - n as f64 * 0.025).collect();
    rng.shuffle(&mut values);
    Tensor::from_vec(values, dims).unwrap()
}

/// The convolution written as its definition.
fn naive_conv(
    x: &Tensor<f64>,
    w: &Tensor<f64>,
    b: Option<&Tensor<f64>>,
    s: usize,
    p: usize,
) -> Tensor<f64> {
    let &[n, c, h, wd] = x.dims() else { panic!() };
    let &[o, _, kh, kw] = w.dims() else { panic!() };
    let (oh, ow) = ((h + 2 * p - kh) / s + 1, (wd + 2 * p - kw) / s + 1);
    let mut out = Tensor::zeros(&[n, o, oh, ow]);
    for ni in 0..n {
        for oi in 0..o {
            for y in 0..oh {
                for xx in 0..ow {
                    let mut acc = b.map_or(0.0, |b| b.data()[oi]);
                    for ci in 0..c {
                        for i in 0..kh {
                            for j in 0..kw {
                                let iy = (y * s + i) as isize - p as isize;
                                let ix = (xx * s + j) as isize - p as isize;
                                if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= wd {
                                    continue;
                                }
                                acc += x.get(&[ni, ci, iy as usize, ix as usize]).unwrap()
                                    * w.get(&[oi, ci, i, j]).unwrap();
                            }
                        }
                    }
                    out.set(&[ni, oi, y, xx], acc).unwrap();
                }
            }
        }
    }
    out
}

#[test]
fn conv2d_matches_its_definition_and_numerical_gradients() {
    let mut rng = Rng::seed(11);
    // (N, C, H, W, O, k, stride, padding, bias). Stride 1 with at least 8
    // taps runs the direct kernels (the input gradient by flipped weights,
    // or by scattered adds for the 4×4 case); the others im2col. The
    // stride-1 cases with at least 64 outputs on at most 64 positions take
    // the weight gradient as one product over the batch (8×8 and 5×5 here);
    // 9×8 positions, or 63 outputs, stay with the direct kernel. The
    // direct kernels also take the 3×3 layers with 8 to 10 channels (with
    // 32 and more, the backward pass runs Winograd's F(2×2, 3×3): checked
    // below against the definition, being too large for central
    // differences here).
    for (n, c, h, w, o, k, s, p, bias) in [
        (2, 8, 5, 6, 8, 3, 1, 1, true),
        (1, 9, 4, 5, 10, 3, 1, 0, false),
        (3, 8, 3, 3, 8, 3, 1, 1, true),
        (2, 1, 10, 10, 64, 3, 1, 0, false),
        (2, 2, 5, 5, 65, 3, 1, 1, true),
        (1, 1, 11, 10, 64, 3, 1, 0, true),
        (2, 1, 5, 5, 63, 3, 1, 1, false),
        (2, 1, 5, 5, 3, 3, 1, 0, true),
        (2, 2, 9, 11, 3, 4, 1, 0, true),
        (1, 2, 6, 5, 2, 3, 1, 1, true),
        (2, 3, 7, 7, 2, 3, 2, 1, false),
        (1, 2, 4, 6, 3, 2, 2, 0, true),
        (2, 1, 6, 6, 2, 5, 1, 2, false),
        (1, 3, 3, 3, 4, 1, 1, 0, true),
    ] {
        let x = rng.normal(&[n, c, h, w], 0.0, 1.0);
        let wt = rng.normal(&[o, c, k, k], 0.0, 1.0);
        let b = rng.normal(&[o], 0.0, 1.0);
        let tape = Tape::<f64>::new();
        let bv = bias.then(|| tape.constant(b.clone()));
        let y = tape
            .constant(x.clone())
            .conv2d(tape.constant(wt.clone()), bv, s, p)
            .unwrap();
        let want = naive_conv(&x, &wt, bias.then_some(&b), s, p);
        assert!(
            y.value().allclose(&want, 1e-12, 1e-12),
            "forward, case {:?}",
            (n, c, h, w, o, k, s, p)
        );
        if bias {
            check(|v| v[0].conv2d(v[1], Some(v[2]), s, p), &[x, wt, b]);
        } else {
            check(|v| v[0].conv2d(v[1], None, s, p), &[x, wt]);
        }
    }
}

#[test]
fn pooling_gradients() {
    let mut rng = Rng::seed(12);
    for (dims, k, s, p) in [
        (vec![2, 2, 4, 4], 2, 2, 0),
        (vec![1, 3, 5, 5], 2, 2, 0),
        (vec![1, 2, 5, 6], 3, 2, 1),
        (vec![2, 1, 4, 4], 3, 1, 0),
    ] {
        let x = distinct(&mut rng, &dims);
        check(|v| v[0].max_pool2d(k, s, p), std::slice::from_ref(&x));
        check(|v| v[0].avg_pool2d(k, s, p), std::slice::from_ref(&x));
    }
}

#[test]
fn pooling_values_follow_pytorch() {
    // One 4×4 plane 0..16; 2×2 windows, stride 2.
    let x = Tensor::from_f64s(&(0..16).map(f64::from).collect::<Vec<_>>(), &[1, 1, 4, 4]).unwrap();
    let tape = Tape::<f64>::new();
    let v = tape.constant(x);
    assert_eq!(
        v.max_pool2d(2, 2, 0).unwrap().value().to_vec(),
        [5.0, 7.0, 13.0, 15.0]
    );
    assert_eq!(
        v.avg_pool2d(2, 2, 0).unwrap().value().to_vec(),
        [2.5, 4.5, 10.5, 12.5]
    );
    // Padding 1 with a 2×2 window: average counts the padding as zeros.
    let avg = v.avg_pool2d(2, 2, 1).unwrap().value();
    assert_eq!(avg.dims(), [1, 1, 3, 3]);
    // Window (0, 1) sees pixels 1 and 2 (and two zeros of padding); window
    // (2, 2) sees pixel 15 alone: sums divided by the full 2×2 = 4.
    assert_eq!(avg.get(&[0, 0, 0, 1]).unwrap(), (1.0 + 2.0) / 4.0);
    assert_eq!(avg.get(&[0, 0, 2, 2]).unwrap(), 15.0 / 4.0);
    assert_eq!(
        v.max_pool2d(2, 2, 1)
            .unwrap()
            .value()
            .get(&[0, 0, 2, 2])
            .unwrap(),
        15.0
    );
}

/// Batch norm with its own batch statistics, recomputed from the input (as
/// the layer does), so the numerical gradient sees μ and σ² move with x.
fn bn_train<'t>(v: &[Var<'t, f64>]) -> Result<Var<'t, f64>> {
    let (mean, var, _) = channel_moments(&v[0].value())?;
    let inv_std = var.map(|s| 1.0 / (s + 1e-5).sqrt());
    v[0].batch_norm(v[1], v[2], mean, inv_std, true)
}

#[test]
fn batch_norm_gradients_in_training_and_evaluation() {
    let mut rng = Rng::seed(13);
    // [2, 2, 5, 5] has runs of 25 values: longer than the sums' 16 lanes,
    // with a remainder.
    for dims in [
        vec![6, 3],
        vec![4, 2, 3, 3],
        vec![3, 4, 2, 1],
        vec![2, 2, 5, 5],
    ] {
        let c = dims[1];
        let x = rng.normal(&dims, 0.5, 2.0);
        let gamma = rng.uniform(&[c], 0.5, 1.5);
        let beta = rng.normal(&[c], 0.0, 1.0);
        check(bn_train, &[x.clone(), gamma.clone(), beta.clone()]);
        let mean = rng.normal(&[c], 0.0, 1.0);
        let inv = rng.uniform(&[c], 0.5, 2.0);
        check(
            |v| v[0].batch_norm(v[1], v[2], mean.clone(), inv.clone(), false),
            &[x, gamma, beta],
        );
    }
}

#[test]
fn batch_norm_normalises_each_channel() {
    let x: Tensor<f64> = Rng::seed(14).normal(&[8, 2, 5, 5], 3.0, 5.0);
    let tape = Tape::new();
    let y = bn_train(&[
        tape.constant(x),
        tape.constant(Tensor::ones(&[2])),
        tape.constant(Tensor::zeros(&[2])),
    ])
    .unwrap();
    let (mean, var, count) = channel_moments(&y.value()).unwrap();
    assert_eq!(count, 200);
    assert!(mean.data().iter().all(|m| m.abs() < 1e-12), "{mean:?}");
    assert!(var.data().iter().all(|v| (v - 1.0).abs() < 1e-5), "{var:?}");
}

#[test]
fn dropout_zeroes_a_fraction_scales_the_rest_and_routes_gradients_through_the_mask() {
    let tape = Tape::<f64>::new();
    tape.seed_rng(7);
    let x = tape.var(Tensor::ones(&[100, 100]));
    let y = x.dropout(0.3).unwrap();
    let kept = y.value().data().iter().filter(|&&v| v != 0.0).count();
    assert!((6700..7300).contains(&kept), "kept {kept} of 10000");
    assert!(y
        .value()
        .data()
        .iter()
        .all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-12));
    let g = tape.backward(y.sum().unwrap()).unwrap();
    assert_eq!(g.get(x).unwrap(), &y.value(), "dy/dx is the scaled mask");
    // The same seed gives the same mask; p = 0 is the identity.
    let again = Tape::<f64>::new();
    again.seed_rng(7);
    let z = again
        .constant(Tensor::ones(&[100, 100]))
        .dropout(0.3)
        .unwrap();
    assert_eq!(z.value(), y.value());
    assert_eq!(
        again
            .constant(Tensor::ones(&[3]))
            .dropout(0.0)
            .unwrap()
            .value(),
        Tensor::ones(&[3])
    );
    assert!(again.constant(Tensor::ones(&[3])).dropout(1.5).is_err());
}

#[test]
fn shape_errors_name_the_op() {
    let tape = Tape::<f64>::new();
    let x = tape.constant(Tensor::zeros(&[1, 2, 5, 5]));
    let err = |r: Result<Var<'_, f64>>| r.unwrap_err().to_string();
    assert!(
        err(x.conv2d(tape.constant(Tensor::zeros(&[4, 3, 3, 3])), None, 1, 0))
            .contains("2 channels")
    );
    assert!(
        err(x.conv2d(tape.constant(Tensor::zeros(&[4, 2, 7, 7])), None, 1, 0))
            .contains("does not fit")
    );
    assert!(
        err(x.conv2d(tape.constant(Tensor::zeros(&[4, 2, 3, 3])), None, 0, 0)).contains("stride 0")
    );
    assert!(
        err(tape.constant(Tensor::zeros(&[2, 5])).max_pool2d(2, 2, 0)).contains("[N, C, H, W]")
    );
    assert!(err(x.max_pool2d(7, 7, 0)).contains("does not fit"));
    assert!(err(x.max_pool2d(2, 2, 2)).contains("padding"));
}

/// The backward pass by Winograd's F(2×2, 3×3) (3×3 kernels, 32 channels
/// in and out, 8×8 outputs and more) against the gradients written as
/// their definitions, in f64: odd and even outputs, padding 0 and 1.
#[test]
fn winograd_gradients_match_their_definition() {
    let mut rng = Rng::seed(12);
    for (n, c, h, w, o, p) in [(2, 32, 8, 8, 32, 1), (1, 32, 11, 10, 33, 0)] {
        let x: Tensor<f64> = rng.normal(&[n, c, h, w], 0.0, 1.0);
        let wt: Tensor<f64> = rng.normal(&[o, c, 3, 3], 0.0, 1.0);
        let b: Tensor<f64> = rng.normal(&[o], 0.0, 1.0);
        let tape = Tape::<f64>::new();
        let (xv, wv, bv) = (
            tape.var(x.clone()),
            tape.var(wt.clone()),
            tape.var(b.clone()),
        );
        let y = xv.conv2d(wv, Some(bv), 1, p).unwrap();
        let r: Tensor<f64> = rng.normal(y.value().dims(), 0.0, 1.0);
        let loss = y.mul(tape.constant(r.clone())).unwrap().sum().unwrap();
        let g = tape.backward(loss).unwrap();
        let (oh, ow) = (h + 2 * p - 2, w + 2 * p - 2);
        let mut dx = Tensor::<f64>::zeros(&[n, c, h, w]);
        let mut dw = Tensor::<f64>::zeros(&[o, c, 3, 3]);
        let mut db = Tensor::<f64>::zeros(&[o]);
        for ((ni, oi), (yy, xx)) in (0..n)
            .flat_map(|ni| (0..o).map(move |oi| (ni, oi)))
            .flat_map(|no| (0..oh).flat_map(move |yy| (0..ow).map(move |xx| (no, (yy, xx)))))
        {
            let gy = r.get(&[ni, oi, yy, xx]).unwrap();
            db.data_mut()[oi] += gy;
            for (ci, i, j) in
                (0..c).flat_map(|ci| (0..3).flat_map(move |i| (0..3).map(move |j| (ci, i, j))))
            {
                let (iy, ix) = (
                    (yy + i) as isize - p as isize,
                    (xx + j) as isize - p as isize,
                );
                if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= w {
                    continue;
                }
                let at = [ni, ci, iy as usize, ix as usize];
                let wi = [oi, ci, i, j];
                dw.set(&wi, dw.get(&wi).unwrap() + gy * x.get(&at).unwrap())
                    .unwrap();
                dx.set(&at, dx.get(&at).unwrap() + gy * wt.get(&wi).unwrap())
                    .unwrap();
            }
        }
        for (name, got, want) in [
            ("dx", g.get(xv), dx),
            ("dW", g.get(wv), dw),
            ("db", g.get(bv), db),
        ] {
            assert!(
                got.unwrap().allclose(&want, 1e-10, 1e-10),
                "{name}, case {:?}",
                (n, c, h, w, o, p)
            );
        }
    }
}

/// The weight gradient as one product over a batch large enough for the
/// GEMM library to share it between threads (64 outputs on 8×8 planes from
/// a 2×2 kernel; 2²⁴ multiply-adds and more), and both gradients by
/// Winograd's products (a 3×3 kernel, 32 channels): the same bits on one
/// thread and two, in f32.
#[test]
fn the_gradients_are_the_same_on_any_thread_count() {
    let mut rng = Rng::seed(21);
    for (x_dims, w_dims) in [
        ([80, 16, 7, 7], [64, 16, 2, 2]),
        ([40, 32, 8, 8], [32, 32, 3, 3]),
    ] {
        let x: Tensor<f32> = rng.normal(&x_dims, 0.0, 1.0);
        let w: Tensor<f32> = rng.normal(&w_dims, 0.0, 0.1);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let tape = Tape::<f32>::new();
                let (xv, wv) = (tape.var(x.clone()), tape.var(w.clone()));
                let y = xv.conv2d(wv, None, 1, 1).unwrap();
                let loss = y.mul(y).unwrap().sum().unwrap();
                let g = tape.backward(loss).unwrap();
                (g.get(xv).unwrap().clone(), g.get(wv).unwrap().clone())
            })
        };
        let (one, two) = (run(1), run(2));
        assert!(one.1.data().iter().all(|v| v.is_finite()));
        assert_eq!(one, two, "weight {w_dims:?}");
    }
}

/// The forward pass and both gradients in f32 of layers whose plans put
/// channels in the vector lanes (small planes, 32 or 64 channels; on a CPU
/// with AVX2): the definition's values and the f64 gradients (checked
/// above) to f32 rounding, with the bias, and the same bits on one thread
/// and two.
#[test]
fn small_plane_passes_match_the_definition() {
    let mut rng = Rng::seed(22);
    for (x_dims, w_dims, p) in [
        ([3, 32, 7, 7], [64, 32, 3, 3], 1),
        ([2, 64, 7, 7], [16, 64, 3, 3], 1),
        ([2, 16, 12, 12], [32, 16, 3, 3], 0),
    ] {
        let x: Tensor<f64> = rng.normal(&x_dims, 0.0, 1.0);
        let w: Tensor<f64> = rng.normal(&w_dims, 0.0, 0.1);
        let b: Tensor<f64> = rng.normal(&[w_dims[0]], 0.0, 0.1);
        let want = naive_conv(&x, &w, Some(&b), 1, p);
        let r: Tensor<f64> = rng.normal(want.dims(), 0.0, 1.0);
        let want_dx = {
            let tape = Tape::<f64>::new();
            let (xv, wv, bv) = (
                tape.var(x.clone()),
                tape.var(w.clone()),
                tape.var(b.clone()),
            );
            let y = xv.conv2d(wv, Some(bv), 1, p).unwrap();
            let loss = y.mul(tape.var(r.clone())).unwrap().sum().unwrap();
            tape.backward(loss).unwrap().get(xv).unwrap().clone()
        };
        let f32s = |t: &Tensor<f64>| t.cast::<f32>();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let tape = Tape::<f32>::new();
                let (xv, wv, bv) = (tape.var(f32s(&x)), tape.var(f32s(&w)), tape.var(f32s(&b)));
                let y = xv.conv2d(wv, Some(bv), 1, p).unwrap();
                let loss = y.mul(tape.var(f32s(&r))).unwrap().sum().unwrap();
                let grads = tape.backward(loss).unwrap();
                let (dx, dw) = (grads.get(xv).unwrap(), grads.get(wv).unwrap());
                (y.value().clone(), dx.clone(), dw.clone())
            })
        };
        let (one, two) = (run(1), run(2));
        assert_eq!(one, two, "weight {w_dims:?}: threads");
        for (got, want, what) in [
            (&one.0, &want, "forward"),
            (&one.1, &want_dx, "input gradient"),
        ] {
            assert_eq!(got.dims(), want.dims());
            for (g, v) in got.data().iter().zip(want.data()) {
                assert!(
                    (*g as f64 - v).abs() <= 1e-5 * (1.0 + v.abs()),
                    "weight {w_dims:?}, {what}: {g} against {v}"
                );
            }
        }
    }
}
