//! # nabla-nn
//!
//! Layers, losses, weight initialisation and the whole-model gradient check.
//!
//! A layer implements [`Module`]: a `forward` on graph variables and a walk
//! over its named parameters (`0.weight`, `0.bias`, … as in a PyTorch
//! `nn.Sequential` state dict), which optimisers, model files and the gradient
//! check use.
//!
//! ```
//! use nabla_nn::{Activation, Init, MlpConfig, Module, loss};
//! use nabla_autograd::{Tape, Target, Reduction};
//! use nabla_tensor::{Rng, Tensor};
//! let mut rng = Rng::seed(0);
//! let net = MlpConfig::new(784, &[16, 16], 10).activation(Activation::Sigmoid).init::<f32>(&mut rng)?;
//! assert_eq!(net.num_params(), 13_002); // the material's 784-16-16-10 network
//! let tape = Tape::new();
//! let x = tape.constant(Tensor::zeros(&[2, 784]));
//! let logits = net.forward(x)?;
//! let l = loss::softmax_cross_entropy(logits, Target::Indices(vec![3, 7]), Reduction::Mean)?;
//! let grads = tape.backward(l)?;
//! assert!(net.named_params().iter().all(|(_, p)| grads.param(p).is_some()));
//! # Ok::<(), nabla_autograd::Error>(())
//! ```

mod activation;
mod batchnorm;
mod conv;
mod ensemble;
pub mod explain;
pub mod file;
mod gradcheck;
mod init;
mod linear;
pub mod loss;
mod mlp;
mod module;
mod regularize;
mod sequential;
pub mod spec;

pub use activation::{Activation, Relu, Sigmoid, Softmax, Tanh};
pub use batchnorm::BatchNorm;
pub use conv::{AvgPool2d, Conv2d, MaxPool2d};
pub use ensemble::Ensemble;
pub use explain::{explain, Explanation, LayerView};
pub use file::{load_sequential, load_state, save_state, state_dict, Architecture, ModelFileError};
pub use gradcheck::{
    check_layer_gradients, check_model_gradients, ModelCheckOptions, ModelGradReport,
};
pub use init::Init;
pub use linear::Linear;
pub use mlp::{MlpConfig, MAX_PARAMS};
pub use module::{join_name, Module};
/// `#[derive(Module)]`: the visitors of a struct's layers, parameters and
/// buffers, named as PyTorch names them (see the `nabla-derive` crate); the
/// struct writes `forward` itself, as an inherent method.
///
/// ```
/// use nabla_autograd::{Result, Var};
/// use nabla_nn::{Init, Linear, Module};
/// use nabla_tensor::Rng;
///
/// #[derive(Module)]
/// #[module(crate = nabla_nn)] // inside nabla-nn's own docs; users of `nabla` leave it out
/// struct Net {
///     fc1: Linear,
///     layers: Vec<Linear>,
/// }
///
/// impl Net {
///     fn forward<'t>(&self, x: Var<'t, f32>) -> Result<Var<'t, f32>> {
///         let mut h = self.fc1.forward(x)?.relu()?;
///         for l in &self.layers {
///             h = l.forward(h)?.relu()?;
///         }
///         Ok(h)
///     }
/// }
///
/// let mut rng = Rng::seed(0);
/// let net = Net {
///     fc1: Linear::new(2, 3, Init::He, &mut rng),
///     layers: vec![Linear::new(3, 3, Init::He, &mut rng)],
/// };
/// let names: Vec<String> = net.named_params().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["fc1.weight", "fc1.bias", "layers.0.weight", "layers.0.bias"]);
/// ```
///
/// Without an inherent `forward` the struct does not compile (the error
/// names the trait `AddAnInherentFnForwardToTheStruct`):
///
/// ```compile_fail
/// use nabla_nn::{Linear, Module};
/// #[derive(Module)]
/// #[module(crate = nabla_nn)]
/// struct Net {
///     fc1: Linear,
/// }
/// ```
pub use nabla_derive::Module;

/// What the code written by `#[derive(Module)]` refers to.
#[doc(hidden)]
pub mod __derive {
    pub use crate::{join_name, Module};
    pub use nabla_autograd::{Param, Result, Var};
    pub use nabla_tensor::{Float, Tensor};
}
pub use regularize::{Dropout, Flatten};
pub use sequential::Sequential;
pub use spec::{preset, LayerSpec, NetSpec, MAX_ACTIVATION, PRESETS};
