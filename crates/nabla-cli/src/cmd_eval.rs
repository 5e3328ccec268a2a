//! `nabla eval` and `nabla predict`.

use crate::{data_source, plot};
use anyhow::{bail, Result};
use clap::Args;
use nabla::autograd::{ops::softmax::Softmax, Op};
use nabla::nn::{load_model, Module};
use nabla::tensor::Tensor;
use nabla_data::{preprocess_digit_file, DatasetKind};
use nabla_train::{eval_batch_size, evaluate};
use std::path::PathBuf;
use std::process::ExitCode;

/// The flags of `nabla eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// The model file.
    #[arg(long)]
    model: PathBuf,
    /// Directory with the dataset's IDX files; default: the embedded MNIST test digits.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Also draw the confusion matrix and a grid of misclassified digits into this directory.
    #[arg(long)]
    plot_dir: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The flags of `nabla predict`.
#[derive(Args)]
pub struct PredictArgs {
    /// The model file.
    #[arg(long)]
    model: PathBuf,
    /// PNG or JPEG images, one digit each.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Print one JSON object per image, one per line.
    #[arg(long)]
    json: bool,
}

/// Runs `nabla eval`.
pub fn run_eval(a: EvalArgs) -> Result<ExitCode> {
    let (model, spec) = load_model::<f32>(&a.model)?;
    let kind = DatasetKind::parse(&spec.dataset)?;
    let (splits, desc) = data_source::load(a.data_dir.as_deref(), kind)?;
    let batch = eval_batch_size(&model);
    let e = evaluate(&model, &splits.test, batch)?;
    if let Some(dir) = &a.plot_dir {
        std::fs::create_dir_all(dir)
            .map_err(|err| anyhow::anyhow!("--plot-dir {}: {err}", dir.display()))?;
        plot::confusion_matrix(&e.confusion, &spec.classes, &dir.join("confusion"))?;
        plot::misclassified_grid(
            &model,
            &splits.test,
            &spec.classes,
            batch,
            &dir.join("misclassified.png"),
        )?;
    }
    if a.json {
        println!("{}", serde_json::to_string(&e)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "model: {} ({})",
        a.model.display(),
        spec.architecture.summary()
    );
    println!("data: {desc}");
    println!(
        "test accuracy {:.2}%  mean loss {:.4}  ({} images)",
        100.0 * e.accuracy,
        e.mean_loss,
        e.samples
    );
    println!("per-class accuracy:");
    for (name, acc) in spec.classes.iter().zip(&e.per_class_accuracy) {
        println!("  {name:>12}  {:6.2}%", 100.0 * acc);
    }
    println!("confusion matrix (rows: true class, columns: predicted):");
    print!("      ");
    for c in 0..e.confusion.len() {
        print!("{c:>6}");
    }
    println!();
    for (t, row) in e.confusion.iter().enumerate() {
        print!("{t:>6}");
        for n in row {
            print!("{n:>6}");
        }
        println!();
    }
    if let Some(dir) = &a.plot_dir {
        println!("plots written to {}", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Softmax probabilities of a model for preprocessed `[n, 784]` inputs,
/// by inference without a graph.
pub fn probabilities(model: &dyn Module<f32>, x: Tensor<f32>) -> Result<Tensor<f32>> {
    let logits = model.predict(&x)?;
    Ok(Softmax.forward(&[&logits])?)
}

/// Runs `nabla predict`.
pub fn run_predict(a: PredictArgs) -> Result<ExitCode> {
    let (model, spec) = load_model::<f32>(&a.model)?;
    if spec.preprocessing.height * spec.preprocessing.width != 28 * 28 {
        bail!(
            "{}: the model expects {}x{} inputs; predict reads 28x28 digits",
            a.model.display(),
            spec.preprocessing.height,
            spec.preprocessing.width
        );
    }
    for path in &a.images {
        let pixels = preprocess_digit_file(path)?;
        let probs = probabilities(&model, Tensor::from_vec(pixels.to_vec(), &[1, 28 * 28])?)?;
        let best = probs.argmax_axis(1)?[0];
        let name = spec
            .classes
            .get(best)
            .cloned()
            .unwrap_or_else(|| best.to_string());
        if a.json {
            let obj = serde_json::json!({
                "image": path,
                "prediction": name,
                "class": best,
                "probabilities": probs.data(),
            });
            println!("{obj}");
        } else {
            println!(
                "{}: {name} ({:.1}%)",
                path.display(),
                100.0 * probs.data()[best]
            );
            let all: Vec<String> = spec
                .classes
                .iter()
                .zip(probs.data())
                .map(|(c, p)| format!("{c}: {:.3}", p))
                .collect();
            println!("  {}", all.join("  "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
