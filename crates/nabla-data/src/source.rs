//! The one trait every data set implements, and what its targets are.
//!
//! A data set is a list of samples. Each sample has an input of a fixed
//! shape (`[4]` for a row of four measurements, `[1, 28, 28]` for a
//! grayscale digit, `[3, 32, 32]` for a colour photo) and a target of a
//! fixed width: one class index for classification, `outputs` real values
//! for regression. The training loop asks for the samples of a batch by
//! index and receives them into buffers it reuses, so a data set never
//! allocates per batch.

use crate::{DataError, Result};
use nabla_tensor::{Rng, Tensor};
use serde::{Deserialize, Serialize};

/// What a data set's targets are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "lowercase")]
pub enum Task {
    /// One class per sample, an index into `classes` (the names, by index).
    Classify {
        /// Class names, by index.
        classes: Vec<String>,
    },
    /// `outputs` real values per sample.
    Regress {
        /// Values per sample (1 for one target column).
        outputs: usize,
    },
}

impl Task {
    /// Numbers per sample in [`Dataset::fill_targets`]: 1 (the class
    /// index) for classification, `outputs` for regression.
    pub fn target_width(&self) -> usize {
        match self {
            Task::Classify { .. } => 1,
            Task::Regress { outputs } => *outputs,
        }
    }

    /// Outputs a model for this task has: one score per class, or one per value.
    pub fn model_outputs(&self) -> usize {
        match self {
            Task::Classify { classes } => classes.len(),
            Task::Regress { outputs } => *outputs,
        }
    }

    /// True for classification.
    pub fn is_classification(&self) -> bool {
        matches!(self, Task::Classify { .. })
    }

    /// `classify` or `regress`.
    pub fn name(&self) -> &'static str {
        match self {
            Task::Classify { .. } => "classify",
            Task::Regress { .. } => "regress",
        }
    }
}

/// Samples with inputs of one shape and targets of one width.
///
/// Implement the five required methods; `Sync` because the shards of a
/// batch gather their own rows on several threads. See
/// `docs/adding-a-dataset.md`.
pub trait Dataset: Sync {
    /// Number of samples.
    fn len(&self) -> usize;

    /// True when there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of one sample's input, e.g. `[4]` or `[1, 28, 28]`.
    fn sample_shape(&self) -> &[usize];

    /// What the targets are.
    fn task(&self) -> &Task;

    /// Appends the inputs of the samples at `indices`, one after another in
    /// row-major order, to `out` (which the caller reuses between batches).
    ///
    /// # Errors
    /// An index out of range.
    fn fill_inputs(&self, indices: &[usize], out: &mut Vec<f32>) -> Result<()>;

    /// Appends the targets of the samples at `indices` to `out`:
    /// [`Task::target_width`] numbers each (a class index is stored as an
    /// `f32`, exact below 2²⁴).
    ///
    /// # Errors
    /// An index out of range.
    fn fill_targets(&self, indices: &[usize], out: &mut Vec<f32>) -> Result<()>;

    /// Height and width of a sample that is one grayscale image (for
    /// augmentation), if it is one.
    fn grayscale_dims(&self) -> Option<(usize, usize)> {
        match *self.sample_shape() {
            [1, h, w] => Some((h, w)),
            _ => None,
        }
    }
}

/// Numbers in one sample's input.
pub fn sample_len(data: &dyn Dataset) -> usize {
    data.sample_shape().iter().product()
}

/// The inputs of the samples at `indices` as one `[n, …sample shape]`
/// tensor, in a buffer from the tensor pool (no allocation in a steady state).
///
/// # Errors
/// An index out of range, or a data set that fills the wrong number of values.
pub fn gather_inputs(data: &dyn Dataset, indices: &[usize]) -> Result<Tensor<f32>> {
    let mut dims = nabla_tensor::Dims::new();
    dims.push(indices.len());
    dims.extend_from_slice(data.sample_shape());
    pooled(&dims, "batch inputs", |out| data.fill_inputs(indices, out))
}

/// The targets of the samples at `indices` as a `[n, target width]` tensor
/// (pooled, like [`gather_inputs`]).
///
/// # Errors
/// As [`gather_inputs`].
pub fn gather_targets(data: &dyn Dataset, indices: &[usize]) -> Result<Tensor<f32>> {
    let dims = [indices.len(), data.task().target_width()];
    pooled(&dims, "batch targets", |out| {
        data.fill_targets(indices, out)
    })
}

/// A tensor of `dims` in a pooled buffer filled by `fill`, whose error (or
/// a wrong number of values, named `what`) is returned.
fn pooled(
    dims: &[usize],
    what: &str,
    fill: impl FnOnce(&mut Vec<f32>) -> Result<()>,
) -> Result<Tensor<f32>> {
    let mut failed = None;
    let t = Tensor::from_fill(dims, |out| failed = fill(out).err());
    match (failed, t) {
        (Some(e), _) => Err(e),
        (None, t) => t.map_err(|e| DataError::invalid(what, e.to_string())),
    }
}

/// The class indices of the samples at `indices`.
///
/// # Errors
/// A regression data set, an index out of range, or a target that is not a
/// class index.
pub fn class_labels(data: &dyn Dataset, indices: &[usize]) -> Result<Vec<usize>> {
    let Task::Classify { classes } = data.task() else {
        return Err(DataError::invalid(
            "targets",
            "the data set holds values to regress, not classes",
        ));
    };
    let mut values = Vec::with_capacity(indices.len());
    data.fill_targets(indices, &mut values)?;
    values
        .iter()
        .map(|&v| {
            let c = v as usize;
            if v >= 0.0 && v.fract() == 0.0 && c < classes.len() {
                Ok(c)
            } else {
                Err(DataError::invalid(
                    "targets",
                    format!("{v} is not one of the {} class indices", classes.len()),
                ))
            }
        })
        .collect()
}

/// Refuses an index past the end of a data set of `len` samples.
///
/// # Errors
/// [`DataError::Invalid`] naming the index.
pub fn check_indices(indices: &[usize], len: usize) -> Result<()> {
    match indices.iter().find(|&&i| i >= len) {
        Some(bad) => Err(DataError::invalid(
            "batch",
            format!("index {bad} is out of range for {len} samples"),
        )),
        None => Ok(()),
    }
}

/// A seeded split of `0..n` into `(kept, held out)`, each sorted, with
/// `round(n · fraction)` held out.
///
/// # Errors
/// [`DataError::Invalid`] unless `0 <= fraction < 1`.
pub fn split_indices(n: usize, fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(0.0..1.0).contains(&fraction) {
        return Err(DataError::invalid(
            "split",
            format!("{fraction} is not in [0, 1)"),
        ));
    }
    let mut order: Vec<usize> = (0..n).collect();
    Rng::seed(seed).shuffle(&mut order);
    let held = (n as f64 * fraction).round() as usize;
    let (out, kept) = order.split_at(held);
    let (mut kept, mut out) = (kept.to_vec(), out.to_vec());
    kept.sort_unstable();
    out.sort_unstable();
    Ok((kept, out))
}
