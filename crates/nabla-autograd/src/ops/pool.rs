//! 2-D max and average pooling over each channel plane.

use super::grad_if;
use crate::{Error, InputGrads, Op, Result};
use nabla_tensor::conv::{
    avg_pool_plane, avg_pool_plane_backward, max_pool_plane, max_pool_scatter,
};
use nabla_tensor::{Float, Tensor, Window};
use rayon::prelude::*;
use smallvec::smallvec;

/// Which statistic a pooling window takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    /// The largest value; backward routes the gradient to the first maximum.
    Max,
    /// The mean (padding counted as zeros); backward spreads the gradient evenly.
    Avg,
}

/// Pooling of `[N, C, H, W]` with a `kernel × kernel` window moved by
/// `stride`, over an input padded by `padding` (zeros for average pooling;
/// ignored by max pooling). Output `[N, C, OH, OW]`, sizes as for convolution.
///
/// Max pooling's forward records where each maximum was (an index into its
/// plane), and backward sends each gradient there.
pub struct Pool2d {
    /// Max or average.
    pub kind: PoolKind,
    /// Window side.
    pub kernel: usize,
    /// Step of the window.
    pub stride: usize,
    /// Padding on every side.
    pub padding: usize,
    /// Max pooling: for each output, the index in its plane of its maximum.
    argmax: Vec<u32>,
}

impl Pool2d {
    /// A pooling op.
    pub fn new(kind: PoolKind, kernel: usize, stride: usize, padding: usize) -> Self {
        Pool2d {
            kind,
            kernel,
            stride,
            padding,
            argmax: Vec::new(),
        }
    }

    /// The planes (`N·C`) and the window of one plane.
    fn geometry<T: Float>(&self, x: &Tensor<T>) -> Result<(usize, Window)> {
        let &[n, c, h, w] = x.dims() else {
            return Err(Error::invalid(
                self.name(),
                format!("expected input [N, C, H, W], got {}", x.shape()),
            ));
        };
        let window = Window {
            channels: 1,
            height: h,
            width: w,
            kernel_h: self.kernel,
            kernel_w: self.kernel,
            stride: self.stride,
            padding: self.padding,
        };
        if window.out_h().is_none() || 2 * self.padding > self.kernel {
            return Err(Error::invalid(
                self.name(),
                format!(
                    "a {k}×{k} window with stride {} and padding {} does not fit a {h}×{w} input (padding may be at most half the window)",
                    self.stride,
                    self.padding,
                    k = self.kernel
                ),
            ));
        }
        Ok((n * c, window))
    }

    fn name(&self) -> &'static str {
        match self.kind {
            PoolKind::Max => "max_pool2d",
            PoolKind::Avg => "avg_pool2d",
        }
    }

    fn scale<T: Float>(&self) -> T {
        T::ONE / T::from_usize(self.kernel * self.kernel)
    }
}

impl<T: Float> Op<T> for Pool2d {
    fn name(&self) -> &'static str {
        Pool2d::name(self)
    }

    fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let (_, win) = self.geometry(x[0])?;
        let dims = x[0].dims();
        let (oh, ow) = (win.out_h().unwrap_or(0), win.out_w().unwrap_or(0));
        let mut out = Tensor::zeros(&[dims[0], dims[1], oh, ow]);
        let scale = self.scale::<T>();
        let planes = x[0].data().par_chunks((win.height * win.width).max(1));
        let out_len = out.len();
        let outs = out.data_mut().par_chunks_mut((oh * ow).max(1));
        match self.kind {
            PoolKind::Max => {
                self.argmax.clear();
                self.argmax.resize(out_len, 0);
                outs.zip(planes)
                    .zip(self.argmax.par_chunks_mut((oh * ow).max(1)))
                    .for_each(|((o, plane), at)| max_pool_plane(plane, &win, o, at));
            }
            PoolKind::Avg => outs
                .zip(planes)
                .for_each(|(o, plane)| avg_pool_plane(plane, &win, o, scale)),
        }
        Ok(out)
    }

    fn reuse_storage(&mut self, previous: &mut Self) {
        std::mem::swap(&mut self.argmax, &mut previous.argmax);
    }

    fn backward(
        &self,
        x: &[&Tensor<T>],
        _: &Tensor<T>,
        g: &Tensor<T>,
        needs: &[bool],
    ) -> Result<InputGrads<T>> {
        let (_, win) = self.geometry(x[0])?;
        let (plane_len, out_len) = (win.height * win.width, win.positions());
        let scale = self.scale::<T>();
        Ok(smallvec![grad_if(needs, 0, || {
            let mut dx = x[0].zeros_like();
            let grads = dx
                .data_mut()
                .par_chunks_mut(plane_len.max(1))
                .zip(g.data().par_chunks(out_len.max(1)));
            match self.kind {
                PoolKind::Max => grads
                    .zip(self.argmax.par_chunks(out_len.max(1)))
                    .for_each(|((d, g), at)| max_pool_scatter(g, at, d)),
                PoolKind::Avg => {
                    grads.for_each(|(d, g)| avg_pool_plane_backward(&win, g, d, scale))
                }
            }
            Ok(dx)
        })?])
    }
}
