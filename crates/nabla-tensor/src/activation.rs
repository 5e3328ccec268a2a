//! Activations evaluated a vector at a time.
//!
//! The sigmoid of a large layer calls `exp` once per element; the C
//! library's `expf` takes a few nanoseconds a call, which made the sigmoid
//! 12% of a training step at batch 1000. Here, for `f32` on a CPU with AVX2
//! and FMA, `exp` is evaluated eight lanes at a time (sixteen with AVX-512)
//! by range reduction and a polynomial (the coefficients of Cephes' `expf`,
//! within 2 ulp of the true value on the range a sigmoid uses). Elsewhere,
//! and for `f64`, the scalar formula with the library's `exp` runs as before.
//!
//! Every element goes through the same instructions, the last partial
//! vector too (copied into a full one, or loaded under a mask), so an
//! element's value does not depend on where it lies in the tensor, nor on
//! how a batch is split. The eight- and sixteen-lane paths apply the same
//! IEEE operations to each lane and give the same bits (tested).

#[cfg(target_arch = "x86_64")]
use crate::simd::{as_f32, Kernel, SimdLevel};
use crate::{Float, Tensor};

impl<T: Float> Tensor<T> {
    /// The logistic sigmoid `1 / (1 + e^-x)` of every element, without
    /// overflow for large `|x|` (`e^x / (1 + e^x)` for negative `x`).
    pub fn sigmoid(&self) -> Tensor<T> {
        #[cfg(target_arch = "x86_64")]
        if let Some(x) = as_f32(self.data()) {
            let level = Kernel::Sigmoid.level();
            if level != SimdLevel::Plain {
                return Tensor::build(self.shape().clone(), |out| {
                    out.reserve(x.len());
                    let spare = &mut out.spare_capacity_mut()[..x.len()];
                    let dst = spare.as_mut_ptr().cast();
                    // SAFETY: the CPU has what each function is compiled
                    // for; T is f32, so the spare capacity is of f32, and
                    // it holds x.len() values.
                    unsafe {
                        match level {
                            SimdLevel::Avx512 => sigmoid_avx512(x, dst),
                            _ => sigmoid_avx(x, dst),
                        }
                    };
                    // SAFETY: the first x.len() values were written above.
                    unsafe { out.set_len(x.len()) };
                });
            }
        }
        self.map(sigmoid)
    }
}

/// The scalar sigmoid, stable for large `|x|`.
#[inline]
pub(crate) fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}

/// Writes `sigmoid(x[i])` to `out[i]` for every `i`.
///
/// # Safety
/// The CPU must have AVX2 and FMA; `out` must be valid for writes of
/// `x.len()` values and not overlap `x`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,popcnt")]
unsafe fn sigmoid_avx(x: &[f32], out: *mut f32) {
    use std::arch::x86_64::{_mm256_loadu_ps, _mm256_storeu_ps};
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    let mut at = 0;
    for chunk in chunks {
        // SAFETY: eight values inside `x` and inside `out` (the caller's promise).
        unsafe { _mm256_storeu_ps(out.add(at), sigmoid8(_mm256_loadu_ps(chunk.as_ptr()))) };
        at += 8;
    }
    if !tail.is_empty() {
        let mut lanes = [0.0f32; 8];
        lanes[..tail.len()].copy_from_slice(tail);
        // SAFETY: `lanes` holds eight values; the tail's results go to the
        // last tail.len() places of `out`.
        unsafe {
            _mm256_storeu_ps(
                lanes.as_mut_ptr(),
                sigmoid8(_mm256_loadu_ps(lanes.as_ptr())),
            );
            std::ptr::copy_nonoverlapping(lanes.as_ptr(), out.add(at), tail.len());
        }
    }
}

/// Eight sigmoids: with `e = exp(-|x|)` and `s = 1 / (1 + e)`, `s` where
/// `x >= 0` and `e · s` elsewhere (the two stable forms).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,popcnt")]
fn sigmoid8(x: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let sign = _mm256_set1_ps(-0.0);
    let one = _mm256_set1_ps(1.0);
    let minus_abs = _mm256_or_ps(x, sign);
    let e = exp_non_positive(minus_abs);
    let s = _mm256_div_ps(one, _mm256_add_ps(one, e));
    let negative = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_setzero_ps());
    _mm256_blendv_ps(s, _mm256_mul_ps(e, s), negative)
}

/// Below `ln(2^-126)` the exponential would be subnormal: it is taken as 0.
#[cfg(target_arch = "x86_64")]
const EXP_LOWEST: f32 = -87.336_55;
/// ln 2 split in two, the first with few enough bits that n · LN2_HI is exact.
#[cfg(target_arch = "x86_64")]
const LN2_HI: f32 = 0.693_359_4;
#[cfg(target_arch = "x86_64")]
const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes' `expf` polynomial: e^r ≈ 1 + r + r² · p(r), highest power first.
#[cfg(target_arch = "x86_64")]
const EXP_POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_2e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// `e^x` for `x <= 0` (and NaN for NaN), eight lanes: `x = n·ln 2 + r` with
/// `|r| <= ln 2 / 2`, `e^r` by Cephes' polynomial, `2^n` built in the
/// exponent bits. Below `ln(2^-126)` (where the result would be subnormal)
/// the result is 0.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,popcnt")]
fn exp_non_positive(x: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let too_small = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(EXP_LOWEST));
    // `max` returns its second operand when either is NaN: NaN stays NaN.
    let x = _mm256_max_ps(_mm256_set1_ps(EXP_LOWEST), x);
    // n = round(x · log2 e), to nearest.
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    let mut p = _mm256_set1_ps(EXP_POLY[0]);
    for &c in &EXP_POLY[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    // e^r ≈ 1 + r + r² · p(r)
    let r2 = _mm256_mul_ps(r, r);
    let e_r = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
    // 2^n for -126 <= n <= 0: the biased exponent n + 127 in bits 23..31.
    let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    ));
    let y = _mm256_mul_ps(e_r, _mm256_castsi256_ps(bits));
    _mm256_andnot_ps(too_small, y)
}

/// Writes `sigmoid(x[i])` to `out[i]` for every `i`, sixteen at a time, the
/// last partial vector under a mask.
///
/// # Safety
/// As [`sigmoid_avx`], with AVX-512 F and VL as well.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,popcnt,avx512f,avx512vl")]
unsafe fn sigmoid_avx512(x: &[f32], out: *mut f32) {
    use std::arch::x86_64::{_mm512_mask_storeu_ps, _mm512_maskz_loadu_ps};
    for (at, chunk) in (0..x.len()).step_by(16).zip(x.chunks(16)) {
        // Lanes past the chunk are neither read nor written.
        let mask = (u32::MAX >> (32 - chunk.len())) as u16;
        // SAFETY: the mask's lanes lie inside `x` and inside `out` (the
        // caller's promise).
        unsafe {
            let v = _mm512_maskz_loadu_ps(mask, chunk.as_ptr());
            _mm512_mask_storeu_ps(out.add(at), mask, sigmoid16(v));
        }
    }
}

/// [`sigmoid8`] on sixteen lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,popcnt,avx512f,avx512vl")]
fn sigmoid16(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let one = _mm512_set1_ps(1.0);
    // -|x|: the sign bit set (an integer `or`; the float one needs AVX-512 DQ).
    let minus_abs = _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_castps_si512(x),
        _mm512_set1_epi32(i32::MIN),
    ));
    let e = exp_non_positive16(minus_abs);
    let s = _mm512_div_ps(one, _mm512_add_ps(one, e));
    let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_setzero_ps());
    _mm512_mask_blend_ps(negative, s, _mm512_mul_ps(e, s))
}

/// [`exp_non_positive`] on sixteen lanes: the same steps, constants and
/// rounding, so the same bits in each lane.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,popcnt,avx512f,avx512vl")]
fn exp_non_positive16(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let too_small = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_set1_ps(EXP_LOWEST));
    // `max` returns its second operand when either is NaN: NaN stays NaN.
    let x = _mm512_max_ps(_mm512_set1_ps(EXP_LOWEST), x);
    // n = round(x · log2 e), to nearest (scale 0: to an integer).
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    let mut p = _mm512_set1_ps(EXP_POLY[0]);
    for &c in &EXP_POLY[1..] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let r2 = _mm512_mul_ps(r, r);
    let e_r = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0));
    let bits = _mm512_slli_epi32::<23>(_mm512_add_epi32(
        _mm512_cvtps_epi32(n),
        _mm512_set1_epi32(127),
    ));
    let y = _mm512_mul_ps(e_r, _mm512_castsi512_ps(bits));
    _mm512_maskz_mov_ps(!too_small, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from -100 to 100, dense near 0, and the edges of the range.
    fn inputs() -> Vec<f32> {
        let mut v: Vec<f32> = (-20_000..=20_000).map(|i| i as f32 / 200.0).collect();
        v.extend((-1000..=1000).map(|i| i as f32 * 1e-4));
        v.extend([
            -87.3, -87.4, -88.0, -100.0, -1e30, 87.3, 88.0, 100.0, 1e30, 0.0, -0.0,
        ]);
        v
    }

    #[test]
    fn the_sigmoid_is_within_a_few_ulp_of_the_exact_value() {
        let x = inputs();
        let y = Tensor::from_vec(x.clone(), &[x.len()]).unwrap().sigmoid();
        for (&xi, &yi) in x.iter().zip(y.data()) {
            let exact = sigmoid(f64::from(xi));
            let err = (f64::from(yi) - exact).abs();
            // 4 ulp of the exact value, or an absolute 1e-37 where the exact
            // value is near or below the smallest normal f32.
            let tol = (4.0 * f64::from(f32::EPSILON) * exact).max(1e-37);
            assert!(err <= tol, "sigmoid({xi}) = {yi}, exact {exact}");
        }
    }

    #[test]
    fn an_elements_value_does_not_depend_on_its_place() {
        let x: Vec<f32> = inputs().into_iter().step_by(97).take(37).collect();
        let all = Tensor::from_vec(x.clone(), &[x.len()]).unwrap().sigmoid();
        for (i, &xi) in x.iter().enumerate() {
            let one = Tensor::from_vec(vec![xi], &[1]).unwrap().sigmoid();
            assert_eq!(one.data()[0].to_bits(), all.data()[i].to_bits(), "x = {xi}");
        }
    }

    /// Sixteen lanes give the eight lanes' bits, on every input and on
    /// lengths that leave partial vectors of every size.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn sixteen_lanes_give_the_same_bits_as_eight() {
        if crate::detected_simd_level() < SimdLevel::Avx512 {
            return;
        }
        let mut x = inputs();
        x.extend([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-40, -1e-40]);
        for len in (0..=40).chain([x.len()]) {
            let x = &x[x.len() - len..];
            let (mut eight, mut sixteen) = (vec![0.0f32; len], vec![0.0f32; len]);
            // SAFETY: the CPU has AVX-512 (checked above); both hold len values.
            unsafe {
                sigmoid_avx(x, eight.as_mut_ptr());
                sigmoid_avx512(x, sixteen.as_mut_ptr());
            }
            for ((a, b), xi) in eight.iter().zip(&sixteen).zip(x) {
                assert_eq!(a.to_bits(), b.to_bits(), "sigmoid({xi}), length {len}");
            }
        }
    }

    #[test]
    fn nan_stays_nan() {
        let y = Tensor::from_vec(vec![f32::NAN, 1.0], &[2])
            .unwrap()
            .sigmoid();
        assert!(y.data()[0].is_nan());
        let y = Tensor::from_vec(vec![f64::NAN], &[1]).unwrap().sigmoid();
        assert!(y.data()[0].is_nan());
    }
}
