//! Ops that move elements without arithmetic: reshape, permute, gather.

use super::grad_if;
use crate::{InputGrads, Op, Result};
use nabla_tensor::{Dims, Float, Tensor};
use smallvec::smallvec;

/// The same elements under a new shape; backward reshapes the gradient back.
/// (The shape is kept inline, so recording a reshape allocates nothing.)
pub struct Reshape(pub Dims);

impl<T: Float> Op<T> for Reshape {
    fn name(&self) -> &'static str {
        "reshape"
    }
    fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        Ok(x[0].reshape(&self.0)?)
    }
    fn backward(
        &self,
        x: &[&Tensor<T>],
        _: &Tensor<T>,
        g: &Tensor<T>,
        n: &[bool],
    ) -> Result<InputGrads<T>> {
        Ok(smallvec![grad_if(n, 0, || Ok(g.reshape(x[0].dims())?))?])
    }
}

/// Axis permutation; backward applies the inverse permutation.
pub struct Permute(pub Vec<usize>);

impl<T: Float> Op<T> for Permute {
    fn name(&self) -> &'static str {
        "permute"
    }
    fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        Ok(x[0].permute(&self.0)?)
    }
    fn backward(
        &self,
        _: &[&Tensor<T>],
        _: &Tensor<T>,
        g: &Tensor<T>,
        n: &[bool],
    ) -> Result<InputGrads<T>> {
        let mut inverse = vec![0; self.0.len()];
        for (i, &a) in self.0.iter().enumerate() {
            inverse[a] = i;
        }
        Ok(smallvec![grad_if(n, 0, || Ok(g.permute(&inverse)?))?])
    }
}

/// `out[i] = x[i, labels[i]]` for a `[N, C]` input; backward scatters the
/// gradient back to those positions and leaves zeros elsewhere.
pub struct GatherRows(pub Vec<usize>);

impl<T: Float> Op<T> for GatherRows {
    fn name(&self) -> &'static str {
        "gather_rows"
    }
    fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        Ok(x[0].gather_rows(&self.0)?)
    }
    fn backward(
        &self,
        x: &[&Tensor<T>],
        _: &Tensor<T>,
        g: &Tensor<T>,
        n: &[bool],
    ) -> Result<InputGrads<T>> {
        Ok(smallvec![grad_if(n, 0, || {
            let (_, c) = x[0].as_matrix_dims("gather_rows")?;
            let mut out = x[0].zeros_like();
            let d = out.data_mut();
            for (i, (&l, &gi)) in self.0.iter().zip(g.data()).enumerate() {
                d[i * c + l] += gi;
            }
            Ok(out)
        })?])
    }
}
