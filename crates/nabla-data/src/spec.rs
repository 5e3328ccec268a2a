//! What a model file records of the data it was trained on, so that
//! `eval` and `predict` prepare new data the same way: the data set's name,
//! the task and classes, and how inputs are made (MNIST-like digits,
//! images of a folder, or standardised CSV columns).

use crate::{Color, Standardizer};
use serde::{Deserialize, Serialize};

/// How raw digit images become network inputs (MNIST and Fashion-MNIST).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// Input image height and width.
    pub height: usize,
    /// Input image width.
    pub width: usize,
    /// Each 8-bit pixel `p` becomes `p · scale` (1/255: `[0, 1]`).
    pub scale: f64,
    /// Ink is bright on a dark background, as in MNIST.
    pub ink_is_bright: bool,
}

impl Default for Preprocessing {
    fn default() -> Self {
        Preprocessing {
            height: 28,
            width: 28,
            scale: 1.0 / 255.0,
            ink_is_bright: true,
        }
    }
}

/// Images read from files as a folder's were: channels and size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInput {
    /// 1 (grayscale) or 3 (RGB).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
    /// Whether images of another size were resized to this one.
    pub resize: bool,
}

impl ImageInput {
    /// The colour of the channels.
    pub fn color(&self) -> Color {
        if self.channels == 3 {
            Color::Rgb
        } else {
            Color::Gray
        }
    }
}

/// Rows of a CSV table: the feature columns, in the model's order, and
/// the standardisation fitted on the training split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableInput {
    /// Feature columns, by name, in input order.
    pub features: Vec<String>,
    /// The target column.
    pub target: String,
    /// Standardisation of the features.
    pub inputs: Standardizer,
    /// Standardisation of the regression targets (the model predicts
    /// standardised values; predictions are turned back with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Standardizer>,
}

/// What kind of task a model was trained for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Class scores (logits).
    #[default]
    Classify,
    /// Real values.
    Regress,
}

/// The data side of a model file's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    /// The data set it was trained on (`mnist`, `fashion-mnist`, a file or folder name).
    pub dataset: String,
    /// Classification or regression (files written before regression existed are classifiers).
    #[serde(default)]
    pub task: TaskKind,
    /// Class names, by output index (empty for regression).
    pub classes: Vec<String>,
    /// MNIST-like digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocessing: Option<Preprocessing>,
    /// Images of a folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImageInput>,
    /// Rows of a CSV table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableInput>,
}
