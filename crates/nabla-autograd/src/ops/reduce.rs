//! Sums and means, over everything or along one axis.

use super::grad_if;
use crate::{InputGrads, Op, Result};
use nabla_tensor::{Float, Tensor};
use smallvec::smallvec;

/// Sum of all elements → a rank-0 tensor. Backward: every input element
/// receives the upstream gradient.
pub struct Sum;

impl<T: Float> Op<T> for Sum {
    fn name(&self) -> &'static str {
        "sum"
    }
    fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        Ok(Tensor::scalar(x[0].sum_all()))
    }
    fn backward(
        &self,
        x: &[&Tensor<T>],
        _: &Tensor<T>,
        g: &Tensor<T>,
        n: &[bool],
    ) -> Result<InputGrads<T>> {
        let g = g.item()?;
        Ok(smallvec![grad_if(n, 0, || Ok(Tensor::full(
            x[0].dims(),
            g
        )))?])
    }
}

/// Mean of all elements → a rank-0 tensor. Backward: `g / N` everywhere.
pub struct Mean;

impl<T: Float> Op<T> for Mean {
    fn name(&self) -> &'static str {
        "mean"
    }
    fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        Ok(Tensor::scalar(x[0].mean_all()?))
    }
    fn backward(
        &self,
        x: &[&Tensor<T>],
        _: &Tensor<T>,
        g: &Tensor<T>,
        n: &[bool],
    ) -> Result<InputGrads<T>> {
        let g = g.item()? / T::from_usize(x[0].len());
        Ok(smallvec![grad_if(n, 0, || Ok(Tensor::full(
            x[0].dims(),
            g
        )))?])
    }
}

/// Sum (or, with `mean`, the mean) along one axis. Backward broadcasts the
/// upstream gradient back along that axis (divided by its length for a mean).
pub struct SumAxis {
    /// The reduced axis.
    pub axis: usize,
    /// Keep the reduced axis as length 1.
    pub keepdim: bool,
    /// Divide by the axis length.
    pub mean: bool,
}

impl<T: Float> Op<T> for SumAxis {
    fn name(&self) -> &'static str {
        if self.mean {
            "mean_axis"
        } else {
            "sum_axis"
        }
    }
    fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        Ok(if self.mean {
            x[0].mean_axis(self.axis, self.keepdim)?
        } else {
            x[0].sum_axis(self.axis, self.keepdim)?
        })
    }
    fn backward(
        &self,
        x: &[&Tensor<T>],
        _: &Tensor<T>,
        g: &Tensor<T>,
        n: &[bool],
    ) -> Result<InputGrads<T>> {
        Ok(smallvec![grad_if(n, 0, || {
            let kept = x[0].reduced_shape("sum_axis", self.axis, true)?;
            let g = g.reshape(kept.dims())?;
            let scale = if self.mean {
                T::ONE / T::from_usize(x[0].dims()[self.axis])
            } else {
                T::ONE
            };
            Ok(Tensor::full(x[0].dims(), scale).mul(&g)?)
        })?])
    }
}
