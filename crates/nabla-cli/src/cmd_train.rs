//! `nabla train`.

use crate::progress::Progress;
use crate::{check_writable_parent, data_source, thread_pool};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use nabla::nn::{
    preset, save_model, Activation, Architecture, Init, MlpConfig, ModelSpec, Module, NetSpec,
    Preprocessing,
};
use nabla::optim::{LrSchedule, Method, OptimizerConfig};
use nabla::tensor::Rng;
use nabla_data::{Augment, DatasetKind};
use nabla_train::{eval_batch_size, evaluate, load_checkpoint, TrainConfig, Trainer};
use std::path::PathBuf;
use std::process::ExitCode;

/// The flags of `nabla train`. The defaults are the best MLP recipe found
/// (see the README's results table).
#[derive(Args)]
pub struct TrainArgs {
    /// Directory with the four IDX files (train-/t10k-images/labels, .gz or raw); default: the embedded MNIST subset.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Which dataset the files hold.
    #[arg(long, value_enum, default_value_t = DatasetArg::Mnist)]
    dataset: DatasetArg,
    /// A named network: mlp (the multi-layer perceptron of --hidden and --activation), cnn (a small convnet), deep-cnn (the book's DeepConvNet) or lenet.
    #[arg(long, value_enum, default_value_t = PresetArg::Mlp)]
    preset: PresetArg,
    /// The network as a layer list, e.g. "conv16k3p1,relu,maxpool2,flatten,linear10" (see docs/convnets.md); replaces --preset.
    #[arg(long, conflicts_with_all = ["preset", "hidden", "activation"])]
    layers: Option<String>,
    /// Hidden layer sizes of the mlp, comma-separated (e.g. 128,64; default 512,256); "none" for a linear classifier.
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
    /// Clip the global gradient norm to this value.
    #[arg(long)]
    clip_norm: Option<f64>,
    /// Learning-rate schedule over the epochs.
    #[arg(long, value_enum, default_value_t = ScheduleArg::Cosine)]
    schedule: ScheduleArg,
    /// Samples per mini-batch.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Drop the last partial batch of each epoch.
    #[arg(long)]
    drop_last: bool,
    /// Epochs (in total, when resuming).
    #[arg(long, default_value_t = 15)]
    epochs: usize,
    /// Fraction of the training images held out for validation.
    #[arg(long, default_value_t = 0.0)]
    val_split: f64,
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
    /// No progress bars or per-epoch lines.
    #[arg(long)]
    quiet: bool,
    /// Print the final summary as one JSON object (and nothing else on stdout).
    #[arg(long)]
    json: bool,
}

/// The hidden layers of the default network.
const DEFAULT_HIDDEN: &str = "512,256";

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
    let mut c = OptimizerConfig::new(method, a.lr)
        .weight_decay(a.weight_decay)
        .l1(a.l1);
    if let Some(max) = a.clip_norm {
        if !(max.is_finite() && max > 0.0) {
            bail!("--clip-norm {max}: must be a positive number");
        }
        c = c.clip_norm(max);
    }
    Ok(c)
}

fn schedule(a: &TrainArgs) -> LrSchedule {
    match a.schedule {
        ScheduleArg::Constant => LrSchedule::Constant,
        ScheduleArg::Step => LrSchedule::Step {
            step_size: (a.epochs / 3).max(1),
            gamma: 0.1,
        },
        ScheduleArg::Exponential => LrSchedule::Exponential { gamma: 0.9 },
        ScheduleArg::Cosine => LrSchedule::Cosine {
            t_max: a.epochs,
            eta_min: 0.0,
        },
    }
}

/// Runs `nabla train`.
pub fn run(a: TrainArgs) -> Result<ExitCode> {
    thread_pool(a.threads)?.install(|| train(a))
}

fn train(a: TrainArgs) -> Result<ExitCode> {
    if a.batch_size == 0 {
        bail!("--batch-size 0: must be at least 1");
    }
    if a.epochs == 0 {
        bail!("--epochs 0: must be at least 1");
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
    let (splits, data_desc) = data_source::load(a.data_dir.as_deref(), kind)?;
    let (train, val) = splits
        .train
        .split(a.val_split, a.seed)
        .context("--val-split")?;
    let config = TrainConfig {
        epochs: a.epochs,
        batch_size: a.batch_size,
        drop_last: a.drop_last,
        seed: a.seed,
        schedule: schedule(&a),
        early_stop: a.early_stop,
        checkpoint: Some(checkpoint.clone()),
        eval_batch_size: 1000, // set from the model below
        augment: a
            .augment
            .then(|| Augment::new(a.augment_shift, a.augment_rotate))
            .transpose()
            .context("--augment-shift/--augment-rotate")?,
    };

    let mut trainer = if let Some(path) = &a.resume {
        Trainer::resume(load_checkpoint(path)?, opt.init(), config)?
    } else {
        let (model, spec) = build_model(&a, kind)?;
        Trainer::new(model, spec, opt.init(), config)
    };
    trainer.config.eval_batch_size = eval_batch_size(&trainer.model);
    if trainer.spec.dataset != kind.name() {
        bail!(
            "the model was made for {}, this run uses {} (pass --dataset {})",
            trainer.spec.dataset,
            kind.name(),
            trainer.spec.dataset
        );
    }
    let human = !a.quiet && !a.json;
    if human {
        println!("data: {data_desc}");
        if !val.is_empty() {
            println!(
                "validation: {} images held out (seed {})",
                val.len(),
                a.seed
            );
        }
        println!(
            "model: {} ({} parameters); optimiser {} lr {}",
            trainer.spec.architecture.summary(),
            trainer.model.num_params(),
            opt.method.name(),
            opt.lr
        );
    }
    let mut progress = Progress::new(human, a.metrics_out.as_deref(), trainer.epochs_done() > 0)?;
    let val_ref = (!val.is_empty()).then_some(&val);
    trainer.fit(&train, val_ref, Some(&splits.test), &mut progress)?;
    progress.finish()?;

    save_model(&a.out, &trainer.model, &trainer.spec)?;
    let test = evaluate(
        &trainer.model,
        &splits.test,
        eval_batch_size(&trainer.model),
    )?;
    let total_seconds: f64 = trainer.history.iter().map(|m| m.seconds).sum();
    if a.json {
        let summary = serde_json::json!({
            "model": a.out,
            "checkpoint": checkpoint,
            "architecture": trainer.spec.architecture.summary(),
            "parameters": trainer.model.num_params(),
            "epochs": trainer.history.len(),
            "test_accuracy": test.accuracy,
            "test_loss": test.mean_loss,
            "train_seconds": total_seconds,
            "history": trainer.history,
        });
        println!("{summary}");
    } else if !a.quiet {
        println!(
            "saved {} — test accuracy {:.2}% ({} images), training {:.1} s",
            a.out.display(),
            100.0 * test.accuracy,
            test.samples,
            total_seconds
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn build_model(
    a: &TrainArgs,
    kind: DatasetKind,
) -> Result<(nabla::nn::Sequential<f32>, ModelSpec)> {
    if let Some(path) = &a.init_weights {
        let (model, spec) = nabla::nn::load_model::<f32>(path)?;
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
    let preprocessing = Preprocessing::default();
    let layers = match (&a.layers, a.preset) {
        (Some(layers), _) => Some(layers.as_str()),
        (None, PresetArg::Mlp) => None,
        (None, PresetArg::Cnn) => preset("cnn"),
        (None, PresetArg::DeepCnn) => preset("deep-cnn"),
        (None, PresetArg::Lenet) => preset("lenet"),
    };
    let mut rng = Rng::seed(a.seed);
    let (model, architecture) = match layers {
        Some(layers) => {
            let image = [1, preprocessing.height, preprocessing.width];
            let net = NetSpec::parse(&image, layers).context("--layers")?;
            let classes = kind.class_names().len();
            if net.output_shape()? != [classes] {
                bail!(
                    "--layers {layers}: the network outputs {:?} per image, {} needs [{classes}] (end with linear{classes})",
                    net.output_shape()?,
                    kind.name()
                );
            }
            (
                net.build::<f32>(init, &mut rng)?,
                Architecture::layers(&net),
            )
        }
        None => {
            let hidden = parse_hidden(a.hidden.as_deref().unwrap_or(DEFAULT_HIDDEN))?;
            let mlp = MlpConfig::new(28 * 28, &hidden, 10)
                .activation(activation)
                .with_init(init);
            (mlp.init::<f32>(&mut rng)?, Architecture::mlp(&mlp))
        }
    };
    let spec = ModelSpec {
        architecture,
        dataset: kind.name().to_string(),
        classes: kind.class_names().iter().map(|s| s.to_string()).collect(),
        preprocessing,
    };
    Ok((model, spec))
}
