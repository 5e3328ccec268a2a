//! Graphviz DOT of a [`Trace`].

use super::{Summary, Trace, TraceNode, FULL_VALUES};
use std::fmt::Write;

/// Whether a node's value is small enough to be written on its edges, as
/// the material writes 100 and 2.2 on the edge out of the apple's price.
pub(super) fn on_edges(n: &TraceNode) -> bool {
    n.value.count <= FULL_VALUES.min(2)
}

/// Whether a node's box shows its value and gradient: unless its edges out
/// carry them.
pub(super) fn values_inside(t: &Trace, n: &TraceNode) -> bool {
    !on_edges(n) || !t.nodes.iter().any(|m| m.inputs.contains(&n.id))
}

/// The lines of a node's box: its title, its shape when not a scalar, its
/// value and its gradient (the last two only when its edges do not carry them).
pub(super) fn lines(n: &TraceNode) -> (String, Vec<String>, Option<String>) {
    let mut body = Vec::new();
    let title = match (&n.name, n.kind) {
        (Some(name), super::NodeKind::Op(op)) => format!("{name} ({op})"),
        _ => n.title(),
    };
    if n.shape.len() > 1 || n.value.count > 1 {
        body.push(format!("{:?}", n.shape));
    }
    body.push(n.value.describe());
    let grad = n
        .grad
        .as_ref()
        .map(|g: &Summary| format!("∂ {}", g.describe()));
    (title, body, grad)
}

/// `s` with the characters an HTML-like label reserves escaped.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(super) fn write(t: &Trace) -> String {
    let mut out = String::from(
        "digraph nabla {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", fontsize=10];\n",
    );
    let mut scopes: Vec<&str> = Vec::new();
    for n in &t.nodes {
        if let Some(s) = n.scope.as_deref() {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
    }
    for (k, scope) in scopes.iter().enumerate() {
        let _ = writeln!(
            out,
            "  subgraph cluster_{k} {{\n    label=<{}>;\n    style=\"rounded,filled\";\n    fillcolor=\"#f4f4f8\";\n    color=\"#9999aa\";",
            escape(scope)
        );
        for n in t.nodes.iter().filter(|n| n.scope.as_deref() == Some(scope)) {
            let _ = writeln!(out, "    n{};", n.id);
        }
        out.push_str("  }\n");
    }
    for n in &t.nodes {
        let (title, body, grad) = lines(n);
        let mut label = format!("<b>{}</b>", escape(&title));
        if values_inside(t, n) {
            for line in &body {
                let _ = write!(label, "<br/>{}", escape(line));
            }
            if let Some(g) = &grad {
                let _ = write!(label, "<br/><font color=\"#c0392b\">{}</font>", escape(g));
            }
        }
        let shape = match n.kind {
            super::NodeKind::Op(_) => "ellipse",
            _ => "box",
        };
        let _ = writeln!(out, "  n{} [shape={shape}, label=<{label}>];", n.id);
    }
    for n in &t.nodes {
        for &i in &n.inputs {
            let src = &t.nodes[i];
            if on_edges(src) {
                let grad = src
                    .grad
                    .as_ref()
                    .map(|g| {
                        format!(
                            "<br/><font color=\"#c0392b\">{}</font>",
                            escape(&g.describe())
                        )
                    })
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  n{i} -> n{} [label=<{}{grad}>];",
                    n.id,
                    escape(&src.value.describe())
                );
            } else {
                let _ = writeln!(out, "  n{i} -> n{};", n.id);
            }
        }
    }
    out.push_str("}\n");
    out
}
