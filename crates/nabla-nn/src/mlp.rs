//! A configurable multi-layer perceptron.

use crate::{Activation, Init, Linear, Sequential};
use nabla_autograd::{Error, Result};
use nabla_tensor::{Float, Rng};

/// The largest network [`MlpConfig::init`] builds: 2³⁰ parameters (4 GiB in f32).
pub const MAX_PARAMS: usize = 1 << 30;

/// The plain, serialisable description of an MLP: `input → hidden… → output`
/// with one activation between layers and logits at the end.
///
/// ```
/// use nabla_nn::{MlpConfig, Module};
/// let net = MlpConfig::new(784, &[100], 10).init::<f32>(&mut nabla_tensor::Rng::seed(1))?;
/// assert_eq!(net.describe(), "Sequential[Linear(784 → 100), Relu, Linear(100 → 10)]");
/// # Ok::<(), nabla_autograd::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MlpConfig {
    /// Input features.
    pub input: usize,
    /// Hidden layer sizes, in order (may be empty: logistic/softmax regression).
    pub hidden: Vec<usize>,
    /// Outputs (classes).
    pub output: usize,
    /// Activation after every hidden layer.
    pub activation: Activation,
    /// Weight initialisation.
    pub init: Init,
}

impl MlpConfig {
    /// A config with ReLU and He initialisation.
    pub fn new(input: usize, hidden: &[usize], output: usize) -> Self {
        MlpConfig {
            input,
            hidden: hidden.to_vec(),
            output,
            activation: Activation::Relu,
            init: Init::He,
        }
    }

    /// Sets the activation.
    pub fn activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// Sets the initialisation.
    pub fn with_init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }

    /// Builds the network: `Linear, act, Linear, act, …, Linear`.
    ///
    /// # Errors
    /// If any layer size is zero.
    pub fn init<T: Float>(&self, rng: &mut Rng) -> Result<Sequential<T>> {
        let sizes: Vec<usize> = std::iter::once(self.input)
            .chain(self.hidden.iter().copied())
            .chain([self.output])
            .collect();
        if let Some(pos) = sizes.iter().position(|&s| s == 0) {
            return Err(Error::invalid(
                "MlpConfig",
                format!("layer size {pos} is zero in {sizes:?}"),
            ));
        }
        let params = sizes.windows(2).try_fold(0usize, |acc, p| {
            p[0].checked_mul(p[1])?.checked_add(p[1])?.checked_add(acc)
        });
        if params.is_none_or(|n| n > MAX_PARAMS) {
            return Err(Error::invalid(
                "MlpConfig",
                format!("layer sizes {sizes:?} need more than {MAX_PARAMS} parameters; refusing to allocate them"),
            ));
        }
        let mut net = Sequential::new();
        for (i, pair) in sizes.windows(2).enumerate() {
            net.push_boxed(Box::new(Linear::<T>::new(pair[0], pair[1], self.init, rng)));
            if i + 2 < sizes.len() {
                net.push_boxed(self.activation.layer());
            }
        }
        Ok(net)
    }
}
