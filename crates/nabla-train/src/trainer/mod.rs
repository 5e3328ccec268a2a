//! The training loop: any module, any loss, any data set.
//!
//! `mod.rs` holds the [`Trainer`] and its run of epochs; `config.rs` what a
//! run is told and what it reports; `epoch.rs` one pass over the data;
//! `kept.rs` the weights a run keeps beside the trained ones (early
//! stopping's best epoch and the moving average).

mod config;
mod epoch;
mod kept;

pub use config::{Observer, RunInfo, Silent, TrainConfig};

use crate::checkpoint::{save_checkpoint, Checkpoint};
use crate::loss::Loss;
use crate::metrics::{evaluate, EpochMetrics, Evaluation, Score};
use crate::parallel::{
    broadcast_weights, check_agreement, check_in_step, data_fingerprint, fingerprint, DataParallel,
};
use crate::probe::Prober;
use crate::state::RunState;
use crate::step::Stepper;
use crate::{Result, TrainError};
use nabla_data::{batches_per_epoch, Dataset};
use nabla_nn::{Module, Sequential};
use nabla_optim::Optimizer;
use nabla_tensor::Rng;
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

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
}
