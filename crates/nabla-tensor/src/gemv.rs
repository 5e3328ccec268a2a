//! One row times a matrix stored row by row, `x · Wᵀ`: a layer's forward
//! product at batch 1.
//!
//! The GEMM library packs both operands before it multiplies, which for a
//! single row costs as much as the products themselves (a 784 × 100 layer
//! took 4.4 µs, several times what reading its weights once takes). Here
//! each block of eight weight rows is read once, in place, against the row
//! in vector registers, and the eight sums come out of one horizontal add.
//! The order of every sum is fixed, so results do not depend on threads.
//!
//! Its transpose at batch 1, the weight gradient `dYᵀ · x`, is an outer
//! product ([`outer`]): no sums at all, only a pass writing the gradient.

#[cfg(target_arch = "x86_64")]
use crate::simd::{as_f32, level, Avx, Level};
use crate::simd::{Lanes, LANES};
use crate::Float;

/// `out[j] = Σ_p x[p] · w[j·k + p]` for `j < n`, with `k = x.len()` (or
/// `out[j] += …` with `accumulate`).
///
/// # Safety
/// `out` must be valid for writes of `n` elements, and for reads too with
/// `accumulate`; without it they may be uninitialised. It must not overlap
/// `x` or `w`.
///
/// # Panics
/// If `w.len() != k · n` (a bug in the caller).
pub(crate) unsafe fn dot_rows<T: Float>(x: &[T], w: &[T], out: *mut T, n: usize, accumulate: bool) {
    assert_eq!(w.len(), x.len() * n, "dot_rows: weight length");
    if n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let (Some(x32), Some(w32)) = (as_f32(x), as_f32(w)) {
        if level() != Level::Plain {
            // SAFETY: the CPU has AVX2 and FMA; T is f32, so `out` points to
            // f32; the caller's promise covers the rest.
            return unsafe { dot_rows_avx(x32, w32, out.cast(), n, accumulate) };
        }
    }
    // SAFETY: the caller's promise.
    unsafe { dot_rows_with::<T, [T; LANES]>(x, w, out, n, accumulate) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_rows_avx(x: &[f32], w: &[f32], out: *mut f32, n: usize, accumulate: bool) {
    // SAFETY: the caller's promise.
    unsafe { dot_rows_with::<f32, Avx>(x, w, out, n, accumulate) }
}

/// [`dot_rows`] over `V`: blocks of [`LANES`] rows, one accumulator each.
#[inline(always)]
unsafe fn dot_rows_with<T: Float, V: Lanes<T>>(
    x: &[T],
    w: &[T],
    out: *mut T,
    n: usize,
    accumulate: bool,
) {
    let k = x.len();
    let full = k / LANES * LANES;
    for j0 in (0..n).step_by(LANES) {
        // A block past the last row repeats it; its sums are not kept.
        let rows: [&[T]; LANES] = std::array::from_fn(|r| &w[(j0 + r).min(n - 1) * k..][..k]);
        let mut acc = [V::zero(); LANES];
        for p in (0..full).step_by(LANES) {
            // SAFETY: `p + LANES <= k`, inside `x` and inside every row.
            let xv = unsafe { V::load(x.as_ptr().add(p)) };
            for (a, row) in acc.iter_mut().zip(&rows) {
                *a = a.madd(xv, unsafe { V::load(row.as_ptr().add(p)) });
            }
        }
        if full < k {
            let xv = V::load_partial(&x[full..]);
            for (a, row) in acc.iter_mut().zip(&rows) {
                *a = a.madd(xv, V::load_partial(&row[full..]));
            }
        }
        let sums = V::sums(acc);
        for (r, s) in sums.into_iter().enumerate() {
            if j0 + r < n {
                // SAFETY: `j0 + r < n`, inside `out` by the caller's promise.
                unsafe {
                    let at = out.add(j0 + r);
                    at.write(if accumulate { *at + s } else { s });
                }
            }
        }
    }
}

/// `out[i·n + j] = a[i] · b[j]` for `i < a.len()`, `j < n = b.len()` (or
/// `+=` with `accumulate`): the product of a column and a row.
///
/// # Safety
/// As [`dot_rows`], for `a.len() · n` elements of `out`.
pub(crate) unsafe fn outer<T: Float>(a: &[T], b: &[T], out: *mut T, accumulate: bool) {
    #[cfg(target_arch = "x86_64")]
    if let (Some(a32), Some(b32)) = (as_f32(a), as_f32(b)) {
        if level() != Level::Plain {
            // SAFETY: the CPU has AVX2 and FMA; T is f32; the caller's promise.
            return unsafe { outer_avx(a32, b32, out.cast(), accumulate) };
        }
    }
    // SAFETY: the caller's promise.
    unsafe { outer_with::<T, [T; LANES]>(a, b, out, accumulate) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn outer_avx(a: &[f32], b: &[f32], out: *mut f32, accumulate: bool) {
    // SAFETY: the caller's promise.
    unsafe { outer_with::<f32, Avx>(a, b, out, accumulate) }
}

/// [`outer`] over `V`, a row of `out` at a time.
#[inline(always)]
unsafe fn outer_with<T: Float, V: Lanes<T>>(a: &[T], b: &[T], out: *mut T, accumulate: bool) {
    let n = b.len();
    let full = n / LANES * LANES;
    for (i, &a_i) in a.iter().enumerate() {
        let s = V::splat(a_i);
        // SAFETY: row `i` of `out` holds `n` elements (the caller's promise).
        let row = unsafe { out.add(i * n) };
        for j in (0..full).step_by(LANES) {
            // SAFETY: `j + LANES <= n`, inside `b` and the row.
            unsafe {
                let bv = V::load(b.as_ptr().add(j));
                let v = if accumulate {
                    V::load(row.add(j)).madd(s, bv)
                } else {
                    V::zero().madd(s, bv)
                };
                v.store(row.add(j));
            }
        }
        for (j, &b_j) in b.iter().enumerate().skip(full) {
            // SAFETY: `j < n`, inside the row.
            unsafe {
                let at = row.add(j);
                at.write(if accumulate {
                    *at + a_i * b_j
                } else {
                    a_i * b_j
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f64], w: &[f64], n: usize) -> Vec<f64> {
        let k = x.len();
        (0..n)
            .map(|j| (0..k).map(|p| x[p] * w[j * k + p]).sum())
            .collect()
    }

    fn values(len: usize, seed: usize) -> Vec<f64> {
        (0..len)
            .map(|i| (((i * 29 + seed * 7) % 19) as f64 - 9.0) / 4.0)
            .collect()
    }

    /// Row counts and lengths that do and do not fill a block and a vector.
    const SHAPES: [(usize, usize); 6] = [(784, 100), (8, 8), (13, 3), (2, 17), (100, 10), (1, 9)];

    #[test]
    fn dot_rows_match_the_definition_and_accumulate() {
        for (k, n) in SHAPES {
            let (x, w) = (values(k, 1), values(k * n, 2));
            let want = naive(&x, &w, n);
            let mut out = vec![f64::NAN; n];
            unsafe { dot_rows(&x, &w, out.as_mut_ptr(), n, false) };
            let mut again = vec![1.0; n];
            unsafe { dot_rows(&x, &w, again.as_mut_ptr(), n, true) };
            for j in 0..n {
                assert!((out[j] - want[j]).abs() < 1e-9, "{k}×{n}: out[{j}]");
                assert!(
                    (again[j] - 1.0 - want[j]).abs() < 1e-9,
                    "{k}×{n}: += at {j}"
                );
            }
            // f32 on the vector path where the CPU has one.
            let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
            let mut out32 = vec![f32::NAN; n];
            unsafe { dot_rows(&x32, &w32, out32.as_mut_ptr(), n, false) };
            for j in 0..n {
                let tol = 1e-4 * (1.0 + want[j].abs());
                assert!(
                    (f64::from(out32[j]) - want[j]).abs() < tol,
                    "{k}×{n}: f32 out[{j}]"
                );
            }
        }
    }

    #[test]
    fn outer_products_match_the_definition_and_accumulate() {
        for (m, n) in SHAPES {
            let (a, b) = (values(m, 3), values(n, 4));
            let mut out = vec![f64::NAN; m * n];
            unsafe { outer(&a, &b, out.as_mut_ptr(), false) };
            let mut again = vec![1.0; m * n];
            unsafe { outer(&a, &b, again.as_mut_ptr(), true) };
            let (a32, b32): (Vec<f32>, Vec<f32>) = (
                a.iter().map(|&v| v as f32).collect(),
                b.iter().map(|&v| v as f32).collect(),
            );
            let mut out32 = vec![f32::NAN; m * n];
            unsafe { outer(&a32, &b32, out32.as_mut_ptr(), false) };
            for i in 0..m {
                for j in 0..n {
                    let want = a[i] * b[j];
                    assert_eq!(out[i * n + j], want, "{m}×{n}: ({i}, {j})");
                    assert_eq!(again[i * n + j], 1.0 + want, "{m}×{n}: += ({i}, {j})");
                    assert_eq!(f64::from(out32[i * n + j]), want, "{m}×{n}: f32 ({i}, {j})");
                }
            }
        }
    }
}
