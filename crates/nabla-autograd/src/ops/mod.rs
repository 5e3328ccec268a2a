//! The differentiable operations, one struct each, forward and backward together.
//!
//! Users call them through [`Var`](crate::Var) methods; the structs are public
//! so that a new op can be written outside the crate and applied with
//! [`Tape::apply`](crate::Tape::apply).

pub mod arith;
pub mod conv;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod shape;
pub mod softmax;
pub mod unary;

use nabla_tensor::{Float, Tensor};

/// The gradient `g` for input `i`, computed by `f` only when `needs[i]`.
pub(crate) fn grad_if<T: Float>(
    needs: &[bool],
    i: usize,
    f: impl FnOnce() -> crate::Result<Tensor<T>>,
) -> crate::Result<Option<Tensor<T>>> {
    if needs.get(i).copied().unwrap_or(false) {
        f().map(Some)
    } else {
        Ok(None)
    }
}
