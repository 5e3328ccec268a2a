//! Stride-1 3×3 convolution by Winograd's minimal filtering algorithm
//! F(2×2, 3×3): 16 multiplies for every 2×2 block of outputs where the
//! direct sum takes 36.
//!
//! The output is cut into 2×2 tiles; tile `t` reads the 4×4 patch of the
//! zero-padded input at twice its position. After the transforms of
//! [`transform`], the 16 positions `ξ` of a tile are independent, and over
//! a block of tiles the multiplies of position `ξ` are one matrix product:
//!
//! - forward: `M[ξ] = U[ξ] · V[ξ]` with `U[ξ]` the transformed kernels
//!   `[O, C]` and `V[ξ]` the transformed input tiles `[C, tiles]`; each
//!   output tile is `Aᵀ M A`;
//! - input gradient: `dV[ξ] = U[ξ]ᵀ · dM[ξ]`, with `dM = A dY Aᵀ` per
//!   output tile, then `B dV Bᵀ` added back where each patch was read;
//! - weight gradient: `dU[ξ] = dM[ξ] · V[ξ]ᵀ` summed over the batch, then
//!   `dW = Gᵀ dU G` per kernel.
//!
//! The backward pass is the exact adjoint of the forward pass, not a second
//! approximation of the convolution, so a gradient check sees consistent
//! sums. The products go to the GEMM on blocks of whole images
//! ([`BLOCK_TILES`] tiles or more), laid out so that the blocks depend on
//! the batch and the layer only: the weight gradient adds the blocks' sums
//! in block order, and the results do not depend on the number of threads.
//!
//! The transforms change how the sums are rounded: in `f32` the outputs
//! differ from the direct kernels' by a few units in the last place of the
//! layer's largest terms (measured in `docs/performance.md`, tested below).

mod tiles;
mod transform;

use super::Window;
use crate::simd::Kernel;
use crate::{gemm_slices, Float, Tensor, Transpose};
use rayon::prelude::*;

/// Positions of a transformed tile (4×4).
const XI: usize = 16;

/// The fewest tiles a block of images gives the products (each is as wide
/// as its block has tiles): enough that the GEMM's packing pays, few enough
/// that a block's transformed tiles stay in the second-level cache.
pub const BLOCK_TILES: usize = 256;

/// The fewest input channels for which [`winograd_applies`]: each product
/// sums over the input channels, and with a few (a first layer on grey
/// images) the transforms cost more than the multiplies they save.
pub const WINOGRAD_MIN_CHANNELS: usize = 8;

/// The fewest output channels for which [`winograd_applies`]: each input
/// tile's transform is shared by this many kernels.
pub const WINOGRAD_MIN_OUTPUTS: usize = 8;

/// Whether F(2×2, 3×3) can compute the convolution over `win` with
/// `outputs` output channels: a 3×3 kernel, stride 1, and at least
/// [`WINOGRAD_MIN_CHANNELS`] inputs and [`WINOGRAD_MIN_OUTPUTS`] outputs.
/// Where it is used is [`conv_plan`](super::conv_plan)'s choice.
pub fn winograd_applies(win: &Window, outputs: usize) -> bool {
    win.kernel_h == 3
        && win.kernel_w == 3
        && win.stride == 1
        && win.channels >= WINOGRAD_MIN_CHANNELS
        && outputs >= WINOGRAD_MIN_OUTPUTS
        && win.out_h().is_some_and(|h| h > 0)
        && win.out_w().is_some_and(|w| w > 0)
}

/// The sizes of one Winograd convolution: a layer (`win`, `outputs`) and
/// how its output is tiled and its batches blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Winograd {
    win: Window,
    outputs: usize,
    /// Output size.
    oh: usize,
    ow: usize,
    /// Rows of tiles in one output plane.
    tiles_h: usize,
    /// Tiles numbered per row: one more than the plane has across (the
    /// last of each row is dropped, see `tiles`), the width of the quarter
    /// planes.
    w2: usize,
    /// Images per block.
    block: usize,
}

impl Winograd {
    /// The plan of a convolution over `win` with `outputs` channels, or
    /// `None` when [`winograd_applies`] does not hold.
    pub fn new(win: &Window, outputs: usize) -> Option<Self> {
        if !winograd_applies(win, outputs) {
            return None;
        }
        let (oh, ow) = (win.out_h()?, win.out_w()?);
        let (tiles_h, tiles_w) = (oh.div_ceil(2), ow.div_ceil(2));
        Some(Winograd {
            win: *win,
            outputs,
            oh,
            ow,
            tiles_h,
            w2: tiles_w + 1,
            block: BLOCK_TILES.div_ceil(tiles_h * (tiles_w + 1)).max(1),
        })
    }

    /// Tiles of one image, the last of each row included.
    fn tiles(&self) -> usize {
        self.tiles_h * self.w2
    }

    /// Length of a quarter plane: a row more than the tiles (the last row
    /// of tiles reads the row below), and one element of slack (the last
    /// tile reads one past its row).
    fn quarter_len(&self) -> usize {
        (self.tiles_h + 1) * self.w2 + 1
    }

    /// Elements of one input image, one output image.
    fn image_len(&self) -> usize {
        self.win.image_len()
    }

    fn out_len(&self) -> usize {
        self.outputs * self.oh * self.ow
    }

    /// `out = conv(images, weight) + bias` for a batch: `images`
    /// `[N, C, H, W]`, `weight` `[O, C, 3, 3]`, `out` `[N, O, OH, OW]`
    /// (overwritten).
    ///
    /// # Panics
    /// If the lengths do not match the plan (a bug in the caller).
    pub fn forward<T: Float>(&self, images: &[T], weight: &[T], bias: Option<&[T]>, out: &mut [T]) {
        let n = self.batch(images);
        assert_eq!(out.len(), n * self.out_len(), "winograd: output length");
        if let Some(b) = bias {
            assert_eq!(b.len(), self.outputs, "winograd: bias length");
        }
        let u = self.transform_kernels(weight);
        let per = self.blocks_per_job(n);
        let jobs = out
            .par_chunks_mut(per * self.block * self.out_len())
            .zip(images.par_chunks(per * self.block * self.image_len()));
        jobs.for_each(|(out, images)| {
            let mut s = self.scratch();
            let blocks = out
                .chunks_mut(self.block * self.out_len())
                .zip(images.chunks(self.block * self.image_len()));
            for (out, images) in blocks {
                let t = self.transform_inputs(images, &mut s);
                let (c, o) = (self.win.channels, self.outputs);
                let (m, v) = (s.m.data_mut(), s.v.data());
                products(m, u.data(), Transpose::No, v, Transpose::No, (o, c, t));
                self.write_outputs(&mut s, t, bias, out);
            }
        });
    }

    /// Blocks each parallel job takes, one after another with one set of
    /// buffers: the batch's blocks shared evenly between the threads. (A
    /// job per block would set up a block's buffers for each.)
    fn blocks_per_job(&self, n: usize) -> usize {
        let blocks = n.div_ceil(self.block).max(1);
        blocks.div_ceil(rayon::current_num_threads().clamp(1, blocks))
    }

    /// The gradients of [`Winograd::forward`] for the output gradient
    /// `grad` (`[N, O, OH, OW]`): the input's into `dx` (overwritten) and
    /// the weight's into `dw` (overwritten), each when asked for. The bias
    /// gradient is the caller's (a sum of `grad`).
    ///
    /// # Panics
    /// If the lengths do not match the plan (a bug in the caller).
    pub fn backward<T: Float>(
        &self,
        images: &[T],
        weight: &[T],
        grad: &[T],
        dx: Option<&mut [T]>,
        dw: Option<&mut [T]>,
    ) {
        let n = self.batch(images);
        assert_eq!(grad.len(), n * self.out_len(), "winograd: gradient length");
        let u = self.transform_kernels(weight);
        let (o, c) = (self.outputs, self.win.channels);
        let share_len = if dw.is_some() { XI * o * c } else { 0 };
        // Each block's share of dU, in block order (a chunk of one unused
        // element per block when there is no weight gradient to take).
        let chunk = share_len.max(1);
        let mut shares = Tensor::<T>::zeros(&[n.div_ceil(self.block) * chunk]);
        let per = self.blocks_per_job(n);
        let (image_job, grad_job) = (
            per * self.block * self.image_len(),
            per * self.block * self.out_len(),
        );
        let jobs = images
            .par_chunks(image_job)
            .zip(grad.par_chunks(grad_job))
            .zip(shares.data_mut().par_chunks_mut(per * chunk));
        // One job's blocks, one after another with one set of buffers.
        let run = |images: &[T], grad: &[T], shares: &mut [T], dx: Option<&mut [T]>| {
            let mut s = self.scratch();
            let blocks = images
                .chunks(self.block * self.image_len())
                .zip(grad.chunks(self.block * self.out_len()))
                .zip(shares.chunks_mut(chunk));
            let mut dx = dx.map(|dx| dx.chunks_mut(self.block * self.image_len()));
            for ((images, grad), du) in blocks {
                let dx = dx
                    .as_mut()
                    .map(|d| d.next().expect("a block of the input gradient"));
                let du = &mut du[..share_len];
                self.backward_block(images, grad, u.data(), dx, du, &mut s);
            }
        };
        match dx {
            Some(dx) => {
                assert_eq!(dx.len(), images.len(), "winograd: input gradient length");
                jobs.zip(dx.par_chunks_mut(image_job))
                    .for_each(|(((images, grad), shares), dx)| run(images, grad, shares, Some(dx)));
            }
            None => jobs.for_each(|((images, grad), shares)| run(images, grad, shares, None)),
        }
        if let Some(dw) = dw {
            assert_eq!(dw.len(), o * c * 9, "winograd: weight gradient length");
            let mut du = Tensor::<T>::zeros(&[XI * o * c]);
            for share in shares.data().chunks_exact(chunk) {
                let du = du.data_mut();
                du.iter_mut().zip(share).for_each(|(d, &s)| *d += s);
            }
            let du = du.data();
            for (k, dw_k) in dw.chunks_exact_mut(9).enumerate() {
                let tile: [[T; 4]; 4] =
                    std::array::from_fn(|i| std::array::from_fn(|j| du[(4 * i + j) * o * c + k]));
                let g = transform::kernel_adjoint(tile);
                for (d, &v) in dw_k.iter_mut().zip(g.iter().flatten()) {
                    *d = v;
                }
            }
        }
    }

    /// One block's backward pass: the input gradient into `dx` when given,
    /// and the block's share of `dU` into `du` (`[ξ, O, C]`, overwritten)
    /// unless it is empty.
    fn backward_block<T: Float>(
        &self,
        images: &[T],
        grad: &[T],
        u: &[T],
        dx: Option<&mut [T]>,
        du: &mut [T],
        s: &mut Scratch<T>,
    ) {
        let (c, o) = (self.win.channels, self.outputs);
        let t = self.transform_output_grads(grad, s);
        if let Some(dx) = dx {
            let (v, m) = (s.v.data_mut(), s.m.data());
            products(v, u, Transpose::Yes, m, Transpose::No, (c, o, t));
            self.scatter_input_grads(t, dx, s);
        }
        if du.is_empty() {
            return;
        }
        self.transform_inputs(images, s);
        let (v, m) = (s.v.data(), s.m.data());
        products(du, m, Transpose::No, v, Transpose::Yes, (o, t, c));
    }

    /// Buffers for one block of the largest size.
    fn scratch<T: Float>(&self) -> Scratch<T> {
        let t = self.block * self.tiles();
        let widest = self.outputs.max(self.win.channels);
        Scratch {
            v: Tensor::zeros(&[XI * self.win.channels * t]),
            m: Tensor::zeros(&[XI * widest * t]),
            input_quarters: Tensor::zeros(&[4 * self.quarter_len()]),
            grad_quarters: Tensor::zeros(&[4 * self.quarter_len()]),
            work_quarters: Tensor::zeros(&[4 * self.quarter_len()]),
            runs: Tensor::zeros(&[XI * self.tiles()]),
        }
    }

    /// The batch size of `images`.
    fn batch<T>(&self, images: &[T]) -> usize {
        let len = self.image_len().max(1);
        assert_eq!(images.len() % len, 0, "winograd: input length");
        images.len() / len
    }

    /// `U[ξ, o, c]`: the transform `G g Gᵀ` of every 3×3 kernel.
    fn transform_kernels<T: Float>(&self, weight: &[T]) -> Tensor<T> {
        let (o, c) = (self.outputs, self.win.channels);
        assert_eq!(weight.len(), o * c * 9, "winograd: weight length");
        let mut u = Tensor::<T>::zeros(&[XI, o, c]);
        let u_data = u.data_mut();
        for (k, g) in weight.chunks_exact(9).enumerate() {
            let g: [[T; 3]; 3] = std::array::from_fn(|i| std::array::from_fn(|j| g[3 * i + j]));
            for (xi, &v) in transform::kernel(g).iter().flatten().enumerate() {
                u_data[xi * o * c + k] = v;
            }
        }
        u
    }

    /// Fills `s.v` (`[ξ, C, tiles]`) with the transformed input tiles of a
    /// block of images, and returns the block's tile count.
    fn transform_inputs<T: Float>(&self, images: &[T], s: &mut Scratch<T>) -> usize {
        // At the widest vectors the CPU runs well: see `tiles`.
        Kernel::Convolution.run(
            #[inline(always)]
            || {
                let (c, n, w2) = (self.win.channels, self.tiles(), self.w2);
                let t = images.len() / self.image_len() * n;
                let plane_len = self.win.height * self.win.width;
                // The padding's places in the quarters are never written: they keep
                // the zeros the buffer started with.
                let (v, quarters) = (s.v.data_mut(), s.input_quarters.data_mut());
                for (b, image) in images.chunks_exact(self.image_len()).enumerate() {
                    for (ch, src) in image.chunks_exact(plane_len).enumerate() {
                        self.plane_into_quarters(self.win.padding, self.win.width, src, quarters);
                        let q = quarter_planes(quarters, self.quarter_len());
                        tiles::input(q, w2, n, tiles::runs_mut(v, ch * t + b * n, c * t, n));
                    }
                }
                t
            },
        )
    }

    /// Row `y` of a plane placed `pad` pixels down and right, in the
    /// quarter planes (the four one after another): where its even and odd
    /// columns (of the padded plane) start.
    #[inline(always)]
    fn quarter_row(&self, pad: usize, y: usize) -> (usize, usize) {
        let (py, len) = (y + pad, self.quarter_len());
        let at = 2 * (py % 2) * len + (py / 2) * self.w2;
        (at, at + len)
    }

    /// Copies `plane` (rows `width` wide) into the quarter planes, placed
    /// `pad` pixels down and right.
    #[inline(always)]
    fn plane_into_quarters<T: Float>(
        &self,
        pad: usize,
        width: usize,
        plane: &[T],
        quarters: &mut [T],
    ) {
        for (y, row) in plane.chunks_exact(width).enumerate() {
            let (even, odd) = self.quarter_row(pad, y);
            // Pixel x is column x + pad: even columns (x + pad)/2 of one
            // quarter, odd ones of the other.
            let (first_even, first_odd) = (pad % 2, 1 - pad % 2);
            let dst = &mut quarters[even + (first_even + pad) / 2..];
            for (d, &v) in dst.iter_mut().zip(row.iter().skip(first_even).step_by(2)) {
                *d = v;
            }
            let dst = &mut quarters[odd + (first_odd + pad) / 2..];
            for (d, &v) in dst.iter_mut().zip(row.iter().skip(first_odd).step_by(2)) {
                *d = v;
            }
        }
    }

    /// The inverse of [`Winograd::plane_into_quarters`]: each pixel of `plane` from
    /// its place in the quarter planes, plus `add`.
    #[inline(always)]
    fn plane_from_quarters<T: Float>(
        &self,
        pad: usize,
        width: usize,
        quarters: &[T],
        add: T,
        plane: &mut [T],
    ) {
        for (y, row) in plane.chunks_exact_mut(width).enumerate() {
            let (even, odd) = self.quarter_row(pad, y);
            let (first_even, first_odd) = (pad % 2, 1 - pad % 2);
            let src = &quarters[even + (first_even + pad) / 2..];
            for (d, &v) in row.iter_mut().skip(first_even).step_by(2).zip(src) {
                *d = v + add;
            }
            let src = &quarters[odd + (first_odd + pad) / 2..];
            for (d, &v) in row.iter_mut().skip(first_odd).step_by(2).zip(src) {
                *d = v + add;
            }
        }
    }

    /// Writes the output tiles `Aᵀ M A` (plus the bias) of a block into
    /// `out`, dropping the row and column past an odd-sized output.
    fn write_outputs<T: Float>(
        &self,
        s: &mut Scratch<T>,
        t: usize,
        bias: Option<&[T]>,
        out: &mut [T],
    ) {
        // At the widest vectors the CPU runs well: see `tiles`.
        Kernel::Convolution.run(
            #[inline(always)]
            || {
                let (o, n) = (self.outputs, self.tiles());
                let (m, quarters) = (s.m.data(), s.work_quarters.data_mut());
                for (b, out) in out.chunks_exact_mut(self.out_len()).enumerate() {
                    for (k, plane) in out.chunks_exact_mut(self.oh * self.ow).enumerate() {
                        let y = quarter_planes_mut(quarters, self.quarter_len());
                        tiles::output(tiles::runs(m, k * t + b * n, o * t, n), n, y);
                        let bias = bias.map_or(T::ZERO, |b| b[k]);
                        self.plane_from_quarters(0, self.ow, quarters, bias, plane);
                    }
                }
            },
        )
    }

    /// Fills `s.m` (`[ξ, O, tiles]`) with `A dY Aᵀ` of every output tile
    /// of a block's gradient (zero past an odd-sized output), and returns
    /// the block's tile count.
    fn transform_output_grads<T: Float>(&self, grad: &[T], s: &mut Scratch<T>) -> usize {
        // At the widest vectors the CPU runs well: see `tiles`.
        Kernel::Convolution.run(
            #[inline(always)]
            || {
                let (o, n) = (self.outputs, self.tiles());
                let t = grad.len() / self.out_len() * n;
                // Past the output, the quarters keep the zeros they started with.
                let (m, quarters) = (s.m.data_mut(), s.grad_quarters.data_mut());
                for (b, g) in grad.chunks_exact(self.out_len()).enumerate() {
                    for (k, g) in g.chunks_exact(self.oh * self.ow).enumerate() {
                        self.plane_into_quarters(0, self.ow, g, quarters);
                        let dy = quarter_planes(quarters, self.quarter_len());
                        tiles::output_adjoint(dy, n, tiles::runs_mut(m, k * t + b * n, o * t, n));
                    }
                }
                t
            },
        )
    }

    /// Adds `B dV Bᵀ` of every tile (`s.v` holds `dV`, `[ξ, C, tiles]`)
    /// back onto the padded plane it was read from, and writes the planes'
    /// inner parts, the input's gradient, into `dx` (overwritten).
    fn scatter_input_grads<T: Float>(&self, t: usize, dx: &mut [T], s: &mut Scratch<T>) {
        // At the widest vectors the CPU runs well: see `tiles`.
        Kernel::Convolution.run(
            #[inline(always)]
            || {
                let (c, n, w2) = (self.win.channels, self.tiles(), self.w2);
                let plane_len = self.win.height * self.win.width;
                let (v, quarters, dd) = (s.v.data(), s.work_quarters.data_mut(), s.runs.data_mut());
                for (b, dx) in dx.chunks_exact_mut(self.image_len()).enumerate() {
                    for (ch, dst) in dx.chunks_exact_mut(plane_len).enumerate() {
                        tiles::input_adjoint(
                            tiles::runs(v, ch * t + b * n, c * t, n),
                            n,
                            tiles::runs_mut(dd, 0, n, n),
                        );
                        let q = quarter_planes_mut(quarters, self.quarter_len());
                        tiles::sum_into_quarters(tiles::runs(dd, 0, n, n), w2, n, q);
                        self.plane_from_quarters(
                            self.win.padding,
                            self.win.width,
                            quarters,
                            T::ZERO,
                            dst,
                        );
                    }
                }
            },
        )
    }
}

/// The 16 products of a block, one per tile position `ξ`: `dst[ξ] =
/// op(a[ξ]) · op(b[ξ])` with `op(a[ξ])` `m × k` and `op(b[ξ])` `k × n`, each
/// operand's ξ-th part `m·k` (or `k·n`) elements long as stored.
fn products<T: Float>(
    dst: &mut [T],
    a: &[T],
    ta: Transpose,
    b: &[T],
    tb: Transpose,
    (m, k, n): (usize, usize, usize),
) {
    assert!(
        dst.len() >= XI * m * n && a.len() >= XI * m * k && b.len() >= XI * k * n,
        "winograd: product sizes"
    );
    let parts = dst
        .chunks_exact_mut(m * n)
        .zip(a.chunks_exact(m * k))
        .zip(b.chunks_exact(k * n));
    for ((dst, a), b) in parts.take(XI) {
        gemm_slices(dst, a, ta, b, tb, (m, k, n), false).expect("winograd: product sizes");
    }
}

/// The four quarter planes of `len` elements at the start of `buf`.
fn quarter_planes<T>(buf: &[T], len: usize) -> [&[T]; 4] {
    let mut q = buf[..4 * len].chunks_exact(len);
    std::array::from_fn(|_| q.next().expect("four quarters"))
}

/// [`quarter_planes`], to write into.
fn quarter_planes_mut<T>(buf: &mut [T], len: usize) -> [&mut [T]; 4] {
    let mut q = buf[..4 * len].chunks_exact_mut(len);
    std::array::from_fn(|_| q.next().expect("four quarters"))
}

/// Buffers a block reuses, sized for the largest block: transformed inputs
/// or their gradients (`[ξ, C, tiles]`), products or output-gradient
/// transforms (`[ξ, O, tiles]`), planes as their four quarter planes (see
/// `tiles`): an input plane's and an output gradient's, whose padding stays
/// zero from one plane to the next, and one to work in; and the 16 runs of
/// one plane's tiles.
struct Scratch<T: Float> {
    v: Tensor<T>,
    m: Tensor<T>,
    input_quarters: Tensor<T>,
    grad_quarters: Tensor<T>,
    work_quarters: Tensor<T>,
    runs: Tensor<T>,
}

#[cfg(test)]
mod tests;
