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
    /// The loss became NaN or infinite.
    #[error("training diverged at epoch {epoch}, batch {batch}: the loss is {loss} (try a smaller learning rate)")]
    Diverged {
        /// Epoch (from 1).
        epoch: usize,
        /// Batch (from 1).
        batch: usize,
        /// The loss value.
        loss: f64,
    },
}
