//! # nabla-train
//!
//! The training room: a [`Trainer`] runs epochs of mini-batch steps of any
//! [`Module`](nabla_nn::Module) on any [`Dataset`](nabla_data::Dataset) with
//! any [`Loss`] and optimiser, records per-epoch [`EpochMetrics`] (accuracy
//! for classes; RMSE, MAE and R² for values), stops early when the
//! validation score stops improving, writes a checkpoint after every epoch
//! atomically and resumes from it exactly. Progress is reported through an
//! [`Observer`], so the library draws nothing itself.
//!
//! Classification and regression are two uses of the same loop: the data
//! set says which its targets are ([`Task`](nabla_data::Task)) and the loss
//! says how to compare them with the model's outputs.

mod average;
mod checkpoint;
mod error;
mod loss;
mod lr_find;
mod metrics;
mod parallel;
mod probe;
mod search;
mod state;
mod step;
mod trainer;

pub use average::WeightAverage;
pub use checkpoint::{decode_checkpoint, load_checkpoint, save_checkpoint, Checkpoint, STATE_KEY};
pub use error::{Result, TrainError};
pub use loss::{loss_fn, BatchTargets, Loss, StandardLoss, Targets};
pub use lr_find::{lr_find, LrFindConfig, LrFinding, LrPoint};
pub use metrics::{
    eval_batch_size, evaluate, evaluate_views, probabilities, view_probabilities, EpochMetrics,
    Evaluation, Score,
};
pub use parallel::{weights_checksum, Collective, DataParallel, Reduction, DEFAULT_BUCKET_BYTES};
pub use probe::{
    ActivationProbe, ParamProbe, ProbeConfig, ProbeReport, Prober, EXPLODING, RATIO_TOO_LARGE,
    RATIO_TOO_SMALL, UNIT_FRACTION, VANISHING,
};
pub use search::{halving_plan, ChoiceValue, Range, Rung, SearchSpace};
pub use state::{Best, RunState};
pub use step::{
    rows_of, shard_ranges, train_step, BatchStats, StepOutcome, Stepper, MAX_SHARDS, SHARD_ROWS,
};
pub use trainer::{Observer, RunInfo, Silent, TrainConfig, Trainer};
