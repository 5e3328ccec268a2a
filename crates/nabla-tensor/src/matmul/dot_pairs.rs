//! The dot products' block at AVX-512: two rows of `a` share one register
//! of sixteen lanes, so that each multiply-add does the work of two of the
//! eight-lane kernel's, with the same bits.
//!
//! Lanes 0–7 of a register hold eight columns of one row of `a`, lanes 8–15
//! the same columns of the next row; a row of `b` is loaded into both
//! halves. Every lane then sums exactly what the eight-lane kernel's lane
//! sums, in the same order, and at the end each half is added up by the
//! same tree (`Lanes::sums` of `Avx`, through `dot::store_sums`): AVX-512
//! gives AVX2's bits, as the unit tests and `tests/simd_levels.rs` check.

use super::dot::{store_sums, Block};
use crate::simd::{Avx, Vector, LANES};
use std::arch::x86_64::{
    __m512, _mm256_castps_pd, _mm256_loadu_ps, _mm512_broadcast_f64x4, _mm512_castpd256_pd512,
    _mm512_castpd_ps, _mm512_fmadd_ps, _mm512_insertf64x4, _mm512_setzero_ps, _mm512_storeu_ps,
};

/// [`Block`] of four rows of `a` (two registers of pairs) × `C` rows of
/// `b`: `2·C` accumulators. Only code compiled for AVX-512 F may use it.
/// (Blocks of 8 rows × 6 were slower: `docs/performance.md`.)
pub(super) struct Pairs;

impl<const C: usize> Block<f32, 4, C> for Pairs {
    #[inline(always)]
    unsafe fn run(
        a_rows: &[&[f32]; 4],
        b_rows: &[&[f32]; C],
        live: Option<&[u32]>,
        at: (usize, usize),
        size: (usize, usize),
        out: *mut f32,
        accumulate: bool,
    ) {
        let k = a_rows[0].len();
        let full = k / LANES * LANES;
        // SAFETY (all the intrinsics here): the caller's promise that the
        // CPU has AVX-512 F; every pointer read is `p + LANES <= k` into a
        // row of `k`, or into `tail`, stack copies of a vector's length.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); C]; 2];
            match live {
                Some(live) => {
                    for &p in live {
                        let p = p as usize;
                        sweep(&mut acc, a_rows.map(|r| r.as_ptr().add(p)), |c| {
                            b_rows[c].as_ptr().add(p)
                        });
                    }
                }
                None => {
                    for p in (0..full).step_by(LANES) {
                        sweep(&mut acc, a_rows.map(|r| r.as_ptr().add(p)), |c| {
                            b_rows[c].as_ptr().add(p)
                        });
                    }
                }
            }
            if full < k {
                // The partial vector, zeros after it, as the eight-lane
                // kernel's masked load gives.
                let mut tail = [[0.0f32; LANES]; 4];
                let mut tail_b = [[0.0f32; LANES]; C];
                for (t, r) in tail.iter_mut().zip(a_rows) {
                    t[..k - full].copy_from_slice(&r[full..]);
                }
                for (t, r) in tail_b.iter_mut().zip(b_rows) {
                    t[..k - full].copy_from_slice(&r[full..]);
                }
                sweep(&mut acc, tail.each_ref().map(|t| t.as_ptr()), |c| {
                    tail_b[c].as_ptr()
                });
            }
            // Each register's halves back as the eight-lane accumulators
            // of rows 2h and 2h + 1, summed as the eight-lane block's.
            let mut halves = [[[0.0f32; 2 * LANES]; C]; 2];
            for (h, acc_h) in acc.iter().enumerate() {
                for (c, v) in acc_h.iter().enumerate() {
                    _mm512_storeu_ps(halves[h][c].as_mut_ptr(), *v);
                }
            }
            let rows: [[Avx; C]; 4] = std::array::from_fn(|r| {
                std::array::from_fn(|c| Avx::load(halves[r / 2][c][r % 2 * LANES..].as_ptr()))
            });
            store_sums(&rows, at, size, out, accumulate);
        }
    }
}

/// One step of the sweep: the four rows of `a` at `a` in two pairs, each
/// row of `b` (`b(c)`) in both halves, `2·C` multiply-adds.
///
/// # Safety
/// The CPU has AVX-512 F; eight values are readable at each pointer.
#[inline(always)]
unsafe fn sweep<const C: usize>(
    acc: &mut [[__m512; C]; 2],
    a: [*const f32; 4],
    b: impl Fn(usize) -> *const f32,
) {
    // SAFETY: the caller's promise.
    unsafe {
        let xs = [pair(a[0], a[1]), pair(a[2], a[3])];
        for c in 0..C {
            let wv = both(b(c));
            for (acc_h, &x) in acc.iter_mut().zip(&xs) {
                acc_h[c] = _mm512_fmadd_ps(x, wv, acc_h[c]);
            }
        }
    }
}

/// Eight values at `lo` in lanes 0–7 and eight at `hi` in lanes 8–15.
///
/// # Safety
/// As [`sweep`].
#[inline(always)]
unsafe fn pair(lo: *const f32, hi: *const f32) -> __m512 {
    // SAFETY: the caller's promise.
    unsafe {
        let low = _mm512_castpd256_pd512(_mm256_castps_pd(_mm256_loadu_ps(lo)));
        _mm512_castpd_ps(_mm512_insertf64x4::<1>(
            low,
            _mm256_castps_pd(_mm256_loadu_ps(hi)),
        ))
    }
}

/// Eight values at `p` in both halves.
///
/// # Safety
/// As [`sweep`].
#[inline(always)]
unsafe fn both(p: *const f32) -> __m512 {
    // SAFETY: the caller's promise.
    unsafe { _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(p)))) }
}
