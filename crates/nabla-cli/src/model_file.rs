//! The command line's model files: a module's state (PyTorch state-dict
//! names) with a [`ModelSpec`] as JSON under the metadata key `nabla` — the
//! architecture, so the network can be rebuilt from the file alone, and
//! what the data was, so `eval` and `predict` prepare new inputs the same way.

use anyhow::{bail, Result};
use nabla::nn::file::{build_from_tensors_with, decode_tensors, read_tensors, NonFinite, SPEC_KEY};
use nabla::nn::{save_state, Architecture, ModelFileError, Module, Sequential};
use nabla::tensor::Float;
use nabla::tensor::Tensor;
use nabla_data::DataSpec;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Everything needed to rebuild and use a model, stored in the file's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The network.
    pub architecture: Architecture,
    /// What it was trained on and how inputs are made.
    #[serde(flatten)]
    pub data: DataSpec,
}

impl ModelSpec {
    /// The spec as a file's metadata.
    pub fn metadata(&self) -> Result<HashMap<String, String>> {
        Ok(HashMap::from([(
            SPEC_KEY.to_string(),
            serde_json::to_string(self)?,
        )]))
    }

    /// The spec stored in a file's metadata.
    pub fn from_metadata(path: &Path, metadata: &HashMap<String, String>) -> Result<Self> {
        let json = metadata.get(SPEC_KEY).ok_or_else(|| ModelFileError::Spec {
            path: path.to_path_buf(),
            reason: format!("no '{SPEC_KEY}' metadata: not a model file written by nabla (use --init-weights only with nabla files)"),
        })?;
        serde_json::from_str(json)
            .map_err(|e| ModelFileError::Spec {
                path: path.to_path_buf(),
                reason: format!("bad '{SPEC_KEY}' metadata: {e}"),
            })
            .map_err(Into::into)
    }
}

/// Saves a model and its spec, atomically.
pub fn save_model(path: &Path, model: &Sequential<f32>, spec: &ModelSpec) -> Result<()> {
    save_state(path, model, spec.metadata()?)?;
    Ok(())
}

/// Loads a model file: rebuilds the network from its spec and fills its
/// parameters, strictly (every value finite).
pub fn load_model<T: Float>(path: &Path) -> Result<(Sequential<T>, ModelSpec)> {
    load_model_with(path, NonFinite::Refuse)
}

/// [`load_model`], taking NaN and ±∞ where `non_finite` allows (to inspect
/// a model that diverged).
pub fn load_model_with<T: Float>(
    path: &Path,
    non_finite: NonFinite,
) -> Result<(Sequential<T>, ModelSpec)> {
    let (tensors, metadata) = read_tensors::<T>(path)?;
    model_from_tensors(path, tensors, metadata, non_finite)
}

/// [`load_model`] from a file's bytes already in memory (`path` names
/// them in messages).
pub fn decode_model<T: Float>(path: &Path, bytes: &[u8]) -> Result<(Sequential<T>, ModelSpec)> {
    let (tensors, metadata) = decode_tensors::<T>(path, bytes)?;
    model_from_tensors(path, tensors, metadata, NonFinite::Refuse)
}

fn model_from_tensors<T: Float>(
    path: &Path,
    tensors: BTreeMap<String, Tensor<T>>,
    metadata: HashMap<String, String>,
    non_finite: NonFinite,
) -> Result<(Sequential<T>, ModelSpec)> {
    if metadata.contains_key(nabla_train::STATE_KEY) {
        bail!(
            "{}: this is a checkpoint of a training run, not a model: continue it with `nabla train --resume {}`, or give the model file the run wrote (its --out)",
            path.display(),
            path.display()
        );
    }
    let spec = ModelSpec::from_metadata(path, &metadata)?;
    let model = build_from_tensors_with(path, &spec.architecture, &tensors, "", non_finite)?;
    Ok((model, spec))
}

/// The fraction of exactly zero weights of each parameter tensor of more
/// than one axis (what L1 regularisation makes sparse), by name.
pub fn sparsity<T: Float>(model: &dyn Module<T>) -> Vec<(String, f64)> {
    model
        .named_params()
        .into_iter()
        .filter(|(_, p)| p.value().rank() > 1)
        .map(|(name, p)| {
            let v = p.value();
            let zeros = v.data().iter().filter(|x| x.to_f64() == 0.0).count();
            (name, zeros as f64 / v.len().max(1) as f64)
        })
        .collect()
}
