//! `nabla inspect`, `nabla gradcheck` and `nabla download`.

use crate::data_source::load_idx;
use crate::model_file::{load_model, load_model_with};
use anyhow::Result;
use clap::Args;
use nabla::autograd::{Reduction, Target};
use nabla::nn::file::NonFinite;
use nabla::nn::{check_model_gradients, Architecture, ModelCheckOptions, Module};
use nabla::tensor::{Rng, Tensor};
use nabla_data::{DatasetKind, TaskKind};
use std::path::PathBuf;
use std::process::ExitCode;

/// The flags of `nabla inspect`.
#[derive(Args)]
pub struct InspectArgs {
    /// The model file.
    #[arg(long)]
    model: PathBuf,
    /// Print only the equivalent PyTorch module (Python source) whose state dict the file is.
    #[arg(long)]
    pytorch: bool,
    /// Load a model whose weights hold NaN or infinities (refused otherwise), and count them.
    #[arg(long)]
    allow_non_finite: bool,
}

/// The flags of `nabla gradcheck`.
#[derive(Args)]
pub struct GradcheckArgs {
    /// The model file (loaded in f64 for the check).
    #[arg(long)]
    model: PathBuf,
    /// Samples to build the loss on (digits from the test set; for other models, random inputs).
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Coordinates checked per parameter tensor (0: all of them).
    #[arg(long, default_value_t = 30)]
    samples: usize,
    /// Directory with the dataset's IDX files; default: the embedded MNIST test digits.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Seed of the coordinate sample.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// The flags of `nabla filters`.
#[derive(Args)]
pub struct FiltersArgs {
    /// A model file with a convolutional layer.
    #[arg(long)]
    model: PathBuf,
    /// Where to write the PNG.
    #[arg(long, default_value = "filters.png")]
    out: PathBuf,
    /// Which convolutional layer, counted from 1 among the convolutions.
    #[arg(long, default_value_t = 1)]
    conv: usize,
    /// Pixels per weight.
    #[arg(long, default_value_t = 16)]
    zoom: u32,
}

/// The flags of `nabla download`.
#[derive(Args)]
pub struct DownloadArgs {
    /// Which dataset: mnist or fashion-mnist.
    #[arg(long, default_value = "mnist", value_parser = ["mnist", "fashion-mnist"])]
    dataset: String,
    /// Where to put the files (default: ~/.cache/nabla/DATASET).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Base address of the mirror (default: the dataset's public mirror), or a local directory (a path or file://) holding the four files.
    #[arg(long)]
    mirror: Option<String>,
}

/// Runs `nabla inspect`.
pub fn run_inspect(a: InspectArgs) -> Result<ExitCode> {
    let non_finite = match a.allow_non_finite {
        true => NonFinite::Allow,
        false => NonFinite::Refuse,
    };
    let (model, spec) = load_model_with::<f32>(&a.model, non_finite)?;
    if a.pytorch {
        let input = model.input_shape();
        println!("# {}: {}", a.model.display(), spec.architecture.summary());
        println!(
            "# input: [N, {}] floats ({}); output: {}",
            if input.is_empty() {
                match &spec.architecture {
                    Architecture::Mlp { input, .. } => input.to_string(),
                    Architecture::Layers { input, .. } => input
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            } else {
                input
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            if spec.data.table.is_some() {
                "standardised feature columns"
            } else {
                "pixels scaled to [0, 1]"
            },
            if spec.data.task == TaskKind::Regress {
                "values"
            } else {
                "logits"
            }
        );
        println!("import torch.nn as nn");
        println!("model = {}", spec.architecture.pytorch()?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}: {}", a.model.display(), spec.architecture.summary());
    let data = &spec.data;
    match data.task {
        TaskKind::Classify => {
            println!("dataset: {} ({} classes)", data.dataset, data.classes.len())
        }
        TaskKind::Regress => println!("dataset: {} (regression)", data.dataset),
    }
    if let Some(p) = &data.preprocessing {
        println!(
            "input: {}x{} pixels, scaled by {:.6}, ink {}",
            p.height,
            p.width,
            p.scale,
            if p.ink_is_bright {
                "bright on dark"
            } else {
                "dark on bright"
            }
        );
    }
    if let Some(i) = &data.images {
        println!(
            "input: {}x{} images, {}, pixels scaled to [0, 1]{}",
            i.height,
            i.width,
            if i.channels == 3 { "RGB" } else { "grayscale" },
            if i.resize { ", resized" } else { "" }
        );
    }
    if let Some(t) = &data.table {
        println!(
            "input: columns {} (standardised); target: {}",
            t.features.join(", "),
            t.target
        );
    }
    println!("layers:");
    for (i, layer) in model.layers().iter().enumerate() {
        println!("  {i:>3}  {}", layer.describe());
    }
    println!("parameters:                      count    zeros");
    for (name, p) in model.named_params() {
        let zeros = p.value().data().iter().filter(|&&v| v == 0.0).count();
        let bad = p.value().data().iter().filter(|v| !v.is_finite()).count();
        println!(
            "  {name:<12} {:<16} {:>9}  {:>6.1}%{}",
            p.value().shape().to_string(),
            p.value().len(),
            100.0 * zeros as f64 / p.value().len().max(1) as f64,
            match bad {
                0 => String::new(),
                n => format!("  {n} not finite"),
            }
        );
    }
    let buffers = model.named_buffers();
    if !buffers.is_empty() {
        println!("buffers (saved, not trained):");
        for (name, t) in buffers {
            println!("  {name:<24} {}", t.shape());
        }
    }
    println!("total: {} parameters", model.num_params());
    Ok(ExitCode::SUCCESS)
}

/// Runs `nabla gradcheck`.
pub fn run_gradcheck(a: GradcheckArgs) -> Result<ExitCode> {
    let (mut model, spec) = load_model::<f64>(&a.model)?;
    let data = &spec.data;
    let n = a.batch.max(1);
    let (x, desc) = if data.preprocessing.is_some() {
        let kind = DatasetKind::parse(&data.dataset)?;
        let (splits, desc) = load_idx(a.data_dir.as_deref(), kind)?;
        if splits.test.is_empty() {
            anyhow::bail!("the test set of {desc} is empty: nothing to build the loss on");
        }
        let n = n.min(splits.test.len());
        let batch = splits.test.batch(&(0..n).collect::<Vec<_>>())?;
        (
            (batch.x.cast::<f64>(), batch.labels),
            format!("{n} test images from {desc}"),
        )
    } else {
        // Any input will do for comparing two ways of differentiating:
        // standard normal features (or [0, 1] pixels), seeded.
        let shape: Vec<usize> = match &spec.architecture {
            Architecture::Mlp { input, .. } => vec![*input],
            Architecture::Layers { input, .. } => input.clone(),
        };
        let mut dims = vec![n];
        dims.extend(&shape);
        let mut rng = Rng::seed(a.seed);
        let x: Tensor<f64> = if data.images.is_some() {
            rng.uniform(&dims, 0.0, 1.0)
        } else {
            rng.normal(&dims, 0.0, 1.0)
        };
        let classes = data.classes.len().max(1);
        let labels = (0..n).map(|i| i % classes).collect();
        ((x, labels), format!("{n} random inputs of shape {shape:?}"))
    };
    let ((x, labels), regress) = (x, data.task == TaskKind::Regress);
    let opts = ModelCheckOptions {
        samples_per_tensor: (a.samples > 0).then_some(a.samples),
        seed: a.seed,
        ..Default::default()
    };
    let report = if regress {
        let outputs = spec.architecture.net_spec()?.output_shape()?;
        let mut dims = vec![n];
        dims.extend(&outputs);
        let targets = Tensor::<f64>::from_vec(
            (0..dims.iter().product::<usize>())
                .map(|i| (i % 7) as f64 / 7.0)
                .collect(),
            &dims,
        )?;
        check_model_gradients(
            &mut model,
            move |y| {
                let t = y.tape().constant(targets.clone());
                nabla::nn::loss::mse(y, t, Reduction::Mean)
            },
            &x,
            &opts,
        )?
    } else {
        check_model_gradients(
            &mut model,
            move |y| y.softmax_cross_entropy(Target::Indices(labels.clone()), Reduction::Mean),
            &x,
            &opts,
        )?
    };
    println!(
        "{}: {} on {desc}",
        a.model.display(),
        spec.architecture.summary()
    );
    println!(
        "{}, f64, eps {:e}, atol {:e}, rtol {:e}, {} coordinates per tensor",
        if regress {
            "mean squared error"
        } else {
            "softmax cross-entropy"
        },
        opts.check.eps,
        opts.check.atol,
        opts.check.rtol,
        if a.samples == 0 {
            "all".to_string()
        } else {
            a.samples.to_string()
        }
    );
    print!("{report}");
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs `nabla filters`: the filters of a convolutional layer as a PNG grid.
pub fn run_filters(a: FiltersArgs) -> Result<ExitCode> {
    crate::check_writable_parent(&a.out, "--out")?;
    if a.zoom == 0 {
        anyhow::bail!("--zoom 0: must be at least 1");
    }
    let (model, spec) = load_model::<f32>(&a.model)?;
    let convs: Vec<(String, nabla::tensor::Tensor<f32>)> = model
        .named_params()
        .into_iter()
        .filter(|(n, p)| n.ends_with(".weight") && p.value().rank() == 4)
        .map(|(n, p)| (n, p.value().clone()))
        .collect();
    let Some((name, weight)) = a.conv.checked_sub(1).and_then(|i| convs.get(i)) else {
        anyhow::bail!(
            "{}: --conv {}: the model ({}) has {} convolutional layer(s)",
            a.model.display(),
            a.conv,
            spec.architecture.summary(),
            convs.len()
        );
    };
    let (w, h) = crate::plot::filter_grid(weight, a.zoom, &a.out)?;
    let (o, c) = (weight.dims()[0], weight.dims()[1]);
    let max = crate::plot::MAX_GRID;
    let shown = match c > 1 && (o > max || c > max) {
        true => format!(
            "the first {} of the {o} filters of {name} {}, one row each, over the first {} of their {c} input channels",
            o.min(max),
            weight.shape(),
            c.min(max)
        ),
        false => format!("the {o} filters of {name} {}", weight.shape()),
    };
    println!("wrote {} ({w}×{h}): {shown}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

/// Runs `nabla download`.
pub fn run_download(a: DownloadArgs) -> Result<ExitCode> {
    let kind = DatasetKind::parse(&a.dataset)?;
    let dir = match a.dir {
        Some(d) => d,
        None => {
            let home = std::env::var_os("HOME")
                .ok_or_else(|| anyhow::anyhow!("HOME is not set: pass --dir"))?;
            PathBuf::from(home)
                .join(".cache")
                .join("nabla")
                .join(kind.name())
        }
    };
    let mirror = a
        .mirror
        .unwrap_or_else(|| kind.default_mirror().to_string());
    println!(
        "downloading {} from {mirror} into {}",
        kind.name(),
        dir.display()
    );
    nabla_data::download(kind, &mirror, &dir, |line| println!("  {line}")).map_err(|e| {
        match &e {
            nabla_data::DataError::Download { reason, .. } if !reason.contains("checksum") => {
                anyhow::anyhow!(
                    "{e} (offline? copy the four files ({}) into a directory and train with --data-dir DIR, or verify them with --mirror DIR)",
                    kind.files().iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
                )
            }
            _ => e.into(),
        }
    })?;
    println!(
        "done: train with `nabla train --data-dir {}{}`",
        dir.display(),
        if kind == DatasetKind::Mnist {
            ""
        } else {
            " --dataset fashion-mnist"
        }
    );
    Ok(ExitCode::SUCCESS)
}
