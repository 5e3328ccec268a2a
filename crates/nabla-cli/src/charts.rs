//! The charts of the try–see–adjust tools: what the probes saw while a
//! network learnt, and how a search's trials scored against each
//! hyper-parameter. Drawing is `plot`'s; this module picks the series.

use crate::plot::{line_chart, line_chart_in, scatter_chart};
use anyhow::Result;
use nabla_train::EpochMetrics;
use std::path::{Path, PathBuf};

/// The probes' charts: each weight's gradient norm (log scale) and each
/// activation's dead or saturated fraction, against training steps.
pub fn probe_charts(history: &[EpochMetrics], dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let probes: Vec<&nabla_train::ProbeReport> = history.iter().flat_map(|m| &m.probes).collect();
    let mut grads: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut units: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let add = |set: &mut Vec<(String, Vec<(f64, f64)>)>, name: String, point: (f64, f64)| match set
        .iter_mut()
        .find(|(n, _)| *n == name)
    {
        Some((_, points)) => points.push(point),
        None => set.push((name, vec![point])),
    };
    for p in &probes {
        let x = p.step as f64;
        for t in p
            .params
            .iter()
            .filter(|t| t.shape.len() > 1 && t.grad_norm > 0.0)
        {
            add(&mut grads, t.name.clone(), (x, t.grad_norm.log10()));
        }
        for act in &p.activations {
            if let Some(d) = act.dead_fraction {
                add(&mut units, format!("{} dead", act.name), (x, 100.0 * d));
            }
            if let Some(s) = act.saturated_fraction {
                add(
                    &mut units,
                    format!("{} saturated", act.name),
                    (x, 100.0 * s),
                );
            }
        }
    }
    fn as_str(set: &[(String, Vec<(f64, f64)>)]) -> Vec<(&str, Vec<(f64, f64)>)> {
        set.iter().map(|(n, p)| (n.as_str(), p.clone())).collect()
    }
    let grads_stem = dir.join("gradients");
    line_chart(
        &grads_stem,
        "Gradient norm per weight",
        "step",
        "log10 of the gradient norm",
        &as_str(&grads),
    )?;
    let units_stem = dir.join("units");
    line_chart_in(
        &units_stem,
        "Dead ReLU units and saturated sigmoid/tanh outputs",
        "step",
        "% of the layer",
        &as_str(&units),
        Some((-2.0, 102.0)),
    )?;
    Ok((grads_stem, units_stem))
}

/// One chart per searched hyper-parameter: each trial's validation score
/// against the value it drew (log10 of it for log-uniform ranges; the index
/// of the value for choices), one colour per rung. Returns the files' stems.
pub fn search_charts(
    dir: &Path,
    prefix: &str,
    params: &[(String, bool, Vec<String>)],
    trials: &[(usize, std::collections::BTreeMap<String, String>, f64)],
    metric: &str,
) -> Result<Vec<PathBuf>> {
    let mut stems = Vec::new();
    for (name, log, choices) in params {
        let mut by_rung: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for (rung, values, score) in trials {
            let Some(v) = values.get(name) else { continue };
            let x = if !choices.is_empty() {
                choices.iter().position(|c| c == v).unwrap_or(0) as f64
            } else {
                match v.parse::<f64>() {
                    Ok(x) if *log && x > 0.0 => x.log10(),
                    Ok(x) => x,
                    Err(_) => continue,
                }
            };
            let label = format!("rung {}", rung + 1);
            match by_rung.iter_mut().find(|(l, _)| *l == label) {
                Some((_, points)) => points.push((x, *score)),
                None => by_rung.push((label, vec![(x, *score)])),
            }
        }
        let xlabel = if !choices.is_empty() {
            format!(
                "{name}: {}",
                choices
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{i} = {c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else if *log {
            format!("log10 of {name}")
        } else {
            name.clone()
        };
        let stem = dir.join(format!(
            "{prefix}-{}",
            name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        ));
        let series: Vec<(&str, Vec<(f64, f64)>)> = by_rung
            .iter()
            .map(|(l, p)| (l.as_str(), p.clone()))
            .collect();
        scatter_chart(
            &stem,
            &format!("Validation {metric} against {name}"),
            &xlabel,
            metric,
            &series,
        )?;
        stems.push(stem);
    }
    Ok(stems)
}
