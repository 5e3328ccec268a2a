//! The whole-model gradient check: per parameter tensor, backprop against
//! central differences, and the first layer whose own backward disagrees.

use crate::{join_name, Module};
use nabla_autograd::{compare_gradients, GradcheckOptions, GradcheckReport, Result, Tape, Var};
use nabla_tensor::{Rng, Tensor};
use std::fmt;

/// Options of [`check_model_gradients`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ModelCheckOptions {
    /// Step and tolerances (PyTorch's by default).
    pub check: GradcheckOptions,
    /// Check only this many randomly chosen coordinates per tensor (all when
    /// `None`): a 784-100-10 network has 79,510 parameters, each needing two
    /// forward passes.
    pub samples_per_tensor: Option<usize>,
    /// Seed of the coordinate sample.
    pub seed: u64,
}

/// The outcome of a whole-model check.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelGradReport {
    /// One report per parameter tensor, named as in the model (`0.weight`).
    pub report: GradcheckReport,
    /// When the check failed: the first layer (by name and description) whose
    /// own backward disagrees with numerical differentiation, if one does.
    pub first_bad_layer: Option<String>,
}

impl ModelGradReport {
    /// True when every parameter tensor passed.
    pub fn passed(&self) -> bool {
        self.report.passed()
    }
}

impl fmt::Display for ModelGradReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.report)?;
        match (&self.first_bad_layer, self.passed()) {
            (_, true) => writeln!(f, "all parameter gradients agree with central differences"),
            (Some(layer), false) => writeln!(f, "first layer whose backward disagrees: {layer}"),
            (None, false) => writeln!(f, "every layer passes on its own; check the loss"),
        }
    }
}

type Head<'h> = &'h dyn for<'t> Fn(Var<'t, f64>) -> Result<Var<'t, f64>>;

/// Checks every parameter gradient of `model` for the scalar `loss(model(x))`.
///
/// When the check fails, each layer is then checked on its own (with the
/// input it really receives and a random projection of its output), in order,
/// to name the first one whose backward is wrong.
///
/// # Errors
/// Whatever the forward pass or the loss returns.
pub fn check_model_gradients<M: Module<f64>>(
    model: &mut M,
    loss: impl for<'t> Fn(Var<'t, f64>) -> Result<Var<'t, f64>>,
    x: &Tensor<f64>,
    opts: &ModelCheckOptions,
) -> Result<ModelGradReport> {
    let report = check_module(model, x, &loss, opts, false)?;
    let first_bad_layer = if report.passed() {
        None
    } else {
        locate(model, x, "", opts)?
    };
    Ok(ModelGradReport {
        report,
        first_bad_layer,
    })
}

fn forward_value(module: &dyn Module<f64>, x: &Tensor<f64>) -> Result<Tensor<f64>> {
    let tape = Tape::<f64>::new();
    tape.set_grad_enabled(false);
    Ok(module.forward(tape.constant(x.clone()))?.value())
}

/// Checks one module's parameters (and, with `check_input`, its input gradient).
fn check_module(
    module: &mut dyn Module<f64>,
    x: &Tensor<f64>,
    head: Head<'_>,
    opts: &ModelCheckOptions,
    check_input: bool,
) -> Result<GradcheckReport> {
    let eval = |m: &dyn Module<f64>, x: &Tensor<f64>| -> Result<f64> {
        let tape = Tape::<f64>::new();
        tape.set_grad_enabled(false);
        head(m.forward(tape.constant(x.clone()))?)?.item()
    };
    // Analytic gradients, one backward pass.
    let tape = Tape::<f64>::new();
    let input = tape.var(x.clone());
    let grads = tape.backward(head(module.forward(input)?)?)?;
    let named: Vec<(String, Tensor<f64>)> = module
        .named_params()
        .into_iter()
        .map(|(name, p)| {
            (
                name,
                grads
                    .param(p)
                    .cloned()
                    .unwrap_or_else(|| p.value().zeros_like()),
            )
        })
        .collect();
    let input_grad = grads.get(input).cloned().unwrap_or_else(|| x.zeros_like());

    let mut rng = Rng::seed(opts.seed);
    let eps = opts.check.eps;
    let mut tensors = Vec::new();
    for (k, (name, analytic)) in named.iter().enumerate() {
        let mut numeric = Vec::new();
        for i in sample(analytic.len(), opts.samples_per_tensor, &mut rng) {
            let orig = module.params_mut()[k].value().data()[i];
            module.params_mut()[k].value_mut().data_mut()[i] = orig + eps;
            let plus = eval(module, x)?;
            module.params_mut()[k].value_mut().data_mut()[i] = orig - eps;
            let minus = eval(module, x)?;
            module.params_mut()[k].value_mut().data_mut()[i] = orig;
            numeric.push((i, (plus - minus) / (2.0 * eps)));
        }
        tensors.push(compare_gradients(name, analytic, &numeric, &opts.check));
    }
    if check_input {
        let mut work = x.clone();
        let mut numeric = Vec::new();
        for i in sample(x.len(), opts.samples_per_tensor, &mut rng) {
            let orig = x.data()[i];
            work.data_mut()[i] = orig + eps;
            let plus = eval(module, &work)?;
            work.data_mut()[i] = orig - eps;
            let minus = eval(module, &work)?;
            work.data_mut()[i] = orig;
            numeric.push((i, (plus - minus) / (2.0 * eps)));
        }
        tensors.push(compare_gradients(
            "input",
            &input_grad,
            &numeric,
            &opts.check,
        ));
    }
    Ok(GradcheckReport { tensors })
}

/// All indices, or `k` distinct ones drawn at random (sorted).
fn sample(len: usize, k: Option<usize>, rng: &mut Rng) -> Vec<usize> {
    let mut all: Vec<usize> = (0..len).collect();
    match k {
        Some(k) if k < len => {
            rng.shuffle(&mut all);
            all.truncate(k);
            all.sort_unstable();
            all
        }
        _ => all,
    }
}

/// Checks one layer on its own: the gradients of its parameters and of its
/// input, for `Σ layer(x) ⊙ r` with a fixed random `r` (so errors that cancel
/// in a plain sum still show).
///
/// # Errors
/// Whatever the layer's forward returns.
pub fn check_layer_gradients(
    layer: &mut dyn Module<f64>,
    x: &Tensor<f64>,
    opts: &ModelCheckOptions,
) -> Result<GradcheckReport> {
    let out = forward_value(layer, x)?;
    let r: Tensor<f64> = Rng::seed(opts.seed ^ 0x5eed).normal(out.dims(), 0.0, 1.0);
    check_module(layer, x, &projection(r), opts, true)
}

/// The head `Σ y ⊙ r` that turns a layer's output into a scalar.
fn projection(r: Tensor<f64>) -> impl for<'t> Fn(Var<'t, f64>) -> Result<Var<'t, f64>> {
    move |y| y.mul(y.tape().constant(r.clone()))?.sum()
}

/// Depth-first, in forward order: the first leaf layer that fails on its own.
fn locate(
    module: &mut dyn Module<f64>,
    x: &Tensor<f64>,
    prefix: &str,
    opts: &ModelCheckOptions,
) -> Result<Option<String>> {
    let children = module.children_mut();
    if children.is_empty() {
        let report = check_layer_gradients(module, x, opts)?;
        let name = if prefix.is_empty() {
            module.describe()
        } else {
            format!("{prefix} ({})", module.describe())
        };
        return Ok((!report.passed()).then_some(name));
    }
    let mut input = x.clone();
    for (name, child) in children {
        let full = join_name(prefix, &name);
        if let Some(bad) = locate(child, &input, &full, opts)? {
            return Ok(Some(bad));
        }
        input = forward_value(child, &input)?;
    }
    Ok(None)
}
