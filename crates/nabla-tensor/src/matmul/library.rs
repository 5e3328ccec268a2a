//! The `gemm` crate: the one place that calls it.
//!
//! It packs both operands into blocks and multiplies them in its own
//! microkernels, which it picks for the CPU itself (AVX-512 where the CPU
//! has it, through its `x86-v4` feature; AVX2 and FMA otherwise): the
//! process's SIMD limit does not reach it. Each output element's sum runs
//! over `k` in the same order whichever thread computes its block, so the
//! result is the same bits on any number of threads.

use super::Operand;
use super::Transpose;
use crate::Float;
use std::any::TypeId;
use std::cell::Cell;

/// `dst = op(a) · op(b)` (or `+=` with `accumulate`) through the library,
/// split between the threads of the current pool when `parallel`.
///
/// # Safety
/// As `super::gemm_unchecked`: `dst` holds `m·n` elements (read only with
/// `accumulate`) and does not overlap the operands, whose shapes were
/// checked against `(m, k, n)`.
pub(super) unsafe fn multiply<T: Float>(
    dst: *mut T,
    (m, k, n): (usize, usize, usize),
    a: Operand<'_, T>,
    b: Operand<'_, T>,
    accumulate: bool,
    parallel: bool,
) {
    // (column stride, row stride) of op(x) in elements.
    let strides = |x: &Operand<'_, T>| match x.t {
        Transpose::No => (1, x.cols as isize),
        Transpose::Yes => (x.cols as isize, 1),
    };
    let ((a_cs, a_rs), (b_cs, b_rs)) = (strides(&a), strides(&b));
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // gemm dispatches on TypeId; only f32 and f64 implement `Float`.
    debug_assert!(
        TypeId::of::<T>() == TypeId::of::<f32>() || TypeId::of::<T>() == TypeId::of::<f64>()
    );
    let _inside = GemmScope::enter();
    // SAFETY: the caller guarantees dst holds m·n elements (read only when
    // `accumulate`); the strides above address op(a) (m×k) and op(b) (k×n)
    // inside their buffers, whose shapes were checked; dst does not alias them.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        );
    }
}

thread_local! {
    static IN_GEMM: Cell<bool> = const { Cell::new(false) };
}

/// True while the current thread is inside the `gemm` library. The library
/// allocates its packing buffers on every product it packs (there is no way
/// to hand it a reusable buffer), so an allocation counter uses this to tell
/// those allocations from nabla's own.
pub fn in_gemm_library() -> bool {
    IN_GEMM.with(Cell::get)
}

/// Marks the current thread as inside the `gemm` library until dropped.
struct GemmScope;

impl GemmScope {
    fn enter() -> Self {
        IN_GEMM.with(|f| f.set(true));
        GemmScope
    }
}

impl Drop for GemmScope {
    fn drop(&mut self) {
        IN_GEMM.with(|f| f.set(false));
    }
}
