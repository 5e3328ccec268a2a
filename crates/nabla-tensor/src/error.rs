//! Errors of tensor operations: each names the operation and the shapes involved.

use crate::Shape;

/// Result alias for tensor operations.
pub type Result<T, E = TensorError> = std::result::Result<T, E>;

/// Everything a tensor operation can refuse, with what a user needs to act on it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TensorError {
    /// Two operands whose shapes cannot be combined.
    #[error("{op}: shapes {lhs} and {rhs} are not compatible")]
    ShapeMismatch {
        /// The operation that was attempted.
        op: &'static str,
        /// Shape of the left operand.
        lhs: Shape,
        /// Shape of the right operand.
        rhs: Shape,
    },
    /// A buffer whose length does not match the requested shape.
    #[error("{op}: shape {shape} needs {expected} elements, got {found}")]
    DataLength {
        /// The operation that was attempted.
        op: &'static str,
        /// The requested shape.
        shape: Shape,
        /// Elements the shape needs.
        expected: usize,
        /// Elements supplied.
        found: usize,
    },
    /// An axis that the tensor does not have.
    #[error("{op}: axis {axis} is out of range for a tensor of shape {shape}")]
    AxisOutOfRange {
        /// The operation that was attempted.
        op: &'static str,
        /// The axis asked for.
        axis: usize,
        /// The tensor's shape.
        shape: Shape,
    },
    /// A tensor of the wrong rank for the operation.
    #[error("{op}: expected a tensor of rank {expected}, got shape {shape}")]
    RankMismatch {
        /// The operation that was attempted.
        op: &'static str,
        /// Rank the operation needs.
        expected: usize,
        /// The shape supplied.
        shape: Shape,
    },
    /// An index past the end of an axis (e.g. a class label ≥ the class count).
    #[error("{op}: index {index} is out of range (must be < {bound})")]
    IndexOutOfRange {
        /// The operation that was attempted.
        op: &'static str,
        /// The offending index.
        index: usize,
        /// The exclusive upper bound.
        bound: usize,
    },
    /// Any other invalid argument, with the reason.
    #[error("{op}: {reason}")]
    InvalidArgument {
        /// The operation that was attempted.
        op: &'static str,
        /// What was wrong.
        reason: String,
    },
}
