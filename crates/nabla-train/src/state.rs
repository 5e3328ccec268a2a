//! The state of a run: everything besides the weights and the optimiser's
//! buffers that a resumed run needs to continue exactly. The trainer owns
//! it; the checkpoint code reads and writes it and knows nothing else of
//! the trainer.

use crate::{EpochMetrics, WeightAverage};
use nabla_tensor::{Rng, Tensor};

/// Where a run stands.
#[derive(Debug, Clone)]
pub struct RunState {
    /// Epochs finished.
    pub epochs_done: usize,
    /// Learning rate before any schedule.
    pub base_lr: f64,
    /// The generator of the per-epoch shuffle.
    pub rng: Rng,
    /// Metrics of every finished epoch.
    pub history: Vec<EpochMetrics>,
    /// The best validation result so far (early stopping).
    pub best: Option<Best>,
    /// Samples per mini-batch the run was trained with.
    pub batch_size: usize,
    /// Training samples of the run's data set (0 before the first epoch).
    pub samples: usize,
    /// The optimiser's method (`adam`, `sgd`, …).
    pub optimizer: String,
    /// The moving average of the weights, when the run keeps one.
    pub average: Option<WeightAverage>,
}

/// The best validation result so far, for early stopping.
#[derive(Debug, Clone, PartialEq)]
pub struct Best {
    /// The selection score: accuracy, or minus the RMSE (higher is better).
    pub score: f64,
    /// The epoch it was reached in.
    pub epoch: usize,
    /// The model's parameters and buffers then, by name.
    pub state: Vec<(String, Tensor<f32>)>,
}
