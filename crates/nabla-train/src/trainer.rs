//! The training loop: any module, any loss, any data set.

use crate::checkpoint::{save_checkpoint, Checkpoint};
use crate::loss::Loss;
use crate::metrics::{evaluate, EpochMetrics, Evaluation, Score};
use crate::parallel::{
    broadcast_weights, check_agreement, check_in_step, data_fingerprint, fingerprint, DataParallel,
};
use crate::probe::{ProbeConfig, ProbeReport, Prober};
use crate::state::{Best, RunState};
use crate::step::{mix, BatchStats, Stepper};
use crate::{Result, TrainError, WeightAverage};
use nabla_data::{batches_per_epoch, Augment, Batches, Dataset};
use nabla_nn::{file::load_params, state_dict, Module, Sequential};
use nabla_optim::{LrSchedule, Optimizer};
use nabla_tensor::Rng;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
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
    /// the average instead of the trained weights (see [`WeightAverage`]).
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

/// A model, its optimiser and loss, and the state of a run.
///
/// ```
/// use nabla_data::TensorDataset;
/// use nabla_nn::{MlpConfig, Module};
/// use nabla_optim::{Method, OptimizerConfig};
/// use nabla_tensor::{Rng, Tensor};
/// use nabla_train::{Silent, StandardLoss, TrainConfig, Trainer};
/// // y = 2x on x = 1, 2, 3 (the material's PyTorch example), by a linear layer.
/// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3, 1])?;
/// let y = Tensor::from_vec(vec![2.0, 4.0, 6.0], &[3])?;
/// let data = TensorDataset::regression(x, y)?;
/// let model = MlpConfig::new(1, &[], 1).init::<f32>(&mut Rng::seed(0))?;
/// let config = TrainConfig { epochs: 200, batch_size: 3, ..Default::default() };
/// let opt = OptimizerConfig::new(Method::Sgd, 0.05).init();
/// let mut t = Trainer::new(model, opt, StandardLoss::Mse, config);
/// t.fit(&data, None, None, &mut Silent)?;
/// let w = t.model.named_params()[0].1.value().item()?;
/// assert!((w - 2.0).abs() < 0.05, "{w}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Trainer<M: Module<f32> = Sequential<f32>> {
    /// The network being trained.
    pub model: M,
    /// The optimiser.
    pub optimizer: Optimizer<f32>,
    /// The run's organisation.
    pub config: TrainConfig,
    /// Where the run stands (epochs, shuffle generator, history, best epoch).
    pub run: RunState,
    /// Written into every checkpoint's metadata, as given (the command line
    /// keeps its model description here so that a checkpoint can be
    /// rebuilt from the file alone).
    pub checkpoint_metadata: HashMap<String, String>,
    loss: Box<dyn Loss>,
    /// Shard state reused from step to step.
    stepper: Stepper,
    /// The ranks sharing the run, if it is data-parallel.
    parallel: Option<DataParallel>,
    /// True while `model` holds the moving average and `run.average` the
    /// trained weights (between the end of a run and the next `fit`).
    averaged_in: bool,
}

/// Separates the shuffle stream from the weight-initialisation stream of the same seed.
const SHUFFLE_STREAM: u64 = 0x05ee_d0f5_b0ff_1e00;
/// Separates the augmentation stream likewise.
const AUGMENT_STREAM: u64 = 0x0a06_3e47_0000_0001;

impl<M: Module<f32>> Trainer<M> {
    /// A fresh run of `model` minimising `loss`.
    pub fn new(
        model: M,
        optimizer: Optimizer<f32>,
        loss: impl Loss + 'static,
        config: TrainConfig,
    ) -> Self {
        let run = RunState {
            epochs_done: 0,
            base_lr: optimizer.learning_rate(),
            rng: Rng::seed(config.seed ^ SHUFFLE_STREAM),
            history: Vec::new(),
            best: None,
            batch_size: config.batch_size,
            samples: 0,
            optimizer: optimizer.config().method.name().to_string(),
            average: None,
        };
        Trainer {
            model,
            optimizer,
            config,
            run,
            checkpoint_metadata: HashMap::new(),
            loss: Box::new(loss),
            stepper: Stepper::new(),
            parallel: None,
            averaged_in: false,
        }
    }

    /// Makes the run data-parallel over `parallel`'s ranks (see
    /// [`crate::DataParallel`]): every rank must call [`Trainer::fit`] with
    /// the same model, data and settings. At the start the ranks check that
    /// they agree (an error names what differs) and take rank 0's weights;
    /// after each epoch they check that their weights are still the same.
    /// Only rank 0 writes the checkpoint; every rank evaluates (with the
    /// same weights, to the same scores, so they stop early together).
    pub fn set_parallel(&mut self, parallel: DataParallel) {
        self.parallel = Some(parallel);
    }

    /// The ranks sharing the run, if it is data-parallel.
    pub fn parallel(&self) -> Option<&DataParallel> {
        self.parallel.as_ref()
    }

    /// Continues a run from a checkpoint: `model` (of the checkpoint's
    /// architecture) gets its weights; the optimiser state, shuffle
    /// generator, epoch count, history and early-stopping state are
    /// restored; `config` gives the epochs to reach.
    ///
    /// A changed learning rate or batch size is honoured from the next
    /// epoch on and returned as a line to tell the user; another optimiser
    /// method is refused ([`TrainError::Resume`], setting `optimizer`), and
    /// so is another data set, when `fit` sees it (setting `data`).
    ///
    /// # Errors
    /// [`TrainError::Resume`] or a checkpoint that does not fit the model.
    pub fn resume(
        mut model: M,
        mut optimizer: Optimizer<f32>,
        loss: impl Loss + 'static,
        config: TrainConfig,
        checkpoint: Checkpoint,
    ) -> Result<(Self, Vec<String>)> {
        let method = optimizer.config().method.name();
        if checkpoint.run.optimizer != method {
            return Err(TrainError::Resume {
                setting: "optimizer",
                reason: format!(
                    "{} was written with the {} optimiser, this run uses {method}",
                    checkpoint.path.display(),
                    checkpoint.run.optimizer
                ),
            });
        }
        checkpoint.load_model_into(&mut model)?;
        optimizer.load_state(checkpoint.optimizer_state.clone())?;
        let mut run = checkpoint.run;
        let mut changes = Vec::new();
        let lr = optimizer.learning_rate();
        if lr != run.base_lr {
            changes.push(format!(
                "learning rate {} → {lr} from epoch {}",
                run.base_lr,
                run.epochs_done + 1
            ));
            run.base_lr = lr;
        }
        if config.batch_size != run.batch_size {
            changes.push(format!(
                "batch size {} → {} from epoch {}",
                run.batch_size,
                config.batch_size,
                run.epochs_done + 1
            ));
            run.batch_size = config.batch_size;
        }
        Ok((
            Trainer {
                model,
                optimizer,
                config,
                run,
                checkpoint_metadata: checkpoint.metadata,
                loss: Box::new(loss),
                stepper: Stepper::new(),
                parallel: None,
                averaged_in: false,
            },
            changes,
        ))
    }

    /// Epochs finished so far.
    pub fn epochs_done(&self) -> usize {
        self.run.epochs_done
    }

    /// Metrics of every finished epoch.
    pub fn history(&self) -> &[EpochMetrics] {
        &self.run.history
    }

    /// Evaluates the model on `data` (see [`evaluate`]).
    ///
    /// # Errors
    /// As [`evaluate`].
    pub fn evaluate(&self, data: &dyn Dataset) -> Result<Evaluation> {
        evaluate(&self.model, data, self.config.eval_batch_size)
    }

    /// Trains until `config.epochs` (or early stopping). `val` is used for
    /// early stopping and reported; `test` is only reported.
    ///
    /// # Errors
    /// A bad configuration, a data or engine error, a checkpoint that cannot be
    /// written, a diverging loss, or (after a resume) another data set.
    pub fn fit(
        &mut self,
        train: &dyn Dataset,
        val: Option<&dyn Dataset>,
        test: Option<&dyn Dataset>,
        observer: &mut dyn Observer,
    ) -> Result<()> {
        let c = self.config.clone();
        if c.batch_size == 0 {
            return Err(TrainError::Config(
                "the batch size must be at least 1".into(),
            ));
        }
        let val = val.filter(|v| !v.is_empty());
        if c.early_stop.is_some() && val.is_none() {
            return Err(TrainError::Config(
                "early stopping needs a validation split (e.g. --val-split 0.1)".into(),
            ));
        }
        if self.run.epochs_done > 0 && self.run.samples != train.len() {
            return Err(TrainError::Resume {
                setting: "data",
                reason: format!(
                    "the run was trained on {} samples, this data set has {}",
                    self.run.samples,
                    train.len()
                ),
            });
        }
        self.run.samples = train.len();
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
            first_epoch: self.run.epochs_done + 1,
            epochs: c.epochs,
        });
        // Dropout masks continue their streams when a run resumes.
        self.stepper
            .set_position(c.seed, (self.run.epochs_done * iterations) as u64);
        self.stepper.set_warmup(c.warmup_steps as u64);
        self.stepper.set_batch_stats(c.batch_stats);
        self.stepper.set_detect_anomaly(c.detect_anomaly);
        if let Some(dp) = &self.parallel {
            self.start_parallel(dp.clone(), train, val, test)?;
        }
        self.stepper.set_parallel(self.parallel.clone());
        self.start_average()?;
        let primary = self.parallel.as_ref().is_none_or(DataParallel::is_primary);
        let mut prober = c.probes.map(|p| Prober::new(p, train.len()));
        let score = |model: &M, data: Option<&dyn Dataset>| -> Result<Option<Score>> {
            data.map(|d| evaluate(model, d, c.eval_batch_size).map(|e| e.score))
                .transpose()
        };
        while self.run.epochs_done < c.epochs {
            let epoch = self.run.epochs_done + 1;
            let lr = c.schedule.lr_at(self.run.base_lr, epoch - 1);
            self.optimizer.set_learning_rate(lr);
            observer.epoch_started(epoch, iterations);
            let start = Instant::now();
            // Training behaviour (dropout on, batch statistics) for the
            // epoch only; evaluation and the saved model use evaluation mode.
            self.model.set_training(true);
            let trained = self.train_epoch(train, epoch, prober.as_mut(), observer);
            self.model.set_training(false);
            let (train_loss, train_accuracy, mut probes) = trained?;
            if let Some(p) = prober.as_mut() {
                let step = self.stepper.steps();
                probes.push(p.measure(&self.model, self.loss.as_ref(), train, step)?);
            }
            let seconds = start.elapsed().as_secs_f64();
            // The average, when kept, is what is evaluated (and what early
            // stopping keeps); the trained weights go back before the
            // checkpoint, which holds both.
            self.swap_average();
            let scores = score(&self.model, val).and_then(|v| Ok((v, score(&self.model, test)?)));
            let (val_score, test_score) = match scores {
                Ok(s) => s,
                Err(e) => {
                    self.swap_average();
                    return Err(e);
                }
            };
            let metrics = EpochMetrics {
                epoch,
                train_loss,
                train_accuracy,
                test: test_score,
                val: val_score.clone(),
                lr,
                seconds,
                samples_per_second: train.len() as f64 / seconds.max(1e-9),
                probes,
            };
            self.run.history.push(metrics.clone());
            self.run.epochs_done = epoch;
            let stop = self.track_best(val_score.as_ref(), epoch);
            self.swap_average();
            if let Some(dp) = &self.parallel {
                check_in_step(dp, &self.model, epoch)?;
            }
            if let (Some(path), true) = (&c.checkpoint, primary) {
                self.save_checkpoint(path)?;
            }
            observer.epoch_done(&metrics);
            if stop {
                let best = self.run.best.as_ref().map(|b| b.epoch).unwrap_or(epoch);
                self.restore_best()?;
                observer.stopped_early(best);
                return Ok(());
            }
        }
        // The run hands back the average; the next `fit` trains on from
        // the trained weights.
        if self.run.average.is_some() {
            self.swap_average();
            self.averaged_in = true;
        }
        Ok(())
    }

    /// Starts (or, after a resume, takes over) the moving average the
    /// configuration asks for, and first takes back the trained weights if
    /// the model holds the average of an earlier `fit`.
    fn start_average(&mut self) -> Result<()> {
        if self.averaged_in {
            self.swap_average();
            self.averaged_in = false;
        }
        match self.config.weight_average {
            Some(decay) if !(decay > 0.0 && decay < 1.0) => Err(TrainError::Config(format!(
                "the weight average's decay {decay} is not in (0, 1) (0.999 is usual)"
            ))),
            Some(decay) => {
                match &mut self.run.average {
                    Some(avg) if avg.fits(&mut self.model) => avg.decay = decay,
                    _ => self.run.average = Some(WeightAverage::new(&mut self.model, decay)),
                }
                Ok(())
            }
            None => {
                self.run.average = None;
                Ok(())
            }
        }
    }

    /// Exchanges the model's weights with the moving average, if one is kept.
    fn swap_average(&mut self) {
        if let Some(avg) = &mut self.run.average {
            avg.swap(&mut self.model);
        }
    }

    /// Checks that every rank runs the same model on the same data with
    /// the same settings, and gives them rank 0's weights.
    fn start_parallel(
        &mut self,
        dp: DataParallel,
        train: &dyn Dataset,
        val: Option<&dyn Dataset>,
        test: Option<&dyn Dataset>,
    ) -> Result<()> {
        if self.model.couples_batch() {
            return Err(TrainError::Config(
                "batch normalisation cannot be trained data-parallel yet: its running statistics need every part of the batch in one process".into(),
            ));
        }
        let mut shapes = self.model.describe();
        self.model.visit_params("", &mut |name, p| {
            shapes.push_str(&format!(" {name}{}", p.value().shape()));
        });
        // The checkpoint's path is rank 0's business alone.
        let settings = TrainConfig {
            checkpoint: None,
            seed: 0,
            ..self.config.clone()
        };
        let set = |d: Option<&dyn Dataset>| d.map_or(Ok(0), data_fingerprint);
        check_agreement(
            &dp,
            &[
                ("model", fingerprint(&shapes)),
                ("seed", self.config.seed),
                ("training data", data_fingerprint(train)?),
                ("validation data", set(val)?),
                ("test data", set(test)?),
                ("training settings", fingerprint(&format!("{settings:?}"))),
                (
                    "optimiser",
                    fingerprint(&format!("{:?}", self.optimizer.config())),
                ),
                ("epochs already done", self.run.epochs_done as u64),
            ],
        )?;
        broadcast_weights(&dp, &mut self.model)
    }

    /// Writes a checkpoint of the run as it stands.
    ///
    /// # Errors
    /// [`TrainError::File`] naming the file.
    pub fn save_checkpoint(&self, path: &Path) -> Result<()> {
        save_checkpoint(
            path,
            &self.model,
            &self.optimizer,
            &self.run,
            &self.checkpoint_metadata,
        )
    }

    /// One pass over the shuffled training set; returns the mean loss, the
    /// accuracy for classes, and the probes taken every K steps if asked.
    fn train_epoch(
        &mut self,
        train: &dyn Dataset,
        epoch: usize,
        mut prober: Option<&mut Prober>,
        observer: &mut dyn Observer,
    ) -> Result<(f64, Option<f64>, Vec<ProbeReport>)> {
        let batches = Batches::new(
            train.len(),
            self.config.batch_size,
            self.config.drop_last,
            Some(&mut self.run.rng),
        )?;
        let classes = train.task().is_classification();
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
        let mut probes = Vec::new();
        let first_step = self.stepper.steps();
        let Trainer {
            model,
            optimizer,
            stepper,
            loss: loss_fn,
            run,
            ..
        } = self;
        let average = &mut run.average;
        let augment = self
            .config
            .augment
            .as_ref()
            .map(|a| (a, mix(self.config.seed ^ AUGMENT_STREAM, epoch as u64)));
        stepper
            .epoch(
                model,
                optimizer,
                loss_fn.as_ref(),
                train,
                &batches,
                augment,
                |b, rows, outcome, model| {
                    let (loss, right) = (outcome.loss, outcome.correct);
                    if !loss.is_finite() {
                        return Err(TrainError::Diverged {
                            epoch,
                            batch: b + 1,
                            loss,
                        });
                    }
                    if let Some(avg) = average.as_mut() {
                        avg.update(&mut *model);
                    }
                    loss_sum += loss * rows as f64;
                    correct += right;
                    seen += rows;
                    observer.batch_done(
                        epoch,
                        b + 1,
                        seen,
                        loss_sum / seen as f64,
                        classes.then(|| correct as f64 / seen as f64),
                    );
                    if let Some(p) = prober.as_deref_mut() {
                        let step = first_step + b as u64 + 1;
                        if p.config()
                            .every
                            .is_some_and(|k| k > 0 && step.is_multiple_of(k as u64))
                        {
                            // In evaluation mode, so that probing changes no
                            // state (batch norm's running statistics).
                            model.set_training(false);
                            let report = p.measure(&*model, loss_fn.as_ref(), train, step);
                            model.set_training(true);
                            probes.push(report?);
                        }
                    }
                    Ok(())
                },
            )
            .map_err(|e| {
                // The step that failed was counted before it ran.
                let step = stepper.steps();
                e.at(epoch, (step - first_step) as usize, step)
            })?;
        let seen = seen.max(1) as f64;
        Ok((
            loss_sum / seen,
            classes.then(|| correct as f64 / seen),
            probes,
        ))
    }

    /// Records a better validation score; true when patience has run out.
    fn track_best(&mut self, val: Option<&Score>, epoch: usize) -> bool {
        let (Some(patience), Some(score)) = (self.config.early_stop, val.map(Score::selection))
        else {
            return false;
        };
        if self.run.best.as_ref().is_none_or(|b| score > b.score) {
            self.run.best = Some(Best {
                score,
                epoch,
                state: state_dict(&self.model),
            });
        }
        let best_epoch = self.run.best.as_ref().map(|b| b.epoch).unwrap_or(epoch);
        epoch - best_epoch >= patience
    }

    fn restore_best(&mut self) -> Result<()> {
        if let Some(best) = &self.run.best {
            let state: BTreeMap<String, _> = best.state.iter().cloned().collect();
            load_params(
                Path::new("the best epoch's weights"),
                &mut self.model,
                &state,
                "",
            )?;
        }
        Ok(())
    }
}
