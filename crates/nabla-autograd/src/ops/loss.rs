//! Loss conventions shared by every loss, and the fused softmax-with-loss op.

use super::grad_if;
use super::softmax::softmax_rows;
use crate::{Error, Op, Result};
use nabla_tensor::{Float, Tensor};

/// How per-sample losses are combined into one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduction {
    /// Divide the total by the batch size `N` (the number of rows; for
    /// elementwise losses such as MSE, the number of elements). The default,
    /// as in PyTorch and in the material's cross-entropy `/ N`.
    #[default]
    Mean,
    /// The plain total.
    Sum,
}

/// Classification targets: class indices, or one row per sample over the classes.
#[derive(Debug, Clone, PartialEq)]
pub enum Target<T: Float = f32> {
    /// One class index per sample.
    Indices(Vec<usize>),
    /// A `[N, C]` tensor of one-hot (or, for the fused loss, any probability) rows.
    OneHot(Tensor<T>),
}

impl<T: Float> Target<T> {
    /// Class indices: as given, or the argmax of each one-hot row (the
    /// material: "if `t.size == y.size` the targets are one-hot and are turned
    /// into indices with argmax").
    ///
    /// # Errors
    /// If a one-hot target is not rank 2.
    pub fn indices(&self) -> Result<Vec<usize>> {
        match self {
            Target::Indices(v) => Ok(v.clone()),
            Target::OneHot(t) => {
                t.as_matrix_dims("target")?;
                Ok(t.argmax_axis(1)?)
            }
        }
    }

    /// The targets as `[N, C]` rows.
    ///
    /// # Errors
    /// A label ≥ `classes`, or a one-hot tensor of another width.
    pub fn to_rows(&self, classes: usize) -> Result<Tensor<T>> {
        match self {
            Target::Indices(v) => Ok(Tensor::one_hot(v, classes)?),
            Target::OneHot(t) => {
                let (_, c) = t.as_matrix_dims("target")?;
                if c != classes {
                    return Err(Error::invalid(
                        "target",
                        format!("one-hot rows have {c} classes, the scores have {classes}"),
                    ));
                }
                Ok(t.clone())
            }
        }
    }
}

/// Softmax followed by cross-entropy, fused (the material's Softmax-with-Loss).
///
/// Forward: `L = -Σ_i Σ_j t_ij · log softmax(x)_ij`, divided by `N` for
/// [`Reduction::Mean`]; computed as log-softmax, so no `1e-10` guard is needed.
/// Backward: `(y - t) / N` (or `y - t` for a sum), for one-hot and index
/// targets alike, where `y = softmax(x)` kept from forward.
pub struct SoftmaxCrossEntropy<T: Float> {
    target: Target<T>,
    reduction: Reduction,
    rows: Option<Tensor<T>>,
    probs: Option<Tensor<T>>,
}

impl<T: Float> SoftmaxCrossEntropy<T> {
    /// The op for given targets and reduction.
    pub fn new(target: Target<T>, reduction: Reduction) -> Self {
        SoftmaxCrossEntropy {
            target,
            reduction,
            rows: None,
            probs: None,
        }
    }
}

impl<T: Float> Op<T> for SoftmaxCrossEntropy<T> {
    fn name(&self) -> &'static str {
        "softmax_cross_entropy"
    }
    fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let (n, c) = x[0].as_matrix_dims("softmax_cross_entropy")?;
        let rows = self.target.to_rows(c)?;
        if rows.dims()[0] != n {
            return Err(Error::invalid(
                "softmax_cross_entropy",
                format!("{} targets for a batch of {n} score rows", rows.dims()[0]),
            ));
        }
        let probs = softmax_rows(x[0])?;
        let mut total = T::ZERO;
        for (xr, tr) in x[0].data().chunks(c).zip(rows.data().chunks(c)) {
            let max = xr.iter().copied().fold(xr[0], T::max);
            let lse = xr.iter().map(|&v| (v - max).exp()).sum::<T>().ln() + max;
            for (&xv, &tv) in xr.iter().zip(tr) {
                if tv != T::ZERO {
                    total -= tv * (xv - lse);
                }
            }
        }
        if self.reduction == Reduction::Mean && n > 0 {
            total /= T::from_usize(n);
        }
        self.rows = Some(rows);
        self.probs = Some(probs);
        Ok(Tensor::scalar(total))
    }
    fn backward(
        &self,
        x: &[&Tensor<T>],
        _: &Tensor<T>,
        g: &Tensor<T>,
        n: &[bool],
    ) -> Result<Vec<Option<Tensor<T>>>> {
        let (Some(rows), Some(probs)) = (&self.rows, &self.probs) else {
            return Err(Error::invalid(
                "softmax_cross_entropy",
                "backward before forward",
            ));
        };
        let batch = x[0].dims()[0];
        let mut scale = g.item()?;
        if self.reduction == Reduction::Mean && batch > 0 {
            scale /= T::from_usize(batch);
        }
        Ok(vec![grad_if(n, 0, || {
            Ok(probs.zip_with(rows, "softmax_cross_entropy", |y, t| (y - t) * scale)?)
        })?])
    }
}
