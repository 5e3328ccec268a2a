//! A data set held as two tensors in memory (PyTorch's `TensorDataset`).

use crate::source::{check_indices, split_indices};
use crate::{DataError, Dataset, Result, Standardizer, Task};
use nabla_tensor::Tensor;

/// Inputs `[N, …]` and targets `[N, width]` in memory.
///
/// ```
/// use nabla_data::{Dataset, TensorDataset};
/// use nabla_tensor::Tensor;
/// let x = Tensor::from_vec(vec![0.0, 1.0, 2.0, 3.0], &[4, 1])?;
/// let y = Tensor::from_vec(vec![1.0, 3.0, 5.0, 7.0], &[4])?;
/// let data = TensorDataset::regression(x, y)?;
/// assert_eq!((data.len(), data.sample_shape()), (4, &[1][..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TensorDataset {
    inputs: Tensor<f32>,
    targets: Tensor<f32>,
    task: Task,
    sample: Vec<usize>,
}

impl TensorDataset {
    /// Samples whose targets are class indices into `classes`.
    ///
    /// # Errors
    /// [`DataError::Invalid`] when the counts differ or a label is not a class.
    pub fn classification(
        inputs: Tensor<f32>,
        labels: &[usize],
        classes: Vec<String>,
    ) -> Result<Self> {
        if let Some(bad) = labels.iter().find(|&&l| l >= classes.len()) {
            return Err(DataError::invalid(
                "targets",
                format!("label {bad} is not one of the {} classes", classes.len()),
            ));
        }
        let targets = Tensor::from_vec(
            labels.iter().map(|&l| l as f32).collect(),
            &[labels.len(), 1],
        )
        .map_err(|e| DataError::invalid("targets", e.to_string()))?;
        Self::new(inputs, targets, Task::Classify { classes })
    }

    /// Samples whose targets are real values: `[N]` (one each) or `[N, k]`.
    ///
    /// # Errors
    /// [`DataError::Invalid`] when the counts differ.
    pub fn regression(inputs: Tensor<f32>, targets: Tensor<f32>) -> Result<Self> {
        let targets = match *targets.dims() {
            [n] => targets
                .reshape(&[n, 1])
                .map_err(|e| DataError::invalid("targets", e.to_string()))?,
            _ => targets,
        };
        let outputs = targets.dims().get(1).copied().unwrap_or(0);
        Self::new(inputs, targets, Task::Regress { outputs })
    }

    fn new(inputs: Tensor<f32>, targets: Tensor<f32>, task: Task) -> Result<Self> {
        let (Some(&n), [m, width]) = (inputs.dims().first(), targets.dims()) else {
            return Err(DataError::invalid(
                "tensor data set",
                format!(
                    "inputs {} need a first axis of samples and targets {} two axes",
                    inputs.shape(),
                    targets.shape()
                ),
            ));
        };
        if n != *m || *width != task.target_width() {
            return Err(DataError::invalid(
                "tensor data set",
                format!(
                    "inputs {} and targets {} do not match ({} targets of width {} needed)",
                    inputs.shape(),
                    targets.shape(),
                    n,
                    task.target_width()
                ),
            ));
        }
        let sample = inputs.dims()[1..].to_vec();
        Ok(TensorDataset {
            inputs,
            targets,
            task,
            sample,
        })
    }

    /// The inputs, `[N, …sample shape]`.
    pub fn inputs(&self) -> &Tensor<f32> {
        &self.inputs
    }

    /// The targets, `[N, width]`.
    pub fn targets(&self) -> &Tensor<f32> {
        &self.targets
    }

    /// The samples at `indices`, as a new data set.
    ///
    /// # Errors
    /// An index out of range.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        check_indices(indices, Dataset::len(self))?;
        let pick = |t: &Tensor<f32>| -> Result<Tensor<f32>> {
            let width = t.len().checked_div(t.dims()[0]).unwrap_or(0);
            let mut dims = t.dims().to_vec();
            dims[0] = indices.len();
            Tensor::from_fill(&dims, |out| {
                for &i in indices {
                    out.extend_from_slice(&t.data()[i * width..(i + 1) * width]);
                }
            })
            .map_err(|e| DataError::invalid("subset", e.to_string()))
        };
        Ok(TensorDataset {
            inputs: pick(&self.inputs)?,
            targets: pick(&self.targets)?,
            task: self.task.clone(),
            sample: self.sample.clone(),
        })
    }

    /// Holds out a seeded random `fraction`: `(kept, held out)`.
    ///
    /// # Errors
    /// Unless `0 <= fraction < 1`.
    pub fn split(&self, fraction: f64, seed: u64) -> Result<(Self, Self)> {
        let (kept, held) = split_indices(Dataset::len(self), fraction, seed)?;
        Ok((self.subset(&kept)?, self.subset(&held)?))
    }

    /// Standardises every input feature with `s` (fitted elsewhere, on the
    /// training split).
    ///
    /// # Errors
    /// When `s` has another number of features.
    pub fn standardize_inputs(&mut self, s: &Standardizer) -> Result<()> {
        s.apply(self.inputs.data_mut())
    }

    /// Standardises the regression targets with `s`.
    ///
    /// # Errors
    /// When `s` has another width, or the targets are classes.
    pub fn standardize_targets(&mut self, s: &Standardizer) -> Result<()> {
        if self.task.is_classification() {
            return Err(DataError::invalid(
                "standardise",
                "class indices are not standardised",
            ));
        }
        s.apply(self.targets.data_mut())
    }
}

impl Dataset for TensorDataset {
    fn len(&self) -> usize {
        self.inputs.dims()[0]
    }

    fn sample_shape(&self) -> &[usize] {
        &self.sample
    }

    fn task(&self) -> &Task {
        &self.task
    }

    fn fill_inputs(&self, indices: &[usize], out: &mut Vec<f32>) -> Result<()> {
        check_indices(indices, self.len())?;
        let width: usize = self.sample.iter().product();
        let data = self.inputs.data();
        for &i in indices {
            out.extend_from_slice(&data[i * width..(i + 1) * width]);
        }
        Ok(())
    }

    fn fill_targets(&self, indices: &[usize], out: &mut Vec<f32>) -> Result<()> {
        check_indices(indices, self.len())?;
        let width = self.task.target_width();
        let data = self.targets.data();
        for &i in indices {
            out.extend_from_slice(&data[i * width..(i + 1) * width]);
        }
        Ok(())
    }
}
