//! Dot products of rows read in place, without the GEMM library's packing:
//! a few rows times a matrix stored row by row, `x · Wᵀ` (a layer's forward
//! product on a shard of a batch, or at batch 1).
//!
//! The GEMM library packs both operands before it multiplies, which for a
//! single row costs as much as the products themselves, and for a shard of
//! 50 rows a large part of the product's time (`docs/performance.md`). Here
//! both operands' rows are contiguous along the sum, so a block of rows of
//! `x` and a block of weight rows are read in place into vector registers,
//! and each block's sums come out of horizontal adds. The order of every sum
//! is fixed, so results do not depend on threads or on the block an element
//! falls in.
//!
//! Where `x` is mostly zeros (an image: 81% of MNIST's pixels are 0) the
//! sums skip the eight-column vectors that are zero in every row of a
//! block, without changing a bit ([`mostly_sparse`] decides).

#[cfg(target_arch = "x86_64")]
use super::dot_pairs::Pairs;
use super::zeros::mostly_sparse;
#[cfg(target_arch = "x86_64")]
use crate::simd::{as_f32, Avx, Kernel, SimdLevel};
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
        match Kernel::DotProducts.level() {
            SimdLevel::Plain => {}
            _ if m == 1 => return unsafe { dot_avx::<1, 8>(a32, b32, out, shape, accumulate) },
            SimdLevel::Avx512 => return unsafe { dot_avx512(a32, b32, out, shape, accumulate) },
            SimdLevel::Avx2 => return unsafe { dot_avx::<2, 4>(a32, b32, out, shape, accumulate) },
        }
    }
    // SAFETY: the caller's promise.
    unsafe {
        if m == 1 {
            dot_with::<T, [T; LANES], Lanewise<[T; LANES]>, 1, 8>(a, b, out, shape, accumulate)
        } else {
            dot_with::<T, [T; LANES], Lanewise<[T; LANES]>, 2, 4>(a, b, out, shape, accumulate)
        }
    }
}

/// Whether [`dot_products`] runs in vector registers for `T` on this CPU
/// (f32 with AVX2 and FMA). Elsewhere it is plain arrays, which beat the
/// GEMM library's packing only for a single row.
pub(crate) fn dot_is_vectorised<T: Float>() -> bool {
    #[cfg(target_arch = "x86_64")]
    if as_f32::<T>(&[]).is_some() && Kernel::DotProducts.level() != SimdLevel::Plain {
        return true;
    }
    false
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,popcnt")]
unsafe fn dot_avx<const R: usize, const C: usize>(
    a: &[f32],
    b: &[f32],
    out: *mut f32,
    shape: (usize, usize, usize),
    accumulate: bool,
) {
    // SAFETY: the caller's promise.
    unsafe { dot_with::<f32, Avx, Lanewise<Avx>, R, C>(a, b, out, shape, accumulate) }
}

/// With 32 vector registers of sixteen lanes: blocks of 4 rows of `a` × 8
/// rows of `b`, two rows of `a` to a register ([`Pairs`]), giving the
/// eight-lane kernel's bits. Products with few rows of `b` (a layer of 10
/// outputs) keep blocks of 4 × 6 eight-lane vectors, which waste fewer
/// rows past the last.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,popcnt,avx512f,avx512vl")]
unsafe fn dot_avx512(
    a: &[f32],
    b: &[f32],
    out: *mut f32,
    shape: (usize, usize, usize),
    accumulate: bool,
) {
    // SAFETY: the caller's promise.
    unsafe {
        if shape.2 < PAIRS_MIN_COLUMNS {
            dot_with::<f32, Avx, Lanewise<Avx>, 4, 6>(a, b, out, shape, accumulate)
        } else {
            dot_with::<f32, Avx, Pairs, 4, 8>(a, b, out, shape, accumulate)
        }
    }
}

/// The fewest rows of `b` for which the AVX-512 dot products pair rows of
/// `a` in sixteen lanes (`docs/performance.md`).
#[cfg(target_arch = "x86_64")]
const PAIRS_MIN_COLUMNS: usize = 24;

/// Longest rows, in vectors, for which [`dot_with`] lists the vectors of a
/// block of rows that are not all zero (the list lives on the stack).
const LIVE_MAX_VECTORS: usize = 1024;

/// One block of [`dot_with`]: rows `i0..i0 + R` of `a` against rows
/// `j0..j0 + C` of `b` (given as slices of `k`), over the eight-column
/// vectors listed in `live` (all when `None`) and the partial vector after
/// them, each element's sum in eight lanes added up by [`Lanes::sums`].
pub(super) trait Block<T: Float, const R: usize, const C: usize> {
    /// Computes the block into `out` (`m × n`).
    ///
    /// # Safety
    /// `out` must be valid for reads (with `accumulate`) and writes of
    /// `m·n` elements, and the CPU must have the block's instructions.
    #[allow(clippy::too_many_arguments)]
    unsafe fn run(
        a_rows: &[&[T]; R],
        b_rows: &[&[T]; C],
        live: Option<&[u32]>,
        at: (usize, usize),
        size: (usize, usize),
        out: *mut T,
        accumulate: bool,
    );
}

/// [`dot_block`]: each accumulator one vector of `V` (the plain and AVX2
/// paths).
pub(super) struct Lanewise<V>(std::marker::PhantomData<V>);

impl<T: Float, V: Lanes<T>, const R: usize, const C: usize> Block<T, R, C> for Lanewise<V> {
    #[inline(always)]
    unsafe fn run(
        a_rows: &[&[T]; R],
        b_rows: &[&[T]; C],
        live: Option<&[u32]>,
        at: (usize, usize),
        size: (usize, usize),
        out: *mut T,
        accumulate: bool,
    ) {
        // SAFETY: the caller's promise.
        unsafe { dot_block::<T, V, R, C>(a_rows, b_rows, live, at, size, out, accumulate) }
    }
}

/// [`dot_products`] over `V`, in blocks of `R` rows of `a` × `C` rows of
/// `b` computed by `B`: `R·C` accumulators (a multiple of [`LANES`]) stay
/// in registers while the block sweeps `k`, each step loading `R + C`
/// vectors for `R·C` multiply-adds. A block past the last row repeats it;
/// its sums are not kept.
///
/// Where `a` is mostly zeros ([`mostly_sparse`]: a layer that sees images)
/// each block of its rows first lists the vectors (eight columns) where one
/// of its rows is not zero, and the sweeps visit only those: an MNIST image
/// is 81% zero pixels, and two in five of the eight-pixel vectors of four
/// images are zero in all four. The loop over `a`'s blocks is then the
/// outer one, so that each list is made once; otherwise it is the inner
/// one, which keeps a block of `b` in the first-level cache (faster on
/// dense rows).
///
/// Skipping changes no bit: every accumulator starts at +0 and so can never
/// be -0 (round to nearest gives +0 for an exact cancellation), so adding a
/// zero product leaves it as it was. The one exception is a weight that is
/// infinite or NaN facing a zero input: its product, NaN, is skipped.
#[inline(always)]
unsafe fn dot_with<T: Float, V: Lanes<T>, B: Block<T, R, C>, const R: usize, const C: usize>(
    a: &[T],
    b: &[T],
    out: *mut T,
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
) {
    debug_assert_eq!(R * C % LANES, 0);
    let full = k / LANES * LANES;
    let a_rows =
        |i0: usize| -> [&[T]; R] { std::array::from_fn(|r| &a[(i0 + r).min(m - 1) * k..][..k]) };
    let b_rows =
        |j0: usize| -> [&[T]; C] { std::array::from_fn(|c| &b[(j0 + c).min(n - 1) * k..][..k]) };
    if full / LANES > LIVE_MAX_VECTORS || !mostly_sparse(a, (m, k)) {
        for j0 in (0..n).step_by(C) {
            let b_rows = b_rows(j0);
            for i0 in (0..m).step_by(R) {
                let a_rows = a_rows(i0);
                // SAFETY: the caller's promise on `out`.
                unsafe { B::run(&a_rows, &b_rows, None, (i0, j0), (m, n), out, accumulate) };
            }
        }
        return;
    }
    let mut live = [0u32; LIVE_MAX_VECTORS];
    for i0 in (0..m).step_by(R) {
        let a_rows = a_rows(i0);
        let mut len = 0;
        for p in (0..full).step_by(LANES) {
            let mut any = false;
            for row in &a_rows {
                // SAFETY: `p + LANES <= k`, inside the row.
                any |= unsafe { V::load(row.as_ptr().add(p)) }.any_nonzero();
            }
            live[len] = p as u32;
            len += usize::from(any);
        }
        for j0 in (0..n).step_by(C) {
            let b_rows = b_rows(j0);
            let live = Some(&live[..len]);
            // SAFETY: the caller's promise on `out`.
            unsafe { B::run(&a_rows, &b_rows, live, (i0, j0), (m, n), out, accumulate) };
        }
    }
}

/// [`Block`] with each accumulator one vector of `V`.
///
/// # Safety
/// `out` must be valid for reads (with `accumulate`) and writes of `m·n`
/// elements.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn dot_block<T: Float, V: Lanes<T>, const R: usize, const C: usize>(
    a_rows: &[&[T]; R],
    b_rows: &[&[T]; C],
    live: Option<&[u32]>,
    (i0, j0): (usize, usize),
    (m, n): (usize, usize),
    out: *mut T,
    accumulate: bool,
) {
    let k = a_rows[0].len();
    let full = k / LANES * LANES;
    let mut acc = [[V::zero(); C]; R];
    let mut sweep = |p: usize| {
        // SAFETY: `p + LANES <= k`, inside every row.
        let xs: [V; R] = std::array::from_fn(|r| unsafe { V::load(a_rows[r].as_ptr().add(p)) });
        for c in 0..C {
            // SAFETY: as above.
            let wv = unsafe { V::load(b_rows[c].as_ptr().add(p)) };
            for r in 0..R {
                acc[r][c] = acc[r][c].madd(xs[r], wv);
            }
        }
    };
    match live {
        Some(live) => {
            for &p in live {
                sweep(p as usize);
            }
        }
        None => {
            for p in (0..full).step_by(LANES) {
                sweep(p);
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
    // SAFETY: the caller's promise.
    unsafe { store_sums(&acc, (i0, j0), (m, n), out, accumulate) }
}

/// Each accumulator's lanes added up by [`Lanes::sums`] into its element of
/// `out` (`m × n`): rows `i0..i0 + R`, columns `j0..j0 + C`, those past the
/// last row or column left out. The one tree every block's sums go
/// through, so that no block changes an element's bits.
///
/// # Safety
/// `out` must be valid for reads (with `accumulate`) and writes of `m·n`
/// elements.
#[inline(always)]
pub(super) unsafe fn store_sums<T: Float, V: Lanes<T>, const R: usize, const C: usize>(
    acc: &[[V; C]; R],
    (i0, j0): (usize, usize),
    (m, n): (usize, usize),
    out: *mut T,
    accumulate: bool,
) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matmul::test_values::{naive, sparse, to_f32, values, SHAPES};
    use crate::matmul::zeros::mostly_sparse;

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

    /// AVX-512's blocks (rows of `a` paired in sixteen lanes, or eight-lane
    /// blocks for few rows of `b`) give AVX2's bits, dense and mostly zero,
    /// with and without a partial vector, accumulating or not.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_gives_avx2_bits() {
        if crate::detected_simd_level() < SimdLevel::Avx512 {
            return;
        }
        for (m, k, n) in [
            (9, 203, 30),
            (50, 784, 100),
            (5, 64, 24),
            (7, 8, 10),
            (3, 5, 40),
        ] {
            for zeros in [false, true] {
                let a = to_f32(&if zeros {
                    sparse(m * k, 3)
                } else {
                    values(m * k, 3)
                });
                let b = to_f32(&values(k * n, 4));
                for accumulate in [false, true] {
                    let (mut wide, mut narrow) = (vec![0.5f32; m * n], vec![0.5f32; m * n]);
                    // SAFETY: the CPU has both levels; `m·n` elements each.
                    unsafe {
                        dot_avx512(&a, &b, wide.as_mut_ptr(), (m, k, n), accumulate);
                        dot_avx::<2, 4>(&a, &b, narrow.as_mut_ptr(), (m, k, n), accumulate);
                    }
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&wide), bits(&narrow), "{m}×{k}×{n}, zeros {zeros}");
                }
            }
        }
    }

    /// Zero vectors are skipped without changing a bit: a row alone (its
    /// own list of vectors) gets the bits it gets in a block of four (the
    /// union of their lists), on mostly zero rows.
    #[test]
    fn skipping_zero_vectors_changes_no_bit() {
        let (m, k, n) = (9, 203, 13);
        let (a, b) = (to_f32(&sparse(m * k, 1)), to_f32(&values(k * n, 6)));
        assert!(mostly_sparse(&a, (m, k)));
        let mut all = vec![f32::NAN; m * n];
        unsafe { dot_products(&a, &b, all.as_mut_ptr(), (m, k, n), false) };
        let want = naive(&sparse(m * k, 1), &values(k * n, 6), (m, k, n));
        for i in 0..m {
            let mut one = vec![f32::NAN; n];
            unsafe { dot_products(&a[i * k..][..k], &b, one.as_mut_ptr(), (1, k, n), false) };
            assert_eq!(&all[i * n..][..n], &one[..], "row {i}");
            for j in 0..n {
                let tol = 1e-4 * (1.0 + want[i * n + j].abs());
                assert!(
                    (f64::from(one[j]) - want[i * n + j]).abs() < tol,
                    "({i}, {j})"
                );
            }
        }
    }
}
