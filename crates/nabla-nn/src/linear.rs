//! The fully connected (affine) layer.

use crate::{Init, Module};
use nabla_autograd::{Error, Param, ParamId, Result, Var};
use nabla_tensor::{input_major_pays, Float, Rng, Shape, Tensor, Transpose};
use std::sync::Mutex;

/// `out = x · Wᵀ + b`, the material's Affine layer with PyTorch's weight layout.
///
/// # Shapes
/// - `weight`: `[out, in]` (as `torch.nn.Linear`, so model files interoperate)
/// - `bias`: `[out]`
/// - input `[N, in]`, or `[N, d1, d2, …]` flattened to `[N, in]` as the
///   material's Affine does (its backward reshapes the gradient back); a 1-D
///   input `[in]` is a batch of one.
/// - output `[N, out]`
///
/// Backward (by the graph): `dx = dout · W`, `dW = doutᵀ · x`, `db = Σ_rows dout`.
#[derive(Debug, Clone, Module)]
#[module(crate = crate, predict, describe)]
pub struct Linear<T: Float = f32> {
    /// Weight `[out, in]`.
    pub weight: Param<T>,
    /// Bias `[out]`, if the layer has one.
    pub bias: Option<Param<T>>,
    /// The weight stored `[in, out]`, for [`Module::predict`] on a few images.
    #[module(skip)]
    by_input: InputMajor<T>,
}

/// A copy of a weight stored `[in, out]`, with the identity and version of
/// the parameter it was made from, made when first asked for and remade
/// when the parameter has changed since. A clone of the layer starts
/// without one (its parameters are new ones).
struct InputMajor<T: Float>(Mutex<Option<(ParamId, u64, Tensor<T>)>>);

impl<T: Float> InputMajor<T> {
    fn new() -> Self {
        InputMajor(Mutex::new(None))
    }

    /// The transpose of `weight`'s current value.
    fn of(&self, weight: &Param<T>) -> Result<Tensor<T>> {
        // A panic while the lock was held left at worst a stale copy,
        // which the key below discards.
        let mut copy = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let key = (weight.id(), weight.version());
        match &*copy {
            Some((id, version, t)) if (*id, *version) == key => Ok(t.clone()),
            _ => {
                let t = weight.value().transpose()?;
                *copy = Some((key.0, key.1, t.clone()));
                Ok(t)
            }
        }
    }
}

impl<T: Float> Clone for InputMajor<T> {
    fn clone(&self) -> Self {
        InputMajor::new()
    }
}

impl<T: Float> std::fmt::Debug for InputMajor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InputMajor")
    }
}

impl<T: Float> Linear<T> {
    /// A layer with weights drawn by `init` and a zero bias.
    pub fn new(in_features: usize, out_features: usize, init: Init, rng: &mut Rng) -> Self {
        let weight = init.sample(rng, &[out_features, in_features], in_features, out_features);
        Linear {
            weight: Param::new(weight),
            bias: Some(Param::new(Tensor::zeros(&[out_features]))),
            by_input: InputMajor::new(),
        }
    }

    /// A layer from given tensors.
    ///
    /// # Errors
    /// If `weight` is not rank 2 or `bias` is not `[out]`.
    pub fn from_tensors(weight: Tensor<T>, bias: Option<Tensor<T>>) -> Result<Self> {
        let (out, _) = weight.as_matrix_dims("Linear")?;
        if let Some(b) = &bias {
            if b.dims() != [out] {
                return Err(Error::invalid(
                    "Linear",
                    format!("bias has shape {}, expected [{out}]", b.shape()),
                ));
            }
        }
        Ok(Linear {
            weight: Param::new(weight),
            bias: bias.map(Param::new),
            by_input: InputMajor::new(),
        })
    }

    /// Number of input features.
    pub fn in_features(&self) -> usize {
        self.weight.value().dims()[1]
    }

    /// Number of outputs.
    pub fn out_features(&self) -> usize {
        self.weight.value().dims()[0]
    }

    /// The `[N, in]` view of an input of `shape` (a 1-D input is a batch of
    /// one; more axes are flattened as the material's Affine does).
    ///
    /// # Errors
    /// A scalar, or a feature count other than the layer's.
    fn rows(&self, shape: &Shape) -> Result<[usize; 2]> {
        let rows = match *shape.dims() {
            [] => {
                return Err(Error::invalid(
                    "Linear",
                    "input is a scalar; expected [N, features]",
                ))
            }
            [features] => [1, features],
            [n, ref rest @ ..] => [n, rest.iter().product()],
        };
        if rows[1] != self.in_features() {
            return Err(Error::invalid(
                "Linear",
                format!(
                    "{} got input of shape {shape} ({} features)",
                    self.describe(),
                    rows[1]
                ),
            ));
        }
        Ok(rows)
    }
}

/// The layer's own passes; `Module` hands its `forward`, `predict` and
/// `describe` here, and its visitors are derived from the fields.
impl<T: Float> Linear<T> {
    /// `x · Wᵀ + b` on the graph.
    ///
    /// # Errors
    /// An input whose feature count is not the layer's.
    pub fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let rows = self.rows(&x.shape())?;
        let x = if x.shape().dims() == rows {
            x
        } else {
            x.reshape(&rows)?
        };
        let tape = x.tape();
        let y = x.matmul_t(tape.param(&self.weight))?;
        match &self.bias {
            Some(b) => y.add(tape.param(b)),
            None => Ok(y),
        }
    }

    /// `x · Wᵀ + b` on tensors. For a few images, or a batch of 64 or more
    /// (rows of mostly zeros, [`input_major_pays`]), the product runs
    /// against a copy of the weights stored `[in, out]`, made on first use
    /// and remade after the weights change (kept with their
    /// [`Param::version`]): it reads only the weight rows of the nonzero
    /// pixels, half the time of `x · Wᵀ` for a digit or a batch of them. An
    /// image gets the same bits alone and in such a batch. The copy costs
    /// as much memory as the weights.
    pub fn predict(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
        let rows = self.rows(x.shape())?;
        let x = if x.dims() == rows {
            x.clone()
        } else {
            x.reshape(&rows)?
        };
        let mut y = if input_major_pays(&x) {
            x.matmul_input_major(&self.by_input.of(&self.weight)?)?
        } else {
            x.matmul_t(Transpose::No, self.weight.value(), Transpose::Yes)?
        };
        if let Some(b) = &self.bias {
            let b = b.value().data();
            for row in y.data_mut().chunks_exact_mut(b.len()) {
                for (v, &b) in row.iter_mut().zip(b) {
                    *v += b;
                }
            }
        }
        Ok(y)
    }

    /// `Linear(in → out)`.
    pub fn describe(&self) -> String {
        format!("Linear({} → {})", self.in_features(), self.out_features())
    }
}
