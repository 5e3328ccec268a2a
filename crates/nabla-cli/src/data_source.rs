//! Where the samples come from: MNIST-format IDX files (or the embedded
//! subset), a CSV table, or a folder of labelled images — each split into
//! training, validation and test sets, and described for the model file.

use anyhow::{bail, Context, Result};
use nabla::tensor::Tensor;
use nabla_data::{
    embedded_mnist, load_image_folder, Color, DataSpec, Dataset, DatasetKind, ImageDataset,
    ImageFolderOptions, ImageInput, Preprocessing, Standardizer, Table, TableInput, Task,
    TaskChoice, TaskKind, TensorDataset, EMBEDDED_DESCRIPTION,
};
use std::path::Path;

/// Loads `--data-dir` (or the embedded MNIST subset) and describes what was loaded.
pub fn load_idx(
    data_dir: Option<&Path>,
    kind: DatasetKind,
) -> Result<(nabla_data::Splits, String)> {
    match data_dir {
        Some(dir) => {
            let splits = ImageDataset::load_dir(dir, kind)?;
            let desc = format!(
                "{} from {}: {} training and {} test images",
                kind.name(),
                dir.display(),
                splits.train.len(),
                splits.test.len()
            );
            Ok((splits, desc))
        }
        None => {
            if kind != DatasetKind::Mnist {
                bail!(
                    "{} is not embedded: pass --data-dir (see `nabla download --dataset {}`)",
                    kind.name(),
                    kind.name()
                );
            }
            Ok((embedded_mnist()?, EMBEDDED_DESCRIPTION.to_string()))
        }
    }
}

/// Where `nabla train` takes its samples from.
pub enum Source<'a> {
    /// MNIST-format IDX files, or the embedded subset.
    Idx(Option<&'a Path>, DatasetKind),
    /// A CSV table, its target column and the task if stated.
    Csv(&'a Path, &'a str, Option<TaskChoice>),
    /// A folder of class folders.
    Images(&'a Path, ImageFolderOptions),
}

/// The splits of a run, and what the model file records of them.
pub struct Splits {
    /// Training samples.
    pub train: Box<dyn Dataset>,
    /// Validation samples (possibly empty).
    pub val: Box<dyn Dataset>,
    /// Test samples.
    pub test: Box<dyn Dataset>,
    /// One line saying what was loaded and how it was split.
    pub desc: String,
    /// Lines worth telling the user (an inferred task, standardisation).
    pub notes: Vec<String>,
    /// What the model file records.
    pub spec: DataSpec,
}

/// Reads a source and splits it: IDX data keeps its test files and holds
/// out `val` of the training files; a CSV table or an image folder holds
/// out `test` of its samples first, then `val` of the rest (both seeded).
pub fn load_splits(source: Source<'_>, val: f64, test: f64, seed: u64) -> Result<Splits> {
    match source {
        Source::Idx(dir, kind) => {
            let (splits, desc) = load_idx(dir, kind)?;
            let (train, val) = splits.train.split(val, seed).context("--val-split")?;
            let spec = DataSpec {
                dataset: kind.name().to_string(),
                task: TaskKind::Classify,
                classes: splits.train.classes().to_vec(),
                preprocessing: Some(Preprocessing::default()),
                images: None,
                table: None,
            };
            Ok(Splits {
                train: Box::new(train),
                val: Box::new(val),
                test: Box::new(splits.test),
                desc,
                notes: Vec::new(),
                spec,
            })
        }
        Source::Images(dir, options) => {
            let all = load_image_folder(dir, options)?;
            let (rest, test_set) = all.split(test, seed).context("--test-split")?;
            let (train, val_set) = rest.split(val, seed ^ 1).context("--val-split")?;
            let (h, w) = all.image_dims();
            let desc = format!(
                "{}: {} images of {} classes, {}x{} {}; {} training, {} validation, {} test (seed {seed})",
                dir.display(),
                all.len(),
                all.classes().len(),
                h,
                w,
                if options.color == Color::Rgb { "RGB" } else { "grayscale" },
                train.len(),
                val_set.len(),
                test_set.len()
            );
            let spec = DataSpec {
                dataset: name_of(dir),
                task: TaskKind::Classify,
                classes: all.classes().to_vec(),
                preprocessing: None,
                images: Some(ImageInput {
                    channels: all.channels(),
                    height: h,
                    width: w,
                    resize: options.size.is_some(),
                }),
                table: None,
            };
            Ok(Splits {
                train: Box::new(train),
                val: Box::new(val_set),
                test: Box::new(test_set),
                desc,
                notes: Vec::new(),
                spec,
            })
        }
        Source::Csv(path, target, task) => {
            let table = Table::read(path)?;
            let data = table.to_data(target, task)?;
            let (rest, test_set) = data.data.split(test, seed).context("--test-split")?;
            let (mut train, mut val_set) = rest.split(val, seed ^ 1).context("--val-split")?;
            let mut test_set = test_set;
            if train.is_empty() {
                bail!(
                    "{}: {} rows leave no training rows after --test-split {test} and --val-split {val}",
                    path.display(),
                    table.len()
                );
            }
            let mut notes = Vec::new();
            let task_line = match data.data.task() {
                Task::Classify { classes } => format!(
                    "task: classify{} — column '{target}' holds {} classes: {}",
                    if data.inferred { " (inferred)" } else { "" },
                    classes.len(),
                    classes.join(", ")
                ),
                Task::Regress { .. } => format!(
                    "task: regress{} — column '{target}' holds values",
                    if data.inferred { " (inferred)" } else { "" }
                ),
            };
            notes.push(task_line);
            let features = data.features.len();
            let inputs = Standardizer::fit(train.inputs().data(), features)?;
            let targets = match data.data.task() {
                Task::Regress { outputs } => {
                    Some(Standardizer::fit(train.targets().data(), *outputs)?)
                }
                Task::Classify { .. } => None,
            };
            for set in [&mut train, &mut val_set, &mut test_set] {
                set.standardize_inputs(&inputs)?;
                if let Some(t) = &targets {
                    set.standardize_targets(t)?;
                }
            }
            notes.push(format!(
                "features: {} ({}), standardised with the training rows' mean and deviation{}",
                features,
                data.features.join(", "),
                if targets.is_some() {
                    "; so is the target (figures are reported in its own units)"
                } else {
                    ""
                }
            ));
            let desc = format!(
                "{}: {} rows; {} training, {} validation, {} test (seed {seed})",
                path.display(),
                table.len(),
                Dataset::len(&train),
                Dataset::len(&val_set),
                Dataset::len(&test_set)
            );
            let (kind, classes) = match data.data.task() {
                Task::Classify { classes } => (TaskKind::Classify, classes.clone()),
                Task::Regress { .. } => (TaskKind::Regress, Vec::new()),
            };
            let spec = DataSpec {
                dataset: name_of(path),
                task: kind,
                classes,
                preprocessing: None,
                images: None,
                table: Some(TableInput {
                    features: data.features.clone(),
                    target: data.target.clone(),
                    inputs,
                    targets,
                }),
            };
            Ok(Splits {
                train: Box::new(train),
                val: Box::new(val_set),
                test: Box::new(test_set),
                desc,
                notes,
                spec,
            })
        }
    }
}

/// A labelled CSV prepared as a model trained on a table expects it: the
/// model's feature columns by name (in any order in the file), standardised
/// with the training statistics; the classes numbered as the model's.
pub fn table_for_model(
    path: &Path,
    input: &TableInput,
    task: TaskKind,
    classes: &[String],
) -> Result<TensorDataset> {
    let table = Table::read(path)?;
    table.column(&input.target)?;
    let features = model_inputs(&table, input)?;
    let mut set = match task {
        TaskKind::Classify => {
            let labels = table.class_indices(&input.target, classes)?;
            TensorDataset::classification(features, &labels, classes.to_vec())?
        }
        TaskKind::Regress => {
            let values = table.numbers(std::slice::from_ref(&input.target))?;
            let mut set = TensorDataset::regression(features, values)?;
            if let Some(t) = &input.targets {
                set.standardize_targets(t)?;
            }
            set
        }
    };
    set.standardize_inputs(&input.inputs)?;
    Ok(set)
}

/// The model's feature columns of `table` as numbers `[rows, features]`
/// (not standardised). The file must have every one of them, and no other
/// column but the target.
pub fn model_inputs(table: &Table, input: &TableInput) -> Result<Tensor<f32>> {
    let path = table.path();
    if let Some(missing) = input.features.iter().find(|c| !table.columns().contains(c)) {
        bail!(
            "{}: the model needs column '{missing}', which the file lacks (the model's columns: {})",
            path.display(),
            input.features.join(", ")
        );
    }
    if let Some(extra) = table
        .columns()
        .iter()
        .find(|c| **c != input.target && !input.features.contains(c))
    {
        bail!(
            "{}: column '{extra}' is not one of the model's columns ({})",
            path.display(),
            input.features.join(", ")
        );
    }
    Ok(table.numbers(&input.features)?)
}

/// The last part of a path, as a data set's name.
fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
