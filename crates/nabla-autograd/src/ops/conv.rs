//! 2-D convolution: direct kernels for stride 1, im2col and the fast GEMM
//! for the rest, and Winograd's F(2×2, 3×3) for the backward pass of the
//! larger 3×3 layers; [`conv_plan`] chooses.
//!
//! The backward pass of a 3×3 layer with stride 1, at least 32 channels in
//! and out and 8×8 outputs runs [`Winograd`](nabla_tensor::conv::Winograd): each 2×2 block of outputs
//! takes 16 multiplies instead of 36, those of a block of images done as 16
//! matrix products (see `nabla_tensor::conv::winograd`).
//! On planes narrower than 16 pixels with whole blocks of 32 output
//! channels, the forward pass holds output channels in the vector lanes
//! instead of pixels ([`nabla_tensor::conv::conv_direct_channel_lanes`]):
//! the direct kernel's sums, to the bit, with every lane used.
//! With stride 1 (and at least 8 taps `C·kh·kw`), the kernels of
//! [`nabla_tensor::conv::conv_direct`] read each image, zero-padded once,
//! in place of a column matrix: about twice as fast on LeNet-sized layers
//! (`cargo bench -p nabla-bench -- conv`). Otherwise, for each image `n` of
//! the batch, [`im2col`] copies its receptive fields into
//! `col [C·kh·kw, OH·OW]`; then
//!
//! - forward:  `out_n = W · col + b`          (`[O, C·kh·kw] · [C·kh·kw, OH·OW]`)
//! - backward: `dW += dout_n · colᵀ`, `db += Σ_positions dout_n`,
//!   `dx_n = col2im(Wᵀ · dout_n)`.
//!
//! The column matrix is rebuilt in backward instead of kept from forward:
//! copying is cheap next to the products, and a batch's columns would
//! otherwise hold `kh·kw` times the memory of its images.

use super::grad_if;
use crate::{Error, InputGrads, Op, Result};
use nabla_tensor::conv::{
    channel_lanes_weights_len, col2im, conv_direct, conv_direct_channel_lanes,
    conv_direct_input_grad, conv_direct_weight_grad, conv_direct_weight_grad_lanes, conv_plan,
    convolution_level, convolution_vectorised, im2col, im2col_strided, input_grad_scratch_len,
    input_grad_weights_len, pad_into, prepare_channel_lanes_weights, prepare_input_grad_weights,
    transpose_grads, weight_grad_as_product, weight_grad_in_lanes, weight_grad_lanes_scratch_len,
    ConvAlgorithm, Padded, WEIGHT_GRAD_ROWS,
};
use nabla_tensor::{gemm_slices, Float, Tensor, Transpose, Window};
use rayon::prelude::*;
use smallvec::smallvec;

/// `out[n, o] = b[o] + Σ_{c,i,j} W[o, c, i, j] · x[n, c, y·s + i − p, x·s + j − p]`
/// (cross-correlation, as in PyTorch and the book).
///
/// # Shapes
/// - inputs: `x [N, C, H, W]`, `weight [O, C, kh, kw]`, optionally `bias [O]`
/// - output: `[N, O, OH, OW]` with `OH = ⌊(H + 2p − kh)/s⌋ + 1` (likewise `OW`)
pub struct Conv2d {
    /// Step of the window.
    pub stride: usize,
    /// Zeros around every side of the input.
    pub padding: usize,
}

/// The batch size, the window, and the output channel count of a convolution.
fn geometry<T: Float>(
    conv: &Conv2d,
    x: &Tensor<T>,
    w: &Tensor<T>,
    b: Option<&Tensor<T>>,
) -> Result<(usize, Window, usize)> {
    let (&[n, c, h, wd], &[o, wc, kh, kw]) = (x.dims(), w.dims()) else {
        return Err(Error::invalid(
            "conv2d",
            format!(
                "expected input [N, C, H, W] and weight [O, C, kh, kw], got {} and {}",
                x.shape(),
                w.shape()
            ),
        ));
    };
    if wc != c {
        return Err(Error::invalid(
            "conv2d",
            format!(
                "input {} has {c} channels, weight {} expects {wc}",
                x.shape(),
                w.shape()
            ),
        ));
    }
    if let Some(b) = b {
        if b.dims() != [o] {
            return Err(Error::invalid(
                "conv2d",
                format!("bias has shape {}, expected [{o}]", b.shape()),
            ));
        }
    }
    let window = Window {
        channels: c,
        height: h,
        width: wd,
        kernel_h: kh,
        kernel_w: kw,
        stride: conv.stride,
        padding: conv.padding,
    };
    if window.out_h().is_none() || window.out_w().is_none() {
        return Err(Error::invalid(
            "conv2d",
            format!(
                "a {kh}×{kw} kernel with stride {} and padding {} does not fit a {h}×{wd} input",
                conv.stride, conv.padding
            ),
        ));
    }
    Ok((n, window, o))
}

impl<T: Float> Op<T> for Conv2d {
    fn name(&self) -> &'static str {
        "conv2d"
    }

    fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let (n, win, o) = geometry(self, x[0], x[1], x.get(2).copied())?;
        let (k, p) = (win.col_rows(), win.positions());
        let (oh, ow) = (win.out_h().unwrap_or(0), win.out_w().unwrap_or(0));
        // Every algorithm below writes every output.
        let mut out = Tensor::for_overwrite(&[n, o, oh, ow]);
        let (images, weight) = (x[0].data(), x[1].data());
        let bias = x.get(2).map(|b| b.data());
        let algorithm = conv_plan(&win, o, convolution_level::<T>()).forward;
        if let ConvAlgorithm::Winograd(plan) = algorithm {
            plan.forward(images, weight, bias, out.data_mut());
            return Ok(out);
        }
        if algorithm == ConvAlgorithm::ChannelLanes {
            // The weights tap-major once for the batch, then image by image.
            let mut prepared = Tensor::<T>::zeros(&[channel_lanes_weights_len(&win, o)]);
            prepare_channel_lanes_weights(&win, weight, prepared.data_mut());
            let (prepared, padded) = (prepared.data(), Padded::of_window(&win));
            out.data_mut()
                .par_chunks_mut((o * p).max(1))
                .zip(images.par_chunks(win.image_len().max(1)))
                .for_each_init(
                    || Tensor::<T>::for_overwrite(&[padded.len()]),
                    |buf, (out_n, image)| {
                        pad_into(image, (win.height, win.width), padded, buf.data_mut());
                        let kernel = (win.kernel_h, win.kernel_w);
                        let weights = (prepared, o);
                        conv_direct_channel_lanes(buf.data(), padded, kernel, weights, bias, out_n);
                    },
                );
            return Ok(out);
        }
        if algorithm == ConvAlgorithm::Direct {
            let padded = Padded::of_window(&win);
            out.data_mut()
                .par_chunks_mut((o * p).max(1))
                .zip(images.par_chunks(win.image_len().max(1)))
                .for_each_init(
                    || Tensor::<T>::for_overwrite(&[padded.len()]),
                    |buf, (out_n, image)| {
                        pad_into(image, (win.height, win.width), padded, buf.data_mut());
                        let kernel = (win.kernel_h, win.kernel_w);
                        conv_direct(buf.data(), padded, kernel, weight, bias, out_n);
                    },
                );
            return Ok(out);
        }
        // Images are independent, so the results do not depend on how rayon
        // splits the batch; each of its jobs fills one column buffer (from
        // the pool) image after image.
        out.data_mut()
            .par_chunks_mut((o * p).max(1))
            .zip(images.par_chunks(win.image_len().max(1)))
            .try_for_each_init(
                || Tensor::<T>::zeros(&[k, p]),
                |col, (out_n, image)| -> Result<()> {
                    im2col(image, &win, col.data_mut());
                    gemm_slices(
                        out_n,
                        weight,
                        Transpose::No,
                        col.data(),
                        Transpose::No,
                        (o, k, p),
                        false,
                    )?;
                    if let Some(bias) = bias {
                        for (row, &b) in out_n.chunks_exact_mut(p.max(1)).zip(bias) {
                            row.iter_mut().for_each(|v| *v += b);
                        }
                    }
                    Ok(())
                },
            )?;
        Ok(out)
    }

    fn backward(
        &self,
        x: &[&Tensor<T>],
        _: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<InputGrads<T>> {
        let (_, win, o) = geometry(self, x[0], x[1], x.get(2).copied())?;
        let (k, p) = (win.col_rows(), win.positions());
        let weight = x[1].data();
        let grad_samples = g.data().chunks_exact((o * p).max(1));
        let images = x[0].data().chunks_exact(win.image_len().max(1));

        let algorithm = conv_plan(&win, o, convolution_level::<T>()).backward;
        if let ConvAlgorithm::Winograd(plan) = algorithm {
            // Both gradients in one pass: they share the output gradient's
            // transform, and overwrite the tensors they are given.
            let mut dx = needs
                .first()
                .copied()
                .unwrap_or(false)
                .then(|| Tensor::for_overwrite(x[0].dims()));
            let mut dw = needs
                .get(1)
                .copied()
                .unwrap_or(false)
                .then(|| Tensor::for_overwrite(x[1].dims()));
            plan.backward(
                x[0].data(),
                weight,
                g.data(),
                dx.as_mut().map(|t| t.data_mut()),
                dw.as_mut().map(|t| t.data_mut()),
            );
            return with_bias_grad(x, g, needs, p, o, dx, dw);
        }
        if algorithm == ConvAlgorithm::Direct {
            return self.backward_direct(x, g, needs, &win, o);
        }
        let dx = grad_if(needs, 0, || {
            let mut dx = x[0].zeros_like();
            // Each image's gradient depends on that image's only.
            dx.data_mut()
                .par_chunks_mut(win.image_len().max(1))
                .zip(g.data().par_chunks((o * p).max(1)))
                .try_for_each_init(
                    || Tensor::<T>::zeros(&[k, p]),
                    |dcol, (dx_n, g_n)| -> Result<()> {
                        gemm_slices(
                            dcol.data_mut(),
                            weight,
                            Transpose::Yes,
                            g_n,
                            Transpose::No,
                            (k, o, p),
                            false,
                        )?;
                        col2im(dcol.data(), &win, dx_n);
                        Ok(())
                    },
                )?;
            Ok(dx)
        })?;

        // dW sums over the batch: accumulated in batch order, so the result
        // is the same on any number of threads.
        let dw = grad_if(needs, 1, || {
            let mut dw = x[1].zeros_like();
            let mut col = Tensor::<T>::zeros(&[k, p]);
            for (i, (image, g_n)) in images.clone().zip(grad_samples.clone()).enumerate() {
                im2col(image, &win, col.data_mut());
                gemm_slices(
                    dw.data_mut(),
                    g_n,
                    Transpose::No,
                    col.data(),
                    Transpose::Yes,
                    (o, p, k),
                    i > 0,
                )?;
            }
            Ok(dw)
        })?;

        with_bias_grad(x, g, needs, p, o, dx, dw)
    }
}

impl Conv2d {
    /// Backward through the direct kernels (stride 1; see
    /// [`ConvAlgorithm::Direct`]): no column matrices.
    fn backward_direct<T: Float>(
        &self,
        x: &[&Tensor<T>],
        g: &Tensor<T>,
        needs: &[bool],
        win: &Window,
        o: usize,
    ) -> Result<InputGrads<T>> {
        let p = win.positions();
        let kernel = (win.kernel_h, win.kernel_w);
        let weight = x[1].data();
        let dx = grad_if(needs, 0, || {
            let mut prepared = Tensor::<T>::zeros(&[input_grad_weights_len::<T>(win, o)]);
            prepare_input_grad_weights(win, weight, prepared.data_mut());
            let prepared = prepared.data();
            // Each image's gradient depends on that image's only, and
            // overwrites its part of `dx`.
            let mut dx = Tensor::for_overwrite(x[0].dims());
            dx.data_mut()
                .par_chunks_mut(win.image_len().max(1))
                .zip(g.data().par_chunks((o * p).max(1)))
                .for_each_init(
                    || Tensor::<T>::zeros(&[input_grad_scratch_len::<T>(win, o)]),
                    |scratch, (dx_n, g_n)| {
                        conv_direct_input_grad(win, g_n, prepared, scratch.data_mut(), dx_n)
                    },
                );
            Ok(dx)
        })?;
        // dW sums over the batch; the threads share out the output
        // channels, and each sum runs over the whole batch in batch order:
        // the same bits on any number of threads.
        let dw = grad_if(needs, 1, || {
            if convolution_vectorised::<T>() && weight_grad_in_lanes(win, o) {
                return Ok(weight_grad_lanes(x[0], x[1], g, win));
            }
            if weight_grad_as_product(win, o, x[0].dims()[0]) {
                return weight_grad_product(x[0], x[1], g, win);
            }
            let padded = Padded::of_window(win);
            let n = x[0].dims()[0];
            let mut images = Tensor::<T>::for_overwrite(&[n, padded.len()]);
            images
                .data_mut()
                .par_chunks_mut(padded.len().max(1))
                .zip(x[0].data().par_chunks(win.image_len().max(1)))
                .for_each(|(dst, image)| pad_into(image, (win.height, win.width), padded, dst));
            let taps = win.col_rows();
            let share = o
                .div_ceil(rayon::current_num_threads())
                .next_multiple_of(WEIGHT_GRAD_ROWS);
            let mut dw = x[1].zeros_like();
            dw.data_mut()
                .par_chunks_mut((share * taps).max(1))
                .enumerate()
                .for_each(|(i, rows)| {
                    let (images, grad) = (images.data(), g.data());
                    conv_direct_weight_grad(images, padded, kernel, grad, i * share, rows);
                });
            Ok(dw)
        })?;
        with_bias_grad(x, g, needs, p, o, dx, dw)
    }
}

/// `dW` with the output channels in the vector lanes (small planes, see
/// [`weight_grad_in_lanes`]): the output gradients transposed to `[N, P,
/// O]`, then the threads share out the taps, each computing its rows of
/// `dWᵀ`, which is turned into `dW` at the end. Every weight's sum is the
/// same whichever thread computes it.
fn weight_grad_lanes<T: Float>(
    x: &Tensor<T>,
    weight: &Tensor<T>,
    g: &Tensor<T>,
    win: &Window,
) -> Tensor<T> {
    let (n, o, p, taps) = (
        x.dims()[0],
        weight.dims()[0],
        win.positions(),
        win.col_rows(),
    );
    // Every buffer below is overwritten: the padded images, the transposed
    // gradients, `dWᵀ` and `dW`.
    let padded = Padded::of_window(win);
    let mut images = Tensor::<T>::for_overwrite(&[n, padded.len()]);
    images
        .data_mut()
        .par_chunks_mut(padded.len().max(1))
        .zip(x.data().par_chunks(win.image_len().max(1)))
        .for_each(|(dst, image)| pad_into(image, (win.height, win.width), padded, dst));
    let mut grads = Tensor::<T>::for_overwrite(&[weight_grad_lanes_scratch_len(win, o, n)]);
    grads
        .data_mut()
        .par_chunks_mut((o * p).max(1))
        .zip(g.data().par_chunks((o * p).max(1)))
        .for_each(|(dst, src)| transpose_grads(src, (o, p), dst));
    let share = taps.div_ceil(rayon::current_num_threads()).max(1);
    let mut dwt = Tensor::<T>::for_overwrite(&[taps, o]);
    let kernel = (win.kernel_h, win.kernel_w);
    dwt.data_mut()
        .par_chunks_mut((share * o).max(1))
        .enumerate()
        .for_each(|(i, rows)| {
            let range = i * share..i * share + rows.len() / o.max(1);
            let grads = (grads.data(), o);
            conv_direct_weight_grad_lanes(images.data(), padded, kernel, grads, range, rows);
        });
    let mut dw = Tensor::for_overwrite(weight.dims());
    let out = dw.data_mut();
    for (t, row) in dwt.data().chunks_exact(o.max(1)).enumerate() {
        for (oi, &v) in row.iter().enumerate() {
            out[oi * taps + t] = v;
        }
    }
    dw
}

/// `dW = dY · colᵀ` as one product over the batch (small planes, see
/// [`weight_grad_as_product`]): the images' column matrices side by side in
/// `[C·kh·kw, N·P]`, the output gradients likewise in `[O, N·P]`, so that
/// every weight's sum runs over all `N·P` positions in one GEMM. The
/// product's sums do not depend on the number of threads.
fn weight_grad_product<T: Float>(
    x: &Tensor<T>,
    weight: &Tensor<T>,
    g: &Tensor<T>,
    win: &Window,
) -> Result<Tensor<T>> {
    let (n, o, p, taps) = (
        x.dims()[0],
        weight.dims()[0],
        win.positions(),
        win.col_rows(),
    );
    let wide = n * p;
    let mut col = Tensor::<T>::zeros(&[taps, wide]);
    let mut grad = Tensor::<T>::zeros(&[o, wide]);
    let images = x.data().chunks_exact(win.image_len().max(1));
    for (b, image) in images.enumerate() {
        im2col_strided(image, win, &mut col.data_mut()[b * p..], wide);
    }
    let grads = g.data().chunks_exact((o * p).max(1));
    for (b, g_n) in grads.enumerate() {
        for (row, src) in grad
            .data_mut()
            .chunks_exact_mut(wide)
            .zip(g_n.chunks_exact(p))
        {
            row[b * p..(b + 1) * p].copy_from_slice(src);
        }
    }
    let mut dw = weight.zeros_like();
    gemm_slices(
        dw.data_mut(),
        grad.data(),
        Transpose::No,
        col.data(),
        Transpose::Yes,
        (o, wide, taps),
        false,
    )?;
    Ok(dw)
}

/// `[dx, dW]`, and `db = Σ_{n, positions} dout` when the op has a bias
/// (summed in batch order).
fn with_bias_grad<T: Float>(
    x: &[&Tensor<T>],
    g: &Tensor<T>,
    needs: &[bool],
    p: usize,
    o: usize,
    dx: Option<Tensor<T>>,
    dw: Option<Tensor<T>>,
) -> Result<InputGrads<T>> {
    let mut grads: InputGrads<T> = smallvec![dx, dw];
    if x.len() > 2 {
        grads.push(grad_if(needs, 2, || {
            let mut db = Tensor::<T>::zeros(&[o]);
            for g_n in g.data().chunks_exact((o * p).max(1)) {
                for (d, row) in db.data_mut().iter_mut().zip(g_n.chunks_exact(p.max(1))) {
                    *d += sum_by_lanes(row);
                }
            }
            Ok(db)
        })?);
    }
    Ok(grads)
}

/// The sum of `values` in eight interleaved partial sums (added together at
/// the end): the compiler turns it into vector adds, where one running sum
/// would wait on every addition. A fixed order, so results do not vary.
fn sum_by_lanes<T: Float>(values: &[T]) -> T {
    let mut lanes = [T::ZERO; 8];
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (l, &v) in lanes.iter_mut().zip(chunk) {
            *l += v;
        }
    }
    lanes.iter().copied().sum::<T>() + rest.iter().copied().sum::<T>()
}
