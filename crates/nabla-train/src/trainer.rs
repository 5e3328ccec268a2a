//! The training loop.

use crate::checkpoint::{write_checkpoint, Checkpoint};
use crate::metrics::{evaluate, EpochMetrics};
use crate::step::{mix, Stepper};
use crate::{Result, TrainError};
use nabla_data::{batches_per_epoch, Augment, Batches, Dataset};
use nabla_nn::{state_dict, ModelSpec, Module, Sequential};
use nabla_optim::{LrSchedule, Optimizer};
use nabla_tensor::{Rng, Tensor};
use std::path::PathBuf;
use std::time::Instant;

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
    /// Stop after this many epochs without a better validation accuracy, and
    /// keep the best weights (needs a validation set).
    pub early_stop: Option<usize>,
    /// Write a checkpoint here after every epoch.
    pub checkpoint: Option<PathBuf>,
    /// Batch size used for evaluation.
    pub eval_batch_size: usize,
    /// Random shifts and rotations of the training images, if any.
    pub augment: Option<Augment>,
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
            "{} samples, batch {} → {} iterations/epoch",
            self.samples, self.batch_size, self.iterations_per_epoch
        )
    }
}

/// Receives progress events; every method has an empty default.
pub trait Observer {
    /// The run begins.
    fn started(&mut self, _info: &RunInfo) {}
    /// An epoch begins.
    fn epoch_started(&mut self, _epoch: usize, _iterations: usize) {}
    /// A mini-batch step finished, with the running mean loss and accuracy of the epoch.
    fn batch_done(
        &mut self,
        _epoch: usize,
        _done: usize,
        _samples_seen: usize,
        _loss: f64,
        _accuracy: f64,
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

/// The best validation result so far, for early stopping.
#[derive(Debug, Clone)]
pub(crate) struct Best {
    pub accuracy: f64,
    pub epoch: usize,
    /// Parameters then buffers, in `state_dict` order.
    pub params: Vec<Tensor<f32>>,
}

/// A model, its optimiser and the state of a run.
pub struct Trainer {
    /// The network being trained.
    pub model: Sequential<f32>,
    /// What the network is (saved into model files).
    pub spec: ModelSpec,
    /// The optimiser.
    pub optimizer: Optimizer<f32>,
    /// The run's organisation.
    pub config: TrainConfig,
    /// Metrics of every finished epoch.
    pub history: Vec<EpochMetrics>,
    pub(crate) rng: Rng,
    pub(crate) epochs_done: usize,
    pub(crate) base_lr: f64,
    pub(crate) best: Option<Best>,
    /// Shard state reused from step to step.
    pub(crate) stepper: Stepper,
}

/// Separates the shuffle stream from the weight-initialisation stream of the same seed.
const SHUFFLE_STREAM: u64 = 0x05ee_d0f5_b0ff_1e00;
/// Separates the augmentation stream likewise.
const AUGMENT_STREAM: u64 = 0x0a06_3e47_0000_0001;

impl Trainer {
    /// A fresh run.
    pub fn new(
        model: Sequential<f32>,
        spec: ModelSpec,
        optimizer: Optimizer<f32>,
        config: TrainConfig,
    ) -> Self {
        let base_lr = optimizer.learning_rate();
        let rng = Rng::seed(config.seed ^ SHUFFLE_STREAM);
        Trainer {
            model,
            spec,
            optimizer,
            config,
            history: Vec::new(),
            rng,
            epochs_done: 0,
            base_lr,
            best: None,
            stepper: Stepper::new(),
        }
    }

    /// Continues a run from a checkpoint: weights, optimiser state, shuffle
    /// generator, epoch count, history and early-stopping state are restored;
    /// `optimizer` must be of the same method, `config` gives the epochs to reach.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] if the checkpoint does not fit.
    pub fn resume(
        checkpoint: Checkpoint,
        mut optimizer: Optimizer<f32>,
        config: TrainConfig,
    ) -> Result<Self> {
        let method = optimizer.config().method.name();
        if checkpoint.optimizer_method != method {
            return Err(TrainError::Checkpoint {
                path: checkpoint.path.clone(),
                reason: format!(
                    "it was written with the {} optimiser, this run uses {method}",
                    checkpoint.optimizer_method
                ),
            });
        }
        optimizer.load_state(checkpoint.optimizer_state)?;
        Ok(Trainer {
            model: checkpoint.model,
            spec: checkpoint.spec,
            optimizer,
            config,
            history: checkpoint.history,
            rng: checkpoint.rng,
            epochs_done: checkpoint.epochs_done,
            base_lr: checkpoint.base_lr,
            best: checkpoint.best,
            stepper: Stepper::new(),
        })
    }

    /// Epochs finished so far.
    pub fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    /// Trains until `config.epochs` (or early stopping). `val` is used for
    /// early stopping and reported; `test` is only reported.
    ///
    /// # Errors
    /// A bad configuration, a data or engine error, a checkpoint that cannot be
    /// written, or a diverging loss.
    pub fn fit(
        &mut self,
        train: &Dataset,
        val: Option<&Dataset>,
        test: Option<&Dataset>,
        observer: &mut dyn Observer,
    ) -> Result<()> {
        let c = self.config.clone();
        if c.batch_size == 0 {
            return Err(TrainError::Config(
                "the batch size must be at least 1".into(),
            ));
        }
        if c.early_stop.is_some() && val.is_none_or(|v| v.is_empty()) {
            return Err(TrainError::Config(
                "early stopping needs a validation split (e.g. --val-split 0.1)".into(),
            ));
        }
        let iterations = batches_per_epoch(train.len(), c.batch_size, c.drop_last);
        if iterations == 0 {
            return Err(TrainError::Config(format!(
                "{} samples make no batch of {}",
                train.len(),
                c.batch_size
            )));
        }
        observer.started(&RunInfo {
            samples: train.len(),
            batch_size: c.batch_size,
            iterations_per_epoch: iterations,
            first_epoch: self.epochs_done + 1,
            epochs: c.epochs,
        });
        // Dropout masks continue their streams when a run resumes.
        self.stepper
            .set_position(c.seed, (self.epochs_done * iterations) as u64);
        while self.epochs_done < c.epochs {
            let epoch = self.epochs_done + 1;
            let lr = c.schedule.lr_at(self.base_lr, epoch - 1);
            self.optimizer.set_learning_rate(lr);
            observer.epoch_started(epoch, iterations);
            let start = Instant::now();
            // Training behaviour (dropout on, batch statistics) for the
            // epoch only; evaluation and the saved model use evaluation mode.
            self.model.set_training(true);
            let trained = self.train_epoch(train, epoch, observer);
            self.model.set_training(false);
            let (train_loss, train_accuracy) = trained?;
            let seconds = start.elapsed().as_secs_f64();
            let val_accuracy = val
                .filter(|v| !v.is_empty())
                .map(|v| evaluate(&self.model, v, c.eval_batch_size))
                .transpose()?
                .map(|e| e.accuracy);
            let test_accuracy = test
                .map(|t| evaluate(&self.model, t, c.eval_batch_size))
                .transpose()?
                .map(|e| e.accuracy);
            let metrics = EpochMetrics {
                epoch,
                train_loss,
                train_accuracy,
                val_accuracy,
                test_accuracy,
                lr,
                seconds,
                samples_per_second: train.len() as f64 / seconds.max(1e-9),
            };
            self.history.push(metrics.clone());
            self.epochs_done = epoch;
            let stop = self.track_best(val_accuracy, epoch);
            if let Some(path) = &c.checkpoint {
                write_checkpoint(path, self)?;
            }
            observer.epoch_done(&metrics);
            if stop {
                let best = self.best.as_ref().map(|b| b.epoch).unwrap_or(epoch);
                self.restore_best();
                observer.stopped_early(best);
                break;
            }
        }
        Ok(())
    }

    /// One pass over the shuffled training set; returns (mean loss, accuracy).
    fn train_epoch(
        &mut self,
        train: &Dataset,
        epoch: usize,
        observer: &mut dyn Observer,
    ) -> Result<(f64, f64)> {
        let batches = Batches::new(
            train.len(),
            self.config.batch_size,
            self.config.drop_last,
            Some(&mut self.rng),
        )?;
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
        let Trainer {
            model,
            optimizer,
            stepper,
            ..
        } = self;
        let augment = self
            .config
            .augment
            .as_ref()
            .map(|a| (a, mix(self.config.seed ^ AUGMENT_STREAM, epoch as u64)));
        stepper.epoch(
            model,
            optimizer,
            train,
            &batches,
            augment,
            |b, rows, outcome| {
                let (loss, right) = (outcome.loss, outcome.correct);
                if !loss.is_finite() {
                    return Err(TrainError::Diverged {
                        epoch,
                        batch: b + 1,
                        loss,
                    });
                }
                loss_sum += loss * rows as f64;
                correct += right;
                seen += rows;
                observer.batch_done(
                    epoch,
                    b + 1,
                    seen,
                    loss_sum / seen as f64,
                    correct as f64 / seen as f64,
                );
                Ok(())
            },
        )?;
        Ok((
            loss_sum / seen.max(1) as f64,
            correct as f64 / seen.max(1) as f64,
        ))
    }

    /// Records a better validation accuracy; true when patience has run out.
    fn track_best(&mut self, val_accuracy: Option<f64>, epoch: usize) -> bool {
        let (Some(patience), Some(acc)) = (self.config.early_stop, val_accuracy) else {
            return false;
        };
        if self.best.as_ref().is_none_or(|b| acc > b.accuracy) {
            let params = state_dict(&self.model)
                .into_iter()
                .map(|(_, v)| v)
                .collect();
            self.best = Some(Best {
                accuracy: acc,
                epoch,
                params,
            });
        }
        let best_epoch = self.best.as_ref().map(|b| b.epoch).unwrap_or(epoch);
        epoch - best_epoch >= patience
    }

    fn restore_best(&mut self) {
        if let Some(best) = &self.best {
            let mut saved = best.params.iter();
            self.model.visit_params_mut("", &mut |_, p| {
                if let Some(v) = saved.next() {
                    *p.value_mut() = v.clone();
                }
            });
            self.model.visit_buffers_mut("", &mut |_, b| {
                if let Some(v) = saved.next() {
                    *b = v.clone();
                }
            });
        }
    }
}
