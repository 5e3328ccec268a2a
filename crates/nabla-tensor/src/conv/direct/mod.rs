//! Stride-1 convolution read straight from the image, without a column matrix.
//!
//! With stride 1, row `(c, i, j)` of [`im2col`](super::im2col)'s column
//! matrix, restricted to output row `y`, is the contiguous run
//! `image[c, y + i, j ..]` of the zero-padded image. So the product
//! `W · col` can read its right-hand side from the image itself (an
//! "implicit GEMM"; block sizes below are AVX2's, AVX-512 takes larger ones):
//!
//! - [`conv_direct`] keeps a block of 4 output channels × 3 output tiles
//!   of 8 pixels in registers and sweeps the `C·kh·kw` taps, each tap one
//!   broadcast weight per channel and one unaligned load per tile;
//! - [`conv_direct_weight_grad`] turns the roles round: a block of 4 output
//!   channels × 2 taps accumulates products of output-gradient rows with
//!   shifted image rows, and sums the lanes at the end;
//! - [`conv_direct_input_grad`] either runs the forward kernel on the padded
//!   output gradient with flipped weights, or, for each window column, sums
//!   a block of 4 input channels × 3 rows over the output channels and
//!   window rows and adds it where col2im would have;
//! - on small planes, [`conv_direct_channel_lanes`] (its own file) computes
//!   [`conv_direct`]'s sums with output channels in the lanes instead of
//!   pixels, for the forward pass and the input gradient's flipped
//!   convolution.
//!
//! Next to im2col and a library GEMM this saves the column matrix (`kh·kw`
//! copies of the image written and read again) and the library's packing,
//! which on these small products cost as much as the arithmetic.
//!
//! The kernels are written once over [`Lanes`](crate::simd::Lanes): `f32`
//! on CPUs with AVX2 and FMA runs them in AVX registers, everything else in
//! plain arrays. The order of every sum is fixed by the loops, so results do
//! not depend on threads; they may differ in the last bits between a machine
//! with fused multiply-add and one without.

use super::Window;
#[cfg(target_arch = "x86_64")]
use crate::simd::{as_f32, as_f32_mut, Kernel, SimdLevel};
use crate::simd::{Lanes, LANES};
use crate::Float;
use smallvec::SmallVec;
use BLOCKS_16 as B16;

mod channel_lanes;
#[cfg(target_arch = "x86_64")]
mod compiled;
mod input_grad;
#[cfg(test)]
mod tests;
mod weight_grad;
mod weight_grad_lanes;

pub use channel_lanes::{
    channel_lanes_pays, channel_lanes_weights_len, conv_direct_channel_lanes, convolution_level,
    convolution_vectorised, prepare_channel_lanes_weights, CHANNEL_LANES_MAX_WIDTH,
};

pub use input_grad::{
    conv_direct_input_grad, input_grad_scratch_len, input_grad_weights_len,
    prepare_input_grad_weights,
};
pub use weight_grad::conv_direct_weight_grad;
pub use weight_grad_lanes::{
    conv_direct_weight_grad_lanes, transpose_grads, weight_grad_in_lanes,
    weight_grad_lanes_scratch_len, IMAGES_PER_CHUNK, WEIGHT_GRAD_LANES_MAX_POSITIONS,
};

/// Block sizes of the three kernels, as `(rows, columns)` of registers:
/// forward (output channels × tiles), weight gradient (output channels ×
/// taps, a multiple of [`LANES`] vectors), input gradient by scatter
/// (input channels × rows).
/// With 16 vector registers (AVX2) a block of 12 accumulators leaves room
/// for the operands; with 32 (AVX-512) the blocks grow and each load feeds
/// more multiply-adds.
const BLOCKS_16: [(usize, usize); 3] = [(4, 3), (4, 2), (4, 3)];
/// Output channels in one block of the weight-gradient kernel, on every
/// path: callers that share the channels out between threads give each a
/// multiple of this, so that no block is cut short.
pub const WEIGHT_GRAD_ROWS: usize = BLOCKS_16[1].0;
/// Elements that fit the first-level data cache (32 KiB of `f32`).
const L1_ELEMENTS: usize = 8192;
/// The most accumulators a weight-gradient block may have.
const MAX_GRAD_BLOCK: usize = 32;
#[cfg(target_arch = "x86_64")]
const BLOCKS_32: [(usize, usize); 3] = [(8, 3), (4, 4), (8, 3)];

/// The layout of a zero-padded image: `[channels, height, width]`, row-major,
/// followed by [`Padded::SLACK`] zeros so that a tile running past the last
/// row's end still reads inside the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Padded {
    /// Channels.
    pub channels: usize,
    /// Height, padding included.
    pub height: usize,
    /// Width, padding included.
    pub width: usize,
}

impl Padded {
    /// Elements after the image that a tile may read (and multiply by a weight
    /// whose product is never stored).
    pub const SLACK: usize = LANES;

    /// The padded layout of a `channels × height × width` image with `pad_h`
    /// zero rows above and below and `pad_w` zero columns left and right.
    pub fn of(channels: usize, height: usize, width: usize, pad_h: usize, pad_w: usize) -> Self {
        Padded {
            channels,
            height: height + 2 * pad_h,
            width: width + 2 * pad_w,
        }
    }

    /// The padded image a convolution over `win` reads: its input with
    /// `win.padding` zeros on every side.
    pub fn of_window(win: &Window) -> Self {
        Padded::of(
            win.channels,
            win.height,
            win.width,
            win.padding,
            win.padding,
        )
    }

    /// Elements of one channel plane.
    pub fn plane(&self) -> usize {
        self.height * self.width
    }

    /// Length of the buffer, slack included.
    pub fn len(&self) -> usize {
        self.channels * self.plane() + Self::SLACK
    }

    /// True when the image itself has no pixels.
    pub fn is_empty(&self) -> bool {
        self.channels * self.plane() == 0
    }

    /// Output size of a stride-1 `kh × kw` window over this image, or `None`
    /// when the window does not fit.
    pub fn out_size(&self, kh: usize, kw: usize) -> Option<(usize, usize)> {
        (kh > 0 && kw > 0 && kh <= self.height && kw <= self.width)
            .then(|| (self.height - kh + 1, self.width - kw + 1))
    }
}

/// Writes `image` (`[C, H, W]`) into `dst` laid out as `padded`, with zeros
/// around (as many on each side as `padded` adds) and in the slack.
///
/// # Panics
/// If the lengths do not match (a bug in the caller).
pub fn pad_into<T: Float>(
    image: &[T],
    (height, width): (usize, usize),
    padded: Padded,
    dst: &mut [T],
) {
    assert_eq!(dst.len(), padded.len(), "pad_into: destination length");
    assert_eq!(
        image.len(),
        padded.channels * height * width,
        "pad_into: image length"
    );
    let (ph, pw) = ((padded.height - height) / 2, (padded.width - width) / 2);
    if ph == 0 && pw == 0 {
        let (body, slack) = dst.split_at_mut(image.len());
        body.copy_from_slice(image);
        slack.fill(T::ZERO);
        return;
    }
    // Each element is written once: the zeros only where the image is not
    // (`dst` is often a reused buffer, and a pass zeroing all of it first
    // would cost as much as the copy).
    let (body, slack) = dst.split_at_mut(padded.channels * padded.plane());
    slack.fill(T::ZERO);
    if height * width == 0 {
        body.fill(T::ZERO);
        return;
    }
    let (top, rows) = (ph * padded.width, height * padded.width);
    for (src, plane) in image
        .chunks_exact(height * width)
        .zip(body.chunks_exact_mut(padded.plane()))
    {
        let (above, rest) = plane.split_at_mut(top);
        let (middle, below) = rest.split_at_mut(rows);
        above.fill(T::ZERO);
        below.fill(T::ZERO);
        for (row, out) in src
            .chunks_exact(width)
            .zip(middle.chunks_exact_mut(padded.width))
        {
            let (left, rest) = out.split_at_mut(pw);
            let (inside, right) = rest.split_at_mut(width);
            zero_few(left);
            inside.copy_from_slice(row);
            zero_few(right);
        }
    }
}

/// Zeros `s`, written element by element when it is one or two long (the
/// padding of a row, every row of an image): `fill` would call `memset`,
/// whose call costs more than the stores.
#[inline(always)]
fn zero_few<T: Float>(s: &mut [T]) {
    match s {
        [] => {}
        [a] => *a = T::ZERO,
        [a, b] => {
            *a = T::ZERO;
            *b = T::ZERO;
        }
        _ => s.fill(T::ZERO),
    }
}

/// `out[o, y, x] = bias[o] + Σ_{c,i,j} weight[o, c, i, j] · image[c, y + i, x + j]`
/// over a padded `image` (see [`pad_into`]): a stride-1 convolution whose
/// padding is already in the image. `out` is `[O, OH, OW]` with
/// `(OH, OW) = padded.out_size(kh, kw)` and is overwritten.
///
/// # Panics
/// If the lengths do not match each other (a bug in the caller).
pub fn conv_direct<T: Float>(
    image: &[T],
    padded: Padded,
    (kh, kw): (usize, usize),
    weight: &[T],
    bias: Option<&[T]>,
    out: &mut [T],
) {
    let g = Geometry::new(image, padded, kh, kw, weight.len());
    assert_eq!(
        out.len(),
        g.outputs * g.oh * g.ow,
        "conv_direct: output length"
    );
    if let Some(b) = bias {
        assert_eq!(b.len(), g.outputs, "conv_direct: bias length");
    }
    if g.is_empty() {
        out.fill(T::ZERO);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let (Some(image), Some(weight), Some(out)) = (as_f32(image), as_f32(weight), as_f32_mut(out))
    {
        let bias = bias.map(|b| as_f32(b).expect("the bias has the weight's type"));
        // SAFETY: the CPU has the features each function is compiled for.
        match Kernel::Convolution.level() {
            SimdLevel::Avx512 => {
                return unsafe { compiled::forward_avx512(&g, image, weight, bias, out) }
            }
            SimdLevel::Avx2 => {
                return unsafe { compiled::forward_avx2(&g, image, weight, bias, out) }
            }
            SimdLevel::Plain => {}
        }
    }
    forward::<T, [T; LANES], { B16[0].0 }, { B16[0].1 }>(&g, image, weight, bias, out);
}

/// Whether the direct kernels handle a convolution over `win`: stride 1,
/// and at least 8 taps (`C·kh·kw`), the most the input-gradient
/// kernel takes in one block. Others go through im2col.
pub fn conv_direct_applies(win: &Window) -> bool {
    win.stride == 1 && win.col_rows() >= LANES
}

/// Output positions up to which a stride-1 weight gradient may be computed
/// as one product over the whole batch, `dW = dY · colᵀ` with the images'
/// column matrices side by side, rather than by [`conv_direct_weight_grad`]:
/// on small planes (7×7 in deep-cnn) the direct kernel's rows of a few
/// pixels fill its vectors poorly, while the product's sums run over every
/// pixel of the batch. On 14×14 planes and larger the direct kernel is the
/// faster (`docs/performance.md`).
pub const WEIGHT_GRAD_PRODUCT_MAX_POSITIONS: usize = 64;

/// The fewest output channels for the product of
/// [`WEIGHT_GRAD_PRODUCT_MAX_POSITIONS`]: it first copies every image's
/// column matrix and output gradient, and does about as many multiply-adds
/// per copied value as there are output channels. With 16 (LeNet's second
/// layer) the copies cost more than the direct kernel takes in all; with 50
/// (cnn's second) the kernel alone is faster but the epoch slower, its
/// copies crowding the caches.
pub const WEIGHT_GRAD_PRODUCT_MIN_OUTPUTS: usize = 64;

/// The most elements the product of [`WEIGHT_GRAD_PRODUCT_MAX_POSITIONS`]
/// may lay out for a batch's column matrices (32 MB of `f32`): a larger
/// batch in one call (a shard of thousands of images) goes to the direct
/// kernel, which holds only the padded images.
pub const WEIGHT_GRAD_PRODUCT_MAX_ELEMENTS: usize = 1 << 23;

/// Whether the weight gradient of a convolution over `win` with
/// `out_channels` outputs, for `batch` images in one call, is computed as
/// one product over the batch (see [`WEIGHT_GRAD_PRODUCT_MAX_POSITIONS`])
/// rather than by the direct kernel.
pub fn weight_grad_as_product(win: &Window, out_channels: usize, batch: usize) -> bool {
    conv_direct_applies(win)
        && win.positions() <= WEIGHT_GRAD_PRODUCT_MAX_POSITIONS
        && out_channels >= WEIGHT_GRAD_PRODUCT_MIN_OUTPUTS
        && batch
            .saturating_mul(win.positions())
            .saturating_mul(win.col_rows())
            <= WEIGHT_GRAD_PRODUCT_MAX_ELEMENTS
}

/// Sizes shared by both kernels, checked once so the inner loops can index
/// without bounds checks.
struct Geometry {
    padded: Padded,
    kh: usize,
    kw: usize,
    /// Taps per output channel: `C·kh·kw`.
    taps: usize,
    outputs: usize,
    oh: usize,
    ow: usize,
    /// Tiles of [`LANES`] pixels per output row.
    row_tiles: usize,
}

impl Geometry {
    /// The geometry of `image`, which must be laid out as `padded`.
    fn new<T>(image: &[T], padded: Padded, kh: usize, kw: usize, weights: usize) -> Self {
        assert_eq!(
            image.len(),
            padded.len(),
            "direct convolution: padded image length"
        );
        Self::of(padded, kh, kw, weights)
    }

    fn of(padded: Padded, kh: usize, kw: usize, weights: usize) -> Self {
        let (oh, ow) = padded
            .out_size(kh, kw)
            .expect("direct convolution: the window fits the padded image");
        let taps = padded.channels * kh * kw;
        let outputs = weights.checked_div(taps).unwrap_or(0);
        assert_eq!(outputs * taps, weights, "direct convolution: weight length");
        Geometry {
            padded,
            kh,
            kw,
            taps,
            outputs,
            oh,
            ow,
            row_tiles: ow.div_ceil(LANES),
        }
    }

    fn is_empty(&self) -> bool {
        self.taps == 0 || self.outputs == 0 || self.oh * self.ow == 0
    }

    /// Offset in the padded image of tap `p = (c, i, j)` from a window's corner.
    #[inline(always)]
    fn tap_offset(&self, p: usize) -> usize {
        let (c, ij) = (p / (self.kh * self.kw), p % (self.kh * self.kw));
        c * self.padded.plane() + (ij / self.kw) * self.padded.width + ij % self.kw
    }

    /// Output row and first column of tile `t` (tiles run along rows).
    #[inline(always)]
    fn tile(&self, t: usize) -> (usize, usize) {
        (t / self.row_tiles, (t % self.row_tiles) * LANES)
    }

    /// Whether reading [`LANES`] pixels at every tap from every tile start
    /// stays inside the padded image: the last tile starts at most
    /// `LANES − 1` pixels before the end of its row, and the window's last
    /// row ends `kw − 1` pixels before the end of the image, so the reads
    /// end at most `LANES − kw` pixels into the slack.
    fn reads_fit(&self) -> bool {
        let last_start = (self.oh - 1) * self.padded.width + (self.row_tiles - 1) * LANES;
        last_start + self.tap_offset(self.taps - 1) + LANES <= self.padded.len()
    }
}

/// The offsets of the taps `(c, i, j)`, in order, from a window's corner,
/// kept up to date step by step (no divisions in the kernels' loops).
#[derive(Clone, Copy)]
struct TapCursor {
    off: usize,
    i: usize,
    j: usize,
    kh: usize,
    kw: usize,
    /// From the end of a window row to the start of the next.
    row_step: usize,
    /// From the end of a window's last row to the next channel's first.
    plane_step: usize,
}

impl TapCursor {
    fn new(g: &Geometry) -> Self {
        TapCursor {
            off: 0,
            i: 0,
            j: 0,
            kh: g.kh,
            kw: g.kw,
            row_step: g.padded.width - g.kw,
            plane_step: g.padded.plane() - g.kh * g.padded.width,
        }
    }

    /// The current tap's offset; moves to the next tap.
    #[inline(always)]
    fn advance(&mut self) -> usize {
        let at = self.off;
        (self.off, self.j) = (self.off + 1, self.j + 1);
        if self.j == self.kw {
            (self.off, self.i, self.j) = (self.off + self.row_step, self.i + 1, 0);
            if self.i == self.kh {
                (self.off, self.i) = (self.off + self.plane_step, 0);
            }
        }
        at
    }

    /// The offsets of the next `N` taps of `remaining`; past the last tap,
    /// the last one again (a block's spare rows, whose results are not kept).
    #[inline(always)]
    fn block<const N: usize>(&mut self, remaining: usize) -> [usize; N] {
        let mut offs = [0; N];
        for q in 0..N {
            offs[q] = if q < remaining {
                self.advance()
            } else {
                offs[q - 1]
            };
        }
        offs
    }
}

/// The forward kernel: for each block of output channels and of tiles, the
/// sweep over every tap `(c, i, j)`.
#[inline(always)]
fn forward<T: Float, V: Lanes<T>, const MR: usize, const NT: usize>(
    g: &Geometry,
    image: &[T],
    weight: &[T],
    bias: Option<&[T]>,
    out: &mut [T],
) {
    assert!(g.reads_fit(), "direct convolution: padded image too short");
    let tiles = g.oh * g.row_tiles;
    let plane_out = g.oh * g.ow;
    let width = g.padded.width;
    // The taps' offsets, and each block's weights tap-major, so the inner
    // loop walks two arrays instead of tracking a cursor and MR filters
    // (which left the compiler short of registers).
    let mut cursor = TapCursor::new(g);
    let offsets: SmallVec<[usize; 1024]> = (0..g.taps).map(|_| cursor.advance()).collect();
    for o0 in (0..g.outputs).step_by(MR) {
        // A block past the last channel repeats it; its results are not stored.
        let filters: [&[T]; MR] =
            std::array::from_fn(|r| &weight[(o0 + r).min(g.outputs - 1) * g.taps..][..g.taps]);
        for t0 in (0..tiles).step_by(NT) {
            // Likewise a tile past the last.
            let starts: [(usize, usize); NT] =
                std::array::from_fn(|t| g.tile((t0 + t).min(tiles - 1)));
            let corners = starts.map(|(y, x)| image[y * width + x..].as_ptr());
            let mut acc = [[V::zero(); NT]; MR];
            // One flat loop over the taps: nested loops made the compiler
            // move the accumulators to memory between rows.
            for (p, &off) in offsets.iter().enumerate() {
                // SAFETY: `reads_fit` bounds every tile corner plus every tap offset.
                let px = corners.map(|corner| unsafe { V::load(corner.add(off)) });
                for (acc_r, filter) in acc.iter_mut().zip(&filters) {
                    let w = V::splat(filter[p]);
                    for (a, &v) in acc_r.iter_mut().zip(&px) {
                        *a = a.madd(w, v);
                    }
                }
            }
            for (r, acc_r) in acc.iter().enumerate().take(g.outputs - o0) {
                let b = V::splat(bias.map_or(T::ZERO, |b| b[o0 + r]));
                let plane = &mut out[(o0 + r) * plane_out..][..plane_out];
                for (&acc_t, &(y, x)) in acc_r.iter().zip(&starts).take(tiles - t0) {
                    let dst = &mut plane[y * g.ow + x..][..(g.ow - x).min(LANES)];
                    let v = acc_t.add(b);
                    if dst.len() == LANES {
                        // SAFETY: `dst` holds LANES values.
                        unsafe { v.store(dst.as_mut_ptr()) };
                    } else {
                        dst.copy_from_slice(&v.to_array()[..dst.len()]);
                    }
                }
            }
        }
    }
}
