//! The plain, serialisable description of an optimiser.

use crate::Optimizer;
use nabla_tensor::Float;

/// The update rule. Formulas follow PyTorch's `torch.optim` (the stated
/// reference for every test), with `g` the gradient after regularisation:
///
/// | method | state | update |
/// | --- | --- | --- |
/// | SGD | – | `w ← w - lr·g` |
/// | Momentum | `v` | `v ← μv + g`, `w ← w - lr·v` |
/// | Nesterov | `v` | `v ← μv + g`, `w ← w - lr·(g + μv)` |
/// | AdaGrad | `h` | `h ← h + g²`, `w ← w - lr·g / (√h + ε)` |
/// | RMSProp | `h` | `h ← αh + (1-α)g²`, `w ← w - lr·g / (√h + ε)` |
/// | Adam | `m, v` | `m ← β₁m + (1-β₁)g`, `v ← β₂v + (1-β₂)g²`, `w ← w - lr·m̂ / (√v̂ + ε)` with `m̂ = m/(1-β₁ᵗ)`, `v̂ = v/(1-β₂ᵗ)` |
/// | AdamW | `m, v` | Adam, with weight decay applied to `w` directly: `w ← w - lr·λw` first |
///
/// The book *Deep Learning from Scratch* writes momentum as `v ← μv - lr·g`,
/// `w ← w + v`; for a constant learning rate that is the same sequence of weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// Plain stochastic gradient descent.
    Sgd,
    /// Heavy-ball momentum.
    Momentum {
        /// μ, e.g. 0.9.
        momentum: f64,
    },
    /// Nesterov momentum.
    Nesterov {
        /// μ, e.g. 0.9.
        momentum: f64,
    },
    /// AdaGrad.
    AdaGrad {
        /// ε (PyTorch: 1e-10).
        eps: f64,
    },
    /// RMSProp.
    RmsProp {
        /// Decay α (PyTorch: 0.99).
        alpha: f64,
        /// ε (PyTorch: 1e-8).
        eps: f64,
    },
    /// Adam.
    Adam {
        /// β₁ (0.9).
        beta1: f64,
        /// β₂ (0.999).
        beta2: f64,
        /// ε (1e-8).
        eps: f64,
    },
    /// Adam with decoupled weight decay.
    AdamW {
        /// β₁ (0.9).
        beta1: f64,
        /// β₂ (0.999).
        beta2: f64,
        /// ε (1e-8).
        eps: f64,
    },
}

impl Method {
    /// Momentum 0.9.
    pub fn momentum() -> Self {
        Method::Momentum { momentum: 0.9 }
    }
    /// Nesterov momentum 0.9.
    pub fn nesterov() -> Self {
        Method::Nesterov { momentum: 0.9 }
    }
    /// AdaGrad with PyTorch's ε.
    pub fn adagrad() -> Self {
        Method::AdaGrad { eps: 1e-10 }
    }
    /// RMSProp with PyTorch's defaults.
    pub fn rmsprop() -> Self {
        Method::RmsProp {
            alpha: 0.99,
            eps: 1e-8,
        }
    }
    /// Adam with the usual defaults.
    pub fn adam() -> Self {
        Method::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
    /// AdamW with the usual defaults.
    pub fn adamw() -> Self {
        Method::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    /// Every method, each with its defaults (to compare them, or to test
    /// them all).
    pub fn all() -> [Method; 7] {
        [
            Method::Sgd,
            Method::momentum(),
            Method::nesterov(),
            Method::adagrad(),
            Method::rmsprop(),
            Method::adam(),
            Method::adamw(),
        ]
    }

    /// The lowercase name used on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Sgd => "sgd",
            Method::Momentum { .. } => "momentum",
            Method::Nesterov { .. } => "nesterov",
            Method::AdaGrad { .. } => "adagrad",
            Method::RmsProp { .. } => "rmsprop",
            Method::Adam { .. } => "adam",
            Method::AdamW { .. } => "adamw",
        }
    }

    /// State buffers kept per parameter.
    pub(crate) fn buffers(&self) -> usize {
        match self {
            Method::Sgd => 0,
            Method::Momentum { .. }
            | Method::Nesterov { .. }
            | Method::AdaGrad { .. }
            | Method::RmsProp { .. } => 1,
            Method::Adam { .. } | Method::AdamW { .. } => 2,
        }
    }
}

/// How an L1 penalty `λ₁·Σ|w|` enters the update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum L1Mode {
    /// Add the subgradient `λ₁·sign(w)` to each gradient (sign(0) = 0):
    /// weights shrink towards 0 but oscillate around it rather than reach it.
    #[default]
    Subgradient,
    /// After the method's step, soft-threshold each weight:
    /// `w ← sign(w)·max(|w| − lr·λ₁, 0)`, the proximal operator of the
    /// penalty, so weights smaller than `lr·λ₁` become exactly 0 (ISTA's
    /// step; for adaptive methods the threshold is not rescaled per weight).
    Proximal,
}

/// Everything that defines an optimiser; [`OptimizerConfig::init`] builds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimizerConfig {
    /// The update rule.
    pub method: Method,
    /// Learning rate (the material suggests starting around 0.01).
    pub lr: f64,
    /// L2 regularisation λ: adds `λ·w` to each gradient (for AdamW: decoupled
    /// decay `w ← w - lr·λ·w`). The penalty it corresponds to is `λ/2·Σw²`.
    pub weight_decay: f64,
    /// L1 regularisation λ₁ (penalty `λ₁·Σ|w|`), applied as `l1_mode` says.
    pub l1: f64,
    /// How the L1 penalty is applied.
    pub l1_mode: L1Mode,
    /// Rescales all gradients together when their global L2 norm exceeds this.
    pub clip_norm: Option<f64>,
}

impl OptimizerConfig {
    /// A config with no regularisation and no clipping.
    pub fn new(method: Method, lr: f64) -> Self {
        OptimizerConfig {
            method,
            lr,
            weight_decay: 0.0,
            l1: 0.0,
            l1_mode: L1Mode::Subgradient,
            clip_norm: None,
        }
    }

    /// Sets L2 weight decay.
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = wd;
        self
    }

    /// Sets L1 regularisation.
    pub fn l1(mut self, l1: f64) -> Self {
        self.l1 = l1;
        self
    }

    /// Sets proximal L1 regularisation (weights reach exactly 0): the step,
    /// then `w ← sign(w)·max(|w| − lr·λ₁, 0)`.
    pub fn l1_proximal(mut self, l1: f64) -> Self {
        self.l1 = l1;
        self.l1_mode = L1Mode::Proximal;
        self
    }

    /// Sets gradient clipping by global norm.
    pub fn clip_norm(mut self, max_norm: f64) -> Self {
        self.clip_norm = Some(max_norm);
        self
    }

    /// Builds the optimiser (its state is created on the first step).
    pub fn init<T: Float>(self) -> Optimizer<T> {
        Optimizer::new(self)
    }
}
