//! Products read in place, without the GEMM library's packing: a few rows
//! times a matrix stored row by row, `x · Wᵀ` (a layer's forward product on
//! a shard of a batch, or at batch 1), and the outer product.
//!
//! The GEMM library packs both operands before it multiplies. For a single
//! row that costs as much as the products themselves (a 784 × 100 layer took
//! 4.4 µs, several times what reading its weights once takes), and for a
//! shard of 50 rows about a quarter of the product's time. Here both
//! operands' rows are contiguous along the sum, so a block of rows of `x`
//! and a block of weight rows are read in place into vector registers, and
//! each block's sums come out of horizontal adds. The order of every sum is
//! fixed, so results do not depend on threads or on the block an element
//! falls in.
//!
//! The transpose at batch 1, the weight gradient `dYᵀ · x`, is an outer
//! product ([`outer`]): no sums at all, only a pass writing the gradient.

#[cfg(target_arch = "x86_64")]
use crate::simd::{as_f32, level, Avx, Level};
use crate::simd::{Lanes, LANES};
use crate::Float;

/// `out[i·n + j] = Σ_p a[i·k + p] · b[j·k + p]` for `i < m`, `j < n`: the
/// rows of `a` (m × k) against the rows of `b` (n × k), or `out[…] += …`
/// with `accumulate`.
///
/// Every sum runs over `p` in the same order, eight lanes at a time, and
/// its lanes are added up by one fixed tree, whatever the block an element
/// falls in: the result of an element does not depend on `m` or `n`.
///
/// # Safety
/// `out` must be valid for writes of `m·n` elements, and for reads too with
/// `accumulate`; without it they may be uninitialised. It must not overlap
/// `a` or `b`.
///
/// # Panics
/// If `a.len() != m·k` or `b.len() != n·k` (a bug in the caller).
pub(crate) unsafe fn dot_products<T: Float>(
    a: &[T],
    b: &[T],
    out: *mut T,
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
) {
    assert_eq!(a.len(), m * k, "dot_products: left length");
    assert_eq!(b.len(), n * k, "dot_products: right length");
    if m == 0 || n == 0 {
        return;
    }
    let shape = (m, k, n);
    #[cfg(target_arch = "x86_64")]
    if let (Some(a32), Some(b32)) = (as_f32(a), as_f32(b)) {
        let out = out.cast();
        // SAFETY (all three): the CPU has what each function is compiled
        // for; T is f32, so `out` points to f32; the caller's promise.
        match level() {
            Level::Plain => {}
            _ if m == 1 => return unsafe { dot_avx::<1, 8>(a32, b32, out, shape, accumulate) },
            Level::Avx512 => return unsafe { dot_avx512(a32, b32, out, shape, accumulate) },
            Level::Avx2 => return unsafe { dot_avx::<2, 4>(a32, b32, out, shape, accumulate) },
        }
    }
    // SAFETY: the caller's promise.
    unsafe {
        if m == 1 {
            dot_with::<T, [T; LANES], 1, 8>(a, b, out, shape, accumulate)
        } else {
            dot_with::<T, [T; LANES], 2, 4>(a, b, out, shape, accumulate)
        }
    }
}

/// Whether [`dot_products`] runs in vector registers for `T` on this CPU
/// (f32 with AVX2 and FMA). Elsewhere it is plain arrays, which beat the
/// GEMM library's packing only for a single row.
pub(crate) fn dot_is_vectorised<T: Float>() -> bool {
    #[cfg(target_arch = "x86_64")]
    if as_f32::<T>(&[]).is_some() && level() != Level::Plain {
        return true;
    }
    false
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx<const R: usize, const C: usize>(
    a: &[f32],
    b: &[f32],
    out: *mut f32,
    shape: (usize, usize, usize),
    accumulate: bool,
) {
    // SAFETY: the caller's promise.
    unsafe { dot_with::<f32, Avx, R, C>(a, b, out, shape, accumulate) }
}

/// With 32 vector registers: blocks of 4 rows of `a` × 6 rows of `b`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
unsafe fn dot_avx512(
    a: &[f32],
    b: &[f32],
    out: *mut f32,
    shape: (usize, usize, usize),
    accumulate: bool,
) {
    // SAFETY: the caller's promise.
    unsafe { dot_with::<f32, Avx, 4, 6>(a, b, out, shape, accumulate) }
}

/// [`dot_products`] over `V`, in blocks of `R` rows of `a` × `C` rows of
/// `b`: `R·C` accumulators (a multiple of [`LANES`]) stay in registers
/// while the block sweeps `k`, each step loading `R + C` vectors for `R·C`
/// multiply-adds. A block past the last row repeats it; its sums are not
/// kept.
#[inline(always)]
unsafe fn dot_with<T: Float, V: Lanes<T>, const R: usize, const C: usize>(
    a: &[T],
    b: &[T],
    out: *mut T,
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
) {
    debug_assert_eq!(R * C % LANES, 0);
    let full = k / LANES * LANES;
    for j0 in (0..n).step_by(C) {
        let b_rows: [&[T]; C] = std::array::from_fn(|c| &b[(j0 + c).min(n - 1) * k..][..k]);
        for i0 in (0..m).step_by(R) {
            let a_rows: [&[T]; R] = std::array::from_fn(|r| &a[(i0 + r).min(m - 1) * k..][..k]);
            let mut acc = [[V::zero(); C]; R];
            for p in (0..full).step_by(LANES) {
                // SAFETY: `p + LANES <= k`, inside every row.
                let xs: [V; R] =
                    std::array::from_fn(|r| unsafe { V::load(a_rows[r].as_ptr().add(p)) });
                for c in 0..C {
                    // SAFETY: as above.
                    let wv = unsafe { V::load(b_rows[c].as_ptr().add(p)) };
                    for r in 0..R {
                        acc[r][c] = acc[r][c].madd(xs[r], wv);
                    }
                }
            }
            if full < k {
                let xs: [V; R] = std::array::from_fn(|r| V::load_partial(&a_rows[r][full..]));
                for c in 0..C {
                    let wv = V::load_partial(&b_rows[c][full..]);
                    for r in 0..R {
                        acc[r][c] = acc[r][c].madd(xs[r], wv);
                    }
                }
            }
            for g in 0..R * C / LANES {
                let sums = V::sums(std::array::from_fn(|q| {
                    let e = g * LANES + q;
                    acc[e / C][e % C]
                }));
                for (q, s) in sums.into_iter().enumerate() {
                    let e = g * LANES + q;
                    let (i, j) = (i0 + e / C, j0 + e % C);
                    if i < m && j < n {
                        // SAFETY: inside `out`'s m·n elements (the caller's promise).
                        unsafe {
                            let at = out.add(i * n + j);
                            at.write(if accumulate { *at + s } else { s });
                        }
                    }
                }
            }
        }
    }
}

/// `out[i·n + j] = a[i] · b[j]` for `i < a.len()`, `j < n = b.len()` (or
/// `+=` with `accumulate`): the product of a column and a row.
///
/// # Safety
/// As [`dot_products`], for `a.len() · n` elements of `out`.
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
                // `0 + a·b` as the vector lanes compute it, so that a zero
                // product is +0 in every column.
                at.write(if accumulate { *at } else { T::ZERO } + a_i * b_j);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f64], b: &[f64], (m, k, n): (usize, usize, usize)) -> Vec<f64> {
        (0..m * n)
            .map(|e| (0..k).map(|p| a[e / n * k + p] * b[e % n * k + p]).sum())
            .collect()
    }

    fn values(len: usize, seed: usize) -> Vec<f64> {
        (0..len)
            .map(|i| (((i * 29 + seed * 7) % 19) as f64 - 9.0) / 4.0)
            .collect()
    }

    fn to_f32(v: &[f64]) -> Vec<f32> {
        v.iter().map(|&x| x as f32).collect()
    }

    /// Row counts and lengths that do and do not fill a block and a vector.
    const SHAPES: [(usize, usize); 6] = [(784, 100), (8, 8), (13, 3), (2, 17), (100, 10), (1, 9)];

    #[test]
    fn dot_products_match_the_definition_and_accumulate() {
        for (k, n) in SHAPES {
            for m in [1, 2, 5, 9] {
                let shape = (m, k, n);
                let (a, b) = (values(m * k, 1), values(k * n, 2));
                let want = naive(&a, &b, shape);
                let mut out = vec![f64::NAN; m * n];
                unsafe { dot_products(&a, &b, out.as_mut_ptr(), shape, false) };
                let mut again = vec![1.0; m * n];
                unsafe { dot_products(&a, &b, again.as_mut_ptr(), shape, true) };
                for e in 0..m * n {
                    assert!((out[e] - want[e]).abs() < 1e-9, "{shape:?}: out[{e}]");
                    assert!(
                        (again[e] - 1.0 - want[e]).abs() < 1e-9,
                        "{shape:?}: += at {e}"
                    );
                }
                // f32 on the vector path where the CPU has one.
                let mut out32 = vec![f32::NAN; m * n];
                unsafe { dot_products(&to_f32(&a), &to_f32(&b), out32.as_mut_ptr(), shape, false) };
                for e in 0..m * n {
                    let tol = 1e-4 * (1.0 + want[e].abs());
                    assert!(
                        (f64::from(out32[e]) - want[e]).abs() < tol,
                        "{shape:?}: f32 out[{e}]"
                    );
                }
            }
        }
    }

    /// Every element is summed the same way whatever block it falls in: a
    /// row of a product of many rows is bit for bit the product of that
    /// row alone (the batch-1 path), in f32 on the vector path.
    #[test]
    fn a_row_gets_the_same_bits_alone_and_in_a_block() {
        let (m, k, n) = (7, 203, 13);
        let (a, b) = (to_f32(&values(m * k, 5)), to_f32(&values(k * n, 6)));
        let mut all = vec![f32::NAN; m * n];
        unsafe { dot_products(&a, &b, all.as_mut_ptr(), (m, k, n), false) };
        for i in 0..m {
            let mut one = vec![f32::NAN; n];
            let row = &a[i * k..][..k];
            unsafe { dot_products(row, &b, one.as_mut_ptr(), (1, k, n), false) };
            assert_eq!(&all[i * n..][..n], &one[..], "row {i}");
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
