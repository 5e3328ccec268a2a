//! `nabla compare`: two or more training configurations on the same seeds,
//! and whether their difference stands out from seed noise.
//!
//! Every configuration is trained once per seed with `--seed` set to that
//! seed, so that on a seed the configurations share the validation split,
//! the shuffles (the same batches in the same order) and, where the
//! architectures match, the initial weights. Each configuration's metric is
//! summarised by its mean and sample standard deviation over the seeds; each
//! later configuration is compared with the first by the paired
//! differences `dᵢ = metricᵢ(config) − metricᵢ(first)` and a 95% paired-t
//! interval `d̄ ± t₀.₉₇₅,ₖ₋₁ · s_d / √k`. When the interval excludes 0 the
//! difference is said to be distinguishable from seed noise.

use crate::cmd_train::{fit, parse_flags};
use crate::thread_pool;
use anyhow::{anyhow, bail, Result};
use clap::{Args, ValueEnum};
use std::process::ExitCode;
use std::time::Instant;

/// The flags of `nabla compare`.
#[derive(Args)]
pub struct CompareArgs {
    /// A configuration: flags of `nabla train` in one quoted string, e.g. --config "--activation sigmoid" (give two or more; the first is the baseline).
    #[arg(long = "config", required = true, allow_hyphen_values = true)]
    configs: Vec<String>,
    /// Flags of `nabla train` shared by every configuration, after `--` (e.g. -- --data-dir DIR --epochs 3).
    #[arg(last = true)]
    common: Vec<String>,
    /// Seeds per configuration (the same seeds for each).
    #[arg(long, default_value_t = 5)]
    seeds: usize,
    /// The first seed; the others follow it.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Which held-out set the metric is measured on.
    #[arg(long, value_enum, default_value_t = OnArg::Test)]
    on: OnArg,
    /// Threads (0: one per core); every run is the same on any number.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Keep every run's model file in this folder, as config<C>-seed<S>.safetensors (to evaluate or ensemble them later); default: a temporary folder, removed at the end.
    #[arg(long, value_name = "DIR")]
    keep: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnArg {
    Test,
    Val,
}

/// The quantile t₀.₉₇₅ of Student's t with `df` degrees of freedom (the
/// normal's 1.96 beyond 30).
fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    TABLE.get(df.wrapping_sub(1)).copied().unwrap_or(1.96)
}

/// Mean and sample standard deviation (0 for one value).
fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// A paired comparison of `b` with `a` (same seeds, in order).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Paired {
    mean: f64,
    low: f64,
    high: f64,
}

fn paired(a: &[f64], b: &[f64]) -> Option<Paired> {
    if a.len() < 2 || a.len() != b.len() {
        return None;
    }
    let d: Vec<f64> = b.iter().zip(a).map(|(x, y)| x - y).collect();
    let (mean, sd) = mean_sd(&d);
    let half = t_975(d.len() - 1) * sd / (d.len() as f64).sqrt();
    Some(Paired {
        mean,
        low: mean - half,
        high: mean + half,
    })
}

/// Runs `nabla compare`.
pub fn run(a: CompareArgs) -> Result<ExitCode> {
    if a.seeds == 0 || a.seeds > 10_000 {
        bail!("--seeds {}: must be between 1 and 10000", a.seeds);
    }
    if a.configs.len() < 2 {
        bail!("--config: give two or more configurations to compare");
    }
    let temporary = tempfile::tempdir().map_err(|e| anyhow!("a temporary directory: {e}"))?;
    let dir = match &a.keep {
        Some(keep) => {
            std::fs::create_dir_all(keep)
                .map_err(|e| anyhow!("--keep {}: cannot create it: {e}", keep.display()))?;
            keep.as_path()
        }
        None => temporary.path(),
    };
    // Every configuration is checked before any is trained.
    for config in &a.configs {
        let words = a
            .common
            .iter()
            .map(String::as_str)
            .chain(config.split_whitespace());
        let words: Vec<&str> = words.collect();
        if let Some(w) = words.iter().find(|w| set_by_compare(w)) {
            bail!("configuration '{config}': {w} is set by compare itself");
        }
        parse_flags(words).map_err(|e| anyhow!("configuration '{config}': {e}"))?;
    }
    let parsed: Vec<(usize, &String)> = a.configs.iter().enumerate().collect();
    let mut metric_name = "";
    let total = a.configs.len() * a.seeds;
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); a.configs.len()];
    let started = Instant::now();
    thread_pool(a.threads)?.install(|| -> Result<()> {
        for s in 0..a.seeds {
            let seed = a.first_seed.wrapping_add(s as u64);
            for (c, config) in &parsed {
                let out = dir.join(format!("config{c}-seed{seed}.safetensors"));
                let seed_text = seed.to_string();
                let words = a
                    .common
                    .iter()
                    .map(String::as_str)
                    .chain(config.split_whitespace())
                    .chain(["--seed", &seed_text, "--quiet", "--out"])
                    .chain(out.to_str());
                let args =
                    parse_flags(words).map_err(|e| anyhow!("configuration '{config}': {e}"))?;
                let run_start = Instant::now();
                let trained = fit(&args)
                    .map_err(|e| e.context(format!("configuration '{config}', seed {seed}")))?;
                let (value, name) = metric(&trained, a.on)?;
                metric_name = name;
                results[*c].push(value);
                if !a.json {
                    // On validation, the test figure is shown for information.
                    let beside = match (a.on, metric(&trained, OnArg::Test)) {
                        (OnArg::Val, Ok((test, _))) => {
                            format!(", test {} (not compared)", show(name, test))
                        }
                        _ => String::new(),
                    };
                    println!(
                        "run {}/{total}: {} seed {seed}: {name} {}{beside} ({:.1} s)",
                        s * parsed.len() + c + 1,
                        label(*c),
                        show(name, value),
                        run_start.elapsed().as_secs_f64()
                    );
                }
            }
        }
        Ok(())
    })?;
    report(&a, &results, metric_name, started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

/// Flags that compare sets for every run, and a configuration may not.
fn set_by_compare(word: &str) -> bool {
    [
        "--seed",
        "--out",
        "--resume",
        "--checkpoint",
        "--json",
        "--quiet",
    ]
    .iter()
    .any(|f| word == *f || word.starts_with(&format!("{f}=")))
}

/// The compared figure of a run: accuracy (in %) for classes, RMSE for values.
fn metric(t: &crate::cmd_train::Trained, on: OnArg) -> Result<(f64, &'static str)> {
    let score = match on {
        OnArg::Test => t.test.as_ref().map(|e| e.score.clone()),
        OnArg::Val => t.trainer.history().last().and_then(|m| m.val.clone()),
    }
    .ok_or_else(|| {
        anyhow!(match on {
            OnArg::Test => "no test set to measure on (--test-split 0?)",
            OnArg::Val => "no validation set to measure on: pass --val-split",
        })
    })?;
    let score = crate::progress::in_units(&score, t.scale);
    match (score.accuracy, score.rmse) {
        (Some(acc), _) => Ok((100.0 * acc, "accuracy")),
        (None, Some(rmse)) => Ok((rmse, "RMSE")),
        _ => Ok((score.loss, "loss")),
    }
}

fn show(name: &str, v: f64) -> String {
    if name == "accuracy" {
        format!("{v:.2}%")
    } else {
        format!("{v:.4}")
    }
}

/// A, B, C, …
fn label(c: usize) -> String {
    char::from_u32('A' as u32 + (c % 26) as u32)
        .map(String::from)
        .unwrap_or_else(|| c.to_string())
}

fn report(a: &CompareArgs, results: &[Vec<f64>], name: &str, seconds: f64) {
    let higher_is_better = name == "accuracy";
    let unit = if name == "accuracy" { " points" } else { "" };
    let summaries: Vec<(f64, f64)> = results.iter().map(|r| mean_sd(r)).collect();
    let comparisons: Vec<Option<Paired>> = results.iter().map(|r| paired(&results[0], r)).collect();
    if a.json {
        let configs: Vec<serde_json::Value> = a
            .configs
            .iter()
            .enumerate()
            .map(|(c, config)| {
                let p = comparisons[c].filter(|_| c > 0);
                serde_json::json!({
                    "label": label(c),
                    "config": config,
                    "values": results[c],
                    "mean": summaries[c].0,
                    "sd": summaries[c].1,
                    "difference": p.map(|p| p.mean),
                    "ci95": p.map(|p| [p.low, p.high]),
                    "distinguishable": p.map(|p| p.low > 0.0 || p.high < 0.0),
                })
            })
            .collect();
        let summary = serde_json::json!({
            "metric": name,
            "on": if a.on == OnArg::Test { "test" } else { "val" },
            "seeds": (0..a.seeds).map(|s| a.first_seed.wrapping_add(s as u64)).collect::<Vec<_>>(),
            "method": "paired t, 95%",
            "configs": configs,
            "seconds": seconds,
        });
        println!("{summary}");
        return;
    }
    let on = if a.on == OnArg::Test {
        "test"
    } else {
        "validation"
    };
    println!(
        "{name} on the {on} set over seeds {}..{} ({} runs, {seconds:.1} s):",
        a.first_seed,
        a.first_seed.wrapping_add(a.seeds as u64 - 1),
        results.iter().map(Vec::len).sum::<usize>()
    );
    // An empty configuration is the shared flags alone.
    let shown: Vec<&str> = a
        .configs
        .iter()
        .map(|c| match c.trim() {
            "" => "(the shared flags only)",
            c => c,
        })
        .collect();
    let width = shown.iter().map(|c| c.chars().count()).max().unwrap_or(0);
    for (c, config) in shown.iter().enumerate() {
        let (m, sd) = summaries[c];
        println!(
            "  {}: {config:<width$}  {} ± {}",
            label(c),
            show(name, m),
            show(name, sd).trim_end_matches('%')
        );
    }
    for (c, p) in comparisons.iter().enumerate().skip(1) {
        match p {
            Some(p) => {
                let better = if (p.mean > 0.0) == higher_is_better {
                    label(c)
                } else {
                    label(0)
                };
                let verdict = if p.low > 0.0 || p.high < 0.0 {
                    format!("distinguishable from seed noise ({better} is better)")
                } else {
                    "not distinguishable from seed noise".to_string()
                };
                println!(
                    "  {} − A: {:+.4}{unit}, 95% interval [{:+.4}, {:+.4}] (paired t, {} seeds): {verdict}",
                    label(c),
                    p.mean,
                    p.low,
                    p.high,
                    a.seeds
                );
            }
            None => println!(
                "  {} − A: one seed, no interval (pass --seeds 2 or more)",
                label(c)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paired_interval_by_hand() {
        // d = 1, 2, 3: mean 2, s_d = 1, t(2) = 4.303, half-width 4.303/√3.
        let p = paired(&[10.0, 10.0, 10.0], &[11.0, 12.0, 13.0]).unwrap();
        assert!((p.mean - 2.0).abs() < 1e-12);
        assert!((p.high - (2.0 + 4.303 / 3f64.sqrt())).abs() < 1e-9);
        assert!(p.low < 0.0, "three seeds this spread cannot tell");
        // The seeds' own spread cancels in the pairs: a constant shift is certain.
        let p = paired(&[1.0, 5.0, 9.0, 2.0], &[1.5, 5.5, 9.5, 2.5]).unwrap();
        assert!((p.low - 0.5).abs() < 1e-12 && (p.high - 0.5).abs() < 1e-12);
        assert!(paired(&[1.0], &[2.0]).is_none());
        assert_eq!(t_975(4), 2.776);
        assert_eq!(t_975(100), 1.96);
        assert_eq!(mean_sd(&[2.0, 4.0]), (3.0, 2f64.sqrt()));
    }
}
