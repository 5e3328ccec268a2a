//! # nabla-autograd
//!
//! The graph room of nabla: define-by-run reverse-mode differentiation.
//!
//! Operations on [`Var`]s record themselves on a [`Tape`], an append-only list
//! of nodes. Creation order is already a topological order, so
//! [`Tape::backward`] is one loop over the list in reverse: no recursion, no
//! web of reference-counted cells. Each op is one struct implementing [`Op`]
//! with its forward and its backward side by side (see `ops/`).
//!
//! Gradients live apart from values, in a [`Gradients`] store keyed by node and
//! by [`Param`] id, and they accumulate.
//!
//! ```
//! use nabla_autograd::Tape;
//! use nabla_tensor::Tensor;
//! // The material's apple example: price 100 × count 2 × tax 1.1 = 220.
//! let tape = Tape::<f64>::new();
//! let apple = tape.var(Tensor::scalar(100.0));
//! let count = tape.var(Tensor::scalar(2.0));
//! let tax = tape.var(Tensor::scalar(1.1));
//! let price = apple.mul(count)?.mul(tax)?;
//! let grads = tape.backward(price)?;
//! assert!((price.item()? - 220.0).abs() < 1e-9);
//! assert!((grads.get(apple).unwrap().item()? - 2.2).abs() < 1e-12); // count × tax
//! # Ok::<(), nabla_autograd::Error>(())
//! ```

pub mod anomaly;
mod error;
mod gradcheck;
mod grads;
pub mod inspect;
mod numeric;
mod op;
pub mod ops;
mod param;
mod ready;
mod tape;
mod var;

pub use error::{Error, Result};
pub use gradcheck::{
    compare_gradients, gradcheck, GradcheckOptions, GradcheckReport, TensorReport,
};
pub use grads::{all_finite, Gradients, OuterProduct, ParamGrad};
pub use inspect::{NodeKind, Summary, Trace, TraceNode};
pub use numeric::{
    gradient_descent, numerical_diff, numerical_gradient, numerical_gradient_with, Descent,
    DEFAULT_H,
};
pub use op::{InputGrads, Op, INLINE_INPUTS};
pub use ops::loss::{Reduction, Target};
pub use param::{Param, ParamId};
pub use ready::OnFinal;
pub use smallvec::smallvec;
pub use tape::{BatchPart, NodeView, Tape, Var};
