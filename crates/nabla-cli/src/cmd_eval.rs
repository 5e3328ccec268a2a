//! `nabla eval` and `nabla predict`, for digit, image-folder and CSV models.

use crate::data_source::{load_idx, model_inputs, table_for_model};
use crate::model_file::{load_model, ModelSpec};
use crate::plot;
use crate::progress::{describe, in_units};
use crate::shipped::Shipped;
use anyhow::{bail, Result};
use clap::Args;
use nabla::nn::{Ensemble, Module};
use nabla::tensor::Tensor;
use nabla_data::{
    load_image, load_image_folder, preprocess_digit_file, Dataset, DatasetKind, ImageFolderOptions,
    ShiftViews, Table, TaskKind,
};
use nabla_train::{eval_batch_size, evaluate_views, probabilities, view_probabilities, Evaluation};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The flags of `nabla eval`.
#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelChoice,
    /// Directory with the dataset's IDX files; default: the embedded MNIST test digits.
    #[arg(long, conflicts_with_all = ["csv", "images"])]
    data_dir: Option<PathBuf>,
    /// A labelled CSV file (with the model's feature columns and its target column).
    #[arg(long, conflicts_with = "images")]
    csv: Option<PathBuf>,
    /// A folder of class folders of images, for a model trained on one.
    #[arg(long)]
    images: Option<PathBuf>,
    /// Also draw the confusion matrix (and, for digits, a grid of misclassified ones) into this directory.
    #[arg(long)]
    plot_dir: Option<PathBuf>,
    /// Test-time augmentation: average the model's answers over the image moved by every shift of up to PX pixels on each axis ((2·PX+1)² views; 1 gives 9). Images only.
    #[arg(long, value_name = "PX", default_value_t = 0)]
    tta_shift: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The flags of `nabla predict`.
#[derive(Args)]
pub struct PredictArgs {
    #[command(flatten)]
    model: ModelChoice,
    /// PNG or JPEG images: one digit each for a digit model, or images like the training folder's.
    #[arg(required_unless_present = "csv", conflicts_with = "csv")]
    images: Vec<PathBuf>,
    /// A CSV file of new rows with the model's feature columns (a target column, if present, is ignored).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Test-time augmentation, as `nabla eval --tta-shift`.
    #[arg(long, value_name = "PX", default_value_t = 0)]
    tta_shift: usize,
    /// Print one JSON object per image or row, one per line.
    #[arg(long)]
    json: bool,
}

/// The views of `--tta-shift PX` for a model of images; none for 0.
fn shift_views(spec: &ModelSpec, reach: usize, model: &str) -> Result<Option<ShiftViews>> {
    if reach == 0 {
        return Ok(None);
    }
    let (h, w) = match (&spec.data.images, &spec.data.preprocessing) {
        (Some(input), _) => (input.height, input.width),
        (None, Some(p)) => (p.height, p.width),
        (None, None) => {
            bail!("--tta-shift {reach}: {model} does not read images; there is nothing to shift")
        }
    };
    Ok(Some(ShiftViews::square(h, w, reach)?))
}

/// Which model `eval` and `predict` run: files, or a shipped one.
#[derive(Args)]
pub struct ModelChoice {
    /// The model file; give several for their ensemble (the average of their class probabilities). Default: the shipped cnn.
    #[arg(long = "model")]
    models: Vec<PathBuf>,
    /// One of the digit models shipped inside nabla, instead of --model.
    #[arg(long, value_enum, conflicts_with = "models")]
    shipped: Option<Shipped>,
}

impl ModelChoice {
    /// The shipped model used, if no file is given.
    fn shipped(&self) -> Option<Shipped> {
        match self.shipped {
            Some(s) => Some(s),
            None if self.models.is_empty() => Some(Shipped::Cnn),
            None => None,
        }
    }

    /// The model, named for messages (`a.safetensors + b.safetensors`).
    fn name(&self) -> String {
        match self.shipped() {
            Some(s) => s.label(),
            None => name(&self.models),
        }
    }

    /// One model, or the ensemble of several trained on the same data;
    /// with its description and a batch size for evaluating it.
    fn load(&self) -> Result<(Box<dyn Module<f32>>, ModelSpec, usize)> {
        if let Some(s) = self.shipped() {
            let (model, spec) = s.load()?;
            let batch = eval_batch_size(&model);
            return Ok((Box::new(model), spec, batch));
        }
        load_models(&self.models)
    }
}

/// The model files, named for messages (`a.safetensors + b.safetensors`).
fn name(models: &[PathBuf]) -> String {
    models
        .iter()
        .map(|m| m.display().to_string())
        .collect::<Vec<_>>()
        .join(" + ")
}

/// One model, or the ensemble of several trained on the same data; with
/// its description and a batch size for evaluating it.
fn load_models(paths: &[PathBuf]) -> Result<(Box<dyn Module<f32>>, ModelSpec, usize)> {
    let mut members = Vec::with_capacity(paths.len());
    let mut first: Option<ModelSpec> = None;
    for path in paths {
        let (model, spec) = load_model::<f32>(path)?;
        if let Some(f) = &first {
            if f.data != spec.data {
                bail!(
                    "{}: trained on other data than {} ({} against {}): an ensemble needs models of the same data and classes",
                    path.display(),
                    paths[0].display(),
                    spec.data.dataset,
                    f.data.dataset
                );
            }
        }
        first.get_or_insert(spec);
        members.push(model);
    }
    let spec = first.ok_or_else(|| anyhow::anyhow!("--model: give at least one model file"))?;
    let batch = members.first().map_or(1000, eval_batch_size);
    if members.len() == 1 {
        let model = members.pop().expect("one member");
        return Ok((Box::new(model), spec, batch));
    }
    if spec.data.task != TaskKind::Classify {
        bail!(
            "{}: an ensemble averages class probabilities; these models regress values",
            name(paths)
        );
    }
    Ok((Box::new(Ensemble::new(members)?), spec, batch))
}

/// The test data a model is evaluated on, as its flags and file say.
fn eval_data(a: &EvalArgs, spec: &ModelSpec) -> Result<(Box<dyn Dataset>, String)> {
    let data = &spec.data;
    if let Some(table) = &data.table {
        let Some(path) = &a.csv else {
            bail!(
                "{}: the model was trained on a CSV table: pass --csv FILE with columns {} and {}",
                a.model.name(),
                table.features.join(", "),
                table.target
            );
        };
        let set = table_for_model(path, table, data.task, &data.classes)?;
        let desc = format!("{}: {} rows", path.display(), Dataset::len(&set));
        return Ok((Box::new(set), desc));
    }
    if let Some(input) = &data.images {
        let Some(dir) = &a.images else {
            bail!(
                "{}: the model was trained on an image folder: pass --images DIR",
                a.model.name()
            );
        };
        let set = load_image_folder(
            dir,
            ImageFolderOptions {
                color: input.color(),
                size: input.resize.then_some((input.height, input.width)),
            },
        )?;
        if set.image_dims() != (input.height, input.width) {
            let (h, w) = set.image_dims();
            bail!(
                "{}: the images are {h}x{w}, the model takes {}x{} (it was trained without resizing)",
                dir.display(),
                input.height,
                input.width
            );
        }
        if set.classes() != data.classes.as_slice() {
            bail!(
                "{}: the folder's classes ({}) are not the model's ({})",
                dir.display(),
                set.classes().join(", "),
                data.classes.join(", ")
            );
        }
        let desc = format!("{}: {} images", dir.display(), set.len());
        return Ok((Box::new(set), desc));
    }
    if a.csv.is_some() || a.images.is_some() {
        bail!(
            "{}: the model reads {} digits; evaluate it with --data-dir",
            a.model.name(),
            data.dataset
        );
    }
    let kind = DatasetKind::parse(&data.dataset)?;
    let (splits, desc) = load_idx(a.data_dir.as_deref(), kind)?;
    Ok((Box::new(splits.test), desc))
}

/// The standard deviation of a regression model's standardised target (1 otherwise).
fn target_scale(spec: &ModelSpec) -> f64 {
    spec.data
        .table
        .as_ref()
        .and_then(|t| t.targets.as_ref())
        .and_then(|s| s.std.first().copied())
        .unwrap_or(1.0)
}

/// Runs `nabla eval`.
pub fn run_eval(a: EvalArgs) -> Result<ExitCode> {
    let (model, spec, batch) = a.model.load()?;
    let (data, desc) = eval_data(&a, &spec)?;
    let views = shift_views(&spec, a.tta_shift, &a.model.name())?;
    let mut e = evaluate_views(model.as_ref(), data.as_ref(), batch, views.as_ref())?;
    e.score = in_units(&e.score, target_scale(&spec));
    if let Some(dir) = &a.plot_dir {
        std::fs::create_dir_all(dir)
            .map_err(|err| anyhow::anyhow!("--plot-dir {}: {err}", dir.display()))?;
        if spec.data.task == TaskKind::Classify {
            plot::confusion_matrix(&e.confusion, &spec.data.classes, &dir.join("confusion"))?;
        }
        if spec.data.preprocessing.is_some() {
            let kind = DatasetKind::parse(&spec.data.dataset)?;
            let (splits, _) = load_idx(a.data_dir.as_deref(), kind)?;
            plot::misclassified_grid(
                model.as_ref(),
                &splits.test,
                &spec.data.classes,
                batch,
                &dir.join("misclassified.png"),
            )?;
        }
    }
    if a.json {
        println!("{}", serde_json::to_string(&e)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "model: {} ({}{})",
        a.model.name(),
        spec.architecture.summary(),
        if a.model.models.len() > 1 {
            format!(
                "; an ensemble of {}, averaging their probabilities",
                a.model.models.len()
            )
        } else {
            String::new()
        }
    );
    println!("data: {desc}");
    if let Some(v) = &views {
        println!(
            "test-time augmentation: each image seen {} times, moved by up to {} px on each axis; the answers averaged",
            v.len(),
            a.tta_shift
        );
    }
    print_evaluation(&e, &spec);
    if let Some(dir) = &a.plot_dir {
        println!("plots written to {}", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn print_evaluation(e: &Evaluation, spec: &ModelSpec) {
    if spec.data.task == TaskKind::Regress {
        println!("test {}  ({} samples)", describe(&e.score), e.samples);
        return;
    }
    println!(
        "test accuracy {:.2}%  mean loss {:.4}  ({} samples)",
        100.0 * e.score.accuracy.unwrap_or(0.0),
        e.score.loss,
        e.samples
    );
    println!("per-class accuracy:");
    for (name, acc) in spec.data.classes.iter().zip(&e.per_class_accuracy) {
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
}

/// A model's input from the image at `path`, preprocessed as the model's
/// file says (`model` names the model in errors).
pub(crate) fn image_input(spec: &ModelSpec, path: &Path, model: &str) -> Result<Tensor<f32>> {
    let data = &spec.data;
    Ok(match (&data.images, &data.preprocessing) {
        (Some(input), _) => {
            let pixels = load_image(
                path,
                input.color(),
                (input.height, input.width),
                input.resize,
            )?;
            Tensor::from_vec(pixels, &[1, input.channels, input.height, input.width])?
        }
        (None, Some(p)) => {
            if p.height * p.width != 28 * 28 {
                bail!(
                    "{}: the model expects {}x{} inputs; digits are read as 28x28 images",
                    model,
                    p.height,
                    p.width
                );
            }
            let pixels = preprocess_digit_file(path)?;
            Tensor::from_vec(pixels.to_vec(), &[1, 28 * 28])?
        }
        (None, None) => bail!("{}: the model file says nothing of its inputs", model),
    })
}

/// Runs `nabla predict`.
pub fn run_predict(a: PredictArgs) -> Result<ExitCode> {
    let (model, spec, _) = a.model.load()?;
    let views = shift_views(&spec, a.tta_shift, &a.model.name())?;
    if let Some(path) = &a.csv {
        return predict_rows(model.as_ref(), &spec, &a, path);
    }
    let data = &spec.data;
    if data.table.is_some() {
        bail!(
            "{}: the model was trained on a CSV table: pass --csv FILE of rows",
            a.model.name()
        );
    }
    for path in &a.images {
        let x = image_input(&spec, path, &a.model.name())?;
        let probs = match &views {
            None => probabilities(model.as_ref(), &x)?,
            Some(v) => view_probabilities(model.as_ref(), &x, v)?,
        };
        let best = probs.argmax_axis(1)?[0];
        let name = class_name(&data.classes, best);
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
            let all: Vec<String> = data
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

fn class_name(classes: &[String], i: usize) -> String {
    classes.get(i).cloned().unwrap_or_else(|| i.to_string())
}

/// One line per row of a CSV: the class and its probabilities, or the value.
fn predict_rows(
    model: &dyn Module<f32>,
    spec: &ModelSpec,
    a: &PredictArgs,
    path: &std::path::Path,
) -> Result<ExitCode> {
    let Some(input) = &spec.data.table else {
        bail!(
            "{}: the model was not trained on a CSV table; --csv is for table models",
            a.model.name()
        );
    };
    let table = Table::read(path)?;
    let mut x = model_inputs(&table, input)?;
    input.inputs.apply(x.data_mut())?;
    let rows = table.len();
    match spec.data.task {
        TaskKind::Classify => {
            let probs = probabilities(model, &x)?;
            let classes = spec.data.classes.len().max(1);
            for (r, p) in probs.data().chunks(classes).enumerate() {
                let best = (0..p.len()).fold(0, |b, k| if p[k] > p[b] { k } else { b });
                let name = class_name(&spec.data.classes, best);
                if a.json {
                    println!(
                        "{}",
                        serde_json::json!({"row": r + 1, "prediction": name, "class": best, "probabilities": p})
                    );
                } else {
                    let all: Vec<String> = spec
                        .data
                        .classes
                        .iter()
                        .zip(p)
                        .map(|(c, p)| format!("{c}: {p:.3}"))
                        .collect();
                    println!(
                        "row {}: {name} ({:.1}%)  {}",
                        r + 1,
                        100.0 * p[best],
                        all.join("  ")
                    );
                }
            }
        }
        TaskKind::Regress => {
            let mut values = model.predict(&x)?.to_vec();
            if let Some(t) = &input.targets {
                t.invert(&mut values)?;
            }
            let width = values.len().checked_div(rows).unwrap_or(1).max(1);
            for (r, v) in values.chunks(width).enumerate() {
                if a.json {
                    println!("{}", serde_json::json!({"row": r + 1, "prediction": v}));
                } else {
                    let text: Vec<String> = v.iter().map(|x| format!("{x:.4}")).collect();
                    println!("row {}: {} = {}", r + 1, input.target, text.join(", "));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
