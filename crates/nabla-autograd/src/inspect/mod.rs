//! A read-only view of a recorded tape: the computational graph of one pass,
//! with every node's value and, after backward, its gradient — the
//! material's picture of a value on every edge going forward and a
//! derivative on every edge coming back.
//!
//! [`Trace::of`] copies what a tape holds into plain data; [`Trace::table`]
//! prints it, [`Trace::dot`] writes Graphviz DOT and [`Trace::svg`] draws it
//! with nabla's own layered layout (no system Graphviz needed).

mod dot;
mod rules;
mod svg;

use crate::{Gradients, ParamId, Tape};
use nabla_tensor::Float;
use std::fmt::Write;

pub use rules::rule;

/// Values up to this many are shown in full; larger tensors are summarised.
pub const FULL_VALUES: usize = 6;

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A leaf that requires grad (`Tape::var`).
    Input,
    /// A trainable parameter (`Tape::param`).
    Param,
    /// A constant: data, or a result computed without a graph.
    Constant,
    /// The result of an op, by the op's name.
    Op(&'static str),
}

/// A tensor's values in a few numbers (or all of them, when few).
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Elements.
    pub count: usize,
    /// Smallest and largest finite element.
    pub min: f64,
    /// Largest finite element.
    pub max: f64,
    /// Mean of the finite elements.
    pub mean: f64,
    /// Standard deviation of the finite elements.
    pub std: f64,
    /// Elements that are NaN or ±∞.
    pub non_finite: usize,
    /// Every element, when there are at most [`FULL_VALUES`].
    pub values: Option<Vec<f64>>,
}

impl Summary {
    /// The summary of `data`.
    pub fn of<T: Float>(data: &[T]) -> Summary {
        let finite: Vec<f64> = data
            .iter()
            .map(|v| v.to_f64())
            .filter(|v| v.is_finite())
            .collect();
        let n = finite.len().max(1) as f64;
        let mean = finite.iter().sum::<f64>() / n;
        let var = finite.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        Summary {
            count: data.len(),
            min: finite.iter().copied().fold(f64::INFINITY, f64::min),
            max: finite.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            mean,
            std: var.sqrt(),
            non_finite: data.len() - finite.len(),
            values: (data.len() <= FULL_VALUES).then(|| data.iter().map(|v| v.to_f64()).collect()),
        }
    }

    /// `220`, `[0.1, -2]`, or `μ 0.013 σ 0.21 [-0.9, 1.2]` (mean, standard
    /// deviation, smallest and largest; and how
    /// many are not finite).
    pub fn describe(&self) -> String {
        let mut s = match &self.values {
            Some(v) if v.len() == 1 => number(v[0]),
            Some(v) => format!(
                "[{}]",
                v.iter().map(|&x| number(x)).collect::<Vec<_>>().join(", ")
            ),
            None if self.count == self.non_finite => String::new(),
            None => format!(
                "μ {} σ {} [{}, {}]",
                short(self.mean),
                short(self.std),
                short(self.min),
                short(self.max)
            ),
        };
        if self.values.is_none() && self.non_finite > 0 {
            if !s.is_empty() {
                s.push_str(", ");
            }
            let _ = write!(s, "{} not finite", self.non_finite);
        }
        s
    }
}

/// A number as a reader writes it: `220`, `2.2`, `0.0123`, `1.5e-7`.
pub fn number(v: f64) -> String {
    significant(v, 4)
}

/// Three significant digits, for summaries.
fn short(v: f64) -> String {
    significant(v, 3)
}

fn significant(v: f64, digits: i32) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:.1e}");
    }
    // `digits` significant digits, trailing zeros dropped.
    let decimals = (digits - 1 - a.log10().floor() as i32).clamp(0, 8) as usize;
    let s = format!("{v:.decimals$}");
    match s.contains('.') {
        true => s.trim_end_matches('0').trim_end_matches('.').to_string(),
        false => s,
    }
}

/// One node of a [`Trace`].
#[derive(Debug, Clone)]
pub struct TraceNode {
    /// Its position on the tape.
    pub id: usize,
    /// What it is.
    pub kind: NodeKind,
    /// A name given with `Var::named` or [`Trace::name_params`].
    pub name: Option<String>,
    /// The scope (layer) it was recorded in, when the tape recorded scopes.
    pub scope: Option<String>,
    /// The parameter it holds, for a parameter node.
    pub param: Option<ParamId>,
    /// The nodes it was computed from.
    pub inputs: Vec<usize>,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its value.
    pub value: Summary,
    /// `∂L/∂node`, when a backward pass reached it.
    pub grad: Option<Summary>,
}

impl TraceNode {
    /// The op's name, `input`, `param` or `constant`.
    pub fn what(&self) -> &'static str {
        match self.kind {
            NodeKind::Input => "input",
            NodeKind::Param => "param",
            NodeKind::Constant => "constant",
            NodeKind::Op(op) => op,
        }
    }

    /// Its name if it has one, else what it is.
    pub fn title(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => self.what().to_string(),
        }
    }
}

/// The recorded graph of one pass, copied out of a tape.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// Every node, in the order recorded (inputs before the nodes using them).
    pub nodes: Vec<TraceNode>,
}

impl Trace {
    /// What `tape` holds, with the gradients of `grads` (from a backward
    /// pass over this tape) where given.
    pub fn of<T: Float>(tape: &Tape<T>, grads: Option<&Gradients<T>>) -> Trace {
        let mut nodes = Vec::with_capacity(tape.len());
        tape.visit_nodes(|n| {
            let kind = match (n.op, n.is_param, n.requires_grad) {
                (Some(op), _, _) => NodeKind::Op(op),
                (None, true, _) => NodeKind::Param,
                (None, false, true) => NodeKind::Input,
                (None, false, false) => NodeKind::Constant,
            };
            nodes.push(TraceNode {
                id: n.id,
                kind,
                name: n.name.map(str::to_string),
                scope: n.scope.map(str::to_string),
                param: n.param,
                inputs: n.inputs.to_vec(),
                shape: n.value.dims().to_vec(),
                value: Summary::of(n.value.data()),
                grad: grads
                    .and_then(|g| g.node(tape.id(), n.id))
                    .map(|g| Summary::of(g.data())),
            });
        });
        Trace { nodes }
    }

    /// Names parameter nodes (`0.weight`) from `(id, name)` pairs, such as a
    /// module's named parameters.
    pub fn name_params(&mut self, names: impl IntoIterator<Item = (ParamId, String)>) {
        let names: std::collections::HashMap<ParamId, String> = names.into_iter().collect();
        for node in &mut self.nodes {
            if let Some(name) = node.param.and_then(|p| names.get(&p)) {
                node.name = Some(name.clone());
            }
        }
    }

    /// The trace as a table: a row per node (id, what, name, layer, inputs,
    /// shape, value, gradient), then the rule of every op that appears.
    pub fn table(&self) -> String {
        let rows: Vec<[String; 8]> = self
            .nodes
            .iter()
            .map(|n| {
                [
                    n.id.to_string(),
                    n.what().to_string(),
                    n.name.clone().unwrap_or_default(),
                    n.scope.clone().unwrap_or_default(),
                    n.inputs
                        .iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                    format!("{:?}", n.shape),
                    n.value.describe(),
                    n.grad
                        .as_ref()
                        .map(Summary::describe)
                        .unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        let head = [
            "node", "op", "name", "layer", "inputs", "shape", "value", "gradient",
        ];
        let mut width = head.map(|h| h.chars().count());
        for row in &rows {
            for (w, cell) in width.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[&str]| {
            let mut l = String::new();
            for (k, (cell, w)) in cells.iter().zip(width).enumerate() {
                let pad = w - cell.chars().count();
                match k {
                    0 => l.push_str(&format!("{}{cell}", " ".repeat(pad))),
                    _ => l.push_str(&format!("  {cell}{}", " ".repeat(pad))),
                }
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        line(&head);
        for row in &rows {
            line(&row.each_ref().map(String::as_str));
        }
        let mut seen = Vec::new();
        for n in &self.nodes {
            if let NodeKind::Op(op) = n.kind {
                if !seen.contains(&op) {
                    seen.push(op);
                }
            }
        }
        if !seen.is_empty() {
            out.push_str("\nlocal rules (g = ∂L/∂output):\n");
            for op in seen {
                let _ = writeln!(out, "  {op}: {}", rule(op));
            }
        }
        out
    }

    /// The graph in Graphviz DOT: nodes left to right, each edge labelled
    /// with the value going forward and, in red, the derivative coming
    /// back; nodes recorded in a scope are grouped in a cluster.
    pub fn dot(&self) -> String {
        dot::write(self)
    }

    /// The graph drawn as SVG by nabla's own layered layout: the same
    /// content as [`Trace::dot`], with no Graphviz needed.
    pub fn svg(&self) -> String {
        svg::draw(self)
    }
}
