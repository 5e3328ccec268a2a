//! The outer product of a column and a row: the weight gradient `dYᵀ · x`
//! at batch 1, where the sum over the batch has one term. No sums at all,
//! only a pass writing the product.

#[cfg(target_arch = "x86_64")]
use crate::simd::{as_f32, Kernel, SimdLevel};
use crate::simd::{Lanes, LANES};
use crate::Float;

/// `out[i·n + j] = a[i] · b[j]` for `i < a.len()`, `j < n = b.len()` (or
/// `+=` with `accumulate`): the product of a column and a row.
///
/// # Safety
/// As [`dot_products`], for `a.len() · n` elements of `out`.
pub(crate) unsafe fn outer<T: Float>(a: &[T], b: &[T], out: *mut T, accumulate: bool) {
    #[cfg(target_arch = "x86_64")]
    if let (Some(a32), Some(b32)) = (as_f32(a), as_f32(b)) {
        let kernel = Kernel::OuterProducts;
        if kernel.level() != SimdLevel::Plain {
            let out = out.cast();
            // SAFETY: T is f32; the caller's promise. At these levels the
            // CPU has FMA, so `mul_add` is one instruction.
            return kernel.run(
                #[inline(always)]
                || unsafe { outer_fused(a32, b32, out, accumulate) },
            );
        }
    }
    // SAFETY: the caller's promise.
    unsafe { outer_with::<T, [T; LANES]>(a, b, out, accumulate) }
}

/// [`outer`] with one fused multiply-add per element (onto `+0` without
/// `accumulate`, which rounds as the product alone but gives `+0` for a
/// zero product), a plain loop that [`Kernel::run`] vectorises at the
/// level's width: every element gets the same bits at any width.
///
/// # Safety
/// As [`outer`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn outer_fused(a: &[f32], b: &[f32], out: *mut f32, accumulate: bool) {
    let n = b.len();
    for (i, &a_i) in a.iter().enumerate() {
        // SAFETY: row `i` of `out` holds `n` elements (the caller's promise).
        let row = unsafe { out.add(i * n) };
        // Two loops, so that neither tests `accumulate` per element.
        if accumulate {
            for (j, &b_j) in b.iter().enumerate() {
                // SAFETY: `j < n`, inside the row.
                unsafe { row.add(j).write(a_i.mul_add(b_j, *row.add(j))) };
            }
        } else {
            for (j, &b_j) in b.iter().enumerate() {
                // SAFETY: as above.
                unsafe { row.add(j).write(a_i.mul_add(b_j, 0.0)) };
            }
        }
    }
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
    use crate::matmul::test_values::{values, SHAPES};

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
