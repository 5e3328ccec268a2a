//! Softmax and log-softmax over the last axis, computed after subtracting the
//! row maximum so that `exp` never overflows.

use super::grad_if;
use crate::{Error, InputGrads, Op, Result};
use nabla_tensor::{Float, Tensor};
use smallvec::smallvec;

/// Softmax of each row (the last axis) of `x`, stable under large inputs.
pub(crate) fn softmax_rows<T: Float>(x: &Tensor<T>) -> Result<Tensor<T>> {
    let c = last_dim("softmax", x)?;
    let mut out = x.map(|v| v);
    for row in out.data_mut().chunks_mut(c) {
        let max = row.iter().copied().fold(row[0], T::max);
        let mut sum = T::ZERO;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        for v in row.iter_mut() {
            *v /= sum;
        }
    }
    Ok(out)
}

/// `log Σ exp(x)` of one non-empty row, shifted by its maximum so nothing overflows.
pub(crate) fn log_sum_exp<T: Float>(row: &[T]) -> T {
    let max = row.iter().copied().fold(row[0], T::max);
    row.iter().map(|&v| (v - max).exp()).sum::<T>().ln() + max
}

fn last_dim<T: Float>(op: &'static str, x: &Tensor<T>) -> Result<usize> {
    match x.dims().last() {
        Some(&c) if c > 0 => Ok(c),
        _ => Err(Error::invalid(
            op,
            format!("needs a last axis of length ≥ 1, got shape {}", x.shape()),
        )),
    }
}

/// `y = softmax(x)` along the last axis. Backward:
/// `dx = y ⊙ (g - Σ_j g_j y_j)` row by row.
pub struct Softmax;

impl<T: Float> Op<T> for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }
    fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        softmax_rows(x[0])
    }
    fn backward(
        &self,
        _: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        n: &[bool],
    ) -> Result<InputGrads<T>> {
        Ok(smallvec![grad_if(n, 0, || {
            let c = last_dim("softmax", y)?;
            Ok(Tensor::from_fill(y.dims(), |dx| {
                for (yr, gr) in y.data().chunks(c).zip(g.data().chunks(c)) {
                    let dot: T = yr.iter().zip(gr).map(|(&a, &b)| a * b).sum();
                    dx.extend(yr.iter().zip(gr).map(|(&yv, &gv)| yv * (gv - dot)));
                }
            })?)
        })?])
    }
}

/// `y = log softmax(x) = x - max - log Σ exp(x - max)` along the last axis.
/// Backward: `dx = g - softmax(x) · Σ_j g_j`, with `softmax = exp(y)`.
pub struct LogSoftmax;

impl<T: Float> Op<T> for LogSoftmax {
    fn name(&self) -> &'static str {
        "log_softmax"
    }
    fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let c = last_dim("log_softmax", x[0])?;
        Ok(Tensor::from_fill(x[0].dims(), |out| {
            for row in x[0].data().chunks(c) {
                let lse = log_sum_exp(row);
                out.extend(row.iter().map(|&v| v - lse));
            }
        })?)
    }
    fn backward(
        &self,
        _: &[&Tensor<T>],
        y: &Tensor<T>,
        g: &Tensor<T>,
        n: &[bool],
    ) -> Result<InputGrads<T>> {
        Ok(smallvec![grad_if(n, 0, || {
            let c = last_dim("log_softmax", y)?;
            Ok(Tensor::from_fill(y.dims(), |dx| {
                for (yr, gr) in y.data().chunks(c).zip(g.data().chunks(c)) {
                    let total: T = gr.iter().copied().sum();
                    dx.extend(yr.iter().zip(gr).map(|(&yv, &gv)| gv - yv.exp() * total));
                }
            })?)
        })?])
    }
}
