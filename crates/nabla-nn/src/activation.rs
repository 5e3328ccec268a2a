//! Activation layers (parameter-free wrappers of graph ops).

use crate::Module;
use nabla_autograd::{ops, Error, Op, Param, Result, Var};
use nabla_tensor::{Float, Tensor};
use std::fmt;
use std::str::FromStr;

macro_rules! activation_layer {
    ($(#[$doc:meta])* $name:ident, $method:ident, $op:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;

        impl<T: Float> Module<T> for $name {
            fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
                x.$method()
            }
            /// The graph op's own forward, without a graph.
            fn predict(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
                Op::<T>::forward(&mut $op, &[x])
            }
            fn visit_params<'a>(&'a self, _: &str, _: &mut dyn FnMut(String, &'a Param<T>)) {}
            fn visit_params_mut<'a>(&'a mut self, _: &str, _: &mut dyn FnMut(String, &'a mut Param<T>)) {}
            fn describe(&self) -> String {
                stringify!($name).to_string()
            }
        }
    };
}

activation_layer!(
    /// `max(0, x)`; derivative 0 at `x = 0`.
    Relu, relu, ops::unary::Relu
);
activation_layer!(
    /// `1 / (1 + e^-x)`; backward `dout · y · (1 - y)`.
    Sigmoid, sigmoid, ops::unary::Sigmoid
);
activation_layer!(
    /// `tanh x`; backward `dout · (1 - y²)`.
    Tanh, tanh, ops::unary::Tanh
);
activation_layer!(
    /// Softmax over the last axis (for networks that output probabilities;
    /// for training prefer logits with the fused softmax-cross-entropy loss).
    Softmax, softmax, ops::softmax::Softmax
);

/// The hidden-layer activation of a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// ReLU.
    #[default]
    Relu,
    /// Logistic sigmoid.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
}

impl Activation {
    /// The layer for this activation.
    pub fn layer<T: Float>(self) -> Box<dyn Module<T>> {
        match self {
            Activation::Relu => Box::new(Relu),
            Activation::Sigmoid => Box::new(Sigmoid),
            Activation::Tanh => Box::new(Tanh),
        }
    }

    /// The lowercase name used on the command line and in model files.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "relu" => Ok(Activation::Relu),
            "sigmoid" => Ok(Activation::Sigmoid),
            "tanh" => Ok(Activation::Tanh),
            other => Err(Error::invalid(
                "activation",
                format!("unknown activation '{other}' (expected relu, sigmoid or tanh)"),
            )),
        }
    }
}
