//! Checkpoints: a model's state, its optimiser's and the [`RunState`], in
//! one safetensors file written atomically after every epoch.
//!
//! Tensors: `model.<name>` (parameters and buffers), `optim.<i>.<k>` (buffer
//! `k` of parameter `i`), `best.<name>` (early-stopping weights, if any),
//! `average.<i>` (the moving average of parameter `i`, if the run keeps one).
//! Metadata: `checkpoint` (JSON: the run state and the optimiser's method and
//! step) and whatever the caller adds (the command line stores its model
//! description there, as in a model file). This module knows the run state,
//! not the trainer: the trainer hands it what to write and takes what it reads.

use crate::state::{Best, RunState};
use crate::{EpochMetrics, Result, TrainError, WeightAverage};
use nabla_nn::file::{atomic_write, decode_tensors, encode_tensors, load_params};
use nabla_nn::{state_dict, Module};
use nabla_optim::{Optimizer, OptimizerState};
use nabla_tensor::{Rng, Tensor, RNG_STATE_LEN};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The metadata key of the run state.
pub const STATE_KEY: &str = "checkpoint";

#[derive(Serialize, Deserialize)]
struct Record {
    epochs_done: usize,
    optimizer: String,
    optimizer_step: u64,
    optimizer_params: usize,
    optimizer_buffers: usize,
    base_lr: f64,
    rng: String,
    history: Vec<EpochMetrics>,
    best: Option<(f64, usize)>,
    state_names: Vec<String>,
    batch_size: usize,
    samples: usize,
    /// The moving average's decay and updates (absent in older checkpoints).
    #[serde(default)]
    average: Option<(f64, u64)>,
}

/// A checkpoint read from disk, ready for `Trainer::resume`.
pub struct Checkpoint {
    /// Where it was read from.
    pub path: PathBuf,
    /// The model's parameters and buffers, by name.
    pub model: BTreeMap<String, Tensor<f32>>,
    /// The run state.
    pub run: RunState,
    /// Optimiser state.
    pub optimizer_state: OptimizerState<f32>,
    /// The file's other metadata (as the caller wrote it).
    pub metadata: HashMap<String, String>,
}

impl Checkpoint {
    /// Copies the checkpoint's weights into `model`, strictly (names and shapes).
    ///
    /// # Errors
    /// [`TrainError::File`] naming the tensor that does not fit.
    pub fn load_model_into(&self, model: &mut dyn Module<f32>) -> Result<()> {
        load_params(&self.path, model, &self.model, "")?;
        Ok(())
    }
}

/// Writes a checkpoint of `model`, `optimizer` and `run`, with `metadata`.
///
/// # Errors
/// [`TrainError::File`] or [`TrainError::Checkpoint`] naming the file.
pub fn save_checkpoint(
    path: &Path,
    model: &dyn Module<f32>,
    optimizer: &Optimizer<f32>,
    run: &RunState,
    metadata: &HashMap<String, String>,
) -> Result<()> {
    let model_state = state_dict(model);
    let mut tensors: Vec<(String, &Tensor<f32>)> = model_state
        .iter()
        .map(|(n, v)| (format!("model.{n}"), v))
        .collect();
    let state = optimizer.state();
    for (i, buffers) in state.buffers.iter().enumerate() {
        for (k, b) in buffers.iter().enumerate() {
            tensors.push((format!("optim.{i}.{k}"), b));
        }
    }
    if let Some(best) = &run.best {
        for (n, v) in &best.state {
            tensors.push((format!("best.{n}"), v));
        }
    }
    if let Some(avg) = &run.average {
        for (i, v) in avg.params.iter().enumerate() {
            tensors.push((format!("average.{i}"), v));
        }
    }
    let record = Record {
        epochs_done: run.epochs_done,
        optimizer: optimizer.config().method.name().to_string(),
        optimizer_step: state.step,
        optimizer_params: state.buffers.len(),
        optimizer_buffers: state.buffers.first().map_or(0, Vec::len),
        base_lr: run.base_lr,
        rng: run.rng.state().iter().map(|b| format!("{b:02x}")).collect(),
        history: run.history.clone(),
        best: run.best.as_ref().map(|b| (b.score, b.epoch)),
        state_names: run
            .best
            .as_ref()
            .map(|b| b.state.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default(),
        batch_size: run.batch_size,
        samples: run.samples,
        average: run.average.as_ref().map(|a| (a.decay, a.updates)),
    };
    let mut all = metadata.clone();
    all.insert(
        STATE_KEY.to_string(),
        serde_json::to_string(&record).map_err(|e| TrainError::Checkpoint {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?,
    );
    atomic_write(path, &encode_tensors(path, &tensors, all)?)?;
    Ok(())
}

/// Reads a checkpoint written by [`save_checkpoint`].
///
/// # Errors
/// [`TrainError::File`] or [`TrainError::Checkpoint`] naming the file.
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|source| {
        TrainError::from(nabla_nn::ModelFileError::Io {
            path: path.to_path_buf(),
            source,
        })
    })?;
    decode_checkpoint(path, &bytes)
}

/// [`load_checkpoint`] from bytes already in memory (`path` names them in
/// errors).
///
/// # Errors
/// As [`load_checkpoint`].
pub fn decode_checkpoint(path: &Path, bytes: &[u8]) -> Result<Checkpoint> {
    let bad = |reason: String| TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let (tensors, mut metadata) = decode_tensors::<f32>(path, bytes)?;
    let record: Record =
        serde_json::from_str(&metadata.remove(STATE_KEY).ok_or_else(|| {
            bad("not a checkpoint (no training state); is it a model file?".into())
        })?)
        .map_err(|e| bad(format!("bad training state: {e}")))?;
    let take = |name: String| {
        tensors
            .get(&name)
            .cloned()
            .ok_or_else(|| bad(format!("tensor '{name}' is missing")))
    };
    let model = tensors
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("model.")?.to_string(), v.clone())))
        .collect();
    let mut buffers = Vec::new();
    if record.optimizer_step > 0 {
        for i in 0..record.optimizer_params {
            buffers.push(
                (0..record.optimizer_buffers)
                    .map(|k| take(format!("optim.{i}.{k}")))
                    .collect::<Result<Vec<_>>>()?,
            );
        }
    }
    let best = match record.best {
        Some((score, epoch)) => Some(Best {
            score,
            epoch,
            state: record
                .state_names
                .iter()
                .map(|n| Ok((n.clone(), take(format!("best.{n}"))?)))
                .collect::<Result<_>>()?,
        }),
        None => None,
    };
    let average = match record.average {
        Some((decay, updates)) => {
            let count = tensors.keys().filter(|k| k.starts_with("average.")).count();
            Some(WeightAverage {
                decay,
                updates,
                params: (0..count)
                    .map(|i| take(format!("average.{i}")))
                    .collect::<Result<_>>()?,
            })
        }
        None => None,
    };
    let rng_bytes: Vec<u8> = (0..record.rng.len() / 2)
        .map(|i| u8::from_str_radix(record.rng.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad("bad generator state".into()))?;
    let rng_state: [u8; RNG_STATE_LEN] = rng_bytes
        .try_into()
        .map_err(|_| bad("bad generator state length".into()))?;
    Ok(Checkpoint {
        path: path.to_path_buf(),
        model,
        run: RunState {
            epochs_done: record.epochs_done,
            base_lr: record.base_lr,
            rng: Rng::from_state(&rng_state),
            history: record.history,
            best,
            batch_size: record.batch_size,
            samples: record.samples,
            optimizer: record.optimizer,
            average,
        },
        optimizer_state: OptimizerState {
            step: record.optimizer_step,
            buffers,
        },
        metadata,
    })
}
