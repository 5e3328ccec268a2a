//! The models a page can run: each with its name, its layers' shapes and a
//! lock, since a network's parameters are not shared across threads.

use crate::model_file::{load_model, ModelSpec};
use crate::shipped::Shipped;
use anyhow::{bail, Context, Result};
use nabla::nn::{explain, Sequential};
use nabla::tensor::Tensor;
use serde::Serialize;
use std::path::Path;
use std::sync::Mutex;

/// One model the page can run.
pub struct Served {
    /// How the page and its requests name it (`cnn`, `mlp`, or the file's stem).
    pub id: String,
    /// What the page shows of it.
    pub info: ModelInfo,
    /// The network, one analysis at a time.
    pub net: Mutex<Sequential<f32>>,
}

/// What `/api/models` says of a model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// The request name.
    pub id: String,
    /// Where it came from: `the shipped cnn model`, or its file.
    pub source: String,
    /// The architecture in one line.
    pub summary: String,
    /// The class names, in output order.
    pub classes: Vec<String>,
    /// Each layer's name and output shape for one sample.
    pub layers: Vec<LayerInfo>,
}

/// One layer as the page lays it out.
#[derive(Debug, Clone, Serialize)]
pub struct LayerInfo {
    /// `0: Conv2d(1 → 16, 5×5, stride 1, padding 0)`.
    pub name: String,
    /// The output shape of one sample: `[C, H, W]` maps or `[N]` units.
    pub shape: Vec<usize>,
}

impl Served {
    /// A model shipped inside the binary.
    pub fn shipped(which: Shipped) -> Result<Self> {
        let (net, spec) = which.load()?;
        Self::new(which.id().to_string(), which.label(), net, &spec)
    }

    /// A model file, which must be a digit model (28×28 inputs, classes).
    pub fn file(path: &Path) -> Result<Self> {
        let (net, spec) = load_model::<f32>(path)?;
        let shown = path.display();
        let digits = spec
            .data
            .preprocessing
            .as_ref()
            .is_some_and(|p| p.height * p.width == 28 * 28);
        if !digits {
            bail!("{shown}: serve draws digits, and this model does not read 28x28 digit images");
        }
        let id = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect::<String>();
        let id = if id.is_empty() { "model".into() } else { id };
        Self::new(id, shown.to_string(), net, &spec)
    }

    fn new(id: String, source: String, net: Sequential<f32>, spec: &ModelSpec) -> Result<Self> {
        if spec.data.classes.is_empty() {
            bail!("{source}: serve shows classifiers, and this model regresses values");
        }
        // One pass on a blank image gives every layer's shape, and proves
        // the model runs before the page is offered.
        let blank = Tensor::zeros(&[1, 28 * 28]);
        let layers = explain(&net, &blank, None)
            .with_context(|| format!("{source}: a trial pass on a blank image"))?
            .layers
            .into_iter()
            .map(|l| LayerInfo {
                name: l.name,
                shape: l.output.dims().to_vec(),
            })
            .collect();
        let info = ModelInfo {
            id: id.clone(),
            source,
            summary: spec.architecture.summary(),
            classes: spec.data.classes.clone(),
            layers,
        };
        Ok(Served {
            id,
            info,
            net: Mutex::new(net),
        })
    }
}
