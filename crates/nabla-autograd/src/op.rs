//! The contract every differentiable operation fulfils.

use crate::Result;
use nabla_tensor::{Float, Tensor};
use smallvec::SmallVec;
use std::any::Any;

/// Inputs an op may have before its gradient list spills to the heap.
pub const INLINE_INPUTS: usize = 4;

/// One gradient per input of an op (`None` where none is needed), kept
/// inline for up to [`INLINE_INPUTS`] inputs so backward allocates no list.
/// Build one with `smallvec![...]` (re-exported by this crate).
pub type InputGrads<T> = SmallVec<[Option<Tensor<T>>; INLINE_INPUTS]>;

/// One differentiable operation: its forward and its backward, in one place.
///
/// `forward` runs once, before the op is recorded; it may keep in `self`
/// whatever backward needs (a mask, the softmax probabilities). `backward`
/// receives the same inputs, the forward output and the gradient flowing into
/// the output, and returns one gradient per input, shaped like that input —
/// or `None` where `needs_grad` says nobody will read it, so work such as
/// `dx` of a first layer is skipped.
///
/// Backward never mutates its inputs. See `docs/adding-an-op.md`.
///
/// Ops are `Send` so that a tape can be kept and reused across threads, and
/// `Any` so that a reused tape can recycle the storage of the op it recorded
/// at the same position in the previous pass.
pub trait Op<T: Float>: Any + Send {
    /// Name used in errors and reports.
    fn name(&self) -> &'static str;

    /// Computes the output from the inputs.
    ///
    /// # Errors
    /// When the inputs' shapes do not suit the op.
    fn forward(&mut self, inputs: &[&Tensor<T>]) -> Result<Tensor<T>>;

    /// Computes `∂L/∂input` for each input from `∂L/∂output`.
    ///
    /// # Errors
    /// Only on internal shape inconsistencies; forward has validated the inputs.
    fn backward(
        &self,
        inputs: &[&Tensor<T>],
        output: &Tensor<T>,
        grad_output: &Tensor<T>,
        needs_grad: &[bool],
    ) -> Result<InputGrads<T>>;

    /// `∂L/∂input` for input `input` as the outer product `u vᵀ` of two
    /// vectors, returned as `(u, v)` without forming the product, where the
    /// op's gradient has that form for this `grad_output`; `None` (the
    /// default) where it has not. A matrix product on one row has it: the
    /// weight gradient of `x · Wᵀ` at batch 1 is `gᵀ x`. Backward asks for
    /// it only when the gradient store keeps outer products (see
    /// [`crate::Gradients::keep_outer_products`]), so that an optimiser can
    /// apply it in one pass over the weight instead of three.
    ///
    /// The product formed from `(u, v)` must be the bits `backward` returns.
    fn outer_grad(
        &self,
        inputs: &[&Tensor<T>],
        grad_output: &Tensor<T>,
        input: usize,
    ) -> Option<(Tensor<T>, Tensor<T>)> {
        let _ = (inputs, grad_output, input);
        None
    }

    /// Takes over the storage of `previous`, the op of the same type that a
    /// reused tape recorded at this position before it was reset, so that
    /// scratch an op keeps for its backward (max pooling's argmax) is not
    /// allocated again every pass. The default keeps nothing.
    fn reuse_storage(&mut self, previous: &mut Self)
    where
        Self: Sized,
    {
        let _ = previous;
    }
}
