//! Whether an operand is mostly zeros: the question that sends a product
//! to the kernels that skip them (an MNIST image is 81% zero pixels).

#[cfg(target_arch = "x86_64")]
use crate::simd::{as_f32, Avx, Kernel, SimdLevel};
use crate::simd::{Lanes, LANES};
use crate::Float;

/// Whether at least a quarter of the eight-column strips of `b` (k × n,
/// stored row by row) are all zero in a row. Then the kernels that skip
/// such strips pay (`docs/performance.md`): `super::transposed` for `aᵀ · b`
/// is slower than the GEMM library on dense rows and faster on images, and
/// [`super::dot::dot_products`] spends a little on listing a block's live
/// vectors, which dense rows do not repay.
pub(crate) fn mostly_sparse<T: Float>(b: &[T], (k, n): (usize, usize)) -> bool {
    if k == 0 || n == 0 {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(b32) = as_f32(b) {
        if Kernel::OuterProducts.level() != SimdLevel::Plain {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { mostly_sparse_avx(b32, (k, n)) };
        }
    }
    mostly_sparse_with::<T, [T; LANES]>(b, (k, n))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,popcnt")]
unsafe fn mostly_sparse_avx(b: &[f32], shape: (usize, usize)) -> bool {
    mostly_sparse_with::<f32, Avx>(b, shape)
}

#[inline(always)]
fn mostly_sparse_with<T: Float, V: Lanes<T>>(b: &[T], (k, n): (usize, usize)) -> bool {
    let full = n / LANES * LANES;
    // Enough zero strips: a quarter of them, rounded up. The count stops
    // there, a few pixel rows into an image (whose top rows are blank).
    let enough = (k * n.div_ceil(LANES)).div_ceil(4);
    let mut zero = 0;
    for row in b.chunks_exact(n).take(k) {
        for j in (0..full).step_by(LANES) {
            // SAFETY: `j + LANES <= n`, inside the row.
            zero += usize::from(!unsafe { V::load(row.as_ptr().add(j)) }.any_nonzero());
            if zero >= enough {
                return true;
            }
        }
        if full < n {
            zero += usize::from(!V::load_partial(&row[full..]).any_nonzero());
        }
    }
    zero >= enough
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mostly_sparse_counts_zero_strips() {
        // Four rows of 20 columns: three strips each (the last partial).
        let mut b = vec![1.0f32; 4 * 20];
        assert!(!mostly_sparse(&b, (4, 20)));
        // Two zero strips of twelve: not a quarter.
        b[..8].fill(0.0);
        b[60..68].fill(0.0);
        assert!(!mostly_sparse(&b, (4, 20)));
        // A third one, the partial strip of row 1: a quarter.
        b[36..40].fill(0.0);
        assert!(mostly_sparse(&b, (4, 20)));
        // Nothing to count.
        assert!(!mostly_sparse::<f32>(&[], (0, 8)));
        assert!(!mostly_sparse::<f32>(&[], (3, 0)));
        // NaN is not zero.
        b[36] = f32::NAN;
        assert!(!mostly_sparse(&b, (4, 20)));
    }
}
