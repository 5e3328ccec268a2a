//! `nabla train`: on MNIST-format files, a CSV table or an image folder.

use crate::data_source::{load_splits, Source};
use crate::model_file::{save_model, ModelSpec};
use crate::progress::Progress;
use crate::{check_writable_parent, thread_pool};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use nabla::nn::file::build_from_tensors;
use nabla::nn::{preset, Activation, Architecture, Init, MlpConfig, Module, NetSpec, Sequential};
use nabla::optim::{LrSchedule, Method, OptimizerConfig};
use nabla::tensor::Rng;
use nabla_data::{Augment, Color, DatasetKind, Elastic, ImageFolderOptions, TaskChoice, TaskKind};
use nabla_train::{
    eval_batch_size, evaluate, load_checkpoint, ProbeConfig, StandardLoss, TrainConfig, TrainError,
    Trainer,
};
use std::path::PathBuf;
use std::process::ExitCode;

/// The flags of `nabla train`. The defaults are the best MLP recipe found
/// for MNIST (see the README's results table); a CSV table gets a smaller
/// network, smaller batches and more epochs.
#[derive(Args)]
pub struct TrainArgs {
    /// Directory with the four IDX files (train-/t10k-images/labels, .gz or raw); default: the embedded MNIST subset.
    #[arg(long, conflicts_with_all = ["csv", "images"])]
    data_dir: Option<PathBuf>,
    /// A CSV file with a header row: train on its rows (numeric features, the --target column to predict).
    #[arg(long, requires = "target", conflicts_with = "images")]
    csv: Option<PathBuf>,
    /// The CSV column to predict.
    #[arg(long, requires = "csv")]
    target: Option<String>,
    /// What the target is: classes or values (default: inferred from the column, and printed).
    #[arg(long, value_enum, requires = "csv")]
    task: Option<TaskArg>,
    /// A folder with one sub-folder of PNG or JPEG images per class (as torchvision's ImageFolder).
    #[arg(long)]
    images: Option<PathBuf>,
    /// Resize every image of --images to HEIGHTxWIDTH (e.g. 28x28); default: all images must have one size.
    #[arg(long, requires = "images")]
    image_size: Option<String>,
    /// Read --images in colour (3 channels) instead of grayscale.
    #[arg(long, requires = "images")]
    rgb: bool,
    /// Fraction of a CSV table's rows or of an image folder held out as the test set (seeded).
    #[arg(long, default_value_t = 0.2)]
    test_split: f64,
    /// What to minimise: cross-entropy for classes; mse or mae for values (default: cross-entropy or mse).
    #[arg(long, value_enum)]
    loss: Option<LossArg>,
    /// Smooth the cross-entropy's targets: 1 - EPS on the label and EPS spread evenly over all classes (PyTorch's label_smoothing); the training loss shown is the smoothed one, validation and test losses the plain cross-entropy.
    #[arg(long, value_name = "EPS", default_value_t = 0.0)]
    label_smoothing: f64,
    /// Which dataset the files hold.
    #[arg(long, value_enum, default_value_t = DatasetArg::Mnist)]
    dataset: DatasetArg,
    /// A named network: mlp (the multi-layer perceptron of --hidden and --activation), cnn (a small convnet), deep-cnn (the book's DeepConvNet), lenet, or best-cnn (the most accurate recipe: its layers, augmentation and epochs, see docs/convnets.md).
    #[arg(long, value_enum, default_value_t = PresetArg::Mlp)]
    preset: PresetArg,
    /// The network as a layer list, e.g. "conv16k3p1,relu,maxpool2,flatten,linear10" (see docs/convnets.md); replaces --preset.
    #[arg(long, conflicts_with_all = ["preset", "hidden", "activation"])]
    layers: Option<String>,
    /// Hidden layer sizes of the mlp, comma-separated (e.g. 128,64; default 512,256, for a CSV 32); "none" for a linear model.
    #[arg(long)]
    hidden: Option<String>,
    /// Activation after every hidden layer of the mlp (default relu).
    #[arg(long, value_enum)]
    activation: Option<ActivationArg>,
    /// Weight initialisation.
    #[arg(long, value_enum, default_value_t = InitArg::He)]
    init: InitArg,
    /// Standard deviation for --init normal (the material uses 0.01).
    #[arg(long, default_value_t = 0.01)]
    init_std: f64,
    /// Optimiser.
    #[arg(long, value_enum, default_value_t = OptimizerArg::Adam)]
    optimizer: OptimizerArg,
    /// Learning rate.
    #[arg(long, default_value_t = 0.001)]
    lr: f64,
    /// Momentum μ for momentum and nesterov.
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// L2 weight decay λ (decoupled for adamw).
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    /// L1 regularisation λ₁.
    #[arg(long, default_value_t = 0.0)]
    l1: f64,
    /// How --l1 is applied: the subgradient λ₁·sign(w) added to the gradient, or a proximal soft-threshold after each step (weights reach exactly 0).
    #[arg(long, value_enum, default_value_t = L1ModeArg::Subgradient)]
    l1_mode: L1ModeArg,
    /// Clip the global gradient norm to this value.
    #[arg(long)]
    clip_norm: Option<f64>,
    /// Warm the learning rate up linearly over the first STEPS steps (within the schedule).
    #[arg(long, default_value_t = 0, value_name = "STEPS")]
    warmup: usize,
    /// Learning-rate schedule over the epochs.
    #[arg(long, value_enum, default_value_t = ScheduleArg::Cosine)]
    schedule: ScheduleArg,
    /// Keep an exponential moving average of the weights with this decay (e.g. 0.999), updated after every step; the epochs are evaluated and the model saved with the average (the checkpoint keeps both).
    #[arg(long, value_name = "DECAY")]
    ema: Option<f64>,
    /// Samples per mini-batch (default 100, for a CSV 16).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Drop the last partial batch of each epoch.
    #[arg(long)]
    drop_last: bool,
    /// Check every op's value and gradient for NaN and ±∞, and stop at the first with the op, its layer and what its inputs held (slower; for finding why a run diverged).
    #[arg(long)]
    detect_anomaly: bool,
    /// The rows batch norm takes its training statistics over: the whole batch (as PyTorch in one process), or each shard of up to 64 rows, which lets the shards run in parallel (ghost batch norm; the running statistics stay the batch's).
    #[arg(long, value_enum, default_value_t = BatchStatsArg::Batch)]
    batch_stats: BatchStatsArg,
    /// Epochs (in total, when resuming; default 15, for a CSV 200).
    #[arg(long)]
    epochs: Option<usize>,
    /// Fraction of the training samples held out for validation (default 0, for a CSV or an image folder 0.1).
    #[arg(long)]
    val_split: Option<f64>,
    /// Stop after this many epochs without better validation accuracy (needs --val-split).
    #[arg(long)]
    early_stop: Option<usize>,
    /// Move, turn and zoom every training image at random each epoch (seeded); best-cnn does by default.
    #[arg(long, conflicts_with = "no_augment")]
    augment: bool,
    /// Train on the images as they are, also for best-cnn.
    #[arg(long)]
    no_augment: bool,
    /// Largest shift of the augmentation, in pixels along each axis (default 2).
    #[arg(long)]
    augment_shift: Option<f64>,
    /// Largest rotation of the augmentation, in degrees either way (default 10).
    #[arg(long)]
    augment_rotate: Option<f64>,
    /// Largest zoom of the augmentation, as a fraction of the size, 0.1 for 90% to 110% (default 0).
    #[arg(long)]
    augment_zoom: Option<f64>,
    /// Scale of the augmentation's elastic distortion in pixels, e.g. 34 (Simard et al., 2003); default 0, none.
    #[arg(long, value_name = "ALPHA")]
    augment_elastic: Option<f64>,
    /// Smoothness of the elastic distortion: the Gaussian's sigma in pixels (default 4).
    #[arg(long, value_name = "SIGMA")]
    augment_elastic_sigma: Option<f64>,
    /// Seed of initialisation, validation split, shuffling, dropout and augmentation.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Threads for training (0: one per core); results are identical for any number.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Where to save the trained model.
    #[arg(long, default_value = "model.safetensors")]
    out: PathBuf,
    /// Checkpoint written after every epoch (default: OUT.ckpt, next to --out).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Write one JSON line of metrics per epoch to this file.
    #[arg(long)]
    metrics_out: Option<PathBuf>,
    /// Continue a run from its checkpoint.
    #[arg(long, conflicts_with = "init_weights")]
    resume: Option<PathBuf>,
    /// Start from the weights of a saved model (its architecture replaces --hidden/--activation).
    #[arg(long)]
    init_weights: Option<PathBuf>,
    /// Probe every layer's learning at the end of each epoch (gradient norms, update ratios, activations, dead and saturated units, zero weights), print warnings and write them to --metrics-out.
    #[arg(long)]
    probes: bool,
    /// Also probe every this many steps.
    #[arg(long, requires = "probes")]
    probe_every: Option<usize>,
    /// Training samples in the probe's fixed sample.
    #[arg(long, default_value_t = 256, requires = "probes")]
    probe_samples: usize,
    /// No progress bars or per-epoch lines.
    #[arg(long)]
    quiet: bool,
    /// Print the final summary as one JSON object (and nothing else on stdout).
    #[arg(long)]
    json: bool,
    /// Under `mpirun`: how the ranks combine gradients: sum (an allreduce of each rank's sum; equal to one process's weights up to rounding) or exact (every shard's gradient gathered and added in order; bit-identical to one process).
    #[arg(long, value_enum, default_value_t = ReduceArg::Sum)]
    reduce: ReduceArg,
    /// Under `mpirun`: megabytes of gradient per exchange.
    #[arg(long, default_value_t = 1.0)]
    bucket_mb: f64,
    /// Under `mpirun`: send each bucket of gradients while backward runs, as soon as its gradients are final (when each rank computes one shard of the batch); it pays when each rank leaves a core free for the exchange, and changes no weight.
    #[arg(long)]
    overlap: bool,
    /// Under `mpirun`: seconds a rank waits in an exchange before it ends the job (a rank died or hangs).
    #[arg(long, default_value_t = 120)]
    collective_timeout: u64,
}

/// How the ranks of a data-parallel run combine gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReduceArg {
    /// Each rank's sum, summed (allreduce).
    Sum,
    /// Every shard's gradient, added in shard order on every rank.
    Exact,
}

/// The hidden layers of the default network.
const DEFAULT_HIDDEN: &str = "512,256";
/// The hidden layers of the default network for a table.
const TABLE_HIDDEN: &str = "32";

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TaskArg {
    Classify,
    Regress,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum L1ModeArg {
    Subgradient,
    Proximal,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LossArg {
    CrossEntropy,
    Mse,
    Mae,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PresetArg {
    Mlp,
    Cnn,
    DeepCnn,
    Lenet,
    BestCnn,
}

#[derive(Clone, Copy, ValueEnum)]
enum DatasetArg {
    Mnist,
    FashionMnist,
}

#[derive(Clone, Copy, ValueEnum)]
enum ActivationArg {
    Relu,
    Sigmoid,
    Tanh,
}

#[derive(Clone, Copy, ValueEnum)]
enum InitArg {
    Normal,
    Xavier,
    He,
}

#[derive(Clone, Copy, ValueEnum)]
enum OptimizerArg {
    Sgd,
    Momentum,
    Nesterov,
    Adagrad,
    Rmsprop,
    Adam,
    Adamw,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BatchStatsArg {
    Batch,
    Shard,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ScheduleArg {
    Constant,
    Step,
    Exponential,
    Cosine,
}

impl DatasetArg {
    fn kind(self) -> DatasetKind {
        match self {
            DatasetArg::Mnist => DatasetKind::Mnist,
            DatasetArg::FashionMnist => DatasetKind::FashionMnist,
        }
    }
}

mod fit;
mod setup;

/// `nabla train`'s flags as a command of their own, to parse words.
#[derive(clap::Parser)]
#[command(name = "nabla train", no_binary_name = true)]
struct TrainCommand {
    #[command(flatten)]
    args: TrainArgs,
}

/// Parses flags of `nabla train` (for the commands that run it: compare,
/// search); an error is clap's first line.
pub fn parse_flags<'a>(words: impl IntoIterator<Item = &'a str>) -> Result<TrainArgs> {
    use clap::Parser;
    TrainCommand::try_parse_from(words)
        .map(|c| c.args)
        .map_err(|e| {
            let text = e.render().to_string();
            anyhow::anyhow!(
                "{}",
                text.lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ")
            )
        })
}

impl TrainArgs {
    /// `--epochs`, if given.
    pub fn epochs(&self) -> Option<usize> {
        self.epochs
    }

    /// `--val-split`, if given.
    pub fn val_split(&self) -> Option<f64> {
        self.val_split
    }

    /// `--threads`.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// `--dataset`, for IDX data.
    pub fn dataset_kind(&self) -> DatasetKind {
        self.dataset.kind()
    }

    /// `--json`.
    pub fn json(&self) -> bool {
        self.json
    }

    /// How a data-parallel run shares its work.
    ///
    /// # Errors
    /// A bucket size or timeout out of range.
    pub fn parallel_settings(&self) -> Result<ParallelSettings> {
        if !(self.bucket_mb > 0.0 && self.bucket_mb <= 4096.0) {
            bail!("--bucket-mb {}: must be in (0, 4096]", self.bucket_mb);
        }
        if self.collective_timeout == 0 {
            bail!("--collective-timeout 0: must be at least 1 second");
        }
        let reduction = match self.reduce {
            ReduceArg::Sum => nabla_train::Reduction::Sum,
            ReduceArg::Exact => nabla_train::Reduction::Exact,
        };
        let bytes = (self.bucket_mb * (1 << 20) as f64) as usize;
        Ok(ParallelSettings {
            reduction,
            bucket_bytes: bytes.max(4),
            overlap: self.overlap,
            timeout: std::time::Duration::from_secs(self.collective_timeout),
        })
    }
}

/// The data-parallel flags of `nabla train`, checked (in every build, so
/// that a bad flag is an error with or without MPI; only an MPI build reads
/// them).
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub struct ParallelSettings {
    /// `--reduce`.
    pub reduction: nabla_train::Reduction,
    /// `--bucket-mb`, in bytes.
    pub bucket_bytes: usize,
    /// `--overlap`.
    pub overlap: bool,
    /// `--collective-timeout`.
    pub timeout: std::time::Duration,
}

#[cfg(feature = "mpi")]
pub use fit::fit_with;
pub use fit::{fit, prepare, Trained};
pub(crate) use setup::build_model;
use setup::{augmentation, optimizer_config, parse_size, recipe, schedule};

/// Runs `nabla train`.
pub fn run(a: TrainArgs) -> Result<ExitCode> {
    if crate::distributed::is_parallel() {
        return crate::distributed::run_train(a);
    }
    thread_pool(a.threads)?.install(|| {
        let trained = fit(&a)?;
        report(&a, &trained);
        Ok(ExitCode::SUCCESS)
    })
}

/// A file size in kB or MB.
pub(crate) fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / (1 << 20) as f64),
        n => format!("{:.1} kB", n as f64 / 1024.0),
    }
}

/// The run's summary: one JSON object (`--json`), or a few lines.
pub(crate) fn report(a: &TrainArgs, t: &Trained) {
    let trainer = &t.trainer;
    let total_seconds: f64 = trainer.history().iter().map(|m| m.seconds).sum();
    let sparsity = crate::model_file::sparsity(&trainer.model);
    let score = t
        .test
        .as_ref()
        .map(|e| crate::progress::in_units(&e.score, t.scale));
    let field = |f: fn(&nabla_train::Score) -> Option<f64>| score.as_ref().and_then(f);
    if a.json {
        let summary = serde_json::json!({
            "model": a.out,
            "checkpoint": t.checkpoint,
            "architecture": t.spec.architecture.summary(),
            "task": t.spec.data.task,
            "parameters": trainer.model.num_params(),
            "epochs": trainer.history().len(),
            "test_accuracy": field(|s| s.accuracy),
            "test_loss": field(|s| Some(s.loss)),
            "test_rmse": field(|s| s.rmse),
            "test_mae": field(|s| s.mae),
            "test_r2": field(|s| s.r2),
            "test_samples": t.test.as_ref().map_or(0, |e| e.samples),
            "train_seconds": total_seconds,
            "sparsity": sparsity.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            "history": trainer.history(),
        });
        println!("{summary}");
    } else if !a.quiet {
        let tested = match (&score, &t.test) {
            (Some(s), Some(e)) => format!(
                "test {} ({} samples)",
                crate::progress::describe(s),
                e.samples
            ),
            _ => "no test set held out".to_string(),
        };
        println!(
            "saved {} — {tested}, training {:.1} s",
            a.out.display(),
            total_seconds
        );
        let size = |p: &std::path::Path| {
            std::fs::metadata(p).map_or_else(|_| "?".into(), |m| human_bytes(m.len()))
        };
        println!(
            "wrote: model {} ({}), checkpoint {} ({})",
            a.out.display(),
            size(&a.out),
            t.checkpoint.display(),
            size(&t.checkpoint)
        );
        let m = a.out.display();
        let (predict, eval) = match (&a.csv, &a.images, &a.data_dir) {
            (Some(csv), _, _) => (
                format!("nabla predict --model {m} --csv NEW_ROWS.csv"),
                format!("nabla eval --model {m} --csv {}", csv.display()),
            ),
            (_, Some(_), _) => (
                format!("nabla predict --model {m} IMAGE.png"),
                format!("nabla eval --model {m} --images FOLDER"),
            ),
            (_, _, Some(dir)) => (
                format!("nabla predict --model {m} DIGIT.png"),
                format!("nabla eval --model {m} --data-dir {}", dir.display()),
            ),
            _ => (
                format!("nabla predict --model {m} DIGIT.png"),
                format!("nabla eval --model {m}"),
            ),
        };
        println!("next: {predict}   or   {eval}");
        if a.l1 > 0.0 || sparsity.iter().any(|(_, z)| *z > 0.0) {
            let parts: Vec<String> = sparsity
                .iter()
                .map(|(n, z)| format!("{n} {:.1}%", 100.0 * z))
                .collect();
            println!("exact zeros per weight: {}", parts.join(", "));
        }
    }
}
