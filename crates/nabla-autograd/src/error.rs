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
    /// With anomaly detection on: the first NaN or ±∞ an op computed
    /// (forward) or returned as a gradient (backward).
    #[error("anomaly in the {phase} pass of {op} (node {node}{}): {detail}", layer.as_ref().map(|l| format!(", layer {l}")).unwrap_or_default())]
    Anomaly {
        /// Forward or backward.
        phase: crate::anomaly::Phase,
        /// The op.
        op: &'static str,
        /// Its node on the tape.
        node: usize,
        /// The scope (layer) it was recorded in, when the tape records scopes.
        layer: Option<String>,
        /// What was not finite, the likely cause and the inputs' statistics.
        detail: String,
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
