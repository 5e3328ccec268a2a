//! What a run is told ([`TrainConfig`]) and what it tells its
//! [`Observer`] as it goes.

use crate::metrics::EpochMetrics;
use crate::probe::ProbeConfig;
use crate::step::BatchStats;
use nabla_data::Augment;
use nabla_optim::LrSchedule;
use std::path::PathBuf;

/// How a run is organised.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Epochs to train (in total, counting epochs done before a resume).
    pub epochs: usize,
    /// Samples per mini-batch.
    pub batch_size: usize,
    /// Drop the last partial batch of each epoch instead of keeping it.
    pub drop_last: bool,
    /// Seed of the per-epoch shuffle, the dropout masks and the augmentation.
    pub seed: u64,
    /// Learning-rate schedule, applied at the start of each epoch.
    pub schedule: LrSchedule,
    /// Stop after this many epochs without a better validation score
    /// (accuracy, or RMSE for values), and keep the best weights (needs a
    /// validation set).
    pub early_stop: Option<usize>,
    /// Write a checkpoint here after every epoch.
    pub checkpoint: Option<PathBuf>,
    /// Batch size used for evaluation.
    pub eval_batch_size: usize,
    /// Random shifts and rotations of the training images, if any.
    pub augment: Option<Augment>,
    /// Probes of the layers' learning (see [`crate::Prober`]), if any.
    pub probes: Option<ProbeConfig>,
    /// Steps of linear learning-rate warm-up at the start of the run (0:
    /// none), within whatever the schedule gives each epoch.
    pub warmup_steps: usize,
    /// The rows batch normalisation takes its training statistics over: the
    /// whole batch, or each shard's (which lets its shards run in parallel).
    pub batch_stats: BatchStats,
    /// Check every op's value and gradient for NaN and ±∞ and stop at the
    /// first, naming the op and its layer (`Tape::set_detect_anomaly`).
    pub detect_anomaly: bool,
    /// Keep an exponential moving average of the weights with this decay
    /// (e.g. 0.999), updated after every step, and evaluate and hand back
    /// the average instead of the trained weights (see [`WeightAverage`](crate::WeightAverage)).
    pub weight_average: Option<f64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 100,
            drop_last: false,
            seed: 0,
            schedule: LrSchedule::Constant,
            early_stop: None,
            checkpoint: None,
            eval_batch_size: 1000,
            augment: None,
            probes: None,
            warmup_steps: 0,
            batch_stats: BatchStats::Batch,
            detect_anomaly: false,
            weight_average: None,
        }
    }
}

/// Facts announced at the start of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    /// Training samples.
    pub samples: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Mini-batches (iterations) per epoch.
    pub iterations_per_epoch: usize,
    /// First epoch to run (1, or later after a resume).
    pub first_epoch: usize,
    /// Last epoch.
    pub epochs: usize,
}

impl std::fmt::Display for RunInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} samples, batch {} → {} iteration{}/epoch",
            self.samples,
            self.batch_size,
            self.iterations_per_epoch,
            if self.iterations_per_epoch == 1 {
                ""
            } else {
                "s"
            }
        )
    }
}

/// Receives progress events; every method has an empty default.
pub trait Observer {
    /// The run begins.
    fn started(&mut self, _info: &RunInfo) {}
    /// An epoch begins.
    fn epoch_started(&mut self, _epoch: usize, _iterations: usize) {}
    /// A mini-batch step finished, with the running mean loss of the epoch
    /// and, for classes, its running accuracy.
    fn batch_done(
        &mut self,
        _epoch: usize,
        _done: usize,
        _samples_seen: usize,
        _loss: f64,
        _accuracy: Option<f64>,
    ) {
    }
    /// An epoch finished (after evaluation and checkpointing).
    fn epoch_done(&mut self, _metrics: &EpochMetrics) {}
    /// Early stopping ended the run; the best epoch's weights were restored.
    fn stopped_early(&mut self, _best_epoch: usize) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}
