//! # nabla-optim
//!
//! Optimisers, regularisation, gradient clipping and learning-rate schedules.
//! This room needs parameters and gradients, not layers: a step takes the
//! parameters (`&mut [&mut Param]`) and a [`Gradients`](nabla_autograd::Gradients) store.
//!
//! ```
//! use nabla_autograd::{Param, Tape};
//! use nabla_optim::{Method, OptimizerConfig};
//! use nabla_tensor::Tensor;
//! // Minimise (w - 3)² with Adam.
//! let mut w = Param::new(Tensor::<f64>::scalar(0.0));
//! let mut opt = OptimizerConfig::new(Method::adam(), 0.1).init();
//! for _ in 0..500 {
//!     let tape = Tape::new();
//!     let loss = tape.param(&w).add_scalar(-3.0)?.pow(2.0)?;
//!     let grads = tape.backward(loss)?;
//!     opt.step(&mut [&mut w], &grads)?;
//! }
//! assert!((w.value().item()? - 3.0).abs() < 1e-3);
//! # Ok::<(), nabla_autograd::Error>(())
//! ```

mod clip;
mod config;
mod optimizer;
mod schedule;

pub use clip::{clip_grad_norm, grad_norm};
pub use config::{L1Mode, Method, OptimizerConfig};
pub use optimizer::{Optimizer, OptimizerState};
pub use schedule::LrSchedule;
