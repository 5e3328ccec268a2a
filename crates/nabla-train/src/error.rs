//! Errors of the training room.

use std::path::PathBuf;

/// Result alias for the training room.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

/// What training, evaluation or a checkpoint can fail with.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The engine refused an operation.
    #[error(transparent)]
    Engine(#[from] nabla_autograd::Error),
    /// A tensor operation refused its operands.
    #[error(transparent)]
    Tensor(#[from] nabla_tensor::TensorError),
    /// The data room refused something.
    #[error(transparent)]
    Data(#[from] nabla_data::DataError),
    /// A model or checkpoint file could not be read or written.
    #[error(transparent)]
    File(#[from] nabla_nn::ModelFileError),
    /// A checkpoint that does not fit this run.
    #[error("{path}: {reason}")]
    Checkpoint {
        /// The checkpoint.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A run that cannot continue from its checkpoint as asked: `setting`
    /// names what differs (`optimizer`, `data`).
    #[error("cannot resume: {reason}")]
    Resume {
        /// The setting that differs.
        setting: &'static str,
        /// What differs.
        reason: String,
    },
    /// A configuration that cannot run.
    #[error("{0}")]
    Config(String),
    /// With anomaly detection on, the first op that made a NaN or ±∞.
    #[error("epoch {epoch}, batch {batch} (step {step}): {source}")]
    Anomaly {
        /// Epoch (from 1).
        epoch: usize,
        /// Batch of the epoch (from 1).
        batch: usize,
        /// Step of the run (from 1).
        step: u64,
        /// The engine's report: op, node, layer, cause.
        source: Box<nabla_autograd::Error>,
    },
    /// A parameter's gradient became NaN or infinite; the weights were not updated.
    #[error("training stopped at epoch {epoch}, batch {batch}: the gradient of '{param}' is not finite (NaN or ∞); rerun with --detect-anomaly to find the op that made it")]
    NonFiniteGradient {
        /// Epoch (from 1).
        epoch: usize,
        /// Batch of the epoch (from 1).
        batch: usize,
        /// The first parameter (in visiting order) whose gradient is not finite.
        param: String,
    },
    /// Data-parallel training failed across processes: a collective
    /// operation failed or timed out, the ranks' settings or weights differ,
    /// or another rank failed.
    #[error("{0}")]
    Distributed(String),
    /// The loss became NaN or infinite.
    #[error("training diverged at epoch {epoch}, batch {batch}: the loss is {loss} (try a smaller learning rate, or rerun with --detect-anomaly to find the op that made it)")]
    Diverged {
        /// Epoch (from 1).
        epoch: usize,
        /// Batch (from 1).
        batch: usize,
        /// The loss value.
        loss: f64,
    },
}

impl TrainError {
    /// This error with the epoch and batch where it happened, for the
    /// errors a step raises without knowing them (batch counted from 1).
    pub(crate) fn at(self, epoch: usize, batch: usize, step: u64) -> Self {
        match self {
            TrainError::Engine(source @ nabla_autograd::Error::Anomaly { .. }) => {
                TrainError::Anomaly {
                    epoch,
                    batch,
                    step,
                    source: Box::new(source),
                }
            }
            TrainError::Anomaly { source, .. } => TrainError::Anomaly {
                epoch,
                batch,
                step,
                source,
            },
            TrainError::NonFiniteGradient { param, .. } => TrainError::NonFiniteGradient {
                epoch,
                batch,
                param,
            },
            other => other,
        }
    }
}
