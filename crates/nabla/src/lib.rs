//! # nabla
//!
//! Backpropagation made real: tensors, a computational graph that
//! differentiates itself, layers, losses, optimisers and numerical gradient
//! checks, in small crates with one purpose each. This crate re-exports them:
//!
//! - [`tensor`]: numbers — storage, shapes, broadcasting, GEMM, reductions, RNG
//! - [`autograd`]: the graph — tape, variables, ops, gradients, gradcheck
//! - [`nn`]: layers, losses, initialisation, the model gradient check
//! - [`optim`]: optimisers, regularisation, clipping, schedules
//! - [`data`]: the `Dataset` trait; tensors, CSV tables, image folders, MNIST
//! - [`train`]: the trainer (any module, loss and data set), metrics, checkpoints
//!
//! The numbered examples in `examples/` are a tutorial to read in order; the
//! test suite runs every one of them.
//!
//! ```
//! use nabla::prelude::*;
//! // The material's PyTorch example in nabla: d(x·w)/dw = x.
//! let tape = Tape::<f64>::new();
//! let w = tape.var(Tensor::scalar(1.0));
//! let y = tape.constant(Tensor::scalar(3.0)).mul(w)?;
//! assert_eq!(tape.backward(y)?.get(w).unwrap().item()?, 3.0);
//! # Ok::<(), nabla::autograd::Error>(())
//! ```

pub use nabla_autograd as autograd;
pub use nabla_data as data;
pub use nabla_nn as nn;
pub use nabla_optim as optim;
pub use nabla_tensor as tensor;
pub use nabla_train as train;

/// The names most programs need.
pub mod prelude {
    pub use nabla_autograd::{
        gradcheck, numerical_gradient, Gradients, Param, Reduction, Tape, Target, Trace, Var,
    };
    pub use nabla_data::{Dataset, Table, Task, TensorDataset};
    pub use nabla_nn::{
        load_state, loss, save_state, Activation, Init, Linear, MlpConfig, Module, Sequential,
    };
    pub use nabla_optim::{LrSchedule, Method, Optimizer, OptimizerConfig};
    pub use nabla_tensor::{Float, Rng, Tensor};
    pub use nabla_train::{
        evaluate, loss_fn, Observer, Silent, StandardLoss, Targets, TrainConfig, Trainer,
    };
}
