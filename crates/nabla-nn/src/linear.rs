//! The fully connected (affine) layer.

use crate::{join_name, Init, Module};
use nabla_autograd::{Error, Param, Result, Var};
use nabla_tensor::{Float, Rng, Tensor};

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
#[derive(Debug, Clone)]
pub struct Linear<T: Float = f32> {
    /// Weight `[out, in]`.
    pub weight: Param<T>,
    /// Bias `[out]`, if the layer has one.
    pub bias: Option<Param<T>>,
}

impl<T: Float> Linear<T> {
    /// A layer with weights drawn by `init` and a zero bias.
    pub fn new(in_features: usize, out_features: usize, init: Init, rng: &mut Rng) -> Self {
        let weight = init.sample(rng, &[out_features, in_features], in_features, out_features);
        Linear {
            weight: Param::new(weight),
            bias: Some(Param::new(Tensor::zeros(&[out_features]))),
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
}

impl<T: Float> Module<T> for Linear<T> {
    fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        let shape = x.shape();
        let x = match shape.rank() {
            0 => {
                return Err(Error::invalid(
                    "Linear",
                    "input is a scalar; expected [N, features]",
                ))
            }
            1 => x.reshape(&[1, shape.dims()[0]])?,
            2 => x,
            _ => x.flatten()?,
        };
        let features = x.shape().dims()[1];
        if features != self.in_features() {
            return Err(Error::invalid(
                "Linear",
                format!(
                    "{} got input of shape {shape} ({features} features)",
                    self.describe()
                ),
            ));
        }
        let tape = x.tape();
        let y = x.matmul_t(tape.param(&self.weight))?;
        match &self.bias {
            Some(b) => y.add(tape.param(b)),
            None => Ok(y),
        }
    }

    fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(String, &'a Param<T>)) {
        f(join_name(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(join_name(prefix, "bias"), b);
        }
    }

    fn visit_params_mut<'a>(
        &'a mut self,
        prefix: &str,
        f: &mut dyn FnMut(String, &'a mut Param<T>),
    ) {
        f(join_name(prefix, "weight"), &mut self.weight);
        if let Some(b) = &mut self.bias {
            f(join_name(prefix, "bias"), b);
        }
    }

    fn for_each_param_mut(&mut self, f: &mut dyn FnMut(&mut Param<T>)) {
        f(&mut self.weight);
        if let Some(b) = &mut self.bias {
            f(b);
        }
    }

    fn describe(&self) -> String {
        format!("Linear({} → {})", self.in_features(), self.out_features())
    }
}
