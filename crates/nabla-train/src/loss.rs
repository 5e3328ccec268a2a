//! What the trainer minimises: a [`Loss`] from the model's output and the
//! batch's targets to a scalar on the graph.
//!
//! Any closure of the right shape is a loss (wrap it in [`loss_fn`] so that
//! its lifetimes are inferred), and [`StandardLoss`] names the library's:
//! cross-entropy for classes, MSE and MAE for values. A loss returns the
//! *mean* over its batch; the trainer splits a batch into shards and weights
//! each shard's mean by its share of the rows, so the shards add up to the
//! batch mean whatever the split.

use crate::{Result, TrainError};
use nabla_autograd::{Reduction, Target, Var};
use nabla_nn::loss;
use nabla_tensor::Tensor;

/// The targets of a batch (or shard) on the graph.
#[derive(Clone)]
pub enum Targets<'t> {
    /// Class indices, one per sample.
    Classes(Target<f32>),
    /// Values `[n, outputs]`, a constant on the tape.
    Values(Var<'t, f32>),
}

impl<'t> Targets<'t> {
    /// The class indices.
    ///
    /// # Errors
    /// [`TrainError::Config`] for values.
    pub fn classes(self) -> Result<Target<f32>> {
        match self {
            Targets::Classes(t) => Ok(t),
            Targets::Values(_) => Err(TrainError::Config(
                "this loss needs class targets, and the data set holds values to regress (use mse or mae)".into(),
            )),
        }
    }

    /// The values.
    ///
    /// # Errors
    /// [`TrainError::Config`] for classes.
    pub fn values(self) -> Result<Var<'t, f32>> {
        match self {
            Targets::Values(v) => Ok(v),
            Targets::Classes(_) => Err(TrainError::Config(
                "this loss needs values to regress, and the data set holds classes (use cross-entropy)".into(),
            )),
        }
    }
}

/// Targets of a batch before they are put on a tape: what a data set hands
/// the training step.
#[derive(Debug, Clone)]
pub enum BatchTargets {
    /// Class indices.
    Classes(Target<f32>),
    /// Values `[n, outputs]`.
    Values(Tensor<f32>),
}

/// A loss: the mean over a batch of how far the outputs are from the targets.
pub trait Loss: Send + Sync {
    /// The batch's mean loss, a scalar on the graph.
    ///
    /// # Errors
    /// Shapes or targets the loss cannot take.
    fn loss<'t>(&self, output: Var<'t, f32>, targets: Targets<'t>) -> Result<Var<'t, f32>>;
}

impl<F> Loss for F
where
    F: for<'t> Fn(Var<'t, f32>, Targets<'t>) -> Result<Var<'t, f32>> + Send + Sync,
{
    fn loss<'t>(&self, output: Var<'t, f32>, targets: Targets<'t>) -> Result<Var<'t, f32>> {
        self(output, targets)
    }
}

/// A closure as a [`Loss`], with the lifetimes a loss needs:
///
/// ```
/// use nabla_train::{loss_fn, Loss};
/// use nabla_nn::loss;
/// use nabla_autograd::Reduction;
/// let half_sse = loss_fn(|y, t| {
///     // The material's E = 0.5·Σ(y − t)², averaged over the batch.
///     let n = y.shape().dims()[0] as f64;
///     Ok(loss::sum_squared_error(y, t.values()?)?.mul_scalar(1.0 / n)?)
/// });
/// # let _: &dyn Loss = &half_sse;
/// ```
pub fn loss_fn<F>(f: F) -> F
where
    F: for<'t> Fn(Var<'t, f32>, Targets<'t>) -> Result<Var<'t, f32>> + Send + Sync,
{
    f
}

/// The library's losses, by name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StandardLoss {
    /// Softmax then cross-entropy over classes (from logits), mean over the batch.
    CrossEntropy,
    /// Cross-entropy against targets smoothed by ε: `(1 - ε)` on the label
    /// and `ε/C` spread over all `C` classes (PyTorch's `label_smoothing`).
    /// Evaluation still reports the plain cross-entropy.
    SmoothedCrossEntropy(f32),
    /// Mean squared error over every output of every sample (PyTorch's `MSELoss`).
    Mse,
    /// Mean absolute error (L1), likewise.
    Mae,
}

impl StandardLoss {
    /// `cross-entropy`, `mse` or `mae`.
    pub fn name(self) -> &'static str {
        match self {
            StandardLoss::CrossEntropy | StandardLoss::SmoothedCrossEntropy(_) => "cross-entropy",
            StandardLoss::Mse => "mse",
            StandardLoss::Mae => "mae",
        }
    }
}

impl Loss for StandardLoss {
    fn loss<'t>(&self, output: Var<'t, f32>, targets: Targets<'t>) -> Result<Var<'t, f32>> {
        Ok(match self {
            StandardLoss::CrossEntropy => {
                output.softmax_cross_entropy(targets.classes()?, Reduction::Mean)?
            }
            StandardLoss::SmoothedCrossEntropy(eps) => {
                output.softmax_cross_entropy_smoothed(targets.classes()?, Reduction::Mean, *eps)?
            }
            StandardLoss::Mse => loss::mse(output, targets.values()?, Reduction::Mean)?,
            StandardLoss::Mae => loss::l1(output, targets.values()?, Reduction::Mean)?,
        })
    }
}
