//! Model files: safetensors laid out as a PyTorch state dict, loadable by
//! PyTorch with `load_state_dict(strict=True)`.
//!
//! Any module is saved and loaded in one call each ([`save_state`],
//! [`load_state`]): its parameters and buffers under their hierarchical names,
//! checked strictly on the way back (names, shapes, dtypes). A file may also
//! carry string metadata; the command line keeps there, under the key
//! [`SPEC_KEY`], a JSON object whose `architecture` ([`Architecture`]) lets
//! [`load_sequential`] rebuild a network from the file alone. What the rest
//! of that object says (the data it was trained on) is not this room's
//! business.
//!
//! Files are written atomically: a temporary file in the same directory,
//! fsync, rename, fsync of the directory. A crash leaves the old file or the
//! new one, never half of one.

use crate::{Init, Module, Sequential};
use nabla_tensor::{Float, Rng, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The metadata key of the JSON object holding the `architecture`.
pub const SPEC_KEY: &str = "nabla";

mod architecture;
mod atomic;
pub use architecture::Architecture;
pub use atomic::atomic_write;

/// Errors reading or writing model files; each names the file and, where it
/// applies, the tensor.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Not a valid safetensors file (truncated, corrupt header, bad offsets).
    #[error("{path}: not a valid safetensors file: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A valid file without nabla's architecture metadata, or with bad metadata.
    #[error("{path}: {reason}")]
    Spec {
        /// The file.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// A parameter the model needs is not in the file.
    #[error("{path}: tensor '{name}' is missing")]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The parameter name.
        name: String,
    },
    /// A tensor in the file that the model does not have.
    #[error("{path}: tensor '{name}' is not a parameter of the model")]
    UnexpectedTensor {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        name: String,
    },
    /// A tensor of the wrong shape.
    #[error("{path}: tensor '{name}' has shape {found:?}, the model needs {expected:?}")]
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// Shape the model needs.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A tensor holding NaN or ±∞: a model that diverged, or a corrupt file.
    #[error("{path}: tensor '{name}' holds {value} at index {index}: the weights are not finite (the model diverged or the file is damaged)")]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The flat index of its first non-finite element.
        index: usize,
        /// That element.
        value: String,
    },
    /// A tensor stored in an element type nabla does not read.
    #[error(
        "{path}: tensor '{name}' has dtype {dtype}, expected F32 or F64 (I64 only for counters)"
    )]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The dtype found.
        dtype: String,
    },
}

/// Named tensors and the string metadata of a safetensors file.
pub type TensorsAndMetadata<T> = (BTreeMap<String, Tensor<T>>, HashMap<String, String>);

/// Whether a tensor is a counter stored as a 64-bit integer, as PyTorch
/// stores batch norm's `num_batches_tracked`.
fn is_counter(name: &str) -> bool {
    name == "num_batches_tracked" || name.ends_with(".num_batches_tracked")
}

/// Serialises named tensors (in the element type `T`; counters such as
/// `num_batches_tracked` as I64, like PyTorch) with string metadata.
///
/// # Errors
/// [`ModelFileError::Format`] if safetensors refuses the data.
pub fn encode_tensors<T: Float>(
    path: &Path,
    tensors: &[(String, &Tensor<T>)],
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>, ModelFileError> {
    let dtype = if T::NAME == "f64" {
        Dtype::F64
    } else {
        Dtype::F32
    };
    let bytes: Vec<(Dtype, String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            if is_counter(name) {
                let data = t
                    .data()
                    .iter()
                    .flat_map(|v| (v.to_f64().round() as i64).to_le_bytes())
                    .collect();
                return (Dtype::I64, name.clone(), t.dims().to_vec(), data);
            }
            let data = if dtype == Dtype::F64 {
                t.data()
                    .iter()
                    .flat_map(|v| v.to_f64().to_le_bytes())
                    .collect()
            } else {
                t.data()
                    .iter()
                    .flat_map(|v| (v.to_f64() as f32).to_le_bytes())
                    .collect()
            };
            (dtype, name.clone(), t.dims().to_vec(), data)
        })
        .collect();
    let format = |e: safetensors::SafeTensorError| ModelFileError::Format {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(dtype, n, s, d)| {
            Ok((
                n.clone(),
                TensorView::new(*dtype, s.clone(), d).map_err(format)?,
            ))
        })
        .collect::<Result<_, ModelFileError>>()?;
    safetensors::serialize(views, Some(metadata)).map_err(format)
}

/// Reads every tensor of a safetensors file (F32 or F64, converted to `T`)
/// and its metadata.
///
/// # Errors
/// [`ModelFileError::Io`], [`ModelFileError::Format`] or [`ModelFileError::Dtype`].
pub fn read_tensors<T: Float>(path: &Path) -> Result<TensorsAndMetadata<T>, ModelFileError> {
    let bytes = std::fs::read(path).map_err(|source| ModelFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_tensors(path, &bytes)
}

/// [`read_tensors`] from bytes already in memory.
///
/// # Errors
/// As [`read_tensors`].
pub fn decode_tensors<T: Float>(
    path: &Path,
    bytes: &[u8],
) -> Result<TensorsAndMetadata<T>, ModelFileError> {
    let format = |e: safetensors::SafeTensorError| ModelFileError::Format {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(format)?;
    let file = SafeTensors::deserialize(bytes).map_err(format)?;
    let mut out = BTreeMap::new();
    for (name, view) in file.tensors() {
        let data: Vec<T> = match view.dtype() {
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|c| T::from_f64(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64))
                .collect(),
            Dtype::F64 => view
                .data()
                .chunks_exact(8)
                .map(|c| {
                    T::from_f64(f64::from_le_bytes([
                        c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
                    ]))
                })
                .collect(),
            Dtype::I64 if is_counter(&name) => view
                .data()
                .chunks_exact(8)
                .map(|c| {
                    T::from_f64(
                        i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f64,
                    )
                })
                .collect(),
            other => {
                return Err(ModelFileError::Dtype {
                    path: path.to_path_buf(),
                    name,
                    dtype: format!("{other:?}"),
                })
            }
        };
        let tensor = Tensor::from_vec(data, view.shape()).map_err(|e| ModelFileError::Format {
            path: path.to_path_buf(),
            reason: format!("tensor '{name}': {e}"),
        })?;
        out.insert(name, tensor);
    }
    Ok((out, meta.metadata().clone().unwrap_or_default()))
}

/// Whether loading takes tensors that hold NaN or ±∞.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonFinite {
    /// Refuse them, naming the tensor and the first bad index (the default:
    /// such a model predicts nothing and trains on as NaN).
    #[default]
    Refuse,
    /// Take them, to inspect a model that diverged.
    Allow,
}

/// The flat index of the first NaN or ±∞ of a tensor, if any.
pub fn first_non_finite<T: Float>(t: &Tensor<T>) -> Option<usize> {
    t.data().iter().position(|v| !v.is_finite())
}

/// Copies tensors into a model's parameters and buffers by name. Strict,
/// like PyTorch's `load_state_dict(strict=True)`: every parameter and buffer
/// must be present with its shape, and no other tensor may be (among those
/// whose names start with `prefix`); and every value must be finite.
///
/// # Errors
/// [`ModelFileError::MissingTensor`], [`ModelFileError::UnexpectedTensor`],
/// [`ModelFileError::ShapeMismatch`] or [`ModelFileError::NonFinite`],
/// naming the tensor.
pub fn load_params<T: Float>(
    path: &Path,
    model: &mut dyn Module<T>,
    tensors: &BTreeMap<String, Tensor<T>>,
    prefix: &str,
) -> Result<(), ModelFileError> {
    load_params_with(path, model, tensors, prefix, NonFinite::Refuse)
}

/// [`load_params`], taking non-finite values where `non_finite` allows.
///
/// # Errors
/// As [`load_params`].
pub fn load_params_with<T: Float>(
    path: &Path,
    model: &mut dyn Module<T>,
    tensors: &BTreeMap<String, Tensor<T>>,
    prefix: &str,
    non_finite: NonFinite,
) -> Result<(), ModelFileError> {
    let mut used = std::collections::BTreeSet::new();
    let mut result = Ok(());
    let mut load = |name: String, slot: &mut Tensor<T>| {
        if result.is_err() {
            return;
        }
        let key = format!("{prefix}{name}");
        match tensors.get(&key) {
            None => {
                result = Err(ModelFileError::MissingTensor {
                    path: path.to_path_buf(),
                    name: key,
                })
            }
            Some(t) if t.dims() != slot.dims() => {
                result = Err(ModelFileError::ShapeMismatch {
                    path: path.to_path_buf(),
                    name: key,
                    expected: slot.dims().to_vec(),
                    found: t.dims().to_vec(),
                })
            }
            Some(t) => match first_non_finite(t).filter(|_| non_finite == NonFinite::Refuse) {
                Some(index) => {
                    result = Err(ModelFileError::NonFinite {
                        path: path.to_path_buf(),
                        name: key,
                        index,
                        value: t.data()[index].to_f64().to_string(),
                    })
                }
                None => {
                    *slot = t.clone();
                    used.insert(key);
                }
            },
        }
    };
    model.visit_params_mut("", &mut |name, param| load(name, param.value_mut()));
    model.visit_buffers_mut("", &mut |name, buffer| load(name, buffer));
    result?;
    if let Some(extra) = tensors
        .keys()
        .find(|k| k.starts_with(prefix) && !used.contains(*k))
    {
        return Err(ModelFileError::UnexpectedTensor {
            path: path.to_path_buf(),
            name: extra.clone(),
        });
    }
    Ok(())
}

/// A model's parameters and buffers by name: what a model file holds
/// (PyTorch's `state_dict`).
pub fn state_dict<T: Float>(model: &dyn Module<T>) -> Vec<(String, Tensor<T>)> {
    let mut all: Vec<(String, Tensor<T>)> = model
        .named_params()
        .into_iter()
        .map(|(n, p)| (n, p.value().clone()))
        .collect();
    all.extend(model.named_buffers());
    all
}

/// Saves any module's parameters and buffers (PyTorch's `state_dict`), with
/// `metadata` as the file's string metadata. Written atomically.
///
/// # Errors
/// [`ModelFileError`] naming the file.
pub fn save_state<T: Float>(
    path: &Path,
    model: &dyn Module<T>,
    metadata: HashMap<String, String>,
) -> Result<(), ModelFileError> {
    let state = state_dict(model);
    let tensors: Vec<(String, &Tensor<T>)> = state.iter().map(|(n, t)| (n.clone(), t)).collect();
    let bytes = encode_tensors(path, &tensors, metadata)?;
    atomic_write(path, &bytes)
}

/// Loads a file written by [`save_state`] (or by PyTorch's
/// `safetensors.torch.save_file(model.state_dict())`) into `model`, strictly:
/// every parameter and buffer must be there with its shape, and nothing
/// else. Returns the file's metadata.
///
/// # Errors
/// [`ModelFileError`] naming the file and, where it applies, the tensor.
pub fn load_state<T: Float>(
    path: &Path,
    model: &mut dyn Module<T>,
) -> Result<HashMap<String, String>, ModelFileError> {
    let (tensors, metadata) = read_tensors::<T>(path)?;
    load_params(path, model, &tensors, "")?;
    Ok(metadata)
}

/// The [`Architecture`] stored under [`SPEC_KEY`] in a file's metadata.
///
/// # Errors
/// [`ModelFileError::Spec`] if the metadata is missing or malformed.
pub fn architecture_from_metadata(
    path: &Path,
    metadata: &HashMap<String, String>,
) -> Result<Architecture, ModelFileError> {
    let bad = |reason: String| ModelFileError::Spec {
        path: path.to_path_buf(),
        reason,
    };
    let json = metadata.get(SPEC_KEY).ok_or_else(|| {
        bad(format!("no '{SPEC_KEY}' metadata: not a model file written by nabla (use --init-weights only with nabla files)"))
    })?;
    #[derive(Deserialize)]
    struct WithArchitecture {
        architecture: Architecture,
    }
    serde_json::from_str::<WithArchitecture>(json)
        .map(|w| w.architecture)
        .map_err(|e| bad(format!("bad '{SPEC_KEY}' metadata: {e}")))
}

/// Rebuilds the network a file describes and fills it with the file's tensors
/// (those whose names start with `prefix`). Every parameter shape the
/// architecture implies is checked against the file *before* the network is
/// allocated, so metadata claiming a huge network cannot exhaust memory.
///
/// # Errors
/// [`ModelFileError`] naming the file and, where it applies, the tensor.
pub fn build_from_tensors<T: Float>(
    path: &Path,
    architecture: &Architecture,
    tensors: &BTreeMap<String, Tensor<T>>,
    prefix: &str,
) -> Result<Sequential<T>, ModelFileError> {
    build_from_tensors_with(path, architecture, tensors, prefix, NonFinite::Refuse)
}

/// [`build_from_tensors`], taking non-finite values where `non_finite`
/// allows.
///
/// # Errors
/// As [`build_from_tensors`].
pub fn build_from_tensors_with<T: Float>(
    path: &Path,
    architecture: &Architecture,
    tensors: &BTreeMap<String, Tensor<T>>,
    prefix: &str,
    non_finite: NonFinite,
) -> Result<Sequential<T>, ModelFileError> {
    let shapes = architecture
        .state_shapes()
        .map_err(|e| ModelFileError::Spec {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    for (name, expected) in shapes {
        let key = format!("{prefix}{name}");
        match tensors.get(&key) {
            None => {
                return Err(ModelFileError::MissingTensor {
                    path: path.to_path_buf(),
                    name: key,
                })
            }
            Some(t) if t.dims() != expected.as_slice() => {
                return Err(ModelFileError::ShapeMismatch {
                    path: path.to_path_buf(),
                    name: key,
                    expected,
                    found: t.dims().to_vec(),
                })
            }
            Some(_) => {}
        }
    }
    let mut model = architecture
        .build::<T>(Init::default(), &mut Rng::seed(0))
        .map_err(|e| ModelFileError::Spec {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    load_params_with(path, &mut model, tensors, prefix, non_finite)?;
    // A loaded model is for use: evaluation mode (no dropout, running statistics).
    model.set_training(false);
    Ok(model)
}

/// A network loaded by [`load_sequential`]: the network, its architecture
/// and the file's metadata.
pub type LoadedNet<T> = (Sequential<T>, Architecture, HashMap<String, String>);

/// Loads a model file whose metadata holds an [`Architecture`]: rebuilds
/// the network and fills its parameters. Returns the network, its
/// architecture and the file's metadata.
///
/// # Errors
/// [`ModelFileError`] naming the file and, where it applies, the tensor.
pub fn load_sequential<T: Float>(path: &Path) -> Result<LoadedNet<T>, ModelFileError> {
    let (tensors, metadata) = read_tensors::<T>(path)?;
    let architecture = architecture_from_metadata(path, &metadata)?;
    let model = build_from_tensors(path, &architecture, &tensors, "")?;
    Ok((model, architecture, metadata))
}
