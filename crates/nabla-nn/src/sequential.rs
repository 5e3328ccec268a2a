//! A chain of layers.

use crate::Module;
use nabla_autograd::{Result, Var};
use nabla_tensor::{Float, Tensor};

/// Layers applied in order; child `i` is named `i`, so parameters are named
/// `0.weight`, `0.bias`, `2.weight`, … exactly as in a PyTorch `nn.Sequential`.
///
/// A chain may declare the shape of one sample ([`Sequential::with_input_shape`]):
/// a convolutional network takes `[C, H, W]` images, and rows of flat pixels
/// `[N, C·H·W]` (as datasets hand them out) are then viewed as `[N, C, H, W]`.
#[derive(Default, Module)]
#[module(crate = crate, predict, describe)]
pub struct Sequential<T: Float = f32> {
    #[module(flatten)]
    layers: Vec<Box<dyn Module<T>>>,
    input: Vec<usize>,
}

impl<T: Float> std::fmt::Debug for Sequential<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl<T: Float> Sequential<T> {
    /// An empty chain.
    pub fn new() -> Self {
        Sequential {
            layers: Vec::new(),
            input: Vec::new(),
        }
    }

    /// Declares the shape of one input sample (builder style), e.g. `[1, 28, 28]`.
    pub fn with_input_shape(mut self, dims: &[usize]) -> Self {
        self.input = dims.to_vec();
        self
    }

    /// The declared shape of one sample (empty when none was declared).
    pub fn input_shape(&self) -> &[usize] {
        &self.input
    }

    /// Appends a layer (builder style).
    pub fn push(mut self, layer: impl Module<T> + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// Appends a boxed layer.
    pub fn push_boxed(&mut self, layer: Box<dyn Module<T>>) {
        self.layers.push(layer);
    }

    /// `[N, …sample shape]` for rows of flat samples `[N, features]`
    /// when a sample shape of more than one axis is declared and has that
    /// many features; `None` when the input is to be passed on as it is.
    fn samples_view(&self, dims: &[usize]) -> Option<Vec<usize>> {
        // Checked: the declared shape may come from a model file.
        let flat = self.input.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        match *dims {
            [n, features] if self.input.len() > 1 && Some(features) == flat => Some(
                std::iter::once(n)
                    .chain(self.input.iter().copied())
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Box<dyn Module<T>>] {
        &self.layers
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True when there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

/// The chain's passes; `Module` hands `forward`, `predict` and `describe`
/// here, and its visitors are derived (children named `0`, `1`, …).
impl<T: Float> Sequential<T> {
    /// Each layer's `forward` in turn.
    ///
    /// # Errors
    /// The first layer's error.
    pub fn forward<'t>(&self, x: Var<'t, T>) -> Result<Var<'t, T>> {
        self.forward_each(x, |_, _| {})
    }

    /// [`Sequential::forward`], keeping every layer's output: element `i`
    /// is what layer `i` gave (so the last is the chain's output). With a
    /// gradient store from a backward pass, [`nabla_autograd::Gradients::get`]
    /// then gives the gradient that reached each layer.
    ///
    /// # Errors
    /// The first layer's error.
    pub fn forward_layers<'t>(&self, x: Var<'t, T>) -> Result<Vec<Var<'t, T>>> {
        let mut outputs = Vec::with_capacity(self.layers.len());
        self.forward_each(x, |_, y| outputs.push(y))?;
        Ok(outputs)
    }

    /// The forward pass, handing each layer's output to `each`.
    fn forward_each<'t>(
        &self,
        mut x: Var<'t, T>,
        mut each: impl FnMut(usize, Var<'t, T>),
    ) -> Result<Var<'t, T>> {
        if let Some(dims) = self.samples_view(x.shape().dims()) {
            x = x.reshape(&dims)?;
        }
        for (i, layer) in self.layers.iter().enumerate() {
            // Named like the layer's parameters (`0.weight`), for inspectors.
            x = x
                .tape()
                .scope(|| format!("{i}: {}", layer.describe()), || layer.forward(x))?;
            each(i, x);
        }
        Ok(x)
    }

    /// Each layer's `predict` in turn.
    ///
    /// # Errors
    /// The first layer's error.
    pub fn predict(&self, x: &Tensor<T>) -> Result<Tensor<T>> {
        let mut x = match self.samples_view(x.dims()) {
            Some(dims) => x.reshape(&dims)?,
            None => x.clone(),
        };
        for layer in &self.layers {
            x = layer.predict(&x)?;
        }
        Ok(x)
    }

    /// `Sequential[Linear(784 → 100), Relu, …]`.
    pub fn describe(&self) -> String {
        let inner: Vec<String> = self.layers.iter().map(|l| l.describe()).collect();
        format!("Sequential[{}]", inner.join(", "))
    }
}
