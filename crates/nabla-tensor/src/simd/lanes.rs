//! Vectors for the hand-blocked kernels (see `conv::direct` and `matmul`).
//!
//! A kernel is written once, generic over [`Vector`] (any width) or
//! [`Lanes`] (eight lanes, with the lane-wise extras the matrix products
//! use), and compiled once per level: with [`Avx`] (eight `f32` in one AVX
//! register, fused multiply-add) inside a function compiled for AVX2 and FMA
//! (or for AVX-512, where the same eight lanes come with 32 registers and
//! the kernel holds larger blocks); with [`Avx512`] (sixteen `f32` in one
//! AVX-512 register) where a kernel's lanes are independent sums, so that
//! CPUs with full-width 512-bit units do twice the work per instruction;
//! and with plain arrays `[T; 8]` for every other CPU and for `f64`. Left
//! to itself the compiler vectorised such kernels along the wrong axis, or
//! not at all.

use crate::Float;

/// Lanes of one [`Lanes`] vector.
pub(crate) const LANES: usize = 8;

/// The most lanes any [`Vector`] has: the size of a buffer that holds one.
pub(crate) const MAX_WIDTH: usize = 16;

/// `WIDTH` values of `T` and the few operations every blocked kernel uses.
pub(crate) trait Vector<T: Float>: Copy {
    /// Lanes in one vector: 8 or 16.
    const WIDTH: usize;
    /// All lanes zero.
    fn zero() -> Self;
    /// All lanes `v`.
    fn splat(v: T) -> Self;
    /// `WIDTH` values from `src`, which may be unaligned.
    ///
    /// # Safety
    /// `src .. src + WIDTH` must be readable.
    unsafe fn load(src: *const T) -> Self;
    /// `WIDTH` values to `dst`, which may be unaligned.
    ///
    /// # Safety
    /// `dst .. dst + WIDTH` must be writable.
    unsafe fn store(self, dst: *mut T);
    /// `self + a · b`, lane by lane.
    fn madd(self, a: Self, b: Self) -> Self;
    /// `self + b`, lane by lane.
    fn add(self, b: Self) -> Self;
    /// Whether any lane is not zero (NaN counts as not zero).
    fn any_nonzero(self) -> bool;
}

/// A [`Vector`] of eight lanes, with what the matrix products need beyond
/// it: the lanes as an array, their sums, and which of them are zero.
pub(crate) trait Lanes<T: Float>: Vector<T> {
    /// The lanes, in order.
    fn to_array(self) -> [T; LANES];
    /// Bit `l` set where lane `l` is not zero (NaN counts as not zero).
    fn nonzero_lanes(self) -> u32;

    /// Writes `base + l` for each lane `l` that is not zero, in increasing
    /// order, to `dst`, and returns how many: a row's nonzero entries listed
    /// without a branch per lane. All `LANES` slots may be written.
    ///
    /// # Safety
    /// `dst .. dst + LANES` must be writable.
    #[inline(always)]
    unsafe fn list_nonzero(self, base: u32, dst: *mut u32) -> usize {
        let lanes = self.nonzero_lanes();
        let mut len = 0;
        for l in 0..LANES {
            // SAFETY: len <= l < LANES, inside `dst` (the caller's promise).
            unsafe { dst.add(len).write(base + l as u32) };
            len += ((lanes >> l) & 1) as usize;
        }
        len
    }

    /// The values of `src` (at most `LANES`), zeros in the lanes after.
    #[inline(always)]
    fn load_partial(src: &[T]) -> Self {
        let mut v = [T::ZERO; LANES];
        for (d, &s) in v.iter_mut().zip(src) {
            *d = s;
        }
        // SAFETY: `v` holds LANES values.
        unsafe { Self::load(v.as_ptr()) }
    }

    /// The sums of eight vectors' lanes, `out[k] = Σ v[k]`, each in a fixed order.
    #[inline(always)]
    fn sums(v: [Self; LANES]) -> [T; LANES] {
        v.map(|x| {
            let x = x.to_array();
            let h: [T; 4] = std::array::from_fn(|i| x[i] + x[i + 4]);
            (h[0] + h[2]) + (h[1] + h[3])
        })
    }
}

/// The portable vector: an array, multiply then add (no fused rounding).
impl<T: Float> Vector<T> for [T; LANES] {
    const WIDTH: usize = LANES;

    #[inline(always)]
    fn zero() -> Self {
        [T::ZERO; LANES]
    }

    #[inline(always)]
    fn splat(v: T) -> Self {
        [v; LANES]
    }

    #[inline(always)]
    unsafe fn load(src: *const T) -> Self {
        // SAFETY: readable by the caller's promise; the read is unaligned.
        unsafe { std::ptr::read_unaligned(src.cast::<[T; LANES]>()) }
    }

    #[inline(always)]
    unsafe fn store(self, dst: *mut T) {
        // SAFETY: writable by the caller's promise; the write is unaligned.
        unsafe { std::ptr::write_unaligned(dst.cast::<[T; LANES]>(), self) }
    }

    #[inline(always)]
    fn madd(self, a: Self, b: Self) -> Self {
        std::array::from_fn(|i| self[i] + a[i] * b[i])
    }

    #[inline(always)]
    fn add(self, b: Self) -> Self {
        std::array::from_fn(|i| self[i] + b[i])
    }

    #[inline(always)]
    fn any_nonzero(self) -> bool {
        self.nonzero_lanes() != 0
    }
}

impl<T: Float> Lanes<T> for [T; LANES] {
    #[inline(always)]
    fn to_array(self) -> [T; LANES] {
        self
    }

    #[inline(always)]
    fn nonzero_lanes(self) -> u32 {
        self.iter()
            .enumerate()
            .fold(0, |bits, (l, &v)| bits | (u32::from(v != T::ZERO) << l))
    }
}

/// Eight `f32` in one AVX register.
///
/// Only code compiled for AVX2 and FMA may use it, and only after
/// [`super::Kernel::level`] said so: the methods are the CPU's instructions.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Avx(std::arch::x86_64::__m256);

#[cfg(target_arch = "x86_64")]
impl Vector<f32> for Avx {
    const WIDTH: usize = LANES;

    #[inline(always)]
    fn zero() -> Self {
        // SAFETY (here and below): `Avx` is used only where the CPU has AVX2
        // and FMA (see the type's documentation).
        Avx(unsafe { std::arch::x86_64::_mm256_setzero_ps() })
    }

    #[inline(always)]
    fn splat(v: f32) -> Self {
        Avx(unsafe { std::arch::x86_64::_mm256_set1_ps(v) })
    }

    #[inline(always)]
    unsafe fn load(src: *const f32) -> Self {
        // SAFETY: readable by the caller's promise; `loadu` allows any alignment.
        Avx(unsafe { std::arch::x86_64::_mm256_loadu_ps(src) })
    }

    #[inline(always)]
    unsafe fn store(self, dst: *mut f32) {
        // SAFETY: writable by the caller's promise; `storeu` allows any alignment.
        unsafe { std::arch::x86_64::_mm256_storeu_ps(dst, self.0) }
    }

    #[inline(always)]
    fn madd(self, a: Self, b: Self) -> Self {
        Avx(unsafe { std::arch::x86_64::_mm256_fmadd_ps(a.0, b.0, self.0) })
    }

    #[inline(always)]
    fn add(self, b: Self) -> Self {
        Avx(unsafe { std::arch::x86_64::_mm256_add_ps(self.0, b.0) })
    }

    #[inline(always)]
    fn any_nonzero(self) -> bool {
        self.nonzero_lanes() != 0
    }
}

#[cfg(target_arch = "x86_64")]
impl Lanes<f32> for Avx {
    #[inline(always)]
    fn load_partial(src: &[f32]) -> Self {
        use std::arch::x86_64::{
            _mm256_cmpgt_epi32, _mm256_maskload_ps, _mm256_set1_epi32, _mm256_setr_epi32,
        };
        let n = src.len().min(LANES) as i32;
        // SAFETY: the mask enables lanes 0..n only, which lie inside `src`;
        // masked-off lanes are not read and come back zero.
        unsafe {
            let mask = _mm256_cmpgt_epi32(
                _mm256_set1_epi32(n),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            );
            Avx(_mm256_maskload_ps(src.as_ptr(), mask))
        }
    }

    #[inline(always)]
    fn to_array(self) -> [f32; LANES] {
        let mut v = [0.0; LANES];
        unsafe { std::arch::x86_64::_mm256_storeu_ps(v.as_mut_ptr(), self.0) };
        v
    }

    #[inline(always)]
    fn nonzero_lanes(self) -> u32 {
        use std::arch::x86_64::{
            _mm256_cmp_ps, _mm256_movemask_ps, _mm256_setzero_ps, _CMP_NEQ_UQ,
        };
        // Unordered not-equal: a NaN lane compares true.
        unsafe {
            _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_NEQ_UQ>(self.0, _mm256_setzero_ps())) as u32
        }
    }

    /// The positions of the set bits of the lanes' mask, looked up as eight
    /// bytes, widened to eight `u32` and stored at once.
    #[inline(always)]
    unsafe fn list_nonzero(self, base: u32, dst: *mut u32) -> usize {
        use std::arch::x86_64::{
            __m256i, _mm256_add_epi32, _mm256_cvtepu8_epi32, _mm256_set1_epi32,
            _mm256_storeu_si256, _mm_cvtsi64_si128,
        };
        let lanes = self.nonzero_lanes();
        // SAFETY: `lanes` < 256 indexes the table; `dst` holds LANES u32 (the
        // caller's promise), written unaligned.
        unsafe {
            let offsets = _mm_cvtsi64_si128(SET_BIT_POSITIONS[lanes as usize] as i64);
            let positions = _mm256_add_epi32(
                _mm256_cvtepu8_epi32(offsets),
                _mm256_set1_epi32(base as i32),
            );
            _mm256_storeu_si256(dst.cast::<__m256i>(), positions);
        }
        lanes.count_ones() as usize
    }

    /// Horizontal adds: pairs, then quadruples, then the two halves.
    #[inline(always)]
    fn sums(v: [Self; LANES]) -> [f32; LANES] {
        use std::arch::x86_64::{_mm256_hadd_ps as hadd, _mm256_permute2f128_ps as halves};
        let [a, b, c, d, e, f, g, h] = v.map(|x| x.0);
        unsafe {
            // Lanes 0–3 hold a..d's sums over their lanes 0–3, lanes 4–7 over 4–7.
            let abcd = hadd(hadd(a, b), hadd(c, d));
            let efgh = hadd(hadd(e, f), hadd(g, h));
            let low = halves::<0x20>(abcd, efgh);
            let high = halves::<0x31>(abcd, efgh);
            Avx(std::arch::x86_64::_mm256_add_ps(low, high)).to_array()
        }
    }
}

/// For each eight-bit mask, the positions of its set bits in increasing
/// order, one per byte from the lowest (the bytes after them are 0).
#[cfg(target_arch = "x86_64")]
static SET_BIT_POSITIONS: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut mask = 0;
    while mask < 256 {
        let (mut bit, mut len, mut packed) = (0, 0, 0u64);
        while bit < 8 {
            if mask & (1 << bit) != 0 {
                packed |= (bit as u64) << (8 * len);
                len += 1;
            }
            bit += 1;
        }
        table[mask] = packed;
        mask += 1;
    }
    table
};

/// Sixteen `f32` in one AVX-512 register.
///
/// Only code compiled for AVX-512 F may use it, and only after
/// [`super::Kernel::level`] said so: the methods are the CPU's instructions.
/// It has no [`Lanes`] extras: the kernels that take it keep one sum per
/// lane, so they give [`Avx`]'s bits at twice its width.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Avx512(std::arch::x86_64::__m512);

#[cfg(target_arch = "x86_64")]
impl Vector<f32> for Avx512 {
    const WIDTH: usize = 16;

    #[inline(always)]
    fn zero() -> Self {
        // SAFETY (here and below): `Avx512` is used only where the CPU has
        // AVX-512 F (see the type's documentation).
        Avx512(unsafe { std::arch::x86_64::_mm512_setzero_ps() })
    }

    #[inline(always)]
    fn splat(v: f32) -> Self {
        Avx512(unsafe { std::arch::x86_64::_mm512_set1_ps(v) })
    }

    #[inline(always)]
    unsafe fn load(src: *const f32) -> Self {
        // SAFETY: readable by the caller's promise; `loadu` allows any alignment.
        Avx512(unsafe { std::arch::x86_64::_mm512_loadu_ps(src) })
    }

    #[inline(always)]
    unsafe fn store(self, dst: *mut f32) {
        // SAFETY: writable by the caller's promise; `storeu` allows any alignment.
        unsafe { std::arch::x86_64::_mm512_storeu_ps(dst, self.0) }
    }

    #[inline(always)]
    fn madd(self, a: Self, b: Self) -> Self {
        Avx512(unsafe { std::arch::x86_64::_mm512_fmadd_ps(a.0, b.0, self.0) })
    }

    #[inline(always)]
    fn add(self, b: Self) -> Self {
        Avx512(unsafe { std::arch::x86_64::_mm512_add_ps(self.0, b.0) })
    }

    #[inline(always)]
    fn any_nonzero(self) -> bool {
        use std::arch::x86_64::{_mm512_cmp_ps_mask, _mm512_setzero_ps, _CMP_NEQ_UQ};
        // Unordered not-equal: a NaN lane compares true.
        unsafe { _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(self.0, _mm512_setzero_ps()) != 0 }
    }
}
