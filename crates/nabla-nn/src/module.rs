//! The one trait every layer implements.

use nabla_autograd::{Param, Result, Var};
use nabla_tensor::{Float, Tensor};

/// A layer or a network: a forward pass plus a walk over named parameters.
///
/// Implement `forward`, the two visitors and `describe`; the rest is provided.
/// Layers are `Send + Sync` so that the shards of a batch can run their
/// forward and backward passes on several threads at once (see
/// `nabla_train::train_step`).
pub trait Module<T: Float>: Send + Sync {
    /// Computes the output for a batch `x` (first axis = samples).
    ///
    /// # Errors
    /// When `x` has a shape the layer cannot take; the message names the layer.
    fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>>;

    /// Computes the output for a batch `x` without a graph: inference.
    ///
    /// The values are those of [`Module::forward`] up to the rounding of a
    /// different order of sums (a layer may multiply in another layout;
    /// see `Linear`). The default runs `forward` on a tape that records
    /// nothing; layers whose forward is a few tensor operations override it
    /// to skip the tape's bookkeeping, which costs as much as the arithmetic
    /// for one small image.
    ///
    /// # Errors
    /// As `forward`.
    fn predict(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
        let tape = nabla_autograd::Tape::new();
        tape.set_grad_enabled(false);
        Ok(self.forward(tape.constant(x.clone()))?.value())
    }

    /// Calls `f(name, param)` for every parameter, names prefixed by `prefix`.
    fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(String, &'a Param<T>));

    /// Calls `f(name, param)` for every parameter, mutably, in the same order.
    fn visit_params_mut<'a>(
        &'a mut self,
        prefix: &str,
        f: &mut dyn FnMut(String, &'a mut Param<T>),
    );

    /// Calls `f(param)` for every parameter, mutably, in the same order as
    /// [`Module::visit_params_mut`] but without building names, so that the
    /// training loop can walk the parameters every step without allocating.
    /// Containers override it to recurse; leaves may keep this default.
    fn for_each_param_mut(&mut self, f: &mut dyn FnMut(&mut Param<T>)) {
        self.visit_params_mut("", &mut |_, p| f(p));
    }

    /// Calls `f(name, tensor)` for every *buffer*: state that is saved with
    /// the model but not trained, such as batch norm's running statistics
    /// (PyTorch's `register_buffer`). Names are prefixed like parameters'.
    fn visit_buffers(&self, _prefix: &str, _f: &mut dyn FnMut(String, Tensor<T>)) {}

    /// Calls `f(name, tensor)` for every buffer, mutably, in the same order
    /// as [`Module::visit_buffers`] (to load them from a file).
    fn visit_buffers_mut(&mut self, _prefix: &str, _f: &mut dyn FnMut(String, &mut Tensor<T>)) {}

    /// True when a sample's output depends on the other samples of its batch
    /// in training (batch norm's batch statistics), so that the batch must
    /// not be split into shards that run apart.
    fn couples_batch(&self) -> bool {
        false
    }

    /// A one-line description, e.g. `Linear(784 → 100)`.
    fn describe(&self) -> String;

    /// Sub-layers with their names (empty for a leaf layer). Used to report
    /// which layer's own backward disagrees with numerical differentiation.
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module<T>)> {
        Vec::new()
    }

    /// Switches between training and evaluation behaviour (no-op for layers
    /// that behave the same in both).
    fn set_training(&mut self, _training: bool) {}

    /// Every parameter with its full name, in visiting order.
    fn named_params(&self) -> Vec<(String, &Param<T>)> {
        let mut out = Vec::new();
        self.visit_params("", &mut |name, p| out.push((name, p)));
        out
    }

    /// Every parameter, mutably, in visiting order.
    fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        let mut out = Vec::new();
        self.visit_params_mut("", &mut |_, p| out.push(p));
        out
    }

    /// Every buffer with its full name, in visiting order.
    fn named_buffers(&self) -> Vec<(String, Tensor<T>)> {
        let mut out = Vec::new();
        self.visit_buffers("", &mut |name, t| out.push((name, t)));
        out
    }

    /// Total number of scalar parameters.
    fn num_params(&self) -> usize {
        self.named_params()
            .iter()
            .map(|(_, p)| p.value().len())
            .sum()
    }
}

/// A boxed module is a module, so that a struct deriving `Module` can hold
/// `Vec<Box<dyn Module<T>>>` as `Sequential` does.
impl<T: Float, M: Module<T> + ?Sized> Module<T> for Box<M> {
    fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        (**self).forward(x)
    }
    fn predict(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
        (**self).predict(x)
    }
    fn visit_params<'a>(&'a self, prefix: &str, f: &mut dyn FnMut(String, &'a Param<T>)) {
        (**self).visit_params(prefix, f)
    }
    fn visit_params_mut<'a>(
        &'a mut self,
        prefix: &str,
        f: &mut dyn FnMut(String, &'a mut Param<T>),
    ) {
        (**self).visit_params_mut(prefix, f)
    }
    fn for_each_param_mut(&mut self, f: &mut dyn FnMut(&mut Param<T>)) {
        (**self).for_each_param_mut(f)
    }
    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(String, Tensor<T>)) {
        (**self).visit_buffers(prefix, f)
    }
    fn visit_buffers_mut(&mut self, prefix: &str, f: &mut dyn FnMut(String, &mut Tensor<T>)) {
        (**self).visit_buffers_mut(prefix, f)
    }
    fn couples_batch(&self) -> bool {
        (**self).couples_batch()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn children_mut(&mut self) -> Vec<(String, &mut dyn Module<T>)> {
        (**self).children_mut()
    }
    fn set_training(&mut self, training: bool) {
        (**self).set_training(training)
    }
}

/// `prefix.name`, or `name` alone when the prefix is empty.
pub fn join_name(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}
