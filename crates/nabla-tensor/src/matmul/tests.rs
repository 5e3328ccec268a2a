//! The products against their definition in f64, through every plan.

use super::*;
use crate::Rng;

fn naive(a: &Tensor<f64>, b: &Tensor<f64>) -> Tensor<f64> {
    let (m, k) = a.as_matrix_dims("t").unwrap();
    let n = b.dims()[1];
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k)
                .map(|p| a.data()[i * k + p] * b.data()[p * n + j])
                .sum();
        }
    }
    Tensor::from_vec(out, &[m, n]).unwrap()
}

#[test]
fn gemm_wrapper_matches_naive_loop_in_every_transpose() {
    let mut rng = Rng::seed(7);
    for &(m, k, n) in &[
        (1, 1, 1),
        (5, 1, 7),
        (3, 5, 2),
        (17, 33, 9),
        (70, 80, 90),
        (4, 0, 3),
        // One row: the dot-product path when b is transposed.
        (1, 13, 9),
        (1, 40, 17),
    ] {
        let a: Tensor<f64> = rng.normal(&[m, k], 0.0, 1.0);
        let b: Tensor<f64> = rng.normal(&[k, n], 0.0, 1.0);
        let want = naive(&a, &b);
        assert!(a.matmul(&b).unwrap().allclose(&want, 1e-12, 1e-12));
        let at = a.transpose().unwrap();
        let bt = b.transpose().unwrap();
        assert!(at
            .matmul_t(Transpose::Yes, &b, Transpose::No)
            .unwrap()
            .allclose(&want, 1e-12, 1e-12));
        assert!(a
            .matmul_t(Transpose::No, &bt, Transpose::Yes)
            .unwrap()
            .allclose(&want, 1e-12, 1e-12));
        assert!(at
            .matmul_t(Transpose::Yes, &bt, Transpose::Yes)
            .unwrap()
            .allclose(&want, 1e-12, 1e-12));
        let mut acc = want.clone();
        gemm_into(&mut acc, &a, Transpose::No, &b, Transpose::No, true).unwrap();
        assert!(acc.allclose(&want.mul_scalar(2.0), 1e-12, 1e-12));
        let mut acc = want.clone();
        gemm_into(&mut acc, &a, Transpose::No, &bt, Transpose::Yes, true).unwrap();
        assert!(acc.allclose(&want.mul_scalar(2.0), 1e-12, 1e-12));
    }
}

#[test]
fn large_parallel_products_are_correct_and_identical_on_any_thread_count() {
    let mut rng = Rng::seed(11);
    // ≥ 2^24 multiply-adds, so gemm splits them across the threads of the pool.
    for &(m, k, n) in &[(300, 256, 300), (100, 400, 700)] {
        let a: Tensor<f64> = rng.normal(&[m, k], 0.0, 1.0);
        let bt: Tensor<f64> = rng.normal(&[n, k], 0.0, 1.0);
        let want = naive(&a, &bt.transpose().unwrap());
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| a.matmul_t(Transpose::No, &bt, Transpose::Yes).unwrap())
        };
        let (one, two) = (run(1), run(2));
        assert!(one.allclose(&want, 1e-12, 1e-10));
        assert_eq!(one, two, "1 and 2 threads must agree bit for bit");
        let (a32, b32) = (a.cast::<f32>(), bt.cast::<f32>());
        let run32 = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| a32.matmul_t(Transpose::No, &b32, Transpose::Yes).unwrap())
        };
        assert_eq!(run32(1), run32(2));
    }
}

/// `x` (rows of columns) with zeros in every eight-column strip `s` of
/// row `r` but where `live(r, s)`, as in images.
fn strips_zeroed(x: Tensor<f64>, live: impl Fn(usize, usize) -> bool) -> Tensor<f64> {
    let cols = x.dims()[1];
    let values = x.data().iter().enumerate();
    let values = values.map(|(e, &v)| if live(e / cols, e % cols / 8) { v } else { 0.0 });
    Tensor::from_vec(values.collect(), x.dims()).unwrap()
}

/// A weight gradient `dZᵀ · X` on inputs that are mostly zeros goes to
/// the kernel that skips them; forward `X · Wᵀ` on them lists them:
/// both agree with the f64 definition.
#[test]
fn products_of_mostly_zero_inputs_match_f64() {
    let mut rng = Rng::seed(3);
    let (rows, ins, outs) = (50, 100, 30);
    let dz: Tensor<f64> = rng.normal(&[rows, outs], 0.0, 1.0);
    let w: Tensor<f64> = rng.normal(&[outs, ins], 0.0, 1.0);
    // Two in three eight-column strips zero, as in an image.
    let x = strips_zeroed(rng.normal(&[rows, ins], 0.0, 1.0), |r, s| (s + r) % 3 == 0);
    assert!(super::zeros::mostly_sparse(x.data(), (rows, ins)));
    let dw = naive(&dz.transpose().unwrap(), &x);
    let got = dz
        .cast::<f32>()
        .matmul_t(Transpose::Yes, &x.cast::<f32>(), Transpose::No)
        .unwrap();
    assert!(got.cast::<f64>().allclose(&dw, 1e-4, 1e-4));
    let y = naive(&x, &w.transpose().unwrap());
    let got = x
        .cast::<f32>()
        .matmul_t(Transpose::No, &w.cast::<f32>(), Transpose::Yes)
        .unwrap();
    assert!(got.cast::<f64>().allclose(&y, 1e-4, 1e-4));
}

/// Up to four rows of mostly zeros times weights stored `[in, out]`
/// (an image through a layer prepared for inference) go to the kernel
/// that adds one weight row per nonzero input; five rows, or dense rows,
/// do not. All agree with the f64 definition, accumulating too.
#[test]
fn a_few_mostly_zero_rows_times_input_major_weights_match_f64() {
    let mut rng = Rng::seed(5);
    let (ins, outs) = (300, 100);
    let w: Tensor<f64> = rng.normal(&[ins, outs], 0.0, 1.0);
    for rows in 1..=5 {
        let x = strips_zeroed(rng.normal(&[rows, ins], 0.0, 1.0), |_, s| s % 3 == 1);
        let (x32, w32) = (x.cast::<f32>(), w.cast::<f32>());
        assert_eq!(
            input_major_pays(&x32),
            rows <= super::plan::AXPY_MAX_ROWS,
            "{rows} rows"
        );
        let want = naive(&x, &w);
        let got = x32.matmul(&w32).unwrap();
        assert!(got.cast::<f64>().allclose(&want, 1e-4, 1e-4), "{rows} rows");
        if input_major_pays(&x32) {
            let told = x32.matmul_input_major(&w32).unwrap();
            assert_eq!(told, got, "{rows} rows: the same plan, told or asked");
        }
        let mut acc = got.clone();
        gemm_into(&mut acc, &x32, Transpose::No, &w32, Transpose::No, true).unwrap();
        let twice = want.mul_scalar(2.0);
        assert!(
            acc.cast::<f64>().allclose(&twice, 1e-4, 1e-4),
            "{rows} rows"
        );
    }
    let dense: Tensor<f32> = rng.normal(&[1, ins], 0.0, 1.0);
    assert!(!input_major_pays(&dense));
}

/// Many rows of mostly zeros times `Wᵀ` (inference on a large batch of
/// images) go to the dot products in chunks shared between threads:
/// the same bits on one thread and two, and the f64 definition.
#[test]
fn large_mostly_zero_products_are_identical_on_any_thread_count() {
    let mut rng = Rng::seed(12);
    // ≥ 2^24 multiply-adds, too many for one thread: fewer rows than
    // the dot products take at once (256), and many chunks with a
    // partial last one.
    for &(m, k, n) in &[(200, 300, 300), (1000, 784, 30)] {
        let x = strips_zeroed(rng.normal(&[m, k], 0.0, 1.0), |r, s| (s + r) % 3 == 0);
        assert!(super::zeros::mostly_sparse(x.data(), (m, k)));
        let w: Tensor<f64> = rng.normal(&[n, k], 0.0, 1.0);
        let want = naive(&x, &w.transpose().unwrap());
        let (x32, w32) = (x.cast::<f32>(), w.cast::<f32>());
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| x32.matmul_t(Transpose::No, &w32, Transpose::Yes).unwrap())
        };
        let (one, two) = (run(1), run(2));
        assert!(one.cast::<f64>().allclose(&want, 1e-4, 1e-4), "{m}×{k}×{n}");
        assert_eq!(one, two, "1 and 2 threads must agree bit for bit");
        // Row by row, as a batch of one each: the same bits again.
        let row = Tensor::from_vec(x32.data()[(m - 1) * k..].to_vec(), &[1, k]).unwrap();
        let last = row.matmul_t(Transpose::No, &w32, Transpose::Yes).unwrap();
        assert_eq!(last.data(), &one.data()[(m - 1) * n..]);
    }
}

/// Many rows of mostly zeros times weights stored `[in, out]` (a batch of
/// images through a layer prepared for inference) go to the tiled kernel:
/// the f64 definition, accumulating too, the same bits on one thread and
/// two, and each row the bits it gets alone (the row-by-row kernel).
#[test]
fn many_mostly_zero_rows_times_input_major_weights_are_tiled() {
    let mut rng = Rng::seed(13);
    // One thread's share and more than 2^24 multiply-adds; a partial chunk.
    for &(m, k, n) in &[(64, 300, 100), (1000, 784, 30), (130, 200, 700)] {
        let x = strips_zeroed(rng.normal(&[m, k], 0.0, 1.0), |r, s| (s + r) % 3 == 0);
        let (x32, w) = (x.cast::<f32>(), rng.normal(&[k, n], 0.0, 1.0));
        let w32 = w.cast::<f32>();
        assert!(input_major_pays(&x32), "{m}×{k}×{n}");
        let want = naive(&x, &w);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| x32.matmul(&w32).unwrap())
        };
        let (one, two) = (run(1), run(2));
        assert!(one.cast::<f64>().allclose(&want, 1e-4, 1e-4), "{m}×{k}×{n}");
        assert_eq!(one, two, "1 and 2 threads must agree bit for bit");
        let told = x32.matmul_input_major(&w32).unwrap();
        assert_eq!(told, two, "{m}×{k}×{n}: the same plan, told or asked");
        for i in [0, m / 2, m - 1] {
            let row = Tensor::from_vec(x32.data()[i * k..][..k].to_vec(), &[1, k]).unwrap();
            let alone = row.matmul(&w32).unwrap();
            assert_eq!(alone.data(), &one.data()[i * n..][..n], "row {i}");
        }
        let mut acc = one.clone();
        gemm_into(&mut acc, &x32, Transpose::No, &w32, Transpose::No, true).unwrap();
        let twice = want.mul_scalar(2.0);
        assert!(
            acc.cast::<f64>().allclose(&twice, 1e-4, 1e-4),
            "{m}×{k}×{n} +="
        );
    }
}

#[test]
fn f32_matches_f64() {
    let mut rng = Rng::seed(1);
    let a: Tensor<f64> = rng.normal(&[9, 4], 0.0, 1.0);
    let b: Tensor<f64> = rng.normal(&[4, 6], 0.0, 1.0);
    let want = naive(&a, &b);
    let got = a.cast::<f32>().matmul(&b.cast::<f32>()).unwrap();
    assert!(got.cast::<f64>().allclose(&want, 1e-5, 1e-5));
}

#[test]
fn mismatched_inner_dimensions_are_an_error() {
    let a = Tensor::<f32>::zeros(&[2, 3]);
    let err = a.matmul(&a).unwrap_err();
    assert_eq!(
        err.to_string(),
        "matmul: shapes [2, 3] and [2, 3] are not compatible"
    );
    assert!(Tensor::<f32>::zeros(&[3]).matmul(&a).is_err());
}
