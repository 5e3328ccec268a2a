//! Trainable parameters: a tensor with a stable identity across graphs.

use nabla_tensor::{Float, Tensor};
use std::sync::atomic::{AtomicU64, Ordering};

/// A process-unique identity of a [`Param`]; gradients of parameters are keyed by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(u64);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl ParamId {
    fn fresh() -> Self {
        ParamId(NEXT_ID.fetch_add(1, Ordering::Relaxed))
    }
}

/// A trainable tensor owned by a layer.
///
/// Each forward pass registers it on a fresh [`Tape`](crate::Tape) with
/// [`Tape::param`](crate::Tape::param) (sharing the buffer, not copying it);
/// after backward its gradient is read with
/// [`Gradients::param`](crate::Gradients::param). A clone is a *new* parameter
/// with its own id, so two copies of a model never share gradients by accident.
#[derive(Debug)]
pub struct Param<T: Float = f32> {
    id: ParamId,
    value: Tensor<T>,
    version: u64,
}

impl<T: Float> Param<T> {
    /// A parameter holding `value`.
    pub fn new(value: Tensor<T>) -> Self {
        Param {
            id: ParamId::fresh(),
            value,
            version: 0,
        }
    }

    /// Its identity.
    pub fn id(&self) -> ParamId {
        self.id
    }

    /// Its current value.
    pub fn value(&self) -> &Tensor<T> {
        &self.value
    }

    /// How many times its value has been handed out for writing
    /// ([`Param::value_mut`], [`Param::set`]). Together with [`Param::id`]
    /// it tells a copy derived from the value (a layer's transposed weights
    /// for inference) whether it is still current.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Mutable access to its value (optimisers update it in place).
    pub fn value_mut(&mut self) -> &mut Tensor<T> {
        self.version += 1;
        &mut self.value
    }

    /// Replaces the value, which must keep the same shape.
    ///
    /// # Errors
    /// [`Error::Tensor`](crate::Error::Tensor) with a shape mismatch.
    pub fn set(&mut self, value: Tensor<T>) -> crate::Result<()> {
        value.expect_shape("Param::set", self.value.shape())?;
        self.version += 1;
        self.value = value;
        Ok(())
    }
}

impl<T: Float> Clone for Param<T> {
    fn clone(&self) -> Self {
        Param::new(self.value.clone())
    }
}
