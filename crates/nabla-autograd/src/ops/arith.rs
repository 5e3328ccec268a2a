//! Arithmetic: add, sub, mul, div (broadcasting), neg, and scalar add/mul.
//!
//! Broadcasting ops reduce each input's gradient back to its own shape with
//! `sum_to_shape`: a bias added to every row receives the sum over rows.

use super::grad_if;
use crate::{InputGrads, Op, Result};
use nabla_tensor::{Float, Tensor};
use smallvec::smallvec;

/// `a + b`. Backward passes the upstream gradient unchanged to both inputs
/// (the material's add node).
pub struct Add;

impl<T: Float> Op<T> for Add {
    fn name(&self) -> &'static str {
        "add"
    }
    fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        Ok(x[0].add(x[1])?)
    }
    fn backward(
        &self,
        x: &[&Tensor<T>],
        _: &Tensor<T>,
        g: &Tensor<T>,
        n: &[bool],
    ) -> Result<InputGrads<T>> {
        Ok(smallvec![
            grad_if(n, 0, || Ok(g.sum_to_shape(x[0].shape())?))?,
            grad_if(n, 1, || Ok(g.sum_to_shape(x[1].shape())?))?,
        ])
    }
}

/// `a - b`: `∂/∂a = g`, `∂/∂b = -g`.
pub struct Sub;

impl<T: Float> Op<T> for Sub {
    fn name(&self) -> &'static str {
        "sub"
    }
    fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        Ok(x[0].sub(x[1])?)
    }
    fn backward(
        &self,
        x: &[&Tensor<T>],
        _: &Tensor<T>,
        g: &Tensor<T>,
        n: &[bool],
    ) -> Result<InputGrads<T>> {
        Ok(smallvec![
            grad_if(n, 0, || Ok(g.sum_to_shape(x[0].shape())?))?,
            grad_if(n, 1, || Ok(g.map(|v| -v).sum_to_shape(x[1].shape())?))?,
        ])
    }
}

/// `a * b` elementwise. Backward multiplies the upstream gradient by the
/// *other* input (the material's multiply node swaps its inputs).
pub struct Mul;

impl<T: Float> Op<T> for Mul {
    fn name(&self) -> &'static str {
        "mul"
    }
    fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        Ok(x[0].mul(x[1])?)
    }
    fn backward(
        &self,
        x: &[&Tensor<T>],
        _: &Tensor<T>,
        g: &Tensor<T>,
        n: &[bool],
    ) -> Result<InputGrads<T>> {
        Ok(smallvec![
            grad_if(n, 0, || Ok(g.mul(x[1])?.sum_to_shape(x[0].shape())?))?,
            grad_if(n, 1, || Ok(g.mul(x[0])?.sum_to_shape(x[1].shape())?))?,
        ])
    }
}

/// `a / b` elementwise: `∂/∂a = g / b`, `∂/∂b = -g · a / b²`.
pub struct Div;

impl<T: Float> Op<T> for Div {
    fn name(&self) -> &'static str {
        "div"
    }
    fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        Ok(x[0].div(x[1])?)
    }
    fn backward(
        &self,
        x: &[&Tensor<T>],
        _: &Tensor<T>,
        g: &Tensor<T>,
        n: &[bool],
    ) -> Result<InputGrads<T>> {
        Ok(smallvec![
            grad_if(n, 0, || Ok(g.div(x[1])?.sum_to_shape(x[0].shape())?))?,
            grad_if(n, 1, || {
                let b2 = x[1].map(|b| b * b);
                Ok(g.mul(x[0])?
                    .div(&b2)?
                    .map(|v| -v)
                    .sum_to_shape(x[1].shape())?)
            })?,
        ])
    }
}

/// `-a`.
pub struct Neg;

impl<T: Float> Op<T> for Neg {
    fn name(&self) -> &'static str {
        "neg"
    }
    fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        Ok(x[0].map(|v| -v))
    }
    fn backward(
        &self,
        _: &[&Tensor<T>],
        _: &Tensor<T>,
        g: &Tensor<T>,
        n: &[bool],
    ) -> Result<InputGrads<T>> {
        Ok(smallvec![grad_if(n, 0, || Ok(g.map(|v| -v)))?])
    }
}

/// `a + s` for a constant `s`: the gradient passes unchanged.
pub struct AddScalar<T>(pub T);

impl<T: Float> Op<T> for AddScalar<T> {
    fn name(&self) -> &'static str {
        "add_scalar"
    }
    fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        Ok(x[0].add_scalar(self.0))
    }
    fn backward(
        &self,
        _: &[&Tensor<T>],
        _: &Tensor<T>,
        g: &Tensor<T>,
        n: &[bool],
    ) -> Result<InputGrads<T>> {
        Ok(smallvec![grad_if(n, 0, || Ok(g.clone()))?])
    }
}

/// `a · s` for a constant `s`: `∂/∂a = g · s`.
pub struct MulScalar<T>(pub T);

impl<T: Float> Op<T> for MulScalar<T> {
    fn name(&self) -> &'static str {
        "mul_scalar"
    }
    fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        Ok(x[0].mul_scalar(self.0))
    }
    fn backward(
        &self,
        _: &[&Tensor<T>],
        _: &Tensor<T>,
        g: &Tensor<T>,
        n: &[bool],
    ) -> Result<InputGrads<T>> {
        Ok(smallvec![grad_if(n, 0, || Ok(g.mul_scalar(self.0)))?])
    }
}
