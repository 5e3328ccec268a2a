//! Eight-lane vectors for the hand-blocked kernels (see `conv::direct`),
//! and the one place that decides which vector instructions the kernels of
//! every crate use ([`simd_level`], limited by [`limit_simd_level`]).
//!
//! A kernel is written once, generic over [`Lanes`], and compiled twice:
//! with [`Avx`] (eight `f32` in one AVX register, fused multiply-add) inside
//! a function compiled for AVX2 and FMA, chosen at run time when the CPU has
//! them; and with plain arrays `[T; 8]` for every other CPU and for `f64`.
//! Left to itself the compiler vectorised such kernels along the wrong axis,
//! or not at all.

use crate::Float;
use std::any::TypeId;
use std::sync::atomic::{AtomicU8, Ordering};

/// Lanes of one vector.
pub(crate) const LANES: usize = 8;

/// Eight values of `T` and the few operations the kernels use.
pub(crate) trait Lanes<T: Float>: Copy {
    /// All lanes zero.
    fn zero() -> Self;
    /// All lanes `v`.
    fn splat(v: T) -> Self;
    /// `LANES` values from `src`, which may be unaligned.
    ///
    /// # Safety
    /// `src .. src + LANES` must be readable.
    unsafe fn load(src: *const T) -> Self;
    /// `LANES` values to `dst`, which may be unaligned.
    ///
    /// # Safety
    /// `dst .. dst + LANES` must be writable.
    unsafe fn store(self, dst: *mut T);
    /// `self + a · b`, lane by lane.
    fn madd(self, a: Self, b: Self) -> Self;
    /// `self + b`, lane by lane.
    fn add(self, b: Self) -> Self;
    /// The lanes, in order.
    fn to_array(self) -> [T; LANES];
    /// Bit `l` set where lane `l` is not zero (NaN counts as not zero).
    fn nonzero_lanes(self) -> u32;

    /// Whether any lane is not zero (NaN counts as not zero).
    #[inline(always)]
    fn any_nonzero(self) -> bool {
        self.nonzero_lanes() != 0
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
impl<T: Float> Lanes<T> for [T; LANES] {
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
/// [`level`] said so: the methods are the CPU's instructions.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Avx(std::arch::x86_64::__m256);

#[cfg(target_arch = "x86_64")]
impl Lanes<f32> for Avx {
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

/// The vector instructions nabla's own kernels use, from the narrowest.
///
/// The kernels choose theirs from [`simd_level`], once per call, in this one
/// place: every crate asks it rather than detecting the CPU itself. Matrix
/// products that go to the `gemm` crate are the exception: it picks its own
/// microkernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimdLevel {
    /// No vector extension beyond the build's baseline: plain arrays, which
    /// the compiler may still vectorise at the baseline width.
    Plain,
    /// AVX2 and FMA: eight `f32` lanes, 16 vector registers.
    Avx2,
    /// AVX-512 (F and VL) as well: the kernels that have a wider plan keep
    /// larger blocks in 32 registers.
    Avx512,
}

impl SimdLevel {
    /// Every level, from the narrowest.
    pub const ALL: [SimdLevel; 3] = [SimdLevel::Plain, SimdLevel::Avx2, SimdLevel::Avx512];

    /// The name used in reports and on command lines.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Plain => "plain",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
        }
    }

    /// The level called `name` ([`SimdLevel::name`]).
    pub fn from_name(name: &str) -> Option<SimdLevel> {
        SimdLevel::ALL.into_iter().find(|l| l.name() == name)
    }
}

impl std::fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The widest level this CPU offers (the standard library caches the
/// answer).
pub fn detected_simd_level() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        use std::is_x86_feature_detected as has;
        if has!("avx2") && has!("fma") {
            if has!("avx512f") && has!("avx512vl") {
                return SimdLevel::Avx512;
            }
            return SimdLevel::Avx2;
        }
    }
    SimdLevel::Plain
}

/// The most [`simd_level`] may return: `u8::MAX` while not limited.
static LIMIT: AtomicU8 = AtomicU8::new(u8::MAX);

/// The level the kernels run at: the CPU's, or less if
/// [`limit_simd_level`] asked for less.
#[inline]
pub fn simd_level() -> SimdLevel {
    let detected = detected_simd_level();
    match LIMIT.load(Ordering::Relaxed) {
        0 => SimdLevel::Plain,
        1 => detected.min(SimdLevel::Avx2),
        _ => detected,
    }
}

/// Makes the kernels run at `limit` at most (`None`: at the CPU's level),
/// for every thread, from their next call; returns the limit it replaced.
/// For tests and benchmarks that compare levels on one machine. Results
/// can differ between levels in the last bits (see `docs/performance.md`),
/// so set it while nothing else computes.
pub fn limit_simd_level(limit: Option<SimdLevel>) -> Option<SimdLevel> {
    let code = limit.map_or(u8::MAX, |l| l as u8);
    match LIMIT.swap(code, Ordering::Relaxed) {
        0 => Some(SimdLevel::Plain),
        1 => Some(SimdLevel::Avx2),
        2 => Some(SimdLevel::Avx512),
        _ => None,
    }
}

/// The families of vector kernels, in every crate, each with the widest
/// level it is written for: a family runs at [`simd_level`] or its widest,
/// whichever is lower ([`Kernel::level`]), and every dispatch asks this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Dot products of rows (small-batch matrix products and their plans).
    DotProducts,
    /// Outer products and the check for mostly-zero rows.
    OuterProducts,
    /// Sparse rows times a matrix (axpy).
    Axpy,
    /// Products with a transposed operand that `gemm` does not take.
    TransposedProducts,
    /// Direct (stride-1) convolutions and their gradients.
    Convolution,
    /// The sigmoid, a polynomial `exp` in vectors.
    Sigmoid,
    /// The optimiser's elementwise update (`nabla-optim`).
    OptimizerUpdate,
    /// Pixels to values in `[0, 1]` when a batch is gathered (`nabla-data`).
    PixelConversion,
}

impl Kernel {
    /// Every family.
    pub const ALL: [Kernel; 8] = [
        Kernel::DotProducts,
        Kernel::OuterProducts,
        Kernel::Axpy,
        Kernel::TransposedProducts,
        Kernel::Convolution,
        Kernel::Sigmoid,
        Kernel::OptimizerUpdate,
        Kernel::PixelConversion,
    ];

    /// The family's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::DotProducts => "dot products",
            Kernel::OuterProducts => "outer products",
            Kernel::Axpy => "axpy",
            Kernel::TransposedProducts => "transposed products",
            Kernel::Convolution => "direct convolution",
            Kernel::Sigmoid => "sigmoid",
            Kernel::OptimizerUpdate => "optimiser update",
            Kernel::PixelConversion => "pixel conversion",
        }
    }

    /// The widest level the family has a kernel for.
    pub fn widest(self) -> SimdLevel {
        match self {
            Kernel::DotProducts | Kernel::TransposedProducts | Kernel::Convolution => {
                SimdLevel::Avx512
            }
            Kernel::OuterProducts
            | Kernel::Axpy
            | Kernel::Sigmoid
            | Kernel::OptimizerUpdate
            | Kernel::PixelConversion => SimdLevel::Avx2,
        }
    }

    /// The level the family runs at now.
    #[inline]
    pub fn level(self) -> SimdLevel {
        simd_level().min(self.widest())
    }
}

/// Every family and the level it runs at now, in one line
/// (`dot products avx2, …`), for reports beside [`cpu_description`].
pub fn kernel_levels() -> String {
    Kernel::ALL
        .iter()
        .map(|k| format!("{} {}", k.name(), k.level()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The level of the microkernels the `gemm` crate runs on this CPU: it
/// chooses them itself from the CPU's features (AVX-512 F where present,
/// else FMA with AVX2, else plain loops), so [`limit_simd_level`] does not
/// lower it.
pub fn gemm_library_level() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        use std::is_x86_feature_detected as has;
        if has!("avx512f") {
            return SimdLevel::Avx512;
        }
        if has!("fma") {
            return SimdLevel::Avx2;
        }
    }
    SimdLevel::Plain
}

/// This CPU in one line: its name, and on x86 its family and model numbers
/// (which tell generations apart where the name does not, as in virtual
/// machines) and the SIMD level the kernels run at.
pub fn cpu_description() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::__cpuid;
        // Leaves above the highest extended one the CPU reports are not read.
        let (name, family, model) = {
            let mut name = String::new();
            if __cpuid(0x8000_0000).eax >= 0x8000_0004 {
                for leaf in 0x8000_0002..=0x8000_0004u32 {
                    let r = __cpuid(leaf);
                    for word in [r.eax, r.ebx, r.ecx, r.edx] {
                        name.extend(word.to_le_bytes().iter().map(|&b| b as char));
                    }
                }
            }
            let eax = __cpuid(1).eax;
            let base_family = (eax >> 8) & 0xf;
            let family = if base_family == 0xf {
                base_family + ((eax >> 20) & 0xff)
            } else {
                base_family
            };
            let model = if base_family == 0x6 || base_family == 0xf {
                (((eax >> 16) & 0xf) << 4) | ((eax >> 4) & 0xf)
            } else {
                (eax >> 4) & 0xf
            };
            (name, family, model)
        };
        let name = name.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        let name = if name.is_empty() { "x86-64" } else { name };
        format!(
            "{name} (family {family} model {model}), SIMD {}{}",
            simd_level(),
            if simd_level() == detected_simd_level() {
                String::new()
            } else {
                format!(" (limited; the CPU has {})", detected_simd_level())
            }
        )
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        format!("{}, SIMD {}", std::env::consts::ARCH, simd_level())
    }
}

/// `values` as `f32`, when `T` is `f32`.
#[inline]
pub(crate) fn as_f32<T: Float>(values: &[T]) -> Option<&[f32]> {
    // SAFETY: T is f32, so the slice is already a slice of f32.
    (TypeId::of::<T>() == TypeId::of::<f32>())
        .then(|| unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), values.len()) })
}

/// `values` as mutable `f32`, when `T` is `f32`.
#[inline]
pub(crate) fn as_f32_mut<T: Float>(values: &mut [T]) -> Option<&mut [f32]> {
    // SAFETY: T is f32, so the slice is already a slice of f32.
    (TypeId::of::<T>() == TypeId::of::<f32>()).then(|| unsafe {
        std::slice::from_raw_parts_mut(values.as_mut_ptr().cast(), values.len())
    })
}
