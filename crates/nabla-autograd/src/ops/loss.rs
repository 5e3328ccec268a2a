//! Loss conventions shared by every loss, and the fused softmax-with-loss op.

use super::grad_if;
use super::softmax::{log_sum_exp, softmax_rows};
use crate::{Error, InputGrads, Op, Result};
use nabla_tensor::{Float, Tensor};
use smallvec::smallvec;
use std::ops::Range;
use std::sync::Arc;

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
    /// One class index per sample: `labels[range]` of a shared list, so that
    /// the shards of a batch share one list instead of copying their labels.
    Shared(Arc<[usize]>, Range<usize>),
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
            Target::Shared(..) => Ok(self.as_indices()?.to_vec()),
            Target::OneHot(t) => {
                t.as_matrix_dims("target")?;
                Ok(t.argmax_axis(1)?)
            }
        }
    }

    /// The class indices of an index target, without copying them.
    ///
    /// # Errors
    /// For a one-hot target, or a range outside the shared list.
    pub fn as_indices(&self) -> Result<&[usize]> {
        match self {
            Target::Indices(v) => Ok(v),
            Target::Shared(labels, range) => labels.get(range.clone()).ok_or_else(|| {
                Error::invalid(
                    "target",
                    format!(
                        "range {range:?} is outside the {} shared labels",
                        labels.len()
                    ),
                )
            }),
            Target::OneHot(_) => Err(Error::invalid(
                "target",
                "needs class indices, got one-hot rows",
            )),
        }
    }

    /// The targets as `[N, C]` rows.
    ///
    /// # Errors
    /// A label ≥ `classes`, or a one-hot tensor of another width.
    pub fn to_rows(&self, classes: usize) -> Result<Tensor<T>> {
        match self {
            Target::Indices(_) | Target::Shared(..) => {
                Ok(Tensor::one_hot(self.as_indices()?, classes)?)
            }
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
///
/// With label smoothing `ε` ([`SoftmaxCrossEntropy::with_smoothing`]) the
/// targets are `q = (1 - ε)·t + ε/C` over the `C` classes (Szegedy et al.
/// 2016, "Rethinking the Inception Architecture"; PyTorch's
/// `CrossEntropyLoss(label_smoothing=ε)`): the loss no longer pushes the
/// right class's probability all the way to 1, and the backward pass is
/// `(y - q) / N`.
pub struct SoftmaxCrossEntropy<T: Float> {
    target: Target<T>,
    reduction: Reduction,
    smoothing: T,
    /// `y - t`, kept from forward.
    residual: Option<Tensor<T>>,
}

impl<T: Float> SoftmaxCrossEntropy<T> {
    /// The op for given targets and reduction.
    pub fn new(target: Target<T>, reduction: Reduction) -> Self {
        SoftmaxCrossEntropy {
            target,
            reduction,
            smoothing: T::ZERO,
            residual: None,
        }
    }

    /// The op with its targets smoothed by `smoothing` (ε in `[0, 1]`).
    ///
    /// # Errors
    /// A smoothing outside `[0, 1]` (or NaN).
    pub fn with_smoothing(target: Target<T>, reduction: Reduction, smoothing: T) -> Result<Self> {
        if !(smoothing >= T::ZERO && smoothing <= T::ONE) {
            return Err(Error::invalid(
                "softmax_cross_entropy",
                format!("label smoothing {} is not in [0, 1]", smoothing.to_f64()),
            ));
        }
        Ok(SoftmaxCrossEntropy {
            smoothing,
            ..Self::new(target, reduction)
        })
    }
}

impl<T: Float> Op<T> for SoftmaxCrossEntropy<T> {
    fn name(&self) -> &'static str {
        "softmax_cross_entropy"
    }
    fn forward(&mut self, x: &[&Tensor<T>]) -> Result<Tensor<T>> {
        let (n, c) = x[0].as_matrix_dims("softmax_cross_entropy")?;
        let count_error = |targets: usize| {
            Error::invalid(
                "softmax_cross_entropy",
                format!("{targets} targets for a batch of {n} score rows"),
            )
        };
        if c == 0 {
            return Err(Error::invalid(
                "softmax_cross_entropy",
                "needs at least one class",
            ));
        }
        let mut residual = softmax_rows(x[0])?;
        let mut total = T::ZERO;
        // Without smoothing the sums below are the plain loss's, bit for bit.
        let smoothed = self.smoothing != T::ZERO;
        let keep = T::ONE - self.smoothing;
        let share = self.smoothing / T::from_usize(c);
        if let Target::OneHot(_) = self.target {
            let rows = self.target.to_rows(c)?;
            if rows.dims()[0] != n {
                return Err(count_error(rows.dims()[0]));
            }
            for (xr, tr) in x[0].data().chunks(c).zip(rows.data().chunks(c)) {
                let lse = log_sum_exp(xr);
                for (&xv, &tv) in xr.iter().zip(tr) {
                    let q = if smoothed { keep * tv + share } else { tv };
                    if q != T::ZERO {
                        total -= q * (xv - lse);
                    }
                }
            }
            for (y, &t) in residual.data_mut().iter_mut().zip(rows.data()) {
                *y -= if smoothed { keep * t + share } else { t };
            }
        } else {
            // Class indices: no one-hot rows are built; `y - t` subtracts 1 at each label.
            let labels = self.target.as_indices()?;
            if labels.len() != n {
                return Err(count_error(labels.len()));
            }
            if let Some(&bad) = labels.iter().find(|&&l| l >= c) {
                return Err(Error::invalid(
                    "softmax_cross_entropy",
                    format!("label {bad} is out of range for {c} classes"),
                ));
            }
            let y = residual.data_mut();
            for ((xr, &label), yr) in x[0].data().chunks(c).zip(labels).zip(y.chunks_mut(c)) {
                let lse = log_sum_exp(xr);
                if smoothed {
                    // Σ_j q_j (lse - x_j) with q = (1 - ε)·t + ε/C.
                    let spread = xr.iter().fold(T::ZERO, |sum, &v| sum + (lse - v));
                    total += keep * (lse - xr[label]) + share * spread;
                    for v in yr.iter_mut() {
                        *v -= share;
                    }
                    yr[label] -= keep;
                } else {
                    total -= xr[label] - lse;
                    yr[label] -= T::ONE;
                }
            }
        }
        if self.reduction == Reduction::Mean && n > 0 {
            total /= T::from_usize(n);
        }
        self.residual = Some(residual);
        Ok(Tensor::scalar(total))
    }
    fn backward(
        &self,
        x: &[&Tensor<T>],
        _: &Tensor<T>,
        g: &Tensor<T>,
        n: &[bool],
    ) -> Result<InputGrads<T>> {
        let Some(residual) = &self.residual else {
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
        Ok(smallvec![grad_if(
            n,
            0,
            || Ok(residual.map(|d| d * scale))
        )?])
    }
}
