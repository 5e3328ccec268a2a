//! The forward product with output channels in the vector lanes, for small
//! planes.
//!
//! [`conv_direct`](super::conv_direct) puts eight pixels of an output row in
//! a vector. On a 7×7 plane a row fills seven of the eight lanes, and its
//! blocks of tiles run past the plane's last row (seven tiles in blocks of
//! three compute nine): two thirds of the multiply-adds are kept. Here each
//! vector holds eight output channels of one pixel instead (sixteen at
//! AVX-512), so every lane is used whatever the plane's width: a block of
//! `P` pixels × `NV` vectors of channels sweeps the taps, each tap one
//! broadcast image value per pixel and one load of weights per vector. The weights are read tap-major,
//! `[C·kh·kw, O]` ([`prepare_channel_lanes_weights`], once per batch).
//!
//! Every output is the same sum as in `conv_direct`: one multiply-add per
//! tap in tap order, then the bias. So the two kernels give the same bits,
//! on every level, and AVX-512 holds sixteen channels in a vector where
//! AVX2 holds eight. The input gradient's flipped convolution
//! ([`conv_direct_input_grad`](super::conv_direct_input_grad)) runs on this
//! kernel too where its images are as narrow.

#[cfg(target_arch = "x86_64")]
use super::compiled;
use super::{Geometry, Padded, TapCursor, Window};
#[cfg(target_arch = "x86_64")]
use crate::simd::{as_f32, as_f32_mut, Kernel};
use crate::simd::{SimdLevel, Vector, LANES, MAX_WIDTH};
use crate::Float;
use smallvec::SmallVec;

/// Output channels the prepared weights are padded to a multiple of: the
/// widest block's (two vectors of sixteen), so that every block reads whole
/// vectors.
pub(super) const CHANNEL_BLOCK: usize = 4 * LANES;

/// Block sizes, `(pixels, vectors of channels)`: 12 accumulators of eight
/// lanes with 16 vector registers (AVX2), 14 of sixteen lanes with 32
/// (AVX-512: 32 channels of 7 pixels, a row of a 7×7 or 14×14 plane).
pub(super) const BLOCK_16: (usize, usize) = (6, 2);
#[cfg(target_arch = "x86_64")]
pub(super) const BLOCK_32: (usize, usize) = (7, 2);
/// At AVX-512, for channel counts that are not a multiple of
/// [`CHANNEL_BLOCK`] (16 in deep-cnn's first layers, 50 in cnn's second):
/// 14 pixels × 1 vector.
#[cfg(target_arch = "x86_64")]
pub(super) const BLOCK_32_ONE: (usize, usize) = (14, 1);

/// Channels in one AVX-512 vector.
const WIDE_LANES: usize = 16;

/// The widest output plane this kernel is chosen for: up to here a row
/// tile of [`conv_direct`](super::conv_direct) leaves lanes empty or its
/// blocks of tiles run past the plane (7×7 in deep-cnn); from 16 pixels
/// wide (two full tiles) it fills its lanes as well as this one.
pub const CHANNEL_LANES_MAX_WIDTH: usize = 2 * LANES - 1;

/// Whether the forward pass of a convolution over `win` with `outputs`
/// channels runs with the channels in the lanes at `level` (the one the
/// convolutions run at, [`convolution_level`]): stride 1, and either a
/// plane at most [`CHANNEL_LANES_MAX_WIDTH`] wide with whole blocks of
/// output channels (with 16 channels at AVX2, LeNet's second layer, half of
/// each block would be the prepared weights' zeros), or, at AVX-512, a
/// plane of any width where the channels fill at least three quarters of
/// their vectors of sixteen and the sums have at least 32 taps.
pub fn channel_lanes_pays(win: &Window, outputs: usize, level: SimdLevel) -> bool {
    super::conv_direct_applies(win)
        && (win.out_w().is_some_and(|w| w <= CHANNEL_LANES_MAX_WIDTH)
            && outputs.is_multiple_of(CHANNEL_BLOCK)
            || wide_planes_in_lanes(level, outputs, win.col_rows()))
}

/// Whether a convolution with `outputs` channels and `taps` taps puts its
/// channels in the lanes on a plane of any width at `level`: at AVX-512,
/// where the channels fill at least three quarters of their vectors of
/// sixteen and the sums have at least [`WIDE_PLANE_MIN_TAPS`] taps. A
/// vector of channels is as full whatever the plane, where rows of 28
/// pixels fill 28 of 32 lanes of the pixel-row kernel's tiles, and its
/// vectors are twice as wide (`docs/performance.md`: 16 channels on 28×28
/// and 50 on 8×8 gained 1.4 ×).
pub(super) fn wide_planes_in_lanes(level: SimdLevel, outputs: usize, taps: usize) -> bool {
    level == SimdLevel::Avx512
        && outputs > 0
        && 4 * outputs >= 3 * outputs.next_multiple_of(WIDE_LANES)
        && taps >= WIDE_PLANE_MIN_TAPS
}

/// The fewest taps (`C·kh·kw`) for which a plane wider than
/// [`CHANNEL_LANES_MAX_WIDTH`] puts its channels in the lanes: each output
/// is stored on its own at the end of its sums, which with 9 taps (one
/// input channel, 3×3) cost more than the lanes save.
const WIDE_PLANE_MIN_TAPS: usize = 32;

/// Whether convolutions in `T` run in vector registers at the current
/// level (`f32` with AVX2 or wider): on plain arrays the channels in the
/// lanes are slower than [`conv_direct`](super::conv_direct).
pub fn convolution_vectorised<T: Float>() -> bool {
    convolution_level::<T>() != SimdLevel::Plain
}

/// The level the convolution kernels run at for `T` now: the family's
/// ([`Kernel::Convolution`]) for `f32`, plain for `f64`.
pub fn convolution_level<T: Float>() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    if as_f32::<T>(&[]).is_some() {
        return Kernel::Convolution.level();
    }
    SimdLevel::Plain
}

/// Whether `T` is `f32` and the CPU has AVX2 or wider, whatever
/// `limit_simd_level` says: for choices that must stay the same between
/// preparing weights and using them (the input gradient's).
pub(super) fn lanes_on_this_cpu<T: Float>() -> bool {
    #[cfg(target_arch = "x86_64")]
    if as_f32::<T>(&[]).is_some() && crate::detected_simd_level() != SimdLevel::Plain {
        return true;
    }
    false
}

/// Elements of the weights as [`conv_direct_channel_lanes`] reads them.
pub fn channel_lanes_weights_len(win: &Window, outputs: usize) -> usize {
    win.col_rows() * outputs.next_multiple_of(CHANNEL_BLOCK)
}

/// `weight` (`[O, C·kh·kw]`) tap-major into `dst`: `[C·kh·kw, O']`, `O'`
/// the outputs rounded up to a whole block, zeros past the last.
///
/// # Panics
/// If the lengths do not match (a bug in the caller).
pub fn prepare_channel_lanes_weights<T: Float>(win: &Window, weight: &[T], dst: &mut [T]) {
    let taps = win.col_rows();
    let outputs = weight.len() / taps.max(1);
    assert_eq!(outputs * taps, weight.len(), "channel lanes: weight length");
    assert_eq!(
        dst.len(),
        channel_lanes_weights_len(win, outputs),
        "channel lanes: prepared length"
    );
    let wide = outputs.next_multiple_of(CHANNEL_BLOCK);
    dst.fill(T::ZERO);
    for (o, filter) in weight.chunks_exact(taps.max(1)).enumerate() {
        for (t, &v) in filter.iter().enumerate() {
            dst[t * wide + o] = v;
        }
    }
}

/// The same output as [`conv_direct`](super::conv_direct), bit for bit,
/// from the weights prepared by [`prepare_channel_lanes_weights`]: `out`
/// (`[O, OH, OW]`) is overwritten.
///
/// # Panics
/// If the lengths do not match each other (a bug in the caller).
pub fn conv_direct_channel_lanes<T: Float>(
    image: &[T],
    padded: Padded,
    (kh, kw): (usize, usize),
    (prepared, outputs): (&[T], usize),
    bias: Option<&[T]>,
    out: &mut [T],
) {
    let taps = padded.channels * kh * kw;
    let g = Geometry::new(image, padded, kh, kw, taps * outputs);
    assert_eq!(
        prepared.len(),
        taps * outputs.next_multiple_of(CHANNEL_BLOCK),
        "channel lanes: prepared length"
    );
    assert_eq!(
        out.len(),
        g.outputs * g.oh * g.ow,
        "channel lanes: output length"
    );
    if let Some(b) = bias {
        assert_eq!(b.len(), g.outputs, "channel lanes: bias length");
    }
    if g.is_empty() {
        out.fill(T::ZERO);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let (Some(image), Some(prepared), Some(out)) =
        (as_f32(image), as_f32(prepared), as_f32_mut(out))
    {
        let bias = bias.map(|b| as_f32(b).expect("the bias has the weight's type"));
        // SAFETY: the CPU has the features each function is compiled for.
        match Kernel::Convolution.level() {
            SimdLevel::Avx512 if g.outputs.is_multiple_of(CHANNEL_BLOCK) => {
                return unsafe { compiled::channel_lanes_avx512(&g, image, prepared, bias, out) }
            }
            SimdLevel::Avx512 => {
                return unsafe {
                    compiled::channel_lanes_avx512_one(&g, image, prepared, bias, out)
                }
            }
            SimdLevel::Avx2 => {
                return unsafe { compiled::channel_lanes_avx2(&g, image, prepared, bias, out) }
            }
            SimdLevel::Plain => {}
        }
    }
    forward::<T, [T; LANES], { BLOCK_16.0 }, { BLOCK_16.1 }>(&g, image, prepared, bias, out);
}

/// The kernel: for each block of `NV` vectors of channels and of `P`
/// pixels, the sweep over every tap.
#[inline(always)]
pub(super) fn forward<T: Float, V: Vector<T>, const P: usize, const NV: usize>(
    g: &Geometry,
    image: &[T],
    prepared: &[T],
    bias: Option<&[T]>,
    out: &mut [T],
) {
    // Every block of channels reads whole vectors inside a prepared row.
    const { assert!(CHANNEL_BLOCK.is_multiple_of(NV * V::WIDTH) && V::WIDTH <= MAX_WIDTH) };
    let wide = g.outputs.next_multiple_of(CHANNEL_BLOCK);
    let plane_out = g.oh * g.ow;
    let mut cursor = TapCursor::new(g);
    let offsets: SmallVec<[usize; 1024]> = (0..g.taps).map(|_| cursor.advance()).collect();
    // Every read is a pixel's corner plus a tap's offset, both inside the
    // image: the window fits the padded image at every output pixel.
    let last = offsets.last().copied().unwrap_or(0);
    assert!(
        (g.oh - 1) * g.padded.width + g.ow - 1 + last < image.len(),
        "channel lanes: padded image too short"
    );
    let corner = |q: usize| (q / g.ow) * g.padded.width + q % g.ow;
    for o0 in (0..g.outputs).step_by(NV * V::WIDTH) {
        let columns = &prepared[o0..];
        for q0 in (0..plane_out).step_by(P) {
            // A block past the last pixel repeats it; its results are not stored.
            let corners: [*const T; P] =
                std::array::from_fn(|p| image[corner((q0 + p).min(plane_out - 1))..].as_ptr());
            let mut acc = [[V::zero(); NV]; P];
            for (t, &off) in offsets.iter().enumerate() {
                // SAFETY: `o0 + NV·WIDTH ≤ wide`, the prepared row's length.
                let w: [V; NV] = std::array::from_fn(|v| unsafe {
                    V::load(columns.as_ptr().add(t * wide + v * V::WIDTH))
                });
                for (acc_p, c) in acc.iter_mut().zip(&corners) {
                    // SAFETY: checked above for every corner and offset.
                    let x = V::splat(unsafe { *c.add(off) });
                    for (a, &w) in acc_p.iter_mut().zip(&w) {
                        *a = a.madd(w, x);
                    }
                }
            }
            for (p, acc_p) in acc.iter().enumerate().take(plane_out - q0) {
                for (v, a) in acc_p.iter().enumerate() {
                    let first = o0 + v * V::WIDTH;
                    let mut values = [T::ZERO; MAX_WIDTH];
                    // SAFETY: `values` holds MAX_WIDTH ≥ WIDTH values.
                    unsafe { a.store(values.as_mut_ptr()) };
                    for (l, &s) in values[..V::WIDTH]
                        .iter()
                        .enumerate()
                        .take(g.outputs.saturating_sub(first))
                    {
                        let b = bias.map_or(T::ZERO, |b| b[first + l]);
                        out[(first + l) * plane_out + q0 + p] = s + b;
                    }
                }
            }
        }
    }
}
