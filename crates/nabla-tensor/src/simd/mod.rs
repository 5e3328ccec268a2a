//! The one place that decides which vector instructions the kernels of
//! every crate use ([`simd_level`], limited by [`limit_simd_level`]), and
//! the one way they are dispatched ([`Kernel::run`]).
//!
//! Each family of kernels ([`Kernel`]) states the widest level it is
//! written for, and runs at that or at the CPU's level, whichever is lower
//! ([`Kernel::level`]). Two kinds of kernel take their level from it:
//! - elementwise loops, written once as plain Rust and handed to
//!   [`Kernel::run`], which calls them inside a function compiled for the
//!   level's instructions: the compiler vectorises them at 4 (baseline), 8
//!   (AVX2) or 16 (AVX-512) `f32` lanes;
//! - hand-blocked kernels over [`Lanes`] (`lanes.rs`), which choose their
//!   vector type and block sizes per level and keep one `#[target_feature]`
//!   entry function per level: called through `Kernel::run` closures, their
//!   intrinsics were not all inlined (the convolution twice as slow,
//!   `docs/performance.md`).

mod cpu;
mod lanes;

pub use cpu::{cpu_description, gemm_library_level};
#[cfg(target_arch = "x86_64")]
pub(crate) use lanes::{Avx, Avx512};
pub(crate) use lanes::{Lanes, Vector, LANES, MAX_WIDTH};

use crate::Float;
use std::any::TypeId;
use std::sync::atomic::{AtomicU8, Ordering};

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
    /// AVX2, FMA and POPCNT: eight `f32` lanes, 16 vector registers.
    /// (Every CPU with AVX2 has POPCNT; without it the compiler counts the
    /// bits of a lane mask with five multiplies and shifts.)
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
        if has!("avx2") && has!("fma") && has!("popcnt") {
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

    /// The widest level the family runs at: the widest that measured
    /// faster than the one below it (`docs/performance.md`, "AVX-512 on
    /// Zen 4", and "Intel Xeon (family 6 model 207)"). The sigmoid runs 16
    /// lanes at AVX-512; so do the blocked kernels whose lanes are
    /// independent sums (the channel-lanes convolutions, the transposed
    /// products, and the dot products with two rows to a register), while
    /// the others (axpy, the pixel-row convolutions) keep eight lanes there
    /// but hold larger blocks in its 32 registers. The streaming elementwise
    /// loops (the optimiser's update, the pixel
    /// conversion, the outer products) stop at AVX2: compiled at 16 lanes
    /// they measured no faster on an AVX-512 CPU (Zen 4: momentum's update
    /// 9–16% slower, Adam's 4–9% faster, the conversion 25% and the outer
    /// products 13% slower; Intel: Adam's 6% and the conversion 15% slower,
    /// the outer products 5% faster).
    pub fn widest(self) -> SimdLevel {
        match self {
            Kernel::DotProducts
            | Kernel::Axpy
            | Kernel::TransposedProducts
            | Kernel::Convolution
            | Kernel::Sigmoid => SimdLevel::Avx512,
            Kernel::OuterProducts | Kernel::OptimizerUpdate | Kernel::PixelConversion => {
                SimdLevel::Avx2
            }
        }
    }

    /// The level the family runs at now.
    #[inline]
    pub fn level(self) -> SimdLevel {
        simd_level().min(self.widest())
    }

    /// Runs `work` at the family's level ([`Kernel::level`]): inside a
    /// function compiled for AVX-512 (F, VL, and AVX2 with FMA), for AVX2
    /// with FMA, or for the baseline, so that the loops `work` inlines are
    /// vectorised at 16, 8 or 4 `f32` lanes. This is how every crate's
    /// elementwise kernels choose their instructions; nothing else in them
    /// depends on the CPU.
    ///
    /// `work` and the functions it calls must be inlined into that
    /// function, or they run at the baseline (correct, only slower): write
    /// `kernel.run(#[inline(always)] || loops(…))` with `loops` marked
    /// `#[inline(always)]` too. Without the mark on the closure the
    /// compiler kept a large one out of line (seen on the optimiser's).
    /// At the AVX levels the compiler may contract nothing on its own (Rust
    /// never fuses `a * b + c`), so a loop gives the same bits at every
    /// level unless it asks for fused multiply-adds (`mul_add`) or sums in
    /// lanes itself.
    #[inline(always)]
    pub fn run<R>(self, work: impl FnOnce() -> R) -> R {
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2,fma,popcnt,avx512f,avx512vl")]
            fn avx512<R>(work: impl FnOnce() -> R) -> R {
                work()
            }
            #[target_feature(enable = "avx2,fma,popcnt")]
            fn avx2<R>(work: impl FnOnce() -> R) -> R {
                work()
            }
            match self.level() {
                // SAFETY: the level is at most the CPU's (`simd_level`), so
                // the CPU has what each function is compiled for.
                SimdLevel::Avx512 => return unsafe { avx512(work) },
                SimdLevel::Avx2 => return unsafe { avx2(work) },
                SimdLevel::Plain => {}
            }
        }
        work()
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
