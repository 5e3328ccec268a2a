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
//!   window rows and adds it where col2im would have.
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
use crate::simd::{as_f32, as_f32_mut, level, Level};
use crate::simd::{Lanes, LANES};
use crate::Float;
use smallvec::SmallVec;
use std::ops::Range;
use BLOCKS_16 as B16;

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
/// The scatter plan's prepared weights pad the input channels to a multiple
/// of this (the most channels in one of its blocks), so that a block's
/// weights are side by side, zeros past the last channel.
const CHANNEL_PAD: usize = 8;
/// Zero rows above and below each output-gradient plane in the scatter
/// plan's scratch: a block of up to `ROW_PAD + 1` rows then reads rows
/// past the plane's edges without a check.
const ROW_PAD: usize = 2;
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
    dst.fill(T::ZERO);
    for (src, plane) in image
        .chunks_exact((height * width).max(1))
        .zip(dst.chunks_exact_mut(padded.plane().max(1)))
    {
        for (row, out) in src
            .chunks_exact(width.max(1))
            .zip(plane[ph * padded.width..].chunks_exact_mut(padded.width))
        {
            out[pw..pw + width].copy_from_slice(row);
        }
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
        match level() {
            Level::Avx512 => {
                return unsafe { compiled::forward_avx512(&g, image, weight, bias, out) }
            }
            Level::Avx2 => return unsafe { compiled::forward_avx2(&g, image, weight, bias, out) },
            Level::Plain => {}
        }
    }
    forward::<T, [T; LANES], { B16[0].0 }, { B16[0].1 }>(&g, image, weight, bias, out);
}

/// `dw[o, c, i, j] += Σ_{n,y,x} grad[n, o, y, x] · images[n, c, y + i, x + j]`:
/// the weight gradient of [`conv_direct`] summed over a batch, added to
/// `dw`, for the output channels `first ..` that `dw` has rows for (all of
/// them, or a share: threads may each take a range of channels, and every
/// sum runs the same way whatever the split). `images` holds the batch's
/// padded images one after another (each `padded.len()` long), `grad` their
/// output gradients, every channel.
///
/// The whole batch goes through one call: each block of sums then runs
/// over every image before its lanes are added up, where one image alone
/// (an 8×8 output, say) gives too few products to pay for that.
///
/// # Panics
/// If the lengths do not match each other (a bug in the caller).
pub fn conv_direct_weight_grad<T: Float>(
    images: &[T],
    padded: Padded,
    (kh, kw): (usize, usize),
    grad: &[T],
    first: usize,
    dw: &mut [T],
) {
    let (oh, ow) = padded
        .out_size(kh, kw)
        .expect("direct convolution: the window fits the padded image");
    let taps = padded.channels * kh * kw;
    let batch = images.len().checked_div(padded.len()).unwrap_or(0);
    if taps == 0 || oh * ow == 0 || batch == 0 || dw.is_empty() {
        return;
    }
    assert_eq!(
        images.len(),
        batch * padded.len(),
        "conv_direct_weight_grad: padded images length"
    );
    let outputs = grad.len() / (batch * oh * ow);
    assert_eq!(
        grad.len(),
        batch * outputs * oh * ow,
        "conv_direct_weight_grad: gradient length"
    );
    let rows = first..first + dw.len() / taps;
    assert!(
        dw.len() % taps == 0 && rows.end <= outputs,
        "conv_direct_weight_grad: weight-gradient rows"
    );
    let g = Geometry::of(padded, kh, kw, outputs * taps);
    #[cfg(target_arch = "x86_64")]
    if let (Some(images), Some(grad), Some(dw)) = (as_f32(images), as_f32(grad), as_f32_mut(dw)) {
        // SAFETY: the CPU has the features each function is compiled for.
        match level() {
            Level::Avx512 => {
                return unsafe { compiled::weight_grad_avx512(&g, images, grad, rows, dw) }
            }
            Level::Avx2 => {
                return unsafe { compiled::weight_grad_avx2(&g, images, grad, rows, dw) }
            }
            Level::Plain => {}
        }
    }
    weight_grad::<T, [T; LANES], { B16[1].0 }, { B16[1].1 }>(&g, images, grad, rows, dw);
}

/// Whether the direct kernels handle a convolution over `win`: stride 1,
/// and at least 8 taps (`C·kh·kw`), the most the input-gradient
/// kernel takes in one block. Others go through im2col.
pub fn conv_direct_applies(win: &Window) -> bool {
    win.stride == 1 && win.col_rows() >= LANES
}

/// Elements of the weights as [`conv_direct_input_grad`] reads them, for
/// a convolution of `outputs` channels over `win` (stride 1).
pub fn input_grad_weights_len(win: &Window, outputs: usize) -> usize {
    let (c, kh, kw) = (win.channels, win.kernel_h, win.kernel_w);
    match InputGradPlan::of(win, outputs) {
        InputGradPlan::Flipped(_) => outputs * c * kh * kw,
        InputGradPlan::Scatter => kw * outputs * kh * c.next_multiple_of(CHANNEL_PAD),
    }
}

/// The weights as [`conv_direct_input_grad`] reads them for a convolution
/// over `win` (stride 1): `[O, C, kh, kw]` rearranged, into `dst`
/// ([`input_grad_weights_len`] long). Prepare them once per batch, not per
/// image.
///
/// # Panics
/// If the lengths do not match (a bug in the caller).
pub fn prepare_input_grad_weights<T: Float>(win: &Window, weight: &[T], dst: &mut [T]) {
    let (c, kh, kw) = (win.channels, win.kernel_h, win.kernel_w);
    let o = weight.len() / win.col_rows().max(1);
    assert_eq!(
        weight.len(),
        o * c * kh * kw,
        "prepare_input_grad_weights: weight length"
    );
    assert_eq!(
        dst.len(),
        input_grad_weights_len(win, o),
        "prepare_input_grad_weights: destination length"
    );
    let plan = InputGradPlan::of(win, o);
    let c_pad = c.next_multiple_of(CHANNEL_PAD);
    dst.fill(T::ZERO);
    let taps = kh * kw;
    for (oi, filters) in weight.chunks_exact(c * taps.max(1)).enumerate() {
        for (ci, window) in filters.chunks_exact(taps.max(1)).enumerate() {
            for (t, &v) in window.iter().enumerate() {
                let (i, j) = (t / kw, t % kw);
                let at = match plan {
                    // [C, O, kh, kw], each window turned by 180°.
                    InputGradPlan::Flipped(_) => {
                        ((ci * o + oi) * kh + kh - 1 - i) * kw + kw - 1 - j
                    }
                    // [kw, O, kh, C padded]: a block's channels side by side.
                    InputGradPlan::Scatter => ((j * o + oi) * kh + i) * c_pad + ci,
                };
                dst[at] = v;
            }
        }
    }
}

/// The two ways [`conv_direct_input_grad`] can go.
enum InputGradPlan {
    /// A convolution of the output gradient, zero-padded by `kh − 1 − p`
    /// (laid out as given), with the flipped weights: no scattered adds, but
    /// it also multiplies the padding's zeros.
    Flipped(Padded),
    /// For each window column `j`, a block of input channels × rows of
    /// the padded input gradient gathers its sum over the output channels
    /// and the window rows in registers, then is added in place, `j`
    /// columns to the right of the output tile it was computed on. Next to
    /// the flipped plan it multiplies few zeros (only where a block of rows
    /// meets the image's top or bottom edge).
    Scatter,
}

impl InputGradPlan {
    fn of(win: &Window, outputs: usize) -> Self {
        let (kh, kw, p) = (win.kernel_h, win.kernel_w, win.padding);
        let (oh, ow) = (win.out_h().unwrap_or(0), win.out_w().unwrap_or(0));
        if p >= kh || p >= kw {
            return InputGradPlan::Scatter;
        }
        let flipped_work = win.height * win.width.div_ceil(LANES);
        let scatter_work = oh * ow.div_ceil(LANES);
        if flipped_work <= 2 * scatter_work {
            InputGradPlan::Flipped(Padded::of(outputs, oh, ow, kh - 1 - p, kw - 1 - p))
        } else {
            InputGradPlan::Scatter
        }
    }
}

/// Scratch elements [`conv_direct_input_grad`] needs for a convolution of
/// `outputs` channels over `win` (stride 1).
pub fn input_grad_scratch_len(win: &Window, outputs: usize) -> usize {
    match InputGradPlan::of(win, outputs) {
        InputGradPlan::Flipped(padded) => padded.len(),
        InputGradPlan::Scatter => {
            let (oh, ow) = (win.out_h().unwrap_or(0), win.out_w().unwrap_or(0));
            let padded = Padded::of(
                win.channels,
                win.height,
                win.width,
                win.padding,
                win.padding,
            );
            outputs * (oh + 2 * ROW_PAD) * ow.div_ceil(LANES) * LANES + padded.len()
        }
    }
}

/// `dx[c, u, v] = Σ_{o,i,j} weight[o, c, i, j] · grad[o, u + p − i, v + p − j]`
/// (terms outside `grad` left out): the input gradient of a stride-1
/// convolution over `win` for one image, written to `dx` (`[C, H, W]`).
/// `prepared` is `weight` rearranged by [`prepare_input_grad_weights`].
///
/// Where the padding is small next to the kernel (e.g. 3×3 with padding 1),
/// this is [`conv_direct`] of the zero-padded gradient with the flipped
/// weights. Otherwise (e.g. 5×5 without padding, where that would multiply
/// more zeros than values) each window column's share is summed in
/// registers over the output channels and window rows, and added to a
/// padded gradient image (as col2im adds a column matrix), cropped into
/// `dx` at the end. `scratch` holds [`input_grad_scratch_len`] elements;
/// its contents do not matter.
///
/// # Panics
/// If [`conv_direct_applies`] is false or the lengths do not match (a bug
/// in the caller).
pub fn conv_direct_input_grad<T: Float>(
    win: &Window,
    grad: &[T],
    prepared: &[T],
    scratch: &mut [T],
    dx: &mut [T],
) {
    assert!(conv_direct_applies(win), "conv_direct_input_grad: {win:?}");
    assert_eq!(
        dx.len(),
        win.image_len(),
        "conv_direct_input_grad: image length"
    );
    let (oh, ow) = (win.out_h().unwrap_or(0), win.out_w().unwrap_or(0));
    let outputs = grad.len().checked_div(oh * ow).unwrap_or(0);
    assert_eq!(
        grad.len(),
        outputs * oh * ow,
        "conv_direct_input_grad: gradient length"
    );
    assert_eq!(
        prepared.len(),
        input_grad_weights_len(win, outputs),
        "conv_direct_input_grad: prepared weights length"
    );
    assert_eq!(
        scratch.len(),
        input_grad_scratch_len(win, outputs),
        "conv_direct_input_grad: scratch length"
    );
    if let InputGradPlan::Flipped(grad_padded) = InputGradPlan::of(win, outputs) {
        pad_into(grad, (oh, ow), grad_padded, scratch);
        conv_direct(
            scratch,
            grad_padded,
            (win.kernel_h, win.kernel_w),
            prepared,
            None,
            dx,
        );
        return;
    }
    let padded = Padded::of(
        win.channels,
        win.height,
        win.width,
        win.padding,
        win.padding,
    );
    let g = Geometry::of(padded, win.kernel_h, win.kernel_w, outputs * win.col_rows());
    if g.is_empty() {
        dx.fill(T::ZERO);
        return;
    }
    let (rows, dx_padded) = scratch.split_at_mut(g.outputs * g.scatter_plane());
    g.scatter_rows(grad, rows);
    dx_padded.fill(T::ZERO);
    dispatch_input_grad(&g, rows, prepared, dx_padded);
    let p = win.padding;
    for (plane, padded_plane) in dx
        .chunks_exact_mut(win.height * win.width)
        .zip(dx_padded.chunks_exact(padded.plane()))
    {
        for (row, padded_row) in plane
            .chunks_exact_mut(win.width)
            .zip(padded_plane[p * padded.width..].chunks_exact(padded.width))
        {
            row.copy_from_slice(&padded_row[p..p + win.width]);
        }
    }
}

fn dispatch_input_grad<T: Float>(g: &Geometry, rows: &[T], weight: &[T], dx_padded: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if let (Some(rows), Some(weight), Some(dx)) =
        (as_f32(rows), as_f32(weight), as_f32_mut(dx_padded))
    {
        // SAFETY: the CPU has the features each function is compiled for.
        match level() {
            Level::Avx512 => return unsafe { compiled::input_grad_avx512(g, rows, weight, dx) },
            Level::Avx2 => return unsafe { compiled::input_grad_avx2(g, rows, weight, dx) },
            Level::Plain => {}
        }
    }
    input_grad::<T, [T; LANES], { B16[2].0 }, { B16[2].1 }>(g, rows, weight, dx_padded);
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

    /// Elements of one output-gradient plane as the scatter plan reads it:
    /// rows widened to whole tiles, `ROW_PAD` zero rows above and below.
    fn scatter_plane(&self) -> usize {
        (self.oh + 2 * ROW_PAD) * self.row_tiles * LANES
    }

    /// Lays the output gradient `grad` out in `rows` as the scatter plan
    /// reads it: every row widened to whole tiles (zeros after it, so the
    /// lanes past a row add 0), and zero rows above and below each plane.
    fn scatter_rows<T: Float>(&self, grad: &[T], rows: &mut [T]) {
        let wide = self.row_tiles * LANES;
        for (plane, src) in rows
            .chunks_exact_mut(self.scatter_plane())
            .zip(grad.chunks_exact(self.oh * self.ow))
        {
            let (top, rest) = plane.split_at_mut(ROW_PAD * wide);
            let (body, bottom) = rest.split_at_mut(self.oh * wide);
            top.fill(T::ZERO);
            bottom.fill(T::ZERO);
            for (dst, src) in body.chunks_exact_mut(wide).zip(src.chunks_exact(self.ow)) {
                dst[..self.ow].copy_from_slice(src);
                dst[self.ow..].fill(T::ZERO);
            }
        }
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

/// The kernels compiled for AVX2 with FMA, and again for AVX-512 with
/// larger blocks. Callers check [`level`] first.
#[cfg(target_arch = "x86_64")]
mod compiled {
    use super::{forward, input_grad, weight_grad, Geometry, BLOCKS_16 as B16, BLOCKS_32 as B32};
    use crate::simd::Avx;
    use std::ops::Range;

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn forward_avx2(
        g: &Geometry,
        image: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        forward::<f32, Avx, { B16[0].0 }, { B16[0].1 }>(g, image, weight, bias, out);
    }

    #[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
    pub(super) fn forward_avx512(
        g: &Geometry,
        image: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        forward::<f32, Avx, { B32[0].0 }, { B32[0].1 }>(g, image, weight, bias, out);
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn weight_grad_avx2(
        g: &Geometry,
        image: &[f32],
        grad: &[f32],
        rows: Range<usize>,
        dw: &mut [f32],
    ) {
        weight_grad::<f32, Avx, { B16[1].0 }, { B16[1].1 }>(g, image, grad, rows, dw);
    }

    #[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
    pub(super) fn weight_grad_avx512(
        g: &Geometry,
        image: &[f32],
        grad: &[f32],
        rows: Range<usize>,
        dw: &mut [f32],
    ) {
        weight_grad::<f32, Avx, { B32[1].0 }, { B32[1].1 }>(g, image, grad, rows, dw);
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn input_grad_avx2(g: &Geometry, rows: &[f32], weight: &[f32], dx: &mut [f32]) {
        input_grad::<f32, Avx, { B16[2].0 }, { B16[2].1 }>(g, rows, weight, dx);
    }

    #[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
    pub(super) fn input_grad_avx512(g: &Geometry, rows: &[f32], weight: &[f32], dx: &mut [f32]) {
        input_grad::<f32, Avx, { B32[2].0 }, { B32[2].1 }>(g, rows, weight, dx);
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

/// The weight-gradient kernel: for each block of output channels and of
/// taps, the sweep over every output tile of every image.
#[inline(always)]
fn weight_grad<T: Float, V: Lanes<T>, const MR: usize, const NQ: usize>(
    g: &Geometry,
    images: &[T],
    grad: &[T],
    rows: Range<usize>,
    dw: &mut [T],
) {
    const {
        assert!(
            MR * NQ % LANES == 0 && MR * NQ <= MAX_GRAD_BLOCK,
            "whole sums of LANES"
        );
        assert!(MR == WEIGHT_GRAD_ROWS, "one block height on every path");
    };
    assert!(g.reads_fit(), "direct convolution: padded image too short");
    let grad_len = g.outputs * g.oh * g.ow;
    // Images in groups that stay in the first-level cache (32 KiB) while
    // every block sweeps them; the lanes are added up once per group.
    let group = (L1_ELEMENTS / (g.padded.len() + grad_len)).max(1);
    let tiles = GroupTiles::new(g, group);
    let groups = images
        .chunks(group * g.padded.len())
        .zip(grad.chunks(group * grad_len));
    for (images, grad) in groups {
        let count = images.len() / g.padded.len();
        weight_grad_group::<T, V, MR, NQ>(g, images, grad, rows.clone(), dw, &tiles, count);
    }
}

/// `(gradient offset, image offset)` of a tile's first pixel.
type TileStart = (usize, usize);

/// Where each output tile of a group of images starts: `(gradient offset,
/// image offset)` of its first pixel in the group's output-gradient plane 0
/// and padded images, whole tiles and the rows' last, partial ones apart.
/// One flat list keeps the kernel's accumulators in registers from the
/// first tile of a group to the last.
struct GroupTiles {
    full: SmallVec<[TileStart; 256]>,
    partial: SmallVec<[TileStart; 64]>,
    /// Lanes in a partial tile.
    rest: usize,
}

impl GroupTiles {
    fn new(g: &Geometry, images: usize) -> Self {
        let grad_len = g.outputs * g.oh * g.ow;
        let full_end = g.ow / LANES * LANES;
        let mut tiles = GroupTiles {
            full: SmallVec::new(),
            partial: SmallVec::new(),
            rest: g.ow - full_end,
        };
        for n in 0..images {
            for y in 0..g.oh {
                let (d, px) = (
                    n * grad_len + y * g.ow,
                    n * g.padded.len() + y * g.padded.width,
                );
                for x in (0..full_end).step_by(LANES) {
                    tiles.full.push((d + x, px + x));
                }
                if tiles.rest > 0 {
                    tiles.partial.push((d + full_end, px + full_end));
                }
            }
        }
        tiles
    }

    /// The tiles of the first `images` images.
    fn of(&self, g: &Geometry, images: usize) -> (&[TileStart], &[TileStart]) {
        let per_image = g.oh * (g.ow / LANES);
        let partial = if self.rest > 0 { g.oh * images } else { 0 };
        (&self.full[..per_image * images], &self.partial[..partial])
    }
}

/// [`weight_grad`] over one group of `count` images.
#[inline(always)]
fn weight_grad_group<T: Float, V: Lanes<T>, const MR: usize, const NQ: usize>(
    g: &Geometry,
    images: &[T],
    grad: &[T],
    rows: Range<usize>,
    dw: &mut [T],
    tiles: &GroupTiles,
    count: usize,
) {
    let plane_out = g.oh * g.ow;
    let (full, partial) = tiles.of(g, count);
    // Bounds for the unchecked loads below: every tile's gradient lanes
    // lie in the group, and `reads_fit` bounds every image read.
    assert!(images.len() >= count * g.padded.len() && grad.len() >= count * g.outputs * plane_out);
    for o0 in rows.clone().step_by(MR) {
        // A block past the last row repeats it; its sums are not stored.
        let planes: [*const T; MR] =
            std::array::from_fn(|r| grad[(o0 + r).min(rows.end - 1) * plane_out..].as_ptr());
        let mut taps = TapCursor::new(g);
        for p0 in (0..g.taps).step_by(NQ) {
            let offs: [usize; NQ] = taps.block(g.taps - p0);
            let mut acc = [[V::zero(); NQ]; MR];
            for &(d_at, px_at) in full {
                // SAFETY: see the assertion above; `d_at + LANES` stays in
                // the tile's row of its plane.
                let d = planes.map(|plane| unsafe { V::load(plane.add(d_at)) });
                grad_tile(&mut acc, &d, images[px_at..].as_ptr(), &offs);
            }
            for &(d_at, px_at) in partial {
                // Lanes past the row's end are zero, so the pixels they
                // meet add nothing.
                let d = planes.map(|plane| {
                    // SAFETY: the row's last `rest` values, inside the plane.
                    V::load_partial(unsafe {
                        std::slice::from_raw_parts(plane.add(d_at), tiles.rest)
                    })
                });
                grad_tile(&mut acc, &d, images[px_at..].as_ptr(), &offs);
            }
            // Loops with constant trip counts only, which unroll into
            // constant indices: a loop the compiler keeps (over iterator
            // adapters, say) would hold `acc` in memory all along, with a
            // store after every multiply-add.
            for k in 0..MR * NQ / LANES {
                let sums = V::sums(std::array::from_fn(|l| {
                    let i = k * LANES + l;
                    acc[i / NQ][i % NQ]
                }));
                for (l, v) in sums.into_iter().enumerate() {
                    let i = k * LANES + l;
                    let (r, q) = (i / NQ, i % NQ);
                    if o0 + r < rows.end && p0 + q < g.taps {
                        dw[(o0 + r - rows.start) * g.taps + p0 + q] += v;
                    }
                }
            }
        }
    }
}

/// The input-gradient kernel of the scatter plan: for each window column
/// `j`, block of input channels, block of rows of the padded input gradient
/// and output tile, the sum over the output channels and window rows, then
/// added `j` columns to the right of the tile. `rows` is the output
/// gradient widened and padded as [`conv_direct_input_grad`] lays it out,
/// `weight` prepared by [`prepare_input_grad_weights`].
#[inline(always)]
fn input_grad<T: Float, V: Lanes<T>, const MC: usize, const NR: usize>(
    g: &Geometry,
    rows: &[T],
    weight: &[T],
    dx_padded: &mut [T],
) {
    const {
        assert!(
            CHANNEL_PAD % MC == 0 && NR <= ROW_PAD + 1,
            "blocks within the padding"
        )
    };
    let (channels, height, width) = (g.padded.channels, g.padded.height, g.padded.width);
    let c_pad = channels.next_multiple_of(CHANNEL_PAD);
    let wide = g.row_tiles * LANES;
    let plane_rows = g.scatter_plane();
    assert_eq!(
        rows.len(),
        g.outputs * plane_rows,
        "direct convolution: gradient rows"
    );
    assert_eq!(
        weight.len(),
        g.kw * g.outputs * g.kh * c_pad,
        "direct convolution: weights"
    );
    assert_eq!(
        dx_padded.len(),
        g.padded.len(),
        "direct convolution: padded gradient"
    );
    // The last add of a row ends at most `wide − ow` (< LANES) pixels past
    // the row, in the next row (adding the zeros of the lanes past the
    // gradient's row) or, for the last row, in the slack.
    assert!(wide - g.ow <= Padded::SLACK, "direct convolution: slack");
    // For each block of rows, the `(weight, gradient)` offsets of its terms
    // `(o, i)`: window rows `i` that bring a gradient row to one of the
    // block's rows `r = y + i` (rows outside the gradient read the zero
    // rows around it). One flat list per block keeps the accumulators in
    // registers from its first term to its last.
    let mut terms: SmallVec<[(usize, usize); 1024]> = SmallVec::new();
    let mut ends: SmallVec<[usize; 64]> = SmallVec::new();
    for r0 in (0..height).step_by(NR) {
        let i_low = (r0 + 1).saturating_sub(g.oh);
        let i_high = (g.kh - 1).min(r0 + NR - 1);
        for o in 0..g.outputs {
            for i in i_low..=i_high {
                // Row `r0 − i` of the plane, `ROW_PAD` rows down.
                terms.push((
                    (o * g.kh + i) * c_pad,
                    o * plane_rows + (r0 + ROW_PAD - i) * wide,
                ));
            }
        }
        ends.push(terms.len());
    }
    let plane = g.padded.plane();
    let dst = dx_padded.as_mut_ptr();
    for j in 0..g.kw {
        let weight_j = &weight[j * g.outputs * g.kh * c_pad..];
        for c0 in (0..channels).step_by(MC) {
            let mut start = 0;
            for (r0, &end) in (0..height).step_by(NR).zip(&ends) {
                let block = &terms[std::mem::replace(&mut start, end)..end];
                for x in (0..wide).step_by(LANES) {
                    let mut acc = [[V::zero(); NR]; MC];
                    for &(w_at, d_at) in block {
                        let w: &[T; MC] =
                            weight_j[w_at + c0..][..MC].try_into().expect("MC weights");
                        // SAFETY: `i ≥ i_low` keeps row `r0 + n − i` below
                        // `oh + NR − 1`, and `i ≤ i_high` at or above
                        // `−ROW_PAD`: inside the padded plane, whose rows
                        // hold whole tiles.
                        let d: [V; NR] = std::array::from_fn(|n| unsafe {
                            V::load(rows.as_ptr().add(d_at + n * wide + x))
                        });
                        for (acc_c, &w_c) in acc.iter_mut().zip(w) {
                            let w_c = V::splat(w_c);
                            for (a, &d_n) in acc_c.iter_mut().zip(&d) {
                                *a = a.madd(w_c, d_n);
                            }
                        }
                    }
                    // A small body with constant trip counts, unrolled, so
                    // that `acc` is indexed by constants and stays in
                    // registers (see `weight_grad`).
                    let (channels_left, rows_left) = (channels - c0, height - r0);
                    let corner = (c0 * plane + r0 * width + x + j) as isize;
                    for (m, acc_c) in acc.iter().enumerate() {
                        for (n, &a) in acc_c.iter().enumerate() {
                            if m < channels_left && n < rows_left {
                                // SAFETY: channel `c0 + m` and row `r0 + n` lie in
                                // the padded image, and the lanes past the row
                                // stay in the next row or the slack (asserted
                                // above).
                                unsafe {
                                    let at = dst.offset(corner + (m * plane + n * width) as isize);
                                    V::load(at).add(a).store(at);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One tile's share of the weight gradient: `acc[r][q] += d[r] · pixels at corner + offs[q]`.
#[inline(always)]
fn grad_tile<T: Float, V: Lanes<T>, const MR: usize, const NQ: usize>(
    acc: &mut [[V; NQ]; MR],
    d: &[V; MR],
    corner: *const T,
    offs: &[usize; NQ],
) {
    for (q, &off) in offs.iter().enumerate() {
        // SAFETY: the caller's `reads_fit` bounds every tile corner plus every tap offset.
        let px = unsafe { V::load(corner.add(off)) };
        for (acc_r, &d_r) in acc.iter_mut().zip(d) {
            acc_r[q] = acc_r[q].madd(d_r, px);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, on an unpadded image with zero padding `p` inside.
    fn naive(
        image: &[f64],
        (c, h, w): (usize, usize, usize),
        weight: &[f64],
        (o, k): (usize, usize),
        p: usize,
    ) -> Vec<f64> {
        let (oh, ow) = (h + 2 * p - k + 1, w + 2 * p - k + 1);
        let mut out = vec![0.0; o * oh * ow];
        for oi in 0..o {
            for y in 0..oh {
                for x in 0..ow {
                    let mut s = 0.0;
                    for ci in 0..c {
                        for i in 0..k {
                            for j in 0..k {
                                let (iy, ix) =
                                    ((y + i) as isize - p as isize, (x + j) as isize - p as isize);
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    s += weight[((oi * c + ci) * k + i) * k + j]
                                        * image[(ci * h + iy as usize) * w + ix as usize];
                                }
                            }
                        }
                    }
                    out[(oi * oh + y) * ow + x] = s;
                }
            }
        }
        out
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn values(n: usize, seed: usize) -> Vec<f64> {
        (0..n)
            .map(|i| (((i * 37 + seed * 11) % 23) as f64 - 11.0) / 8.0)
            .collect()
    }

    /// Shapes with channel and tile counts that do and do not fill a block.
    const SHAPES: [(usize, usize, usize, usize, usize, usize); 9] = [
        // (C, H, W, O, k, p)
        (1, 28, 28, 8, 5, 0),
        (8, 12, 12, 16, 5, 0),
        (3, 7, 9, 5, 3, 1),
        (2, 5, 5, 3, 3, 2),
        (1, 4, 20, 1, 1, 0), // 1 tap: forward and weight gradient only
        (8, 4, 21, 2, 1, 0),
        (6, 14, 14, 7, 3, 1),
        // Input gradients by scatter: a partial channel block and 5 rows;
        // two channel blocks, 3 tiles a row and padding past the kernel.
        (3, 9, 10, 5, 5, 0),
        (10, 6, 13, 3, 2, 3),
    ];

    #[test]
    fn forward_and_weight_gradient_match_the_definition() {
        for (c, h, w, o, k, p) in SHAPES {
            let image = values(c * h * w, 1);
            let weight = values(o * c * k * k, 2);
            let bias = values(o, 3);
            let padded = Padded::of(c, h, w, p, p);
            let mut buf = vec![f64::NAN; padded.len()];
            pad_into(&image, (h, w), padded, &mut buf);
            let (oh, ow) = padded.out_size(k, k).unwrap();
            let mut out = vec![f64::NAN; o * oh * ow];
            conv_direct(&buf, padded, (k, k), &weight, Some(&bias), &mut out);
            let want = naive(&image, (c, h, w), &weight, (o, k), p);
            for (i, (a, b)) in out.iter().zip(&want).enumerate() {
                let b = b + bias[i / (oh * ow)];
                assert!(
                    (a - b).abs() < 1e-12,
                    "{c} {h} {w} {o} {k} {p}: out[{i}] {a} vs {b}"
                );
            }
            // dW over a batch of two images is the adjoint in the weight:
            // Σₙ ⟨conv(xₙ; W), Gₙ⟩ = ⟨W, dW⟩.
            let second = values(c * h * w, 9);
            let mut bufs = buf.clone();
            bufs.resize(2 * padded.len(), f64::NAN);
            pad_into(&second, (h, w), padded, &mut bufs[padded.len()..]);
            let grad = values(2 * out.len(), 4);
            let (grad0, grad1) = grad.split_at(out.len());
            let mut dw = vec![0.0; weight.len()];
            conv_direct_weight_grad(&bufs, padded, (k, k), &grad, 0, &mut dw);
            for (t, d) in dw.iter().enumerate() {
                let mut unit = vec![0.0; weight.len()];
                unit[t] = 1.0;
                let lhs = dot(&naive(&image, (c, h, w), &unit, (o, k), p), grad0)
                    + dot(&naive(&second, (c, h, w), &unit, (o, k), p), grad1);
                assert!(
                    (lhs - d).abs() < 1e-9,
                    "{c} {h} {w} {o} {k} {p}: dw[{t}] {d} vs {lhs}"
                );
            }
            // Rows of output channels taken apart give the same bits.
            let taps = c * k * k;
            for split in 1..o {
                let mut parts = vec![0.0; weight.len()];
                let (low, high) = parts.split_at_mut(split * taps);
                conv_direct_weight_grad(&bufs, padded, (k, k), &grad, 0, low);
                conv_direct_weight_grad(&bufs, padded, (k, k), &grad, split, high);
                assert_eq!(parts, dw, "{c} {h} {w} {o} {k} {p}: split at {split}");
            }
        }
    }

    #[test]
    fn the_input_gradient_is_the_adjoint_in_the_image() {
        for (c, h, w, o, k, p) in SHAPES.into_iter().filter(|s| s.0 * s.4 * s.4 >= LANES) {
            let weight = values(o * c * k * k, 5);
            let (oh, ow) = (h + 2 * p - k + 1, w + 2 * p - k + 1);
            let grad = values(o * oh * ow, 6);
            let win = Window {
                channels: c,
                height: h,
                width: w,
                kernel_h: k,
                kernel_w: k,
                stride: 1,
                padding: p,
            };
            let mut prepared = vec![0.0; input_grad_weights_len(&win, o)];
            prepare_input_grad_weights(&win, &weight, &mut prepared);
            let mut scratch = vec![f64::NAN; input_grad_scratch_len(&win, o)];
            let mut dx = vec![f64::NAN; c * h * w];
            conv_direct_input_grad(&win, &grad, &prepared, &mut scratch, &mut dx);
            // ⟨conv(x), G⟩ = ⟨x, dx⟩ for every unit image x.
            for (t, d) in dx.iter().enumerate() {
                let mut unit = vec![0.0; c * h * w];
                unit[t] = 1.0;
                let lhs = dot(&naive(&unit, (c, h, w), &weight, (o, k), p), &grad);
                assert!(
                    (lhs - d).abs() < 1e-9,
                    "{c} {h} {w} {o} {k} {p}: dx[{t}] {d} vs {lhs}"
                );
            }
        }
    }

    /// On a CPU with AVX2 and FMA, `f32` runs in AVX registers with fused
    /// multiply-adds: it must agree with the portable kernels to rounding.
    #[test]
    fn the_plain_kernels_agree_with_the_dispatched_ones() {
        let close = |a: &[f32], b: &[f32], what: &str| {
            for (x, y) in a.iter().zip(b) {
                assert!(
                    (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                    "{what}: {x} vs {y}"
                );
            }
        };
        for (c, h, w, o, k, p) in SHAPES {
            let f32s =
                |n, seed| -> Vec<f32> { values(n, seed).iter().map(|&v| v as f32).collect() };
            let (image, weight) = (f32s(c * h * w, 7), f32s(o * c * k * k, 8));
            let padded = Padded::of(c, h, w, p, p);
            let mut buf = vec![0.0; padded.len()];
            pad_into(&image, (h, w), padded, &mut buf);
            let g = Geometry::new(&buf, padded, k, k, weight.len());
            let mut fast = vec![0.0; o * g.oh * g.ow];
            let mut plain = fast.clone();
            conv_direct(&buf, padded, (k, k), &weight, None, &mut fast);
            forward::<f32, [f32; LANES], 4, 3>(&g, &buf, &weight, None, &mut plain);
            close(&fast, &plain, "forward");
            let (mut dw_fast, mut dw_plain) = (vec![0.0; weight.len()], vec![0.0; weight.len()]);
            conv_direct_weight_grad(&buf, padded, (k, k), &plain, 0, &mut dw_fast);
            weight_grad::<f32, [f32; LANES], 4, 2>(&g, &buf, &plain, 0..o, &mut dw_plain);
            close(&dw_fast, &dw_plain, "weight gradient");
            let mut parts = vec![0.0; weight.len()];
            let (low, high) = parts.split_at_mut(o / 2 * c * k * k);
            conv_direct_weight_grad(&buf, padded, (k, k), &plain, 0, low);
            conv_direct_weight_grad(&buf, padded, (k, k), &plain, o / 2, high);
            assert_eq!(parts, dw_fast, "weight gradient by halves");
            let win = Window {
                channels: c,
                height: h,
                width: w,
                kernel_h: k,
                kernel_w: k,
                stride: 1,
                padding: p,
            };
            if c * k * k < LANES || !matches!(InputGradPlan::of(&win, o), InputGradPlan::Scatter) {
                continue; // no direct input gradient, or the forward kernel's
            }
            let mut rows = vec![0.0; o * g.scatter_plane()];
            g.scatter_rows(&plain, &mut rows);
            let mut prepared = vec![0.0; input_grad_weights_len(&win, o)];
            prepare_input_grad_weights(&win, &weight, &mut prepared);
            let (mut dx_fast, mut dx_plain) = (vec![0.0; padded.len()], vec![0.0; padded.len()]);
            dispatch_input_grad(&g, &rows, &prepared, &mut dx_fast);
            input_grad::<f32, [f32; LANES], 4, 3>(&g, &rows, &prepared, &mut dx_plain);
            close(&dx_fast, &dx_plain, "input gradient");
        }
    }
}
