//! A few mostly-zero rows times a matrix stored row by row along the
//! *output*: `out[i, :] = Σ_p a[i, p] · b[p, :]` over the nonzero `a[i, p]`.
//!
//! This is the other way to read a layer's weights for one image. With
//! PyTorch's layout `W [out, in]` the product `x · Wᵀ` is a dot product per
//! output ([`super::dot::dot_products`]), which can skip only the
//! eight-pixel vectors of `x` that are all zero; a 784 → 100 layer then still
//! reads two in five of its weights for an MNIST digit. With the weights
//! stored `[in, out]` (`b` here) each nonzero pixel is one multiply-add of a
//! whole contiguous row into the outputs kept in registers, so the product
//! reads only the rows of the pixels that are lit: a fifth of the weights.
//!
//! Every output element is one sum over `p` in increasing order, one fused
//! multiply-add per nonzero `a[i, p]`, so it does not depend on the other
//! rows, on `m`, or on the block of columns the element falls in.

#[cfg(target_arch = "x86_64")]
use crate::simd::{as_f32, Avx, Kernel, SimdLevel};
use crate::simd::{Lanes, LANES};
use crate::Float;
use std::mem::MaybeUninit;

/// Output vectors (of [`LANES`] columns) that one pass over a row's nonzero
/// entries keeps in registers: 96 columns, a 784 → 100 layer's outputs but
/// for four, in 12 of AVX2's 16 registers.
const BLOCK_VECTORS: usize = 12;

/// The same with AVX-512's 32 registers: 192 columns, so that a row's
/// nonzero entries are swept half as often over a wide layer.
const WIDE_BLOCK_VECTORS: usize = 24;

/// The longest rows of `a` the kernel takes: a row's nonzero entries are
/// listed on the stack first.
pub(crate) const AXPY_MAX_DEPTH: usize = 4096;

/// `out[i·n + j] = Σ_p a[i·k + p] · b[p·n + j]` for `i < m`, `j < n`, over
/// the `p` where `a[i·k + p] ≠ 0`; or `out[…] += …` with `accumulate`.
///
/// Skipping a zero changes no bit (every sum starts at +0, see
/// `dot::dot_with`), but for a weight that is infinite or NaN facing a
/// zero input, whose product, NaN, is skipped.
///
/// # Safety
/// `out` must be valid for writes of `m·n` elements, and for reads too with
/// `accumulate`. It must not overlap `a` or `b`.
///
/// # Panics
/// If `a.len() != m·k`, `b.len() != k·n` or `k > AXPY_MAX_DEPTH` (a bug in
/// the caller).
pub(crate) unsafe fn sparse_rows_times<T: Float>(
    a: &[T],
    b: &[T],
    out: *mut T,
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
) {
    assert_eq!(a.len(), m * k, "sparse_rows_times: left length");
    assert_eq!(b.len(), k * n, "sparse_rows_times: right length");
    assert!(k <= AXPY_MAX_DEPTH, "sparse_rows_times: rows of {k}");
    #[cfg(target_arch = "x86_64")]
    if let (Some(a32), Some(b32)) = (as_f32(a), as_f32(b)) {
        let (out, shape) = (out.cast(), (m, k, n));
        // SAFETY (both): the CPU has what each function is compiled for;
        // T is f32, so `out` points to f32; the caller's promise.
        match Kernel::Axpy.level() {
            SimdLevel::Plain => {}
            SimdLevel::Avx2 => return unsafe { rows_avx2(a32, b32, out, shape, accumulate) },
            SimdLevel::Avx512 => return unsafe { rows_avx512(a32, b32, out, shape, accumulate) },
        }
    }
    // SAFETY: the caller's promise.
    unsafe { rows_with::<T, [T; LANES], BLOCK_VECTORS>(a, b, out, (m, k, n), accumulate) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,popcnt")]
unsafe fn rows_avx2(
    a: &[f32],
    b: &[f32],
    out: *mut f32,
    shape: (usize, usize, usize),
    accumulate: bool,
) {
    // SAFETY: the caller's promise.
    unsafe { rows_with::<f32, Avx, BLOCK_VECTORS>(a, b, out, shape, accumulate) }
}

/// With 32 vector registers: blocks of 24 vectors. Every output is the
/// same chain of fused multiply-adds as at AVX2, so the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,popcnt,avx512f,avx512vl")]
unsafe fn rows_avx512(
    a: &[f32],
    b: &[f32],
    out: *mut f32,
    shape: (usize, usize, usize),
    accumulate: bool,
) {
    // SAFETY: the caller's promise.
    unsafe { rows_with::<f32, Avx, WIDE_BLOCK_VECTORS>(a, b, out, shape, accumulate) }
}

/// [`sparse_rows_times`] over `V`: for each row of `a`, list its nonzero
/// entries once, then sweep the list for each block of output columns: up
/// to `B` vectors at a time ([`BLOCK_VECTORS`] or [`WIDE_BLOCK_VECTORS`]),
/// the last block taking the partial vector at the end of the row along
/// (100 outputs: one block of twelve vectors and four columns). A row's nonzero entries are found
/// eight at a time, as the bits of a vector comparison.
#[inline(always)]
unsafe fn rows_with<T: Float, V: Lanes<T>, const B: usize>(
    a: &[T],
    b: &[T],
    out: *mut T,
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
) {
    // Uninitialised: zeroing 16 KB would cost a fifth of the product.
    let mut index = [const { MaybeUninit::<u32>::uninit() }; AXPY_MAX_DEPTH];
    for i in 0..m {
        let row = &a[i * k..][..k];
        // SAFETY: `index` holds AXPY_MAX_DEPTH >= k slots (asserted above).
        let len = unsafe { list_row_nonzeros::<T, V>(row, index.as_mut_ptr().cast()) };
        // SAFETY: the first `len` entries were written above.
        let nonzero = (
            unsafe { &*(std::ptr::from_ref(&index[..len]) as *const [u32]) },
            row,
        );
        // SAFETY: row i of `out` holds n elements (the caller's promise).
        let out_row = unsafe { out.add(i * n) };
        let mut j = 0;
        while j < n {
            let vectors = (n - j) / LANES;
            // SAFETY (each arm): the block's columns lie inside row i of
            // `out`, which holds n elements; a partial vector only where
            // the block reaches the end of the row.
            j += unsafe {
                match vectors {
                    v if v == B => block::<T, V, B, true>(nonzero, b, n, j, out_row, accumulate),
                    v if v > B => block::<T, V, B, false>(nonzero, b, n, j, out_row, accumulate),
                    // Only with the wide blocks: the rest of a row in one.
                    BLOCK_VECTORS => {
                        block::<T, V, BLOCK_VECTORS, true>(nonzero, b, n, j, out_row, accumulate)
                    }
                    _ if vectors > BLOCK_VECTORS => {
                        block::<T, V, BLOCK_VECTORS, false>(nonzero, b, n, j, out_row, accumulate)
                    }
                    8..BLOCK_VECTORS => {
                        block::<T, V, 8, false>(nonzero, b, n, j, out_row, accumulate)
                    }
                    4..8 => block::<T, V, 4, false>(nonzero, b, n, j, out_row, accumulate),
                    2 | 3 => block::<T, V, 2, false>(nonzero, b, n, j, out_row, accumulate),
                    1 => block::<T, V, 1, true>(nonzero, b, n, j, out_row, accumulate),
                    _ => block::<T, V, 0, true>(nonzero, b, n, j, out_row, accumulate),
                }
            };
        }
    }
}

/// Writes the positions of the nonzero entries of `row`, in increasing
/// order, to `dst` and returns how many: eight at a time, without a branch
/// per lane ([`Lanes::list_nonzero`]). A NaN counts as not zero.
///
/// # Safety
/// `dst` must be writable for `row.len()` `u32`s: each vector of eight may
/// write all eight slots from the current count, which stays at most its
/// own position in the row.
#[inline(always)]
pub(super) unsafe fn list_row_nonzeros<T: Float, V: Lanes<T>>(row: &[T], dst: *mut u32) -> usize {
    let full = row.len() / LANES * LANES;
    let mut len = 0;
    for p in (0..full).step_by(LANES) {
        // SAFETY: `p + LANES <= row.len()`, inside the row; `len <= p`, so
        // `len + LANES <= row.len()`, inside `dst` (the caller's promise).
        len += unsafe { V::load(row.as_ptr().add(p)).list_nonzero(p as u32, dst.add(len)) };
    }
    for (p, &v) in row.iter().enumerate().skip(full) {
        // SAFETY: len <= p < row.len(), inside `dst`.
        unsafe { dst.add(len).write(p as u32) };
        len += usize::from(v != T::ZERO);
    }
    len
}

/// Columns `j .. j + C·LANES` of one output row, and with `PARTIAL` the
/// columns after them up to the end of the row (fewer than [`LANES`]):
/// accumulators in registers while the row's nonzero entries (`index` into
/// the row of `a`) sweep. Returns the number of columns done.
///
/// The partial vector is loaded whole, running on into the next rows of
/// `b`; its extra lanes are never stored. Only the rows of `b` so near its
/// end that a whole vector would run past it are loaded lane by lane: the
/// last row, and with fewer than [`LANES`] columns the last few.
///
/// # Safety
/// `j + C·LANES <= n`, and `out_row` is valid for the row's `n` elements.
#[inline(always)]
unsafe fn block<T: Float, V: Lanes<T>, const C: usize, const PARTIAL: bool>(
    (index, a_row): (&[u32], &[T]),
    b: &[T],
    n: usize,
    j: usize,
    out_row: *mut T,
    accumulate: bool,
) -> usize {
    let tail = if PARTIAL { n - j - C * LANES } else { 0 };
    // The entries whose partial vector fits inside `b` (see above); the
    // entries are in increasing order, so they come first.
    let whole = match PARTIAL {
        true => index.partition_point(|&p| p as usize * n + j + (C + 1) * LANES <= b.len()),
        false => index.len(),
    };
    let mut acc = [V::zero(); C];
    let mut last = V::zero();
    // No closure here: a closure does not get the CPU features of the
    // function it is written in, and the vector methods would not inline.
    for (e, &p) in index.iter().enumerate() {
        let x = V::splat(a_row[p as usize]);
        let row = &b[p as usize * n + j..];
        let w = row[..C * LANES].as_ptr();
        for (c, a) in acc.iter_mut().enumerate() {
            // SAFETY: inside the C·LANES elements sliced above.
            *a = a.madd(x, unsafe { V::load(w.add(c * LANES)) });
        }
        if PARTIAL && tail > 0 {
            let rest = &row[C * LANES..];
            let w = if e < whole {
                // SAFETY: `rest` runs on into the next rows of `b`, which
                // hold at least LANES elements from here (`whole`).
                unsafe { V::load(rest[..LANES].as_ptr()) }
            } else {
                V::load_partial(&rest[..tail])
            };
            last = last.madd(x, w);
        }
    }
    for (c, a) in acc.into_iter().enumerate() {
        // SAFETY: columns j + c·LANES .. + LANES lie inside the row (the
        // caller's promise).
        unsafe {
            let at = out_row.add(j + c * LANES);
            let sum = if accumulate { a.add(V::load(at)) } else { a };
            sum.store(at);
        }
    }
    for (c, s) in last.to_array().into_iter().take(tail).enumerate() {
        // SAFETY: column j + C·LANES + c < n of the row.
        unsafe {
            let at = out_row.add(j + C * LANES + c);
            at.write(if accumulate { *at + s } else { s });
        }
    }
    C * LANES + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matmul::test_values::{naive_input_major, sparse, to_f32, values};

    #[test]
    fn sparse_rows_times_match_the_definition_and_accumulate() {
        // Column counts below, at and past a block, with a partial vector.
        for &(m, k, n) in &[
            (1, 784, 100),
            (3, 40, 7),
            (2, 33, 96),
            (1, 16, 200),
            (4, 100, 8),
        ] {
            let a = sparse(m * k, m + k);
            let b = values(k * n, n);
            let want = naive_input_major(&a, &b, (m, k, n));
            let mut got = vec![0.0f64; m * n];
            // SAFETY: `got` holds m·n elements.
            unsafe { sparse_rows_times(&a, &b, got.as_mut_ptr(), (m, k, n), false) };
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-12, "f64 {m}x{k}x{n}: {g} vs {w}");
            }
            let (a32, b32) = (to_f32(&a), to_f32(&b));
            let mut got = vec![1.0f32; m * n];
            // SAFETY: as above.
            unsafe { sparse_rows_times(&a32, &b32, got.as_mut_ptr(), (m, k, n), true) };
            for (g, w) in got.iter().zip(&want) {
                let w = w + 1.0;
                assert!(
                    (f64::from(*g) - w).abs() < 1e-4 * (1.0 + w.abs()),
                    "f32 {m}x{k}x{n}: {g} vs {w}"
                );
            }
        }
    }

    /// A layer of 1–3 outputs (fewer columns than a vector) fed a row whose
    /// last nonzero sits near its end once read past the end of `b`.
    #[test]
    fn narrow_outputs_with_nonzeros_at_the_end_stay_inside_b() {
        for n in 1..=2 * LANES + 3 {
            for k in [
                1,
                2,
                3,
                5,
                LANES - 1,
                LANES,
                LANES + 1,
                2 * LANES + 1,
                100,
                784,
            ] {
                for m in 1..=4 {
                    // Nonzeros only in the last few entries of each row, and
                    // one at the start.
                    let a: Vec<f64> = (0..m * k)
                        .map(|i| match (i % k == 0) || i % k + 4 > k {
                            true => 0.5 + (i % 7) as f64,
                            false => 0.0,
                        })
                        .collect();
                    let b = values(k * n, n + k);
                    let want = naive_input_major(&a, &b, (m, k, n));
                    let (a32, b32) = (to_f32(&a), to_f32(&b));
                    let mut got = vec![0.0f32; m * n];
                    // SAFETY: `got` holds m·n elements.
                    unsafe { sparse_rows_times(&a32, &b32, got.as_mut_ptr(), (m, k, n), false) };
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (f64::from(*g) - w).abs() < 1e-4 * (1.0 + w.abs()),
                            "{m}x{k}x{n}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    /// The AVX-512 blocks (24 vectors) give the AVX2 blocks' bits, on
    /// widths below, at and past both block sizes, with partial vectors.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_wide_blocks_give_the_same_bits() {
        if crate::detected_simd_level() < SimdLevel::Avx512 {
            return;
        }
        for &(m, k, n) in &[
            (1, 784, 100),
            (3, 300, 200),
            (2, 57, 193),
            (4, 100, 97),
            (1, 9, 5),
        ] {
            let a = to_f32(&sparse(m * k, m + n));
            let b = to_f32(&values(k * n, k));
            for accumulate in [false, true] {
                let start: Vec<f32> = (0..m * n).map(|i| i as f32 / 7.0).collect();
                let (mut narrow, mut wide) = (start.clone(), start);
                // SAFETY: the CPU has AVX-512 (checked above); both hold m·n.
                unsafe {
                    rows_avx2(&a, &b, narrow.as_mut_ptr(), (m, k, n), accumulate);
                    rows_avx512(&a, &b, wide.as_mut_ptr(), (m, k, n), accumulate);
                }
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&narrow),
                    bits(&wide),
                    "{m}x{k}x{n}, accumulate {accumulate}"
                );
            }
        }
    }

    #[test]
    fn a_row_gets_the_same_bits_alone_and_with_others() {
        let (m, k, n) = (5, 300, 110);
        let a = to_f32(&sparse(m * k, 1));
        let b = to_f32(&values(k * n, 2));
        let mut all = vec![0.0f32; m * n];
        // SAFETY: `all` holds m·n elements.
        unsafe { sparse_rows_times(&a, &b, all.as_mut_ptr(), (m, k, n), false) };
        let mut last = vec![0.0f32; n];
        // SAFETY: `last` holds n elements.
        unsafe { sparse_rows_times(&a[(m - 1) * k..], &b, last.as_mut_ptr(), (1, k, n), false) };
        assert_eq!(&all[(m - 1) * n..], &last[..]);
    }
}
