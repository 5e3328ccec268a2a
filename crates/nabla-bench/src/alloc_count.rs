//! A global allocator that counts allocations, so the benchmark can report
//! how many a steady-state training step makes: nabla's own (the goal is
//! zero) apart from those inside the `gemm` library (its packing buffers).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

/// The system allocator, counting every allocation and reallocation.
pub struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static GEMM_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

fn count() {
    if nabla::tensor::in_gemm_library() {
        GEMM_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    } else {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations so far: (outside the `gemm` library, inside it).
pub fn allocations() -> (u64, u64) {
    (
        ALLOCATIONS.load(Ordering::Relaxed),
        GEMM_ALLOCATIONS.load(Ordering::Relaxed),
    )
}
