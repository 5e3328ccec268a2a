//! Checkpoints: everything a run needs to continue exactly, in one
//! safetensors file written atomically after every epoch.
//!
//! Tensors: `model.<param>` (the weights), `optim.<i>.<k>` (buffer `k` of
//! parameter `i`), `best.<param>` (early-stopping weights, if any). Metadata:
//! `nabla` (the model spec, as in a model file) and `checkpoint` (JSON: epoch,
//! optimiser method and step, base learning rate, shuffle-generator state,
//! history, best epoch and accuracy).

use crate::trainer::{Best, Trainer};
use crate::{EpochMetrics, Result, TrainError};
use nabla_nn::file::{
    atomic_write, build_from_tensors, encode_tensors, read_tensors, spec_from_metadata, SPEC_KEY,
};
use nabla_nn::{state_dict, ModelSpec, Module, Sequential};
use nabla_optim::OptimizerState;
use nabla_tensor::{Rng, Tensor, RNG_STATE_LEN};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const STATE_KEY: &str = "checkpoint";

#[derive(Serialize, Deserialize)]
struct State {
    epochs_done: usize,
    optimizer: String,
    optimizer_step: u64,
    optimizer_buffers: usize,
    base_lr: f64,
    rng: String,
    history: Vec<EpochMetrics>,
    best: Option<(f64, usize)>,
}

/// A checkpoint read from disk, ready for [`Trainer::resume`].
pub struct Checkpoint {
    /// Where it was read from.
    pub path: PathBuf,
    /// The network with its weights.
    pub model: Sequential<f32>,
    /// The network's spec.
    pub spec: ModelSpec,
    /// Name of the optimiser method that wrote it.
    pub optimizer_method: String,
    /// Optimiser state.
    pub optimizer_state: OptimizerState<f32>,
    /// Epochs finished.
    pub epochs_done: usize,
    /// Learning rate before any schedule.
    pub base_lr: f64,
    /// The shuffle generator.
    pub rng: Rng,
    /// Metrics so far.
    pub history: Vec<EpochMetrics>,
    pub(crate) best: Option<Best>,
}

pub(crate) fn write_checkpoint(path: &Path, t: &Trainer) -> Result<()> {
    // Parameters and buffers (batch norm's running statistics).
    let model_state = state_dict(&t.model);
    let mut tensors: Vec<(String, &Tensor<f32>)> = model_state
        .iter()
        .map(|(n, v)| (format!("model.{n}"), v))
        .collect();
    let state = t.optimizer.state();
    for (i, buffers) in state.buffers.iter().enumerate() {
        for (k, b) in buffers.iter().enumerate() {
            tensors.push((format!("optim.{i}.{k}"), b));
        }
    }
    if let Some(best) = &t.best {
        for ((n, _), v) in model_state.iter().zip(&best.params) {
            tensors.push((format!("best.{n}"), v));
        }
    }
    let record = State {
        epochs_done: t.epochs_done,
        optimizer: t.optimizer.config().method.name().to_string(),
        optimizer_step: state.step,
        optimizer_buffers: state.buffers.first().map_or(0, Vec::len),
        base_lr: t.base_lr,
        rng: t.rng.state().iter().map(|b| format!("{b:02x}")).collect(),
        history: t.history.clone(),
        best: t.best.as_ref().map(|b| (b.accuracy, b.epoch)),
    };
    let bad = |e: serde_json::Error| TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let metadata = HashMap::from([
        (
            SPEC_KEY.to_string(),
            serde_json::to_string(&t.spec).map_err(bad)?,
        ),
        (
            STATE_KEY.to_string(),
            serde_json::to_string(&record).map_err(bad)?,
        ),
    ]);
    atomic_write(path, &encode_tensors(path, &tensors, metadata)?)?;
    Ok(())
}

/// Reads a checkpoint written by a [`Trainer`].
///
/// # Errors
/// [`TrainError::File`] or [`TrainError::Checkpoint`] naming the file.
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint> {
    let bad = |reason: String| TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let (tensors, metadata) = read_tensors::<f32>(path)?;
    let spec = spec_from_metadata(path, &metadata)?;
    let state: State =
        serde_json::from_str(metadata.get(STATE_KEY).ok_or_else(|| {
            bad("not a checkpoint (no training state); is it a model file?".into())
        })?)
        .map_err(|e| bad(format!("bad training state: {e}")))?;
    let model_tensors = tensors
        .iter()
        .filter(|(k, _)| k.starts_with("model."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let model = build_from_tensors(path, &spec.architecture, &model_tensors, "model.")?;
    let n_params = model.named_params().len();
    let take = |name: String| {
        tensors
            .get(&name)
            .cloned()
            .ok_or_else(|| bad(format!("tensor '{name}' is missing")))
    };
    let mut buffers = Vec::new();
    if state.optimizer_step > 0 {
        for i in 0..n_params {
            buffers.push(
                (0..state.optimizer_buffers)
                    .map(|k| take(format!("optim.{i}.{k}")))
                    .collect::<Result<Vec<_>>>()?,
            );
        }
    }
    let best = match state.best {
        Some((accuracy, epoch)) => {
            let names: Vec<String> = state_dict(&model)
                .into_iter()
                .map(|(n, _)| format!("best.{n}"))
                .collect();
            Some(Best {
                accuracy,
                epoch,
                params: names.into_iter().map(take).collect::<Result<_>>()?,
            })
        }
        None => None,
    };
    let rng_bytes: Vec<u8> = (0..state.rng.len() / 2)
        .map(|i| u8::from_str_radix(state.rng.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad("bad generator state".into()))?;
    let rng_state: [u8; RNG_STATE_LEN] = rng_bytes
        .try_into()
        .map_err(|_| bad("bad generator state length".into()))?;
    Ok(Checkpoint {
        path: path.to_path_buf(),
        model,
        spec,
        optimizer_method: state.optimizer,
        optimizer_state: OptimizerState {
            step: state.optimizer_step,
            buffers,
        },
        epochs_done: state.epochs_done,
        base_lr: state.base_lr,
        rng: Rng::from_state(&rng_state),
        history: state.history,
        best,
    })
}
