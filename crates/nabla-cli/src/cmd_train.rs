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
use nabla_data::{Augment, Color, DatasetKind, ImageFolderOptions, TaskChoice, TaskKind};
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
    /// Which dataset the files hold.
    #[arg(long, value_enum, default_value_t = DatasetArg::Mnist)]
    dataset: DatasetArg,
    /// A named network: mlp (the multi-layer perceptron of --hidden and --activation), cnn (a small convnet), deep-cnn (the book's DeepConvNet) or lenet.
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
    /// Learning-rate schedule over the epochs.
    #[arg(long, value_enum, default_value_t = ScheduleArg::Cosine)]
    schedule: ScheduleArg,
    /// Samples per mini-batch (default 100, for a CSV 16).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Drop the last partial batch of each epoch.
    #[arg(long)]
    drop_last: bool,
    /// Epochs (in total, when resuming; default 15, for a CSV 200).
    #[arg(long)]
    epochs: Option<usize>,
    /// Fraction of the training samples held out for validation (default 0, for a CSV or an image folder 0.1).
    #[arg(long)]
    val_split: Option<f64>,
    /// Stop after this many epochs without better validation accuracy (needs --val-split).
    #[arg(long)]
    early_stop: Option<usize>,
    /// Move and turn every training image at random each epoch (seeded).
    #[arg(long)]
    augment: bool,
    /// Largest shift of --augment, in pixels along each axis.
    #[arg(long, default_value_t = 2.0, requires = "augment")]
    augment_shift: f64,
    /// Largest rotation of --augment, in degrees either way.
    #[arg(long, default_value_t = 10.0, requires = "augment")]
    augment_rotate: f64,
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

#[derive(Clone, Copy, ValueEnum)]
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

fn parse_hidden(s: &str) -> Result<Vec<usize>> {
    if s.trim().is_empty() || s == "none" {
        return Ok(vec![]);
    }
    s.split(',')
        .map(|part| match part.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => {
                bail!("--hidden {s}: '{part}' is not a positive layer size (expected e.g. 128,64)")
            }
        })
        .collect()
}

fn optimizer_config(a: &TrainArgs) -> Result<OptimizerConfig> {
    if !(a.lr.is_finite() && a.lr > 0.0) {
        bail!("--lr {}: the learning rate must be a positive number", a.lr);
    }
    for (flag, v) in [
        ("--weight-decay", a.weight_decay),
        ("--l1", a.l1),
        ("--momentum", a.momentum),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            bail!("{flag} {v}: must be a non-negative number");
        }
    }
    let method = match a.optimizer {
        OptimizerArg::Sgd => Method::Sgd,
        OptimizerArg::Momentum => Method::Momentum {
            momentum: a.momentum,
        },
        OptimizerArg::Nesterov => Method::Nesterov {
            momentum: a.momentum,
        },
        OptimizerArg::Adagrad => Method::adagrad(),
        OptimizerArg::Rmsprop => Method::rmsprop(),
        OptimizerArg::Adam => Method::adam(),
        OptimizerArg::Adamw => Method::adamw(),
    };
    let mut c = OptimizerConfig::new(method, a.lr).weight_decay(a.weight_decay);
    c = match a.l1_mode {
        L1ModeArg::Subgradient => c.l1(a.l1),
        L1ModeArg::Proximal => c.l1_proximal(a.l1),
    };
    if let Some(max) = a.clip_norm {
        if !(max.is_finite() && max > 0.0) {
            bail!("--clip-norm {max}: must be a positive number");
        }
        c = c.clip_norm(max);
    }
    Ok(c)
}

fn schedule(a: &TrainArgs, epochs: usize) -> LrSchedule {
    match a.schedule {
        ScheduleArg::Constant => LrSchedule::Constant,
        ScheduleArg::Step => LrSchedule::Step {
            step_size: (epochs / 3).max(1),
            gamma: 0.1,
        },
        ScheduleArg::Exponential => LrSchedule::Exponential { gamma: 0.9 },
        ScheduleArg::Cosine => LrSchedule::Cosine {
            t_max: epochs,
            eta_min: 0.0,
        },
    }
}

/// Runs `nabla train`.
pub fn run(a: TrainArgs) -> Result<ExitCode> {
    thread_pool(a.threads)?.install(|| train(a))
}

/// `HEIGHTxWIDTH`.
fn parse_size(s: &str) -> Result<(usize, usize)> {
    let bad = || anyhow::anyhow!("--image-size {s}: expected HEIGHTxWIDTH, e.g. 28x28");
    let (h, w) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    match (h.trim().parse::<usize>(), w.trim().parse::<usize>()) {
        (Ok(h), Ok(w)) if h > 0 && w > 0 && h <= 4096 && w <= 4096 => Ok((h, w)),
        _ => Err(bad()),
    }
}

/// The data flag of a run, for messages.
fn data_flag(a: &TrainArgs) -> &'static str {
    if a.csv.is_some() {
        "--csv"
    } else if a.images.is_some() {
        "--images"
    } else {
        "--data-dir"
    }
}

fn train(a: TrainArgs) -> Result<ExitCode> {
    let table = a.csv.is_some();
    let epochs = a.epochs.unwrap_or(if table { 200 } else { 15 });
    let batch_size = a.batch_size.unwrap_or(if table { 16 } else { 100 });
    let val_split = a.val_split.unwrap_or(if table || a.images.is_some() {
        0.1
    } else {
        0.0
    });
    if batch_size == 0 {
        bail!("--batch-size 0: must be at least 1");
    }
    if epochs == 0 {
        bail!("--epochs 0: must be at least 1");
    }
    if !(0.0..1.0).contains(&a.test_split) {
        bail!(
            "--test-split {}: {} is not in [0, 1)",
            a.test_split,
            a.test_split
        );
    }
    check_writable_parent(&a.out, "--out")?;
    let checkpoint = a.checkpoint.clone().unwrap_or_else(|| {
        let mut p = a.out.clone().into_os_string();
        p.push(".ckpt");
        PathBuf::from(p)
    });
    check_writable_parent(&checkpoint, "--checkpoint")?;
    if let Some(m) = &a.metrics_out {
        check_writable_parent(m, "--metrics-out")?;
    }
    let opt = optimizer_config(&a)?;
    let kind = a.dataset.kind();
    let source = match (&a.csv, &a.images) {
        (Some(csv), _) => Source::Csv(
            csv,
            a.target.as_deref().unwrap_or_default(),
            a.task.map(|t| match t {
                TaskArg::Classify => TaskChoice::Classify,
                TaskArg::Regress => TaskChoice::Regress,
            }),
        ),
        (None, Some(dir)) => Source::Images(
            dir,
            ImageFolderOptions {
                color: if a.rgb { Color::Rgb } else { Color::Gray },
                size: a.image_size.as_deref().map(parse_size).transpose()?,
            },
        ),
        (None, None) => Source::Idx(a.data_dir.as_deref(), kind),
    };
    let splits = load_splits(source, val_split, a.test_split, a.seed)?;
    let classes = splits.spec.task == TaskKind::Classify;
    let loss = match (a.loss, classes) {
        (None | Some(LossArg::CrossEntropy), true) => StandardLoss::CrossEntropy,
        (None | Some(LossArg::Mse), false) => StandardLoss::Mse,
        (Some(LossArg::Mae), false) => StandardLoss::Mae,
        (Some(LossArg::CrossEntropy), false) => {
            bail!("--loss cross-entropy: the target holds values to regress; use mse or mae")
        }
        (Some(l), true) => bail!(
            "--loss {}: the target holds classes; use cross-entropy",
            if l == LossArg::Mse { "mse" } else { "mae" }
        ),
    };
    let config = TrainConfig {
        epochs,
        batch_size,
        drop_last: a.drop_last,
        seed: a.seed,
        schedule: schedule(&a, epochs),
        early_stop: a.early_stop,
        checkpoint: Some(checkpoint.clone()),
        eval_batch_size: 1000, // set from the model below
        augment: a
            .augment
            .then(|| Augment::new(a.augment_shift, a.augment_rotate))
            .transpose()
            .context("--augment-shift/--augment-rotate")?,
        probes: a.probes.then(|| ProbeConfig {
            samples: a.probe_samples,
            every: a.probe_every,
            ..Default::default()
        }),
    };
    if a.probe_every == Some(0) || (a.probes && a.probe_samples == 0) {
        bail!("--probe-every and --probe-samples must be at least 1");
    }

    let human = !a.quiet && !a.json;
    let (mut trainer, spec) = if let Some(path) = &a.resume {
        let ckpt = load_checkpoint(path)?;
        let spec = ModelSpec::from_metadata(path, &ckpt.metadata)?;
        if spec.data != splits.spec {
            bail!(
                "{}: cannot resume: the run was trained on {} ({} {}), this one's data differs (check {} and its splits)",
                path.display(),
                spec.data.dataset,
                spec.data.classes.len(),
                if spec.data.classes.is_empty() { "values" } else { "classes" },
                data_flag(&a)
            );
        }
        let model = build_from_tensors(path, &spec.architecture, &ckpt.model, "")?;
        let (trainer, changes) = Trainer::resume(model, opt.init(), loss, config, ckpt)
            .map_err(|e| resume_error(e, &a))?;
        if human {
            for change in changes {
                println!("resume: {change}");
            }
        }
        (trainer, spec)
    } else {
        let (model, spec) = build_model(&a, &splits, kind)?;
        (Trainer::new(model, opt.init(), loss, config), spec)
    };
    trainer.config.eval_batch_size = eval_batch_size(&trainer.model);
    trainer.checkpoint_metadata = spec.metadata()?;
    if human {
        println!("data: {}", splits.desc);
        for note in &splits.notes {
            println!("{note}");
        }
        if !splits.val.is_empty() && a.csv.is_none() && a.images.is_none() {
            println!(
                "validation: {} images held out (seed {})",
                splits.val.len(),
                a.seed
            );
        }
        println!(
            "model: {} ({} parameters); optimiser {} lr {}; loss {}",
            spec.architecture.summary(),
            trainer.model.num_params(),
            opt.method.name(),
            opt.lr,
            loss.name()
        );
    }
    let scale = spec
        .data
        .table
        .as_ref()
        .and_then(|t| t.targets.as_ref())
        .map_or(1.0, |s| s.std.first().copied().unwrap_or(1.0));
    let mut progress = Progress::new(
        human,
        a.metrics_out.as_deref(),
        trainer.epochs_done() > 0,
        scale,
    )?;
    let val = (!splits.val.is_empty()).then_some(splits.val.as_ref());
    // With --test-split 0 there is no test set to report (evaluate on
    // another folder or file with `nabla eval`).
    let test_set = (!splits.test.is_empty()).then_some(splits.test.as_ref());
    trainer
        .fit(splits.train.as_ref(), val, test_set, &mut progress)
        .map_err(|e| resume_error(e, &a))?;
    progress.finish()?;

    save_model(&a.out, &trainer.model, &spec)?;
    let test = match test_set {
        Some(t) => Some(evaluate(
            &trainer.model,
            t,
            eval_batch_size(&trainer.model),
        )?),
        None => None,
    };
    let total_seconds: f64 = trainer.history().iter().map(|m| m.seconds).sum();
    let sparsity = crate::model_file::sparsity(&trainer.model);
    let score = test
        .as_ref()
        .map(|t| crate::progress::in_units(&t.score, scale));
    let field = |f: fn(&nabla_train::Score) -> Option<f64>| score.as_ref().and_then(f);
    if a.json {
        let summary = serde_json::json!({
            "model": a.out,
            "checkpoint": checkpoint,
            "architecture": spec.architecture.summary(),
            "task": spec.data.task,
            "parameters": trainer.model.num_params(),
            "epochs": trainer.history().len(),
            "test_accuracy": field(|s| s.accuracy),
            "test_loss": field(|s| Some(s.loss)),
            "test_rmse": field(|s| s.rmse),
            "test_mae": field(|s| s.mae),
            "test_r2": field(|s| s.r2),
            "test_samples": test.as_ref().map_or(0, |t| t.samples),
            "train_seconds": total_seconds,
            "sparsity": sparsity.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            "history": trainer.history(),
        });
        println!("{summary}");
    } else if !a.quiet {
        let tested = match (&score, &test) {
            (Some(s), Some(t)) => format!(
                "test {} ({} samples)",
                crate::progress::describe(s),
                t.samples
            ),
            _ => "no test set held out".to_string(),
        };
        println!(
            "saved {} — {tested}, training {:.1} s",
            a.out.display(),
            total_seconds
        );
        if a.l1 > 0.0 || sparsity.iter().any(|(_, z)| *z > 0.0) {
            let parts: Vec<String> = sparsity
                .iter()
                .map(|(n, z)| format!("{n} {:.1}%", 100.0 * z))
                .collect();
            println!("exact zeros per weight: {}", parts.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A refused resume names the flag that differs.
fn resume_error(e: TrainError, a: &TrainArgs) -> anyhow::Error {
    match &e {
        TrainError::Resume { setting, .. } => {
            let flag = match *setting {
                "optimizer" => "--optimizer",
                _ => data_flag(a),
            };
            anyhow::anyhow!("{flag}: {e}")
        }
        _ => e.into(),
    }
}

fn build_model(
    a: &TrainArgs,
    splits: &crate::data_source::Splits,
    kind: DatasetKind,
) -> Result<(Sequential<f32>, ModelSpec)> {
    if let Some(path) = &a.init_weights {
        let (model, spec) = crate::model_file::load_model::<f32>(path)?;
        if spec.data.dataset != splits.spec.dataset || spec.data.classes != splits.spec.classes {
            bail!(
                "the model was made for {}, this run uses {}{}",
                spec.data.dataset,
                splits.spec.dataset,
                if a.csv.is_none() && a.images.is_none() {
                    format!(" (pass --dataset {})", spec.data.dataset)
                } else {
                    String::new()
                }
            );
        }
        // The file's weights, with this run's description of its data.
        let spec = ModelSpec {
            architecture: spec.architecture,
            data: splits.spec.clone(),
        };
        return Ok((model, spec));
    }
    let init = match a.init {
        InitArg::Normal => Init::Normal { std: a.init_std },
        InitArg::Xavier => Init::Xavier,
        InitArg::He => Init::He,
    };
    if a.preset != PresetArg::Mlp && (a.hidden.is_some() || a.activation.is_some()) {
        bail!("--hidden and --activation describe the mlp preset; the other presets are fixed layer lists (use --layers for your own)");
    }
    let activation = match a.activation.unwrap_or(ActivationArg::Relu) {
        ActivationArg::Relu => Activation::Relu,
        ActivationArg::Sigmoid => Activation::Sigmoid,
        ActivationArg::Tanh => Activation::Tanh,
    };
    let layers = match (&a.layers, a.preset) {
        (Some(layers), _) => Some(layers.as_str()),
        (None, PresetArg::Mlp) => None,
        (None, PresetArg::Cnn) => preset("cnn"),
        (None, PresetArg::DeepCnn) => preset("deep-cnn"),
        (None, PresetArg::Lenet) => preset("lenet"),
    };
    let sample = splits.train.sample_shape().to_vec();
    let outputs = splits.train.task().model_outputs();
    let what = match a.csv.is_some() || a.images.is_some() {
        true => splits.spec.dataset.clone(),
        false => kind.name().to_string(),
    };
    let mut rng = Rng::seed(a.seed);
    let (model, architecture) = match layers {
        Some(layers) => {
            let net = NetSpec::parse(&sample, layers).context("--layers")?;
            if net.output_shape()? != [outputs] {
                bail!(
                    "--layers {layers}: the network outputs {:?} per sample, {what} needs [{outputs}] (end with linear{outputs})",
                    net.output_shape()?,
                );
            }
            (
                net.build::<f32>(init, &mut rng)?,
                Architecture::layers(&net),
            )
        }
        None => {
            let default = if a.csv.is_some() {
                TABLE_HIDDEN
            } else {
                DEFAULT_HIDDEN
            };
            let hidden = parse_hidden(a.hidden.as_deref().unwrap_or(default))?;
            let mlp = MlpConfig::new(sample.iter().product(), &hidden, outputs)
                .activation(activation)
                .with_init(init);
            (mlp.init::<f32>(&mut rng)?, Architecture::mlp(&mlp))
        }
    };
    Ok((
        model,
        ModelSpec {
            architecture,
            data: splits.spec.clone(),
        },
    ))
}
