//! A [`Trace`] drawn as SVG with a small layered layout (Sugiyama-style,
//! simplified): each node's column is one past its deepest input, leaves sit
//! just left of their first use, and each column is ordered by the mean
//! position of the nodes it connects to. Graphs here are a few dozen nodes
//! recorded in order, so two ordering sweeps are enough to keep most edges
//! from crossing; no system Graphviz is needed.

use super::dot::{lines, on_edges, values_inside};
use super::{Trace, TraceNode};
use std::fmt::Write;

const CHAR_W: f64 = 7.0;
const LINE_H: f64 = 15.0;
const PAD: f64 = 8.0;
const ROW_GAP: f64 = 26.0;
const COL_GAP_LABELS: f64 = 120.0;
const COL_GAP: f64 = 50.0;
const MARGIN: f64 = 20.0;
/// A drawing wider than this continues in a band below (between layers).
const MAX_WIDTH: f64 = 1800.0;
const BAND_GAP: f64 = 60.0;
const GRAD_COLOUR: &str = "#c0392b";

struct Placed {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Columns: one past the deepest input; a leaf one left of its first user.
/// A scope (layer) starts in a column of its own, so that layers' boxes do
/// not overlap: its first op leaves a free column for its leaves.
fn columns(t: &Trace) -> Vec<usize> {
    let n = t.nodes.len();
    let is_leaf = |id: usize| t.nodes[id].inputs.is_empty();
    let mut col = vec![0usize; n];
    let mut last_scope: Option<&str> = None;
    let mut widest = 0usize;
    for node in t.nodes.iter().filter(|m| !m.inputs.is_empty()) {
        let deepest = node
            .inputs
            .iter()
            .filter(|&&i| !is_leaf(i))
            .map(|&i| col[i] + 1);
        let mut c = deepest.max().unwrap_or(1).max(1);
        let scope = node.scope.as_deref();
        if scope.is_some() && scope != last_scope {
            let leaves = node.inputs.iter().any(|&i| is_leaf(i));
            c = c.max(widest + 1 + usize::from(leaves));
            last_scope = scope;
        }
        col[node.id] = c;
        widest = widest.max(c);
    }
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    for node in &t.nodes {
        for &i in &node.inputs {
            users[i].push(node.id);
        }
    }
    for node in &t.nodes {
        if node.inputs.is_empty() {
            let first_user = users[node.id].iter().copied().min_by_key(|&u| col[u]);
            if let Some(u) = first_user {
                // Data going into a layer (the image) sits outside its box.
                let outside = node.scope.is_none() && t.nodes[u].scope.is_some();
                col[node.id] = col[u].saturating_sub(1 + usize::from(outside));
            }
        }
    }
    // Without leaves in column 0 the drawing would start with a gap.
    let first = col.iter().copied().min().unwrap_or(0);
    col.iter().map(|c| c - first).collect()
}

/// A node's box: width, height and its lines (each marked when it is a gradient).
type Sized = (f64, f64, Vec<(String, bool)>);

fn size(t: &Trace, n: &TraceNode) -> Sized {
    let (title, body, grad) = lines(n);
    let mut text = vec![(title, false)];
    if values_inside(t, n) {
        text.extend(body.into_iter().map(|l| (l, false)));
        if let Some(g) = grad {
            text.push((g, true));
        }
    }
    let longest = text
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(1);
    let w = (longest as f64 * CHAR_W + 2.0 * PAD).max(44.0);
    let h = text.len() as f64 * LINE_H + PAD;
    (w, h, text)
}

/// The first column of each band. A long chain (a convnet's layers) would
/// be thousands of pixels wide; it is cut into bands no wider than
/// [`MAX_WIDTH`], each cut between two layers so no layer's box is split.
/// One layer wider than the limit keeps a band of its own.
fn bands(t: &Trace, col: &[usize], col_w: &[f64], gap: f64) -> Vec<usize> {
    let mut spans: Vec<(Option<&str>, usize, usize)> = Vec::new();
    for m in &t.nodes {
        let c = col[m.id];
        match spans.iter_mut().find(|s| s.0 == m.scope.as_deref()) {
            Some(s) => {
                s.1 = s.1.min(c);
                s.2 = s.2.max(c);
            }
            None => spans.push((m.scope.as_deref(), c, c)),
        }
    }
    let cuttable = |c: usize| {
        spans
            .iter()
            .all(|&(scope, lo, hi)| scope.is_none() || !(lo < c && c <= hi))
    };
    let limit = MAX_WIDTH - 2.0 * (MARGIN + 14.0);
    let mut starts = vec![0];
    let (mut start, mut used, mut last_cut) = (0, 0.0, None);
    let mut c = 0;
    while c < col_w.len() {
        if c > start && cuttable(c) {
            last_cut = Some(c);
        }
        if used + col_w[c] > limit {
            if let Some(cut) = last_cut.take() {
                starts.push(cut);
                (start, used, c) = (cut, 0.0, cut);
                continue;
            }
        }
        used += col_w[c] + gap;
        c += 1;
    }
    starts
}

pub(super) fn draw(t: &Trace) -> String {
    let n = t.nodes.len();
    let col = columns(t);
    let columns_used = col.iter().max().map_or(0, |c| c + 1);
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); columns_used];
    for node in &t.nodes {
        order[col[node.id]].push(node.id);
    }
    let mut neighbours: Vec<Vec<usize>> = vec![Vec::new(); n];
    for node in &t.nodes {
        for &i in &node.inputs {
            neighbours[node.id].push(i);
            neighbours[i].push(node.id);
        }
    }
    // Two sweeps: each column ordered by the mean row of its neighbours.
    let mut row = vec![0.0f64; n];
    for column in &order {
        for (k, &id) in column.iter().enumerate() {
            row[id] = k as f64;
        }
    }
    for _ in 0..2 {
        for column in order.iter_mut() {
            let key = |id: usize| {
                let ns = &neighbours[id];
                match ns.len() {
                    0 => row[id],
                    k => ns.iter().map(|&m| row[m]).sum::<f64>() / k as f64,
                }
            };
            let mut keyed: Vec<(f64, usize)> = column.iter().map(|&id| (key(id), id)).collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            *column = keyed.into_iter().map(|(_, id)| id).collect();
            for (k, &id) in column.iter().enumerate() {
                row[id] = k as f64;
            }
        }
    }
    let sized: Vec<Sized> = t.nodes.iter().map(|m| size(t, m)).collect();
    let labelled_edges = t
        .nodes
        .iter()
        .any(|m| m.inputs.iter().any(|&i| on_edges(&t.nodes[i])));
    let gap = if labelled_edges {
        COL_GAP_LABELS
    } else {
        COL_GAP
    };
    let col_w: Vec<f64> = order
        .iter()
        .map(|c| c.iter().map(|&id| sized[id].0).fold(0.0, f64::max))
        .collect();
    let col_h: Vec<f64> = order
        .iter()
        .map(|c| c.iter().map(|&id| sized[id].1 + ROW_GAP).sum::<f64>())
        .collect();
    let bands = bands(t, &col, &col_w, gap);
    let band_of = |c: usize| bands.partition_point(|&start| start <= c) - 1;
    // Each band as tall as its tallest column, one below the other.
    let mut band_h = vec![0.0f64; bands.len()];
    for (c, h) in col_h.iter().enumerate() {
        band_h[band_of(c)] = band_h[band_of(c)].max(*h);
    }
    let mut band_y = Vec::with_capacity(bands.len());
    let mut top = MARGIN + 18.0;
    for h in &band_h {
        band_y.push(top);
        top += h + BAND_GAP;
    }
    let mut placed: Vec<Placed> = (0..n)
        .map(|_| Placed {
            x: 0.0,
            y: 0.0,
            w: 0.0,
            h: 0.0,
        })
        .collect();
    let mut x = MARGIN + 14.0;
    let mut width = 2.0 * MARGIN;
    for (c, column) in order.iter().enumerate() {
        let b = band_of(c);
        if c > 0 && bands[b] == c {
            x = MARGIN + 14.0;
        }
        let mut y = band_y[b] + (band_h[b] - col_h[c]) / 2.0;
        for &id in column {
            let (w, h, _) = &sized[id];
            placed[id] = Placed {
                x: x + (col_w[c] - w) / 2.0,
                y,
                w: *w,
                h: *h,
            };
            y += h + ROW_GAP;
        }
        x += col_w[c] + gap;
        width = width.max(x - gap + MARGIN + 14.0);
    }
    // An empty tape still makes a (blank) drawing of positive size.
    let total_h = top - BAND_GAP + MARGIN;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{total_h:.0}\" viewBox=\"0 0 {width:.0} {total_h:.0}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">"
    );
    svg.push_str("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    svg.push_str("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555\"/></marker></defs>\n");
    // Scopes (layers) behind their nodes.
    let mut scopes: Vec<&str> = Vec::new();
    for m in &t.nodes {
        if let Some(s) = m.scope.as_deref() {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
    }
    for scope in scopes {
        let members: Vec<&Placed> = t
            .nodes
            .iter()
            .filter(|m| m.scope.as_deref() == Some(scope))
            .map(|m| &placed[m.id])
            .collect();
        let x0 = members.iter().map(|p| p.x).fold(f64::INFINITY, f64::min) - 10.0;
        let y0 = members.iter().map(|p| p.y).fold(f64::INFINITY, f64::min) - 22.0;
        let x1 = members
            .iter()
            .map(|p| p.x + p.w)
            .fold(f64::NEG_INFINITY, f64::max)
            + 10.0;
        let y1 = members
            .iter()
            .map(|p| p.y + p.h)
            .fold(f64::NEG_INFINITY, f64::max)
            + 10.0;
        let _ = writeln!(
            svg,
            "<g class=\"scope\"><rect x=\"{x0:.1}\" y=\"{y0:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"8\" fill=\"#f1f2f7\" stroke=\"#9999aa\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#555577\" font-size=\"11\">{}</text></g>",
            x1 - x0,
            y1 - y0,
            x0 + 6.0,
            y0 + 14.0,
            escape(scope)
        );
    }
    // Edges, with the value going forward above and the derivative coming back below.
    for m in &t.nodes {
        for &i in &m.inputs {
            let (a, b) = (&placed[i], &placed[m.id]);
            let (x0, y0) = (a.x + a.w, a.y + a.h / 2.0);
            let (x1, y1) = (b.x, b.y + b.h / 2.0);
            let (from, to) = (band_of(col[i]), band_of(col[m.id]));
            let d = if from == to {
                let dx = (x1 - x0) / 2.0;
                format!(
                    "M{x0:.1},{y0:.1} C{:.1},{y0:.1} {:.1},{y1:.1} {x1:.1},{y1:.1}",
                    x0 + dx,
                    x1 - dx
                )
            } else {
                // Into a later band: down through the gap below the
                // source's band, back to the left, and in.
                let gap_y = band_y[from] + band_h[from] + BAND_GAP / 2.0 - ROW_GAP / 2.0;
                format!(
                    "M{x0:.1},{y0:.1} H{:.1} V{gap_y:.1} H{:.1} V{y1:.1} H{x1:.1}",
                    x0 + 12.0,
                    x1 - 16.0
                )
            };
            let _ = writeln!(
                svg,
                "<path class=\"edge\" d=\"{d}\" fill=\"none\" stroke=\"#555\" stroke-width=\"1.2\" marker-end=\"url(#arrow)\"/>"
            );
            let src = &t.nodes[i];
            if on_edges(src) {
                // The label sits on the straight part just after the source.
                let (lx, ly) = (x0 + 8.0, y0);
                let _ = writeln!(
                    svg,
                    "<text class=\"forward\" x=\"{lx:.1}\" y=\"{:.1}\">{}</text>",
                    ly - 5.0,
                    escape(&src.value.describe())
                );
                if let Some(g) = &src.grad {
                    let _ = writeln!(
                        svg,
                        "<text class=\"backward\" x=\"{lx:.1}\" y=\"{:.1}\" fill=\"{GRAD_COLOUR}\">{}</text>",
                        ly + 14.0,
                        escape(&g.describe())
                    );
                }
            }
        }
    }
    for m in &t.nodes {
        let p = &placed[m.id];
        let (fill, rx) = match m.kind {
            super::NodeKind::Op(_) => ("#fff8e6", p.h / 2.0),
            super::NodeKind::Param => ("#e8f1fb", 4.0),
            _ => ("#eef7ee", 4.0),
        };
        let _ = writeln!(
            svg,
            "<g class=\"node\" id=\"n{}\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"{:.1}\" fill=\"{fill}\" stroke=\"#333\"/>",
            m.id, p.x, p.y, p.w, p.h, rx.min(16.0)
        );
        for (k, (line, grad)) in sized[m.id].2.iter().enumerate() {
            let weight = if k == 0 { " font-weight=\"bold\"" } else { "" };
            let colour = if *grad {
                format!(" fill=\"{GRAD_COLOUR}\"")
            } else {
                String::new()
            };
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\"{weight}{colour}>{}</text>",
                p.x + p.w / 2.0,
                p.y + PAD / 2.0 + LINE_H * (k as f64 + 0.8),
                escape(line)
            );
        }
        svg.push_str("</g>\n");
    }
    let _ = writeln!(
        svg,
        "<text x=\"{MARGIN}\" y=\"{:.1}\" font-size=\"11\" fill=\"#555\">black: value going forward · <tspan fill=\"{GRAD_COLOUR}\">red: ∂L/∂value coming back</tspan></text>",
        total_h - 8.0
    );
    svg.push_str("</svg>\n");
    svg
}
