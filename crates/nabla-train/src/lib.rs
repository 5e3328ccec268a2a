//! # nabla-train
//!
//! The training room: a [`Trainer`] runs epochs of mini-batch steps with any
//! optimiser, records per-epoch [`EpochMetrics`], stops early when validation
//! accuracy stops improving, writes a checkpoint after every epoch atomically
//! and resumes from it exactly. Progress is reported through an [`Observer`],
//! so the library draws nothing itself.

mod checkpoint;
mod error;
mod metrics;
mod step;
mod trainer;

pub use checkpoint::{load_checkpoint, Checkpoint};
pub use error::{Result, TrainError};
pub use metrics::{eval_batch_size, evaluate, EpochMetrics, Evaluation};
pub use step::{rows_of, shard_ranges, train_step, StepOutcome, Stepper, MAX_SHARDS, SHARD_ROWS};
pub use trainer::{Observer, RunInfo, Silent, TrainConfig, Trainer};
