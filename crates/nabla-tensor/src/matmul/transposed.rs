//! `aᵀ · b` over the few rows of a shard, read in place: a dense layer's
//! weight gradient `dZᵀ · X`, when `X` is mostly zeros (a layer that sees
//! images). The GEMM library packs both operands and multiplies every
//! zero; this kernel lists, for each strip of eight columns of `X` (sixteen
//! at AVX-512), the rows where the strip is not zero, and sums over those
//! only.

#[cfg(target_arch = "x86_64")]
use crate::simd::{as_f32, Avx, Avx512, Kernel, SimdLevel};
use crate::simd::{Vector, LANES, MAX_WIDTH};
use crate::Float;

/// Most rows that [`transposed_products`] takes: its list of rows lives on
/// the stack. A shard of a batch has at most 125.
pub(crate) const TRANSPOSED_MAX_DEPTH: usize = 256;

/// `out[i·n + j] = Σ_p a[p·m + i] · b[p·n + j]` for `i < m`, `j < n`: the
/// product `aᵀ · b` of `a` (k × m) and `b` (k × n), both stored row by row,
/// summed over their few rows (at most [`TRANSPOSED_MAX_DEPTH`]); or
/// `out[…] += …` with `accumulate`. This is a dense layer's weight gradient
/// `dZᵀ · X` on a shard of a batch.
///
/// Each strip of eight columns of `b` (sixteen at AVX-512) first lists the
/// rows where the strip is not all zero, and its sums run over those rows
/// only: three in five of the eight-pixel strips of an MNIST image are
/// zero. As in [`super::dot::dot_products`], skipping them changes no bit
/// (an accumulator starting at +0 is never -0), except where `a` holds an infinity or NaN facing
/// zeros. Every element is one accumulator lane that adds its rows' products
/// in row order, so its value does not depend on the block it falls in.
///
/// # Safety
/// As [`super::dot::dot_products`], for `m·n` elements of `out`.
///
/// # Panics
/// If `a.len() != k·m`, `b.len() != k·n` or `k > TRANSPOSED_MAX_DEPTH` (a
/// bug in the caller).
pub(crate) unsafe fn transposed_products<T: Float>(
    a: &[T],
    b: &[T],
    out: *mut T,
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
) {
    assert_eq!(a.len(), k * m, "transposed_products: left length");
    assert_eq!(b.len(), k * n, "transposed_products: right length");
    assert!(k <= TRANSPOSED_MAX_DEPTH, "transposed_products: {k} rows");
    if m == 0 || n == 0 {
        return;
    }
    let shape = (m, k, n);
    #[cfg(target_arch = "x86_64")]
    if let (Some(a32), Some(b32)) = (as_f32(a), as_f32(b)) {
        let out = out.cast();
        // SAFETY (both): the CPU has what each function is compiled for; T
        // is f32, so `out` points to f32; the caller's promise.
        match Kernel::TransposedProducts.level() {
            SimdLevel::Plain => {}
            SimdLevel::Avx512 => {
                return unsafe { transposed_avx512(a32, b32, out, shape, accumulate) }
            }
            SimdLevel::Avx2 => return unsafe { transposed_avx2(a32, b32, out, shape, accumulate) },
        }
    }
    // SAFETY: the caller's promise.
    unsafe { transposed_blocks::<T, [T; LANES], 12>(a, b, out, shape, accumulate) }
}

/// With 16 vector registers: blocks of 12 columns of `a` (12 accumulators).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,popcnt")]
unsafe fn transposed_avx2(
    a: &[f32],
    b: &[f32],
    out: *mut f32,
    shape: (usize, usize, usize),
    accumulate: bool,
) {
    // SAFETY: the caller's promise.
    unsafe { transposed_blocks::<f32, Avx, 12>(a, b, out, shape, accumulate) }
}

/// With 32 vector registers of sixteen lanes: blocks of 20 columns of `a`,
/// which divides a layer of 100. Each element is still one lane's sum over
/// the same rows, so the bits are AVX2's.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,popcnt,avx512f,avx512vl")]
unsafe fn transposed_avx512(
    a: &[f32],
    b: &[f32],
    out: *mut f32,
    shape: (usize, usize, usize),
    accumulate: bool,
) {
    // SAFETY: the caller's promise.
    unsafe { transposed_blocks::<f32, Avx512, 20>(a, b, out, shape, accumulate) }
}

/// [`transposed_with`] in blocks of `C` columns of `a` where it has that
/// many, else of 4 or 1.
#[inline(always)]
unsafe fn transposed_blocks<T: Float, V: Vector<T>, const C: usize>(
    a: &[T],
    b: &[T],
    out: *mut T,
    shape: (usize, usize, usize),
    accumulate: bool,
) {
    // SAFETY (all three): the caller's promise.
    unsafe {
        match shape.0 {
            m if m >= C => transposed_with::<T, V, C>(a, b, out, shape, accumulate),
            m if m >= 4 => transposed_with::<T, V, 4>(a, b, out, shape, accumulate),
            _ => transposed_with::<T, V, 1>(a, b, out, shape, accumulate),
        }
    }
}

/// [`transposed_products`] over `V`: for each strip of `V::WIDTH` columns
/// of `b`, blocks of `C` columns of `a` keep `C` accumulators (`C` rows of
/// `out`, a strip's columns each) in registers while they sweep the strip's
/// listed rows, each row loading one vector of `b` and `C` values of `a`
/// (at fixed offsets) for `C` multiply-adds. The last block is moved back
/// to end at the last column (`m >= C`); the columns it shares with the
/// block before are not stored twice. A strip narrower than a vector is
/// copied, padded with zeros, to the stack first.
#[inline(always)]
unsafe fn transposed_with<T: Float, V: Vector<T>, const C: usize>(
    a: &[T],
    b: &[T],
    out: *mut T,
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
) {
    debug_assert!(m >= C && k <= TRANSPOSED_MAX_DEPTH);
    let mut rows = [0u32; TRANSPOSED_MAX_DEPTH];
    let lanes = V::WIDTH;
    // Zeroed only where a narrow strip is copied into it (the last strip,
    // at most once a call): 16 KB of f32 to clear on every call otherwise.
    let mut narrow;
    for j0 in (0..n).step_by(lanes) {
        let width = (n - j0).min(lanes);
        // Row `p` of the strip is at `strip + p·stride`.
        let (strip, stride) = if width == lanes {
            (b[j0..].as_ptr(), n)
        } else {
            narrow = [T::ZERO; MAX_WIDTH * TRANSPOSED_MAX_DEPTH];
            for p in 0..k {
                narrow[p * lanes..][..width].copy_from_slice(&b[p * n + j0..][..width]);
            }
            (narrow.as_ptr(), lanes)
        };
        let mut len = 0;
        for p in 0..k {
            rows[len] = p as u32;
            // SAFETY: row `p < k` of the strip holds a vector's elements.
            len += usize::from(unsafe { V::load(strip.add(p * stride)) }.any_nonzero());
        }
        let mut next = 0;
        while next < m {
            let i0 = next.min(m - C);
            let mut acc = [V::zero(); C];
            for &p in &rows[..len] {
                let p = p as usize;
                // SAFETY: row `p < k` of the strip holds a vector's elements, and
                // row `p` of `a` the `m >= i0 + C` columns.
                unsafe {
                    let bv = V::load(strip.add(p * stride));
                    let a_row = a.as_ptr().add(p * m + i0);
                    for (c, acc) in acc.iter_mut().enumerate() {
                        *acc = acc.madd(V::splat(*a_row.add(c)), bv);
                    }
                }
            }
            for (c, acc) in acc.into_iter().enumerate().skip(next - i0) {
                // SAFETY: row `i0 + c < m` of `out` holds `n` elements, of
                // which this strip's `width` (the caller's promise).
                unsafe {
                    let dst = out.add((i0 + c) * n + j0);
                    if width == lanes {
                        let v = if accumulate {
                            V::load(dst).add(acc)
                        } else {
                            acc
                        };
                        v.store(dst);
                    } else {
                        let mut values = [T::ZERO; MAX_WIDTH];
                        acc.store(values.as_mut_ptr());
                        for (q, &s) in values[..width].iter().enumerate() {
                            let at = dst.add(q);
                            at.write(if accumulate { *at + s } else { s });
                        }
                    }
                }
            }
            next = i0 + C;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matmul::dot::dot_is_vectorised;
    use crate::matmul::test_values::{sparse, to_f32, values};

    /// `aᵀ · b` by the definition, each element one fused multiply-add per
    /// row of `a` and `b` in row order, zeros included: what the vector
    /// path must give bit for bit.
    fn fused_chain(a: &[f32], b: &[f32], (m, k, n): (usize, usize, usize)) -> Vec<f32> {
        (0..m * n)
            .map(|e| {
                (0..k).fold(0.0f32, |acc, p| {
                    a[p * m + e / n].mul_add(b[p * n + e % n], acc)
                })
            })
            .collect()
    }

    #[test]
    fn transposed_products_match_the_definition_and_accumulate() {
        // Column counts of `a` below 4, below a block and not a multiple of
        // one; strips of `b` whole and partial; up to the most rows.
        for (m, k, n) in [
            (1, 5, 9),
            (3, 50, 16),
            (7, 13, 21),
            (100, 50, 784),
            (33, 256, 10),
        ] {
            for zeros in [false, true] {
                let a = values(k * m, 2);
                let b = if zeros {
                    sparse(k * n, 3)
                } else {
                    values(k * n, 3)
                };
                let mut out = vec![f64::NAN; m * n];
                unsafe { transposed_products(&a, &b, out.as_mut_ptr(), (m, k, n), false) };
                let mut again = vec![1.0; m * n];
                unsafe { transposed_products(&a, &b, again.as_mut_ptr(), (m, k, n), true) };
                let (a32, b32) = (to_f32(&a), to_f32(&b));
                let mut out32 = vec![f32::NAN; m * n];
                unsafe { transposed_products(&a32, &b32, out32.as_mut_ptr(), (m, k, n), false) };
                let chain = fused_chain(&a32, &b32, (m, k, n));
                for i in 0..m {
                    for j in 0..n {
                        let e = i * n + j;
                        let want: f64 = (0..k).map(|p| a[p * m + i] * b[p * n + j]).sum();
                        let at = format!("{m}×{k}×{n}, zeros {zeros}: ({i}, {j})");
                        assert!((out[e] - want).abs() < 1e-9, "{at}");
                        assert!((again[e] - 1.0 - want).abs() < 1e-9, "+= {at}");
                        if dot_is_vectorised::<f32>() {
                            assert_eq!(out32[e], chain[e], "f32 {at}");
                        }
                    }
                }
            }
        }
    }
}
