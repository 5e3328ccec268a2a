//! Flatten and dropout: parameter-free layers that reshape or regularise.

use crate::Module;
use nabla_autograd::{Error, Param, Result, Var};
use nabla_tensor::Float;

/// `[N, d1, d2, …] → [N, d1·d2·…]`, as `torch.nn.Flatten()`: the step
/// between convolutional feature maps and dense layers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flatten;

impl<T: Float> Module<T> for Flatten {
    fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        x.flatten()
    }
    fn visit_params<'a>(&'a self, _: &str, _: &mut dyn FnMut(String, &'a Param<T>)) {}
    fn visit_params_mut<'a>(&'a mut self, _: &str, _: &mut dyn FnMut(String, &'a mut Param<T>)) {}
    fn describe(&self) -> String {
        "Flatten".into()
    }
}

/// Inverted dropout, as `torch.nn.Dropout(p)`: in training each value is
/// zeroed with probability `p` and the rest scaled by `1/(1 − p)`; in
/// evaluation the layer is the identity. (The book's dropout instead scales
/// by `1 − p` at test time; the two agree in expectation, and this one lets
/// a trained model run unchanged in PyTorch.)
///
/// The masks come from the tape's seeded generator, so a training run is
/// reproducible.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    p: f64,
    training: bool,
}

impl Dropout {
    /// A dropout layer in training mode.
    ///
    /// # Errors
    /// If `p` is not in `[0, 1)`.
    pub fn new(p: f64) -> Result<Self> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::invalid(
                "Dropout",
                format!("probability {p} must be in [0, 1)"),
            ));
        }
        Ok(Dropout { p, training: true })
    }

    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// Whether the layer is in training mode.
    pub fn is_training(&self) -> bool {
        self.training
    }
}

impl<T: Float> Module<T> for Dropout {
    fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        if self.training {
            x.dropout(self.p)
        } else {
            Ok(x)
        }
    }
    fn visit_params<'a>(&'a self, _: &str, _: &mut dyn FnMut(String, &'a Param<T>)) {}
    fn visit_params_mut<'a>(&'a mut self, _: &str, _: &mut dyn FnMut(String, &'a mut Param<T>)) {}
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
    fn describe(&self) -> String {
        format!("Dropout({})", self.p)
    }
}
