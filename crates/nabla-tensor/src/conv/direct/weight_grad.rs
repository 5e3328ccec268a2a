//! The weight gradient: products of output-gradient rows with shifted
//! image rows, summed over a whole batch.

#[cfg(target_arch = "x86_64")]
use super::compiled;
use super::{
    Geometry, Padded, TapCursor, B16, L1_ELEMENTS, LANES, MAX_GRAD_BLOCK, WEIGHT_GRAD_ROWS,
};
use crate::simd::Lanes;
#[cfg(target_arch = "x86_64")]
use crate::simd::{as_f32, as_f32_mut, Kernel, SimdLevel};
use crate::Float;
use smallvec::SmallVec;
use std::ops::Range;

/// `dw[o, c, i, j] += Σ_{n,y,x} grad[n, o, y, x] · images[n, c, y + i, x + j]`:
/// the weight gradient of [`conv_direct`](super::conv_direct) summed over a batch, added to
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
        dw.len().is_multiple_of(taps) && rows.end <= outputs,
        "conv_direct_weight_grad: weight-gradient rows"
    );
    let g = Geometry::of(padded, kh, kw, outputs * taps);
    #[cfg(target_arch = "x86_64")]
    if let (Some(images), Some(grad), Some(dw)) = (as_f32(images), as_f32(grad), as_f32_mut(dw)) {
        // SAFETY: the CPU has the features each function is compiled for.
        match Kernel::Convolution.level() {
            SimdLevel::Avx512 => {
                return unsafe { compiled::weight_grad_avx512(&g, images, grad, rows, dw) }
            }
            SimdLevel::Avx2 => {
                return unsafe { compiled::weight_grad_avx2(&g, images, grad, rows, dw) }
            }
            SimdLevel::Plain => {}
        }
    }
    weight_grad::<T, [T; LANES], { B16[1].0 }, { B16[1].1 }>(&g, images, grad, rows, dw);
}

/// The weight-gradient kernel: for each block of output channels and of
/// taps, the sweep over every output tile of every image.
#[inline(always)]
pub(super) fn weight_grad<T: Float, V: Lanes<T>, const MR: usize, const NQ: usize>(
    g: &Geometry,
    images: &[T],
    grad: &[T],
    rows: Range<usize>,
    dw: &mut [T],
) {
    const {
        assert!(
            (MR * NQ).is_multiple_of(LANES) && MR * NQ <= MAX_GRAD_BLOCK,
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
