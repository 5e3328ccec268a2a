//! The sliding-window kernels behind convolution and pooling, on one image
//! (or one channel plane) at a time.
//!
//! Convolution is a matrix product once every receptive field is copied into
//! a column: [`im2col`] lays the `C·kh·kw` values each output position sees
//! out as rows of a `[C·kh·kw, OH·OW]` matrix, so `W[O, C·kh·kw] · col` is the
//! whole convolution of the image, done by the fast GEMM. [`col2im`] is its
//! adjoint: it adds each column entry back to the pixel it came from, which
//! is how the gradient of the input is assembled.
//!
//! With stride 1 the column matrix need not be built at all: the kernels of
//! [`conv_direct`] and its gradients read each zero-padded image in place
//! (see the `direct` module); on small planes the forward pass puts output
//! channels rather than pixels in the vector lanes
//! ([`conv_direct_channel_lanes`]). im2col remains for the other strides.

use crate::SimdLevel;

mod direct;
mod winograd;

pub use direct::{
    channel_lanes_pays, channel_lanes_weights_len, conv_direct, conv_direct_applies,
    conv_direct_channel_lanes, conv_direct_input_grad, conv_direct_weight_grad,
    conv_direct_weight_grad_lanes, convolution_level, convolution_vectorised,
    input_grad_scratch_len, input_grad_weights_len, pad_into, prepare_channel_lanes_weights,
    prepare_input_grad_weights, transpose_grads, weight_grad_as_product, weight_grad_in_lanes,
    weight_grad_lanes_scratch_len, Padded, CHANNEL_LANES_MAX_WIDTH, IMAGES_PER_CHUNK,
    WEIGHT_GRAD_LANES_MAX_POSITIONS, WEIGHT_GRAD_PRODUCT_MAX_ELEMENTS,
    WEIGHT_GRAD_PRODUCT_MAX_POSITIONS, WEIGHT_GRAD_PRODUCT_MIN_OUTPUTS, WEIGHT_GRAD_ROWS,
};
pub use winograd::{
    winograd_applies, Winograd, BLOCK_TILES, WINOGRAD_MIN_CHANNELS, WINOGRAD_MIN_OUTPUTS,
};

/// How one pass of a convolution is computed; [`conv_plan`] chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvAlgorithm {
    /// Winograd's F(2×2, 3×3), with its plan.
    Winograd(Winograd),
    /// The direct stride-1 kernels ([`conv_direct`] and its gradients).
    Direct,
    /// The forward pass with the output channels in the vector lanes
    /// ([`conv_direct_channel_lanes`]): [`conv_direct`]'s sums on small
    /// planes, whose rows fill its vectors poorly.
    ChannelLanes,
    /// [`im2col`] and the GEMM, image by image.
    Im2col,
}

/// The algorithms of a convolution's forward pass and of its backward pass
/// (both gradients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvPlan {
    /// The forward pass.
    pub forward: ConvAlgorithm,
    /// The input and weight gradients.
    pub backward: ConvAlgorithm,
}

/// The fewest input and output channels for which the backward pass of a
/// 3×3 layer runs Winograd's F(2×2, 3×3) (see [`conv_plan`]).
pub const WINOGRAD_BACKWARD_MIN_CHANNELS: usize = 32;

/// The fewest output positions (8×8) for which the backward pass of a
/// 3×3 layer runs Winograd's F(2×2, 3×3) (see [`conv_plan`]).
pub const WINOGRAD_BACKWARD_MIN_POSITIONS: usize = 64;

/// How a convolution over `win` with `outputs` output channels is
/// computed, the one place the choice is made (`level`: the level the
/// convolution kernels run at, [`convolution_level`]; plain arrays are not
/// vectorised):
///
/// - the forward pass with the output channels in the lanes where
///   [`channel_lanes_pays`] (stride 1, planes at most
///   [`CHANNEL_LANES_MAX_WIDTH`] wide and whole blocks of channels, or at
///   AVX-512 any plane whose channels fill three quarters of their
///   vectors of sixteen, with at least 32 taps) and the
///   kernels are vectorised; else by the direct kernels where
///   [`conv_direct_applies`] (stride 1); else by im2col;
/// - the backward pass by the direct kernels or im2col likewise, except
///   for 3×3 kernels with stride 1, at least
///   [`WINOGRAD_BACKWARD_MIN_CHANNELS`] channels in and out and
///   [`WINOGRAD_BACKWARD_MIN_POSITIONS`] output positions: those run
///   Winograd's F(2×2, 3×3), 2.25 times fewer multiplies done by the GEMM,
///   unless the channels go in the lanes ([`weight_grad_in_lanes`] too):
///   with every lane used, the direct kernels are the faster there.
///
/// On smaller layers, and in every forward pass, the transforms cost what
/// the multiplies save: measured per layer against the direct kernels in
/// `docs/performance.md`. The two passes need not agree: each computes the
/// convolution's exact sums, rounded differently.
pub fn conv_plan(win: &Window, outputs: usize, level: SimdLevel) -> ConvPlan {
    let vectorised = level != SimdLevel::Plain;
    let direct = if conv_direct_applies(win) {
        ConvAlgorithm::Direct
    } else {
        ConvAlgorithm::Im2col
    };
    let lanes = vectorised && channel_lanes_pays(win, outputs, level);
    let forward = if lanes {
        ConvAlgorithm::ChannelLanes
    } else {
        direct
    };
    let backward = match Winograd::new(win, outputs) {
        Some(plan)
            if !(lanes && weight_grad_in_lanes(win, outputs))
                && win.channels >= WINOGRAD_BACKWARD_MIN_CHANNELS
                && outputs >= WINOGRAD_BACKWARD_MIN_CHANNELS
                && win.positions() >= WINOGRAD_BACKWARD_MIN_POSITIONS =>
        {
            ConvAlgorithm::Winograd(plan)
        }
        _ => direct,
    };
    ConvPlan { forward, backward }
}

/// The shape of one sliding-window operation on `channels × height × width`
/// images: a `kernel_h × kernel_w` window moved by `stride`, over an image
/// padded by `padding` zeros on every side (PyTorch's conventions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Input channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Window height.
    pub kernel_h: usize,
    /// Window width.
    pub kernel_w: usize,
    /// Step between windows, both axes.
    pub stride: usize,
    /// Zeros added on every side, both axes.
    pub padding: usize,
}

impl Window {
    /// Output height: `⌊(H + 2p − kh) / s⌋ + 1`, or `None` when the window
    /// does not fit (or the stride is zero).
    pub fn out_h(&self) -> Option<usize> {
        out_len(self.height, self.kernel_h, self.stride, self.padding)
    }

    /// Output width, as [`Window::out_h`].
    pub fn out_w(&self) -> Option<usize> {
        out_len(self.width, self.kernel_w, self.stride, self.padding)
    }

    /// Rows of the column matrix: `C·kh·kw`.
    pub fn col_rows(&self) -> usize {
        self.channels * self.kernel_h * self.kernel_w
    }

    /// Output positions (columns of the column matrix): `OH·OW`.
    pub fn positions(&self) -> usize {
        self.out_h().unwrap_or(0) * self.out_w().unwrap_or(0)
    }

    /// Elements of one input image.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The input index of output row `o` shifted by kernel offset `k`, or
    /// `None` in the padding.
    #[inline]
    fn source(&self, o: usize, k: usize, len: usize) -> Option<usize> {
        (o * self.stride + k)
            .checked_sub(self.padding)
            .filter(|&i| i < len)
    }
}

fn out_len(len: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    // Checked: sizes may come from a model file or a command line.
    let padded = padding.checked_mul(2)?.checked_add(len)?;
    (stride > 0 && kernel > 0 && padded >= kernel).then(|| (padded - kernel) / stride + 1)
}

/// Copies every receptive field of one image (`[C, H, W]`, row-major) into
/// `col` (`[C·kh·kw, OH·OW]`): row `(c, i, j)` holds, for each output position,
/// the pixel at kernel offset `(i, j)` of channel `c`, or 0 in the padding.
///
/// # Panics
/// If the slices' lengths do not match the window (a bug in the caller).
pub fn im2col<T: Copy + Default>(image: &[T], w: &Window, col: &mut [T]) {
    assert_eq!(
        col.len(),
        w.col_rows() * w.positions(),
        "im2col: column length"
    );
    im2col_strided(image, w, col, w.positions());
}

/// [`im2col`] into rows `row_stride` elements apart: row `r` of the image's
/// column matrix goes to `col[r·row_stride ..][.. OH·OW]`, and the elements
/// between rows are left as they are. With `row_stride = N·OH·OW`, and `col`
/// starting at image `n`'s `n·OH·OW`, the images of a batch sit side by side
/// in one `[C·kh·kw, N·OH·OW]` matrix.
///
/// # Panics
/// If the image's length does not match the window, `row_stride` is less
/// than `OH·OW`, or `col` is too short for the last row (a bug in the caller).
pub fn im2col_strided<T: Copy + Default>(
    image: &[T],
    w: &Window,
    col: &mut [T],
    row_stride: usize,
) {
    let (oh, ow) = (w.out_h().unwrap_or(0), w.out_w().unwrap_or(0));
    let pos = oh * ow;
    assert_eq!(image.len(), w.image_len(), "im2col: image length");
    assert!(
        row_stride >= pos,
        "im2col: rows {row_stride} apart hold {pos}"
    );
    let rows = w.col_rows();
    if rows == 0 || pos == 0 {
        return;
    }
    assert!(
        col.len() >= (rows - 1) * row_stride + pos,
        "im2col: column length"
    );
    let mut r = 0;
    for plane in image.chunks_exact(w.height * w.width) {
        for ki in 0..w.kernel_h {
            for kj in 0..w.kernel_w {
                let row = &mut col[r * row_stride..r * row_stride + pos];
                r += 1;
                for (y, out) in row.chunks_exact_mut(ow).enumerate() {
                    match w.source(y, ki, w.height) {
                        None => out.fill(T::default()),
                        Some(iy) => {
                            let src = &plane[iy * w.width..(iy + 1) * w.width];
                            copy_row(src, out, w, kj);
                        }
                    }
                }
            }
        }
    }
}

/// One output row of [`im2col`]: `out[x] = src[x·s + kj − p]`, 0 outside.
#[inline]
fn copy_row<T: Copy + Default>(src: &[T], out: &mut [T], w: &Window, kj: usize) {
    if w.stride == 1 {
        // Contiguous: zeros, a slice copy, zeros.
        let (first, start, len) = stride1_run(w, kj, out.len(), src.len());
        out[..first].fill(T::default());
        copy_short(&mut out[first..first + len], &src[start..start + len]);
        out[first + len..].fill(T::default());
    } else {
        for (x, o) in out.iter_mut().enumerate() {
            *o = w
                .source(x, kj, src.len())
                .map_or(T::default(), |ix| src[ix]);
        }
    }
}

/// With stride 1, output `x` of a row reads input `x + kj − p`: the outputs
/// `first..first + len` read the contiguous inputs `start..start + len`, and
/// the others fall in the padding. Returns `(first, start, len)` for a row of
/// `outputs` outputs over `inputs` pixels.
#[inline]
fn stride1_run(w: &Window, kj: usize, outputs: usize, inputs: usize) -> (usize, usize, usize) {
    let first = w.padding.saturating_sub(kj).min(outputs); // outputs left of the image
    let start = (first + kj).saturating_sub(w.padding); // the pixel the first one reads
    let len = inputs.saturating_sub(start).min(outputs - first);
    (first, start, len)
}

/// `dst.copy_from_slice(src)` for the short rows of im2col (often under 32
/// elements), in fixed blocks of 8 that compile to a few vector moves
/// instead of a call to `memmove` per row.
#[inline]
fn copy_short<T: Copy>(dst: &mut [T], src: &[T]) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (a, b) in (&mut d).zip(&mut s) {
        let b: &[T; 8] = b.try_into().expect("a chunk of 8");
        let a: &mut [T; 8] = a.try_into().expect("a chunk of 8");
        *a = *b;
    }
    for (a, &b) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *a = b;
    }
}

/// The adjoint of [`im2col`]: adds every entry of `col` to the pixel of
/// `image` it was copied from (entries from the padding are dropped).
/// `image` is accumulated into, not overwritten.
///
/// # Panics
/// If the slices' lengths do not match the window (a bug in the caller).
pub fn col2im<T: Copy + std::ops::AddAssign>(col: &[T], w: &Window, image: &mut [T]) {
    let (oh, ow) = (w.out_h().unwrap_or(0), w.out_w().unwrap_or(0));
    assert_eq!(image.len(), w.image_len(), "col2im: image length");
    assert_eq!(col.len(), w.col_rows() * oh * ow, "col2im: column length");
    let mut rows = col.chunks_exact((oh * ow).max(1));
    for plane in image.chunks_exact_mut(w.height * w.width) {
        for ki in 0..w.kernel_h {
            for kj in 0..w.kernel_w {
                let row = rows.next().expect("one row per (c, i, j)");
                for (y, vals) in row.chunks_exact(ow.max(1)).enumerate().take(oh) {
                    let Some(iy) = w.source(y, ki, w.height) else {
                        continue;
                    };
                    let dst = &mut plane[iy * w.width..(iy + 1) * w.width];
                    add_row(vals, dst, w, kj);
                }
            }
        }
    }
}

/// One output row of [`col2im`]: `dst[x·s + kj − p] += vals[x]` inside the image.
#[inline]
fn add_row<T: Copy + std::ops::AddAssign>(vals: &[T], dst: &mut [T], w: &Window, kj: usize) {
    if w.stride == 1 {
        // The same contiguous run as `copy_row`, added instead of copied.
        let (first, start, len) = stride1_run(w, kj, vals.len(), dst.len());
        for (d, &v) in dst[start..start + len]
            .iter_mut()
            .zip(&vals[first..first + len])
        {
            *d += v;
        }
    } else {
        for (x, &v) in vals.iter().enumerate() {
            if let Some(ix) = w.source(x, kj, dst.len()) {
                dst[ix] += v;
            }
        }
    }
}

/// Max pooling of one plane (`[H, W]`) into `out` (`[OH, OW]`); windows
/// overlapping the padding only see the pixels inside the image. `argmax`
/// (`[OH, OW]`) receives, for each output, the index in the plane of the
/// first pixel holding its maximum: where the gradient goes.
///
/// # Panics
/// If the slices' lengths do not match the window, or the plane has 2³² pixels or more.
pub fn max_pool_plane<T: Copy + PartialOrd>(
    plane: &[T],
    w: &Window,
    out: &mut [T],
    argmax: &mut [u32],
) {
    let ow = w.out_w().unwrap_or(0).max(1);
    assert!(
        plane.len() <= u32::MAX as usize,
        "max_pool_plane: plane too large"
    );
    let rows = out.chunks_exact_mut(ow).zip(argmax.chunks_exact_mut(ow));
    for (y, (row, at_row)) in rows.enumerate() {
        if is_2x2(w) {
            let first = 2 * y * w.width;
            let (r0, r1) = plane[first..].split_at(w.width);
            max_pool_2x2_row(r0, &r1[..w.width], first as u32, row, at_row);
        } else {
            for (x, (v, at)) in row.iter_mut().zip(at_row.iter_mut()).enumerate() {
                let (best, i) = window_argmax(plane, w, y, x);
                (*v, *at) = (best, i as u32);
            }
        }
    }
}

/// The gradient of [`max_pool_plane`]: each output's gradient is added to
/// the pixel `argmax` names (added, since windows may overlap).
///
/// # Panics
/// If an index is outside `grad_plane`.
pub fn max_pool_scatter<T: Copy + std::ops::AddAssign>(
    grad_out: &[T],
    argmax: &[u32],
    grad_plane: &mut [T],
) {
    for (&g, &at) in grad_out.iter().zip(argmax) {
        grad_plane[at as usize] += g;
    }
}

/// The common case of 2×2 windows moved by 2 without padding.
#[inline]
fn is_2x2(w: &Window) -> bool {
    w.kernel_h == 2 && w.kernel_w == 2 && w.stride == 2 && w.padding == 0
}

/// One output row of 2×2, stride-2 max pooling over input rows `r0`, `r1`
/// (which start at index `first` of their plane): the same maxima and
/// argmaxes as [`window_argmax`], found without branches. Branches on which
/// of four pixels is largest are unpredictable, and mispredicting them cost
/// more than the comparisons.
#[inline]
fn max_pool_2x2_row<T: Copy + PartialOrd>(
    r0: &[T],
    r1: &[T],
    first: u32,
    out: &mut [T],
    at: &mut [u32],
) {
    let width = r0.len() as u32;
    let pairs = r0.chunks_exact(2).zip(r1.chunks_exact(2));
    for (x, ((v, a), (p0, p1))) in out.iter_mut().zip(at.iter_mut()).zip(pairs).enumerate() {
        let c = first + 2 * x as u32;
        let mut best = (p0[0], c);
        for cand in [(p0[1], c + 1), (p1[0], width + c), (p1[1], width + c + 1)] {
            let take = beats(cand.0, best.0);
            best = (select(take, cand.0, best.0), select(take, cand.1, best.1));
        }
        (*v, *a) = best;
    }
}

/// `if take { a } else { b }`, meant to compile to a conditional move.
#[inline(always)]
fn select<T: Copy>(take: bool, a: T, b: T) -> T {
    [b, a][take as usize]
}

/// Whether `v` replaces `best` as a window's maximum: larger, or a NaN
/// (so that a NaN shows in the output, as in PyTorch).
#[inline]
#[allow(clippy::eq_op)] // v != v: v is NaN
fn beats<T: PartialOrd>(v: T, best: T) -> bool {
    // `|` and `&`, not `||` and `&&`: no branches.
    (v > best) | ((v != v) & (best == best))
}

/// The maximum of window `(y, x)` and the index of its first occurrence (a
/// NaN counts as the maximum, so that it shows in the output as in PyTorch).
#[inline]
fn window_argmax<T: Copy + PartialOrd>(plane: &[T], w: &Window, y: usize, x: usize) -> (T, usize) {
    if w.padding == 0 {
        // Every window lies inside the image: index it directly.
        let base = y * w.stride * w.width + x * w.stride;
        let (mut best, mut at) = (plane[base], base);
        for ki in 0..w.kernel_h {
            let row = base + ki * w.width;
            for (kj, &v) in plane[row..row + w.kernel_w].iter().enumerate() {
                if beats(v, best) {
                    (best, at) = (v, row + kj);
                }
            }
        }
        return (best, at);
    }
    let mut best: Option<(T, usize)> = None;
    for_window(w, y, x, |at| {
        if best.is_none_or(|(b, _)| beats(plane[at], b)) {
            best = Some((plane[at], at));
        }
    });
    best.expect("a pooling window always overlaps the image")
}

/// Average pooling of one plane: each output is the mean of its `kh·kw`
/// window, padding counted as zeros (PyTorch's `count_include_pad=True`).
///
/// # Panics
/// If the slices' lengths do not match the window.
pub fn avg_pool_plane<T>(plane: &[T], w: &Window, out: &mut [T], scale: T)
where
    T: Copy + Default + std::ops::AddAssign + std::ops::Mul<Output = T>,
{
    let ow = w.out_w().unwrap_or(0);
    for (o, v) in out.iter_mut().enumerate() {
        let mut sum = T::default();
        for_window(w, o / ow.max(1), o % ow.max(1), |at| sum += plane[at]);
        *v = sum * scale;
    }
}

/// The gradient of [`avg_pool_plane`]: each output's gradient, times
/// `scale = 1/(kh·kw)`, is added to every pixel of its window.
///
/// # Panics
/// If the slices' lengths do not match the window.
pub fn avg_pool_plane_backward<T>(w: &Window, grad_out: &[T], grad_plane: &mut [T], scale: T)
where
    T: Copy + std::ops::AddAssign + std::ops::Mul<Output = T>,
{
    let ow = w.out_w().unwrap_or(0);
    for (o, &g) in grad_out.iter().enumerate() {
        let share = g * scale;
        for_window(w, o / ow.max(1), o % ow.max(1), |at| {
            grad_plane[at] += share
        });
    }
}

/// Calls `f(index)` for every pixel of window `(y, x)` inside the image.
#[inline]
fn for_window(w: &Window, y: usize, x: usize, mut f: impl FnMut(usize)) {
    for ki in 0..w.kernel_h {
        let Some(iy) = w.source(y, ki, w.height) else {
            continue;
        };
        for kj in 0..w.kernel_w {
            if let Some(ix) = w.source(x, kj, w.width) {
                f(iy * w.width + ix);
            }
        }
    }
}

/// A window with a square `k × k` kernel over `c × h × w` images, for tests.
#[cfg(test)]
impl Window {
    pub(crate) fn square(
        c: usize,
        h: usize,
        w: usize,
        k: usize,
        stride: usize,
        padding: usize,
    ) -> Window {
        Window {
            channels: c,
            height: h,
            width: w,
            kernel_h: k,
            kernel_w: k,
            stride,
            padding,
        }
    }
}

#[cfg(test)]
mod tests;
