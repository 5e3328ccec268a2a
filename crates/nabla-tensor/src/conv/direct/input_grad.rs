//! The input gradient: a flipped convolution, or a scatter by window
//! column, whichever multiplies fewer zeros.

use super::channel_lanes::{lanes_on_this_cpu, wide_planes_in_lanes, CHANNEL_BLOCK};
#[cfg(target_arch = "x86_64")]
use super::compiled;
use super::{
    conv_direct, conv_direct_applies, conv_direct_channel_lanes, pad_into, Geometry, Padded,
    Window, B16, CHANNEL_LANES_MAX_WIDTH, LANES,
};
use crate::simd::Lanes;
#[cfg(target_arch = "x86_64")]
use crate::simd::{as_f32, as_f32_mut, Kernel, SimdLevel};
use crate::Float;
use smallvec::SmallVec;

/// The scatter plan's prepared weights pad the input channels to a multiple
/// of this (the most channels in one of its blocks), so that a block's
/// weights are side by side, zeros past the last channel.
const CHANNEL_PAD: usize = 8;
/// Zero rows above and below each output-gradient plane in the scatter
/// plan's scratch: a block of up to `ROW_PAD + 1` rows then reads rows
/// past the plane's edges without a check.
const ROW_PAD: usize = 2;

/// Elements of the weights as [`conv_direct_input_grad`] reads them, for
/// a convolution of `outputs` channels over `win` (stride 1).
pub fn input_grad_weights_len<T: Float>(win: &Window, outputs: usize) -> usize {
    let (c, kh, kw) = (win.channels, win.kernel_h, win.kernel_w);
    match InputGradPlan::of::<T>(win, outputs) {
        InputGradPlan::Flipped(_) => outputs * c * kh * kw,
        InputGradPlan::FlippedLanes(_) => outputs * kh * kw * c.next_multiple_of(CHANNEL_BLOCK),
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
        input_grad_weights_len::<T>(win, o),
        "prepare_input_grad_weights: destination length"
    );
    let plan = InputGradPlan::of::<T>(win, o);
    let c_pad = c.next_multiple_of(CHANNEL_PAD);
    let c_wide = c.next_multiple_of(CHANNEL_BLOCK);
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
                    // The same, tap-major for the channels in the lanes:
                    // [O, kh, kw, C wide].
                    InputGradPlan::FlippedLanes(_) => {
                        ((oi * kh + kh - 1 - i) * kw + kw - 1 - j) * c_wide + ci
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
pub(super) enum InputGradPlan {
    /// A convolution of the output gradient, zero-padded by `kh − 1 − p`
    /// (laid out as given), with the flipped weights: no scattered adds, but
    /// it also multiplies the padding's zeros.
    Flipped(Padded),
    /// The flipped convolution with the input channels in the vector lanes
    /// ([`conv_direct_channel_lanes`]): for `f32` on a CPU with AVX2,
    /// images at most [`CHANNEL_LANES_MAX_WIDTH`] wide and whole blocks of
    /// input channels, where a row of the image fills the flipped
    /// convolution's tiles poorly; on a CPU with AVX-512, also images of
    /// any width where the forward pass's rule for wide planes holds for
    /// the input channels (`wide_planes_in_lanes`). The choice depends on
    /// the type and the CPU, not on `limit_simd_level`, so that weights prepared for it are
    /// read the same way whatever the level when they are used.
    FlippedLanes(Padded),
    /// For each window column `j`, a block of input channels × rows of
    /// the padded input gradient gathers its sum over the output channels
    /// and the window rows in registers, then is added in place, `j`
    /// columns to the right of the output tile it was computed on. Next to
    /// the flipped plan it multiplies few zeros (only where a block of rows
    /// meets the image's top or bottom edge).
    Scatter,
}

impl InputGradPlan {
    pub(super) fn of<T: Float>(win: &Window, outputs: usize) -> Self {
        let (kh, kw, p) = (win.kernel_h, win.kernel_w, win.padding);
        let (oh, ow) = (win.out_h().unwrap_or(0), win.out_w().unwrap_or(0));
        if p >= kh || p >= kw {
            return InputGradPlan::Scatter;
        }
        let flipped_work = win.height * win.width.div_ceil(LANES);
        let scatter_work = oh * ow.div_ceil(LANES);
        if flipped_work <= 2 * scatter_work {
            let padded = Padded::of(outputs, oh, ow, kh - 1 - p, kw - 1 - p);
            let taps = outputs * kh * kw;
            if lanes_on_this_cpu::<T>()
                && (win.width <= CHANNEL_LANES_MAX_WIDTH
                    && win.channels.is_multiple_of(CHANNEL_BLOCK)
                    || wide_planes_in_lanes(crate::detected_simd_level(), win.channels, taps))
            {
                InputGradPlan::FlippedLanes(padded)
            } else {
                InputGradPlan::Flipped(padded)
            }
        } else {
            InputGradPlan::Scatter
        }
    }
}

/// Scratch elements [`conv_direct_input_grad`] needs for a convolution of
/// `outputs` channels over `win` (stride 1).
pub fn input_grad_scratch_len<T: Float>(win: &Window, outputs: usize) -> usize {
    match InputGradPlan::of::<T>(win, outputs) {
        InputGradPlan::Flipped(padded) | InputGradPlan::FlippedLanes(padded) => padded.len(),
        InputGradPlan::Scatter => {
            let (oh, ow) = (win.out_h().unwrap_or(0), win.out_w().unwrap_or(0));
            let padded = Padded::of_window(win);
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
        input_grad_weights_len::<T>(win, outputs),
        "conv_direct_input_grad: prepared weights length"
    );
    assert_eq!(
        scratch.len(),
        input_grad_scratch_len::<T>(win, outputs),
        "conv_direct_input_grad: scratch length"
    );
    let kernel = (win.kernel_h, win.kernel_w);
    match InputGradPlan::of::<T>(win, outputs) {
        InputGradPlan::Flipped(grad_padded) => {
            pad_into(grad, (oh, ow), grad_padded, scratch);
            return conv_direct(scratch, grad_padded, kernel, prepared, None, dx);
        }
        InputGradPlan::FlippedLanes(grad_padded) => {
            pad_into(grad, (oh, ow), grad_padded, scratch);
            let weights = (prepared, win.channels);
            return conv_direct_channel_lanes(scratch, grad_padded, kernel, weights, None, dx);
        }
        InputGradPlan::Scatter => {}
    }
    let padded = Padded::of_window(win);
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

pub(super) fn dispatch_input_grad<T: Float>(
    g: &Geometry,
    rows: &[T],
    weight: &[T],
    dx_padded: &mut [T],
) {
    #[cfg(target_arch = "x86_64")]
    if let (Some(rows), Some(weight), Some(dx)) =
        (as_f32(rows), as_f32(weight), as_f32_mut(dx_padded))
    {
        // SAFETY: the CPU has the features each function is compiled for.
        match Kernel::Convolution.level() {
            SimdLevel::Avx512 => {
                return unsafe { compiled::input_grad_avx512(g, rows, weight, dx) }
            }
            SimdLevel::Avx2 => return unsafe { compiled::input_grad_avx2(g, rows, weight, dx) },
            SimdLevel::Plain => {}
        }
    }
    input_grad::<T, [T; LANES], { B16[2].0 }, { B16[2].1 }>(g, rows, weight, dx_padded);
}

impl Geometry {
    /// Elements of one output-gradient plane as the scatter plan reads it:
    /// rows widened to whole tiles, `ROW_PAD` zero rows above and below.
    pub(super) fn scatter_plane(&self) -> usize {
        (self.oh + 2 * ROW_PAD) * self.row_tiles * LANES
    }

    /// Lays the output gradient `grad` out in `rows` as the scatter plan
    /// reads it: every row widened to whole tiles (zeros after it, so the
    /// lanes past a row add 0), and zero rows above and below each plane.
    pub(super) fn scatter_rows<T: Float>(&self, grad: &[T], rows: &mut [T]) {
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
}

/// The input-gradient kernel of the scatter plan: for each window column
/// `j`, block of input channels, block of rows of the padded input gradient
/// and output tile, the sum over the output channels and window rows, then
/// added `j` columns to the right of the tile. `rows` is the output
/// gradient widened and padded as [`conv_direct_input_grad`] lays it out,
/// `weight` prepared by [`prepare_input_grad_weights`].
#[inline(always)]
pub(super) fn input_grad<T: Float, V: Lanes<T>, const MC: usize, const NR: usize>(
    g: &Geometry,
    rows: &[T],
    weight: &[T],
    dx_padded: &mut [T],
) {
    const {
        assert!(
            CHANNEL_PAD.is_multiple_of(MC) && NR <= ROW_PAD + 1,
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
