//! Anomaly detection: with [`crate::Tape::set_detect_anomaly`] on, every
//! value an op computes and every gradient its backward returns is checked
//! for NaN and ±∞, and the first one stops the pass with an
//! [`Error::Anomaly`] that names the op, its node, its layer and what its
//! inputs held — usually enough to say why (`log of 0`, `exp overflow`).

use crate::inspect::{number, Summary};
use crate::Error;
use nabla_tensor::{Float, Tensor};

/// Where an anomaly was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// In the value an op computed.
    Forward,
    /// In the gradient an op's backward returned for one of its inputs.
    Backward,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Forward => "forward",
            Phase::Backward => "backward",
        })
    }
}

/// Whether every element of `t` is finite.
pub(crate) fn all_finite<T: Float>(t: &Tensor<T>) -> bool {
    crate::grads::all_finite(t.data())
}

/// What kind of non-finite values `t` holds: `NaN`, `+∞`, `NaN and ∞`…, and how many.
fn kinds<T: Float>(t: &Tensor<T>) -> String {
    let (mut nan, mut inf) = (0usize, 0usize);
    for v in t.data() {
        let v = v.to_f64();
        if v.is_nan() {
            nan += 1;
        } else if v.is_infinite() {
            inf += 1;
        }
    }
    let total = t.len();
    match (nan, inf) {
        (n, 0) => format!("NaN in {n} of {total} values"),
        (0, i) => format!("±∞ in {i} of {total} values"),
        (n, i) => format!("NaN in {n} and ±∞ in {i} of {total} values"),
    }
}

/// The likely cause of a gradient that is not finite although the one
/// arriving is: a local derivative that is infinite where the input is.
fn backward_cause<T: Float>(op: &str, inputs: &[&Tensor<T>]) -> Option<String> {
    let x = Summary::of(inputs.first()?.data());
    match op {
        "sqrt" if x.min == 0.0 => {
            Some("√x has an infinite slope at 0 (the derivative 1/(2√x))".into())
        }
        "log" if x.min == 0.0 => Some("the derivative 1/x of log is infinite at 0".into()),
        "pow" if x.min == 0.0 => Some("x^(p−1) is infinite at 0 for p < 1".into()),
        _ => None,
    }
}

/// The likely cause, from the op and its inputs' values.
fn cause<T: Float>(op: &str, inputs: &[&Tensor<T>]) -> String {
    if let Some((k, bad)) = inputs.iter().enumerate().find(|(_, t)| !all_finite(t)) {
        return format!("its input {k} already holds {}", kinds(bad));
    }
    let s: Vec<Summary> = inputs.iter().map(|t| Summary::of(t.data())).collect();
    // ln of the largest finite value.
    let exp_limit = if T::NAME == "f32" { 88.72 } else { 709.78 };
    match (op, s.first()) {
        ("log", Some(x)) if x.min == 0.0 => "log of 0".into(),
        ("log", Some(x)) if x.min < 0.0 => format!(
            "log of a negative number (smallest input {})",
            number(x.min)
        ),
        ("exp", Some(x)) if x.max > exp_limit => {
            format!("exp overflow, largest input {}", number(x.max))
        }
        ("sqrt", Some(x)) if x.min < 0.0 => format!(
            "square root of a negative number (smallest input {})",
            number(x.min)
        ),
        ("div", _) if s.get(1).is_some_and(|d| d.min <= 0.0 && d.max >= 0.0) => {
            let zeros = inputs[1]
                .data()
                .iter()
                .filter(|v| v.to_f64() == 0.0)
                .count();
            format!("division by 0 ({zeros} zero divisors)")
        }
        ("pow", Some(x)) if x.min <= 0.0 => {
            format!("power of a number ≤ 0 (smallest input {})", number(x.min))
        }
        _ => {
            let largest = s
                .iter()
                .map(|x| x.min.abs().max(x.max.abs()))
                .fold(0.0, f64::max);
            format!(
                "overflow: the largest input magnitude is {}",
                number(largest)
            )
        }
    }
}

/// The error for non-finite values out of `op` at `node`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn anomaly<T: Float>(
    phase: Phase,
    op: &'static str,
    node: usize,
    layer: Option<&str>,
    inputs: &[&Tensor<T>],
    bad: &Tensor<T>,
    grad_output: Option<&Tensor<T>>,
    input: Option<usize>,
) -> Error {
    let what = match (phase, input) {
        (Phase::Backward, Some(k)) => format!("the gradient for input {k} holds {}", kinds(bad)),
        _ => format!("the result holds {}", kinds(bad)),
    };
    let why = match (phase, grad_output) {
        (Phase::Backward, Some(g)) if !all_finite(g) => {
            format!("the gradient arriving already holds {}", kinds(g))
        }
        (Phase::Backward, Some(g)) => {
            let arriving = Summary::of(g.data());
            let local = backward_cause(op, inputs).unwrap_or_else(|| cause(op, inputs));
            format!("{local}; the gradient arriving is {}", arriving.describe())
        }
        _ => cause(op, inputs),
    };
    let stats = inputs
        .iter()
        .enumerate()
        .map(|(k, t)| {
            format!(
                "input {k} {:?}: {}",
                t.dims(),
                Summary::of(t.data()).describe()
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Error::Anomaly {
        phase,
        op,
        node,
        layer: layer.map(str::to_string),
        detail: format!("{what}: {why} ({stats})"),
    }
}
