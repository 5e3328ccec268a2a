//! The weight gradient with output channels in the vector lanes, for small
//! planes: `dWᵀ[t, o] = Σ_n Σ_q dY_n[o, q] · X_n[corner(q) + offset(t)]`.
//!
//! [`conv_direct_weight_grad`](super::conv_direct_weight_grad) multiplies
//! rows of the output gradient by shifted image rows, eight pixels a
//! vector; a 7-pixel row leaves a lane empty and ends every sum early. Here
//! a vector holds eight output channels of one pixel's output gradient
//! (the gradients transposed to `[q, O]` first), and a block of taps ×
//! vectors of channels stays in registers while it runs over every pixel
//! of a few images at a time; each image value it needs is one broadcast.
//!
//! Each weight's sum runs over the pixels of a chunk of
//! [`IMAGES_PER_CHUNK`] images in order, and the chunks' sums are added in
//! batch order: the same bits whatever the threads (which share out the
//! taps) and whatever the vector level (every lane is one weight's sum, so
//! AVX-512's sixteen lanes give AVX2's eight lanes' bits).

use super::channel_lanes::CHANNEL_BLOCK;
#[cfg(target_arch = "x86_64")]
use super::compiled;
use super::{Geometry, Padded, TapCursor, Window, CHANNEL_LANES_MAX_WIDTH};
#[cfg(target_arch = "x86_64")]
use crate::simd::{as_f32, as_f32_mut, Kernel, SimdLevel};
use crate::simd::{Vector, LANES};
use crate::Float;
use smallvec::SmallVec;
use std::ops::Range;

/// Images whose pixels one pass of a block sums before adding to the
/// gradient: their transposed gradients and padded images stay in the
/// second-level cache while every block of taps passes over them.
pub const IMAGES_PER_CHUNK: usize = 4;

/// Block sizes, `(taps, vectors of channels)`: 12 accumulators of eight
/// lanes with 16 registers (AVX2), 24 of sixteen lanes with 32 (AVX-512).
pub(super) const BLOCK_16: (usize, usize) = (6, 2);
#[cfg(target_arch = "x86_64")]
pub(super) const BLOCK_32: (usize, usize) = (12, 2);

/// The most output positions for which the weight gradient runs with the
/// channels in the lanes (a 16×16 output plane): a chunk of images then
/// stays within the second-level cache.
pub const WEIGHT_GRAD_LANES_MAX_POSITIONS: usize = 256;

/// Whether the weight gradient of a convolution over `win` with `outputs`
/// channels runs with the channels in the lanes: stride 1, small planes at
/// most [`CHANNEL_LANES_MAX_WIDTH`] wide, and whole blocks of channels.
pub fn weight_grad_in_lanes(win: &Window, outputs: usize) -> bool {
    super::conv_direct_applies(win)
        && win.out_w().is_some_and(|w| w <= CHANNEL_LANES_MAX_WIDTH)
        && win.positions() <= WEIGHT_GRAD_LANES_MAX_POSITIONS
        && outputs.is_multiple_of(CHANNEL_BLOCK)
}

/// Elements of the transposed output gradients of `images` images.
pub fn weight_grad_lanes_scratch_len(win: &Window, outputs: usize, images: usize) -> usize {
    images * win.positions() * outputs
}

/// The output gradients `grad` (`[N, O, P]`) transposed into `dst`
/// (`[N, P, O]`), as [`conv_direct_weight_grad_lanes`] reads them.
///
/// # Panics
/// If the lengths differ (a bug in the caller).
pub fn transpose_grads<T: Float>(grad: &[T], (outputs, positions): (usize, usize), dst: &mut [T]) {
    assert_eq!(grad.len(), dst.len(), "transpose_grads: lengths");
    let each = (outputs * positions).max(1);
    for (g, d) in grad.chunks_exact(each).zip(dst.chunks_exact_mut(each)) {
        for (o, row) in g.chunks_exact(positions.max(1)).enumerate() {
            for (q, &v) in row.iter().enumerate() {
                d[q * outputs + o] = v;
            }
        }
    }
}

/// Rows `taps` of `dWᵀ` (`[C·kh·kw, O]`, so `dwt` holds `taps.len() · O`
/// elements, overwritten): the weight gradient of a stride-1 convolution
/// over the padded `images` (`[N, padded.len()]`, see
/// [`pad_into`](super::pad_into)) with the transposed output gradients
/// `grads` ([`transpose_grads`]).
///
/// # Panics
/// If the lengths do not match (a bug in the caller).
pub fn conv_direct_weight_grad_lanes<T: Float>(
    images: &[T],
    padded: Padded,
    (kh, kw): (usize, usize),
    (grads, outputs): (&[T], usize),
    taps: Range<usize>,
    dwt: &mut [T],
) {
    let all_taps = padded.channels * kh * kw;
    let g = Geometry::of(padded, kh, kw, all_taps * outputs);
    let n = images.len() / padded.len().max(1);
    assert_eq!(n * padded.len(), images.len(), "weight grad lanes: images");
    assert_eq!(
        grads.len(),
        n * g.oh * g.ow * outputs,
        "weight grad lanes: gradients"
    );
    assert!(
        taps.end <= all_taps && outputs.is_multiple_of(CHANNEL_BLOCK),
        "weight grad lanes: taps {taps:?} of {all_taps}, {outputs} outputs"
    );
    assert_eq!(dwt.len(), taps.len() * outputs, "weight grad lanes: dWᵀ");
    #[cfg(target_arch = "x86_64")]
    if let (Some(images), Some(grads), Some(dwt)) = (as_f32(images), as_f32(grads), as_f32_mut(dwt))
    {
        // SAFETY: the CPU has the features each function is compiled for.
        match Kernel::Convolution.level() {
            SimdLevel::Avx512 => {
                return unsafe { compiled::weight_grad_lanes_avx512(&g, images, grads, taps, dwt) }
            }
            SimdLevel::Avx2 => {
                return unsafe { compiled::weight_grad_lanes_avx2(&g, images, grads, taps, dwt) }
            }
            SimdLevel::Plain => {}
        }
    }
    weight_grad::<T, [T; LANES], { BLOCK_16.0 }, { BLOCK_16.1 }>(&g, images, grads, taps, dwt);
}

/// The kernel: for each chunk of images, each block of `TB` taps and `NV`
/// vectors of channels sums over the chunk's pixels in registers.
#[inline(always)]
pub(super) fn weight_grad<T: Float, V: Vector<T>, const TB: usize, const NV: usize>(
    g: &Geometry,
    images: &[T],
    grads: &[T],
    taps: Range<usize>,
    dwt: &mut [T],
) {
    const { assert!(CHANNEL_BLOCK.is_multiple_of(NV * V::WIDTH)) };
    let (o, plane) = (g.outputs, g.oh * g.ow);
    let image_len = g.padded.len();
    let n = images.len() / image_len.max(1);
    let mut cursor = TapCursor::new(g);
    let offsets: SmallVec<[usize; 1024]> = (0..g.taps).map(|_| cursor.advance()).collect();
    // Every read is a pixel's corner plus a tap's offset inside its image.
    let last = offsets.last().copied().unwrap_or(0);
    assert!((g.oh - 1) * g.padded.width + g.ow - 1 + last < image_len);
    let corners: SmallVec<[usize; 128]> = (0..plane)
        .map(|q| (q / g.ow) * g.padded.width + q % g.ow)
        .collect();
    for (chunk, n0) in (0..n).step_by(IMAGES_PER_CHUNK).enumerate() {
        let n1 = (n0 + IMAGES_PER_CHUNK).min(n);
        for t0 in taps.clone().step_by(TB) {
            // A block past the last tap repeats it; its sums are not stored.
            let offs: [usize; TB] = std::array::from_fn(|i| offsets[(t0 + i).min(taps.end - 1)]);
            for o0 in (0..o).step_by(NV * V::WIDTH) {
                let mut acc = [[V::zero(); NV]; TB];
                for b in n0..n1 {
                    let image = &images[b * image_len..][..image_len];
                    let grad = &grads[b * plane * o..][..plane * o];
                    for (q, &corner) in corners.iter().enumerate() {
                        // SAFETY: `o0 + NV·WIDTH ≤ o` (whole blocks), inside row q.
                        let dy: [V; NV] = std::array::from_fn(|v| unsafe {
                            V::load(grad.as_ptr().add(q * o + o0 + v * V::WIDTH))
                        });
                        let at = image[corner..].as_ptr();
                        for (acc_t, &off) in acc.iter_mut().zip(&offs) {
                            // SAFETY: corner + offset < image_len, asserted above.
                            let x = V::splat(unsafe { *at.add(off) });
                            for (a, &d) in acc_t.iter_mut().zip(&dy) {
                                *a = a.madd(d, x);
                            }
                        }
                    }
                }
                for (i, acc_t) in acc.iter().enumerate().take(taps.end - t0) {
                    let row = &mut dwt[(t0 - taps.start + i) * o + o0..][..NV * V::WIDTH];
                    for (v, a) in acc_t.iter().enumerate() {
                        let dst = &mut row[v * V::WIDTH..][..V::WIDTH];
                        // SAFETY: `dst` holds WIDTH values.
                        unsafe {
                            if chunk == 0 {
                                a.store(dst.as_mut_ptr());
                            } else {
                                V::load(dst.as_ptr()).add(*a).store(dst.as_mut_ptr());
                            }
                        }
                    }
                }
            }
        }
    }
    if n == 0 {
        dwt.fill(T::ZERO);
    }
}
