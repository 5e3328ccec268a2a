//! Errors of the graph: a tensor error from an op, or a misuse of the graph.

use nabla_tensor::{Shape, TensorError};

/// Result alias for the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the engine (graph, layers, losses, optimisers) can refuse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A tensor operation refused its operands (names the op and the shapes).
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// `backward` was called on an output with more than one element.
    #[error("backward: the output has shape {shape}, not one element; use backward_with and pass its gradient")]
    NotScalar {
        /// Shape of the output.
        shape: Shape,
    },
    /// A variable from one tape was used on another.
    #[error("{op}: the variable belongs to a different tape")]
    ForeignVar {
        /// The operation that was attempted.
        op: &'static str,
    },
    /// A configuration or argument that cannot be used, with the reason.
    #[error("{op}: {reason}")]
    InvalidArgument {
        /// Where it was refused.
        op: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(op: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            reason: reason.into(),
        }
    }
}
