//! Labelled images held as 8-bit pixels: the MNIST-format data sets and
//! image folders. Pixels become `f32` in `[0, 1]` only when a batch is made.

use crate::batch::Batch;
use crate::idx::{read_idx, Idx};
use crate::source::{check_indices, split_indices};
use crate::{DataError, Dataset, Result, Task};
use nabla_tensor::Tensor;
use std::path::{Path, PathBuf};

/// Which MNIST-format dataset: same files and shapes, different classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DatasetKind {
    /// Handwritten digits 0–9 (LeCun, Cortes & Burges).
    #[default]
    Mnist,
    /// Zalando's Fashion-MNIST: ten kinds of clothing.
    FashionMnist,
}

impl DatasetKind {
    /// The name used on the command line and in model files.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
        }
    }

    /// The ten class names, by label.
    pub fn class_names(self) -> [&'static str; 10] {
        match self {
            DatasetKind::Mnist => ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            DatasetKind::FashionMnist => [
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
        }
    }

    /// Parses `mnist` or `fashion-mnist`.
    ///
    /// # Errors
    /// [`DataError::Invalid`] for any other name.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "mnist" => Ok(DatasetKind::Mnist),
            "fashion-mnist" => Ok(DatasetKind::FashionMnist),
            other => Err(DataError::invalid(
                "dataset",
                format!("unknown dataset '{other}' (expected mnist or fashion-mnist)"),
            )),
        }
    }
}

/// Images (`u8` pixels, kept compact, channels first) with their class
/// labels. Pixels are scaled to `[0, 1]` as `f32` only when a batch is made.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageDataset {
    task: Task,
    pixels: Vec<u8>,
    labels: Vec<u32>,
    /// `[channels, rows, cols]`.
    shape: [usize; 3],
}

/// A training set and a test set.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training images.
    pub train: ImageDataset,
    /// Test images (never used for training or model selection).
    pub test: ImageDataset,
}

/// Number of classes of both supported datasets.
pub const CLASSES: usize = 10;
/// Image side of both supported datasets.
pub const SIDE: usize = 28;

impl ImageDataset {
    /// Images of `shape` (`[channels, rows, cols]`, pixels channel by
    /// channel) with a label each, classes named by `classes`.
    ///
    /// # Errors
    /// [`DataError::Invalid`] when the pixel count does not match, or a label
    /// is not a class.
    pub fn from_pixels(
        pixels: Vec<u8>,
        labels: Vec<u32>,
        shape: [usize; 3],
        classes: Vec<String>,
    ) -> Result<Self> {
        let per = shape.iter().product::<usize>();
        if labels.len().checked_mul(per) != Some(pixels.len()) {
            return Err(DataError::invalid(
                "images",
                format!(
                    "{} pixels are not {} images of {shape:?}",
                    pixels.len(),
                    labels.len()
                ),
            ));
        }
        if let Some(bad) = labels.iter().find(|&&l| l as usize >= classes.len()) {
            return Err(DataError::invalid(
                "images",
                format!("label {bad} is not one of the {} classes", classes.len()),
            ));
        }
        Ok(ImageDataset {
            task: Task::Classify { classes },
            pixels,
            labels,
            shape,
        })
    }

    /// Builds a dataset from an image file (`[N, 28, 28]`) and a label file
    /// (`[N]`), checking ranks, sizes, counts and every label.
    ///
    /// # Errors
    /// [`DataError::BadRank`], [`DataError::BadImageSize`],
    /// [`DataError::CountMismatch`] or [`DataError::BadLabel`], naming the files.
    pub fn from_idx(
        kind: DatasetKind,
        images: Idx,
        images_name: &str,
        labels: Idx,
        labels_name: &str,
    ) -> Result<Self> {
        if images.dims.len() != 3 {
            return Err(DataError::BadRank {
                name: images_name.into(),
                expected: 3,
                found: images.dims.len(),
            });
        }
        if labels.dims.len() != 1 {
            return Err(DataError::BadRank {
                name: labels_name.into(),
                expected: 1,
                found: labels.dims.len(),
            });
        }
        let (n, rows, cols) = (images.dims[0], images.dims[1], images.dims[2]);
        if rows != SIDE || cols != SIDE {
            return Err(DataError::BadImageSize {
                name: images_name.into(),
                rows,
                cols,
                expected_rows: SIDE,
                expected_cols: SIDE,
            });
        }
        if labels.dims[0] != n {
            return Err(DataError::CountMismatch {
                images: images_name.into(),
                labels: labels_name.into(),
                n_images: n,
                n_labels: labels.dims[0],
            });
        }
        if let Some((index, &label)) = labels
            .data
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= CLASSES)
        {
            return Err(DataError::BadLabel {
                name: labels_name.into(),
                index,
                label,
                classes: CLASSES,
            });
        }
        Ok(ImageDataset {
            task: Task::Classify {
                classes: kind.class_names().iter().map(|c| c.to_string()).collect(),
            },
            pixels: images.data,
            labels: labels.data.iter().map(|&l| u32::from(l)).collect(),
            shape: [1, rows, cols],
        })
    }

    /// Reads `train-*` and `t10k-*` image and label files from `dir`
    /// (`train-images-idx3-ubyte`, with or without `.gz`).
    ///
    /// # Errors
    /// A missing file (naming the paths tried) or any validation error.
    pub fn load_dir(dir: &Path, kind: DatasetKind) -> Result<Splits> {
        let load = |prefix: &str| -> Result<ImageDataset> {
            let images = find_file(dir, &format!("{prefix}-images-idx3-ubyte"))?;
            let labels = find_file(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
            let (i, l) = (read_idx(&images)?, read_idx(&labels)?);
            ImageDataset::from_idx(
                kind,
                i,
                &images.display().to_string(),
                l,
                &labels.display().to_string(),
            )
        };
        Ok(Splits {
            train: load("train")?,
            test: load("t10k")?,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels per image, all channels (784 for MNIST).
    pub fn image_size(&self) -> usize {
        self.shape.iter().product()
    }

    /// Image height and width.
    pub fn image_dims(&self) -> (usize, usize) {
        (self.shape[1], self.shape[2])
    }

    /// Channels: 1 (grayscale) or 3 (RGB).
    pub fn channels(&self) -> usize {
        self.shape[0]
    }

    /// The class names, by label.
    pub fn classes(&self) -> &[String] {
        match &self.task {
            Task::Classify { classes } => classes,
            Task::Regress { .. } => &[],
        }
    }

    /// The label of image `i` (panics if `i` is out of range, like slice indexing).
    pub fn label(&self, i: usize) -> usize {
        self.labels[i] as usize
    }

    /// The raw pixels of image `i`.
    pub fn pixels(&self, i: usize) -> &[u8] {
        let s = self.image_size();
        &self.pixels[i * s..(i + 1) * s]
    }

    /// The images at `indices` as a `[n, pixels]` tensor scaled to `[0, 1]`, with labels.
    ///
    /// # Errors
    /// [`DataError::Invalid`] for an index out of range.
    pub fn batch(&self, indices: &[usize]) -> Result<Batch> {
        Ok(Batch {
            x: self.images(indices)?,
            labels: indices.iter().map(|&i| self.label(i)).collect(),
        })
    }

    /// The images at `indices` as a `[indices.len(), pixels]` tensor of
    /// values in `[0, 1]`, in a buffer from the tensor pool (so a training
    /// loop gathering a batch every step allocates nothing).
    ///
    /// # Errors
    /// [`DataError::Invalid`] for an index out of range.
    pub fn images(&self, indices: &[usize]) -> Result<Tensor<f32>> {
        check_indices(indices, self.len())?;
        Tensor::from_fill(&[indices.len(), self.image_size()], |x| {
            self.push_images(indices, x)
        })
        .map_err(|e| DataError::invalid("batch", e.to_string()))
    }

    /// Appends the images at `indices` (in range) scaled to `[0, 1]`.
    fn push_images(&self, indices: &[usize], x: &mut Vec<f32>) {
        // The images lie at random places in the dataset, so the time
        // goes to waiting for their bytes: keep asking for those a few
        // images ahead while this one is converted.
        for &i in indices.iter().take(PREFETCH_AHEAD) {
            prefetch(self.pixels(i));
        }
        for (k, &i) in indices.iter().enumerate() {
            if let Some(&ahead) = indices.get(k + PREFETCH_AHEAD) {
                prefetch(self.pixels(ahead));
            }
            push_unit(x, self.pixels(i));
        }
    }

    /// The images at `indices`, as a new dataset.
    ///
    /// # Errors
    /// [`DataError::Invalid`] for an index out of range.
    pub fn subset(&self, indices: &[usize]) -> Result<ImageDataset> {
        check_indices(indices, self.len())?;
        let mut pixels = Vec::with_capacity(indices.len() * self.image_size());
        for &i in indices {
            pixels.extend_from_slice(self.pixels(i));
        }
        Ok(ImageDataset {
            task: self.task.clone(),
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            shape: self.shape,
        })
    }

    /// Holds out a random `fraction` of the images (drawn with `seed`) as a
    /// validation set; returns `(train, validation)`. A fraction of 0 gives an
    /// empty validation set.
    ///
    /// # Errors
    /// [`DataError::Invalid`] unless `0 <= fraction < 1`.
    pub fn split(&self, fraction: f64, seed: u64) -> Result<(ImageDataset, ImageDataset)> {
        let (train, val) = split_indices(self.len(), fraction, seed)?;
        Ok((self.subset(&train)?, self.subset(&val)?))
    }

    /// How many images of each class, by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes().len()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

impl Dataset for ImageDataset {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn sample_shape(&self) -> &[usize] {
        &self.shape
    }

    fn task(&self) -> &Task {
        &self.task
    }

    fn fill_inputs(&self, indices: &[usize], out: &mut Vec<f32>) -> Result<()> {
        check_indices(indices, self.len())?;
        self.push_images(indices, out);
        Ok(())
    }

    fn fill_targets(&self, indices: &[usize], out: &mut Vec<f32>) -> Result<()> {
        check_indices(indices, self.len())?;
        out.extend(indices.iter().map(|&i| self.labels[i] as f32));
        Ok(())
    }
}

fn find_file(dir: &Path, stem: &str) -> Result<PathBuf> {
    let candidates = [dir.join(format!("{stem}.gz")), dir.join(stem)];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| DataError::Io {
            path: candidates[0].clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("not found (nor {})", candidates[1].display()),
            ),
        })
}

/// Images whose bytes are requested before they are converted: enough to
/// cover the memory's latency (one image ahead left most of it exposed).
const PREFETCH_AHEAD: usize = 4;

/// Appends the pixel values `bytes` scaled to `[0, 1]` (`p / 255`) to `out`.
fn push_unit(out: &mut Vec<f32>, bytes: &[u8]) {
    /// A plain loop of divisions, which the compiler turns into vector
    /// divisions (exact, so the same values as one by one).
    #[inline(always)]
    fn push(out: &mut Vec<f32>, bytes: &[u8]) {
        out.extend(bytes.iter().map(|&p| f32::from(p) / 255.0));
    }
    // Eight divisions at a time with AVX2 rather than the baseline build's
    // four (`docs/performance.md`), the same values; the family stops at
    // AVX2 (`Kernel::widest` says why).
    nabla_tensor::Kernel::PixelConversion.run(
        #[inline(always)]
        || push(out, bytes),
    );
}

/// Asks the CPU to bring `bytes` into cache ahead of their use (a hint; no
/// effect on results, and nothing on other architectures).
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE is part of every x86_64 CPU, and a prefetch only
        // hints; the address is inside `bytes`.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}
