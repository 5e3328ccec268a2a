//! `nabla search`: random search (and, if asked, successive halving) over
//! hyper-parameter ranges, selected on the validation split only; the best
//! configuration is then trained again on all the training data and
//! evaluated on the test set once.
//!
//! Every trial is `nabla train` with the shared flags, the trial's drawn
//! values and the same `--seed`, run alone on all threads: its result is the
//! same bits as running that command by hand. Results are appended to
//! `<results>.jsonl` as each trial ends; running the same command again
//! after an interruption skips the trials already there and ends with the
//! same table.

use crate::charts::search_charts;
use crate::cmd_train::{fit, parse_flags};
use crate::thread_pool;
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use nabla_train::{halving_plan, Range, Rung, SearchSpace};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// The most trials one search draws.
const MAX_TRIALS: usize = 100_000;

/// The flags of `nabla search`.
#[derive(Args)]
pub struct SearchArgs {
    /// A hyper-parameter and its range, NAME=log:LOW:HIGH, uniform:LOW:HIGH, int:LOW:HIGH or choice:A|B|…, where NAME is a flag of `nabla train` (lr, weight-decay, l1, hidden, batch-size, optimizer, activation, init, …). Repeat for each.
    #[arg(long = "param", value_name = "NAME=RANGE")]
    params: Vec<String>,
    /// A JSON or TOML file of ranges: {"lr": {"log": [1e-4, 0.1]}, "hidden": {"choice": ["128", "256,128"]}}.
    #[arg(long)]
    space: Option<PathBuf>,
    /// Trials to draw.
    #[arg(long, default_value_t = 20)]
    trials: usize,
    /// Seed of the sampler (each trial trains with the shared --seed).
    #[arg(long, default_value_t = 0)]
    search_seed: u64,
    /// Successive halving: every trial for --min-epochs, then the best 1/--eta for --eta times the epochs, … up to the shared --epochs.
    #[arg(long)]
    halving: bool,
    /// Epochs of the first rung of --halving.
    #[arg(long, default_value_t = 1, requires = "halving")]
    min_epochs: usize,
    /// The fraction kept at each rung of --halving is 1/eta.
    #[arg(long, default_value_t = 3, requires = "halving")]
    eta: usize,
    /// Where results go: RESULTS.jsonl (appended as trials end; resumes a search), RESULTS.csv and RESULTS-<param>.png/svg.
    #[arg(long, default_value = "search")]
    results: PathBuf,
    /// Where the best configuration, trained again, is saved.
    #[arg(long, default_value = "best.safetensors")]
    out: PathBuf,
    /// Threads (0: one per core); each trial is the same on any number.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Flags of `nabla train` shared by every trial, after `--`.
    #[arg(last = true)]
    common: Vec<String>,
}

/// The first line of the results file: what search it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Header {
    space: SearchSpace,
    trials: usize,
    search_seed: u64,
    common: Vec<String>,
    rungs: Vec<Rung>,
}

/// One finished trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TrialResult {
    rung: usize,
    trial: usize,
    params: BTreeMap<String, String>,
    /// The validation score: accuracy (%) or RMSE.
    score: f64,
    epochs: usize,
    seconds: f64,
}

fn read_space(a: &SearchArgs) -> Result<SearchSpace> {
    let mut space = match &a.space {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
            // One line: TOML's messages quote the file over several.
            let one_line = |e: &dyn std::fmt::Display| {
                let text = e.to_string();
                anyhow!("{}: {}", path.display(), text.lines().next().unwrap_or(""))
            };
            if path.extension().is_some_and(|e| e == "toml") {
                toml::from_str::<SearchSpace>(&text).map_err(|e| one_line(&e))?
            } else {
                serde_json::from_str::<SearchSpace>(&text).map_err(|e| one_line(&e))?
            }
        }
        None => SearchSpace::default(),
    };
    for p in &a.params {
        let (name, range) = p
            .split_once('=')
            .ok_or_else(|| anyhow!("--param {p}: expected NAME=RANGE, e.g. lr=log:1e-4:1e-1"))?;
        let range = Range::parse(range).map_err(|e| anyhow!("--param {name}: {e}"))?;
        space
            .0
            .insert(name.trim().trim_start_matches("--").to_string(), range);
    }
    space
        .validate()
        .map_err(|e| anyhow!("--param/--space: {e}"))?;
    Ok(space)
}

/// A trial's `nabla train` words.
fn trial_words<'a>(
    common: &'a [String],
    params: &'a BTreeMap<String, String>,
    epochs: Option<usize>,
) -> Vec<String> {
    // The rung's epochs replace the shared ones.
    let mut words: Vec<String> = Vec::with_capacity(common.len() + 2 * params.len() + 2);
    let mut skip = false;
    for w in common {
        if skip {
            skip = false;
        } else if w == "--epochs" {
            skip = epochs.is_some();
            if !skip {
                words.push(w.clone());
            }
        } else if !(epochs.is_some() && w.starts_with("--epochs=")) {
            words.push(w.clone());
        }
    }
    for (name, value) in params {
        words.push(format!("--{name}"));
        words.push(value.clone());
    }
    if let Some(e) = epochs {
        words.push("--epochs".into());
        words.push(e.to_string());
    }
    words
}

/// Runs `nabla search`.
pub fn run(a: SearchArgs) -> Result<ExitCode> {
    if a.trials == 0 || a.trials > MAX_TRIALS {
        bail!("--trials {}: must be between 1 and {MAX_TRIALS}", a.trials);
    }
    let space = read_space(&a)?;
    for w in &a.common {
        if [
            "--seed=",
            "--out",
            "--resume",
            "--json",
            "--quiet",
            "--checkpoint",
        ]
        .iter()
        .any(|f| w.starts_with(f))
        {
            bail!("{w}: set by search itself");
        }
    }
    for name in space.0.keys() {
        if a.common.iter().any(|w| *w == format!("--{name}")) {
            bail!("--{name} is both searched and given after --");
        }
    }
    let base = parse_flags(a.common.iter().map(String::as_str))
        .map_err(|e| anyhow!("the flags after --: {e}"))?;
    let mut common = a.common.clone();
    match base.val_split() {
        Some(v) if v <= 0.0 => bail!("--val-split {v}: search selects on the validation split; give it a fraction such as 0.1"),
        Some(_) => {}
        None => common.extend(["--val-split".to_string(), "0.1".to_string()]),
    }
    let max_epochs = base.epochs().unwrap_or(15);
    let rungs = if a.halving {
        halving_plan(a.trials, a.min_epochs, max_epochs, a.eta)
    } else {
        vec![Rung {
            trials: a.trials,
            epochs: max_epochs,
        }]
    };
    // Every trial's flags are checked before anything trains.
    let drawn = space.sample(a.trials, a.search_seed);
    for params in &drawn {
        let words = trial_words(&common, params, Some(1));
        parse_flags(words.iter().map(String::as_str))
            .map_err(|e| anyhow!("a drawn trial {params:?}: {e}"))?;
    }
    let header = Header {
        space: space.clone(),
        trials: a.trials,
        search_seed: a.search_seed,
        common: common.clone(),
        rungs: rungs.clone(),
    };
    let jsonl = a.results.with_extension("jsonl");
    crate::check_writable_parent(&jsonl, "--results")?;
    crate::check_writable_parent(&a.out, "--out")?;
    let mut done = load_results(&jsonl, &header)?;
    let resumed = done.len();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&jsonl)
        .with_context(|| jsonl.display().to_string())?;
    if resumed == 0 {
        // A fresh file (or one whose last run wrote nothing but a partial line).
        file.set_len(0)
            .with_context(|| jsonl.display().to_string())?;
        writeln!(file, "{}", serde_json::to_string(&header)?)?;
    }
    let plan: Vec<String> = rungs
        .iter()
        .map(|r| format!("{} trials × {} epochs", r.trials, r.epochs))
        .collect();
    println!(
        "search: {} trials drawn with seed {} over {}; {}",
        a.trials,
        a.search_seed,
        space.0.keys().cloned().collect::<Vec<_>>().join(", "),
        if a.halving {
            format!(
                "successive halving (keep 1/{} each rung): {}",
                a.eta,
                plan.join(", then ")
            )
        } else {
            format!("{max_epochs} epochs each")
        }
    );
    if resumed > 0 {
        println!("resuming: {resumed} trials already in {}", jsonl.display());
    }
    let dir = tempfile::tempdir().map_err(|e| anyhow!("a temporary directory: {e}"))?;
    let started = Instant::now();
    let mut metric = "accuracy";
    thread_pool(a.threads)?.install(|| -> Result<()> {
        let mut alive: Vec<usize> = (0..a.trials).collect();
        for (r, rung) in rungs.iter().enumerate() {
            alive.truncate(rung.trials);
            for (k, &t) in alive.iter().enumerate() {
                if done.iter().any(|d| d.rung == r && d.trial == t) {
                    continue;
                }
                let out = dir.path().join(format!("trial{t}.safetensors"));
                let mut words = trial_words(&common, &drawn[t], Some(rung.epochs));
                words.extend(["--quiet".into(), "--out".into(), out.display().to_string()]);
                let args = parse_flags(words.iter().map(String::as_str))?;
                let run_start = Instant::now();
                let trained =
                    fit(&args).with_context(|| format!("trial {} {:?}", t + 1, drawn[t]))?;
                let (score, name) = val_score(&trained)?;
                metric = name;
                let result = TrialResult {
                    rung: r,
                    trial: t,
                    params: drawn[t].clone(),
                    score,
                    epochs: rung.epochs,
                    seconds: run_start.elapsed().as_secs_f64(),
                };
                writeln!(file, "{}", serde_json::to_string(&result)?)?;
                file.flush()?;
                done.push(result);
                let best = best_of(&done, r, name);
                println!(
                    "rung {}/{} trial {}/{} (#{}): {} → validation {name} {}{}",
                    r + 1,
                    rungs.len(),
                    k + 1,
                    alive.len(),
                    t + 1,
                    show_params(&drawn[t]),
                    show(name, score),
                    best.map_or(String::new(), |b| format!(
                        "   best so far {} (#{})",
                        show(name, b.score),
                        b.trial + 1
                    ))
                );
            }
            // The next rung continues with the best of this one.
            let name = metric;
            let mut ranked: Vec<&TrialResult> = done.iter().filter(|d| d.rung == r).collect();
            ranked.sort_by(|x, y| order(name, x.score, y.score).then(x.trial.cmp(&y.trial)));
            alive = ranked.iter().map(|d| d.trial).collect();
        }
        Ok(())
    })?;
    let name = metric;
    finish(&a, &header, &done, name, started.elapsed().as_secs_f64())?;
    Ok(ExitCode::SUCCESS)
}

/// Better first: higher accuracy, lower RMSE.
fn order(name: &str, a: f64, b: f64) -> std::cmp::Ordering {
    if name == "accuracy" {
        b.total_cmp(&a)
    } else {
        a.total_cmp(&b)
    }
}

fn best_of<'a>(done: &'a [TrialResult], rung: usize, name: &str) -> Option<&'a TrialResult> {
    done.iter()
        .filter(|d| d.rung == rung)
        .min_by(|x, y| order(name, x.score, y.score).then(x.trial.cmp(&y.trial)))
}

/// The trials already in a results file of the same search.
fn load_results(path: &Path, header: &Header) -> Result<Vec<TrialResult>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(Vec::new());
    };
    let mut lines = text.lines();
    match lines.next().map(serde_json::from_str::<Header>) {
        None => return Ok(Vec::new()),
        Some(Ok(h)) if h == *header => {}
        Some(_) => bail!(
            "{}: holds another search; remove it or pass another --results",
            path.display()
        ),
    }
    // A line cut short by an interruption is dropped: its trial runs again.
    Ok(lines
        .filter_map(|l| serde_json::from_str::<TrialResult>(l).ok())
        .collect())
}

/// The last epoch's validation score: accuracy in %, or the RMSE.
fn val_score(t: &crate::cmd_train::Trained) -> Result<(f64, &'static str)> {
    let val = t
        .trainer
        .history()
        .last()
        .and_then(|m| m.val.clone())
        .ok_or_else(|| anyhow!("the trial has no validation score"))?;
    let val = crate::progress::in_units(&val, t.scale);
    Ok(match (val.accuracy, val.rmse) {
        (Some(acc), _) => (100.0 * acc, "accuracy"),
        (None, Some(rmse)) => (rmse, "RMSE"),
        _ => (val.loss, "loss"),
    })
}

fn show(name: &str, v: f64) -> String {
    if name == "accuracy" {
        format!("{v:.2}%")
    } else {
        format!("{v:.4}")
    }
}

fn show_params(p: &BTreeMap<String, String>) -> String {
    p.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The table, the CSV, the charts, and the best configuration trained again
/// and tested once.
fn finish(
    a: &SearchArgs,
    header: &Header,
    done: &[TrialResult],
    name: &str,
    seconds: f64,
) -> Result<()> {
    let last = header.rungs.len() - 1;
    let mut table: Vec<&TrialResult> = done.iter().collect();
    table.sort_by(|x, y| {
        y.rung
            .cmp(&x.rung)
            .then(order(name, x.score, y.score))
            .then(x.trial.cmp(&y.trial))
    });
    println!("\nresults (best first; later rungs first), validation {name}:");
    println!(
        "  {:>5} {:>5} {:>7} {:>10} {:>8}  configuration",
        "rung", "trial", "epochs", name, "seconds"
    );
    for d in &table {
        println!(
            "  {:>5} {:>5} {:>7} {:>10} {:>8.1}  {}",
            d.rung + 1,
            d.trial + 1,
            d.epochs,
            show(name, d.score),
            d.seconds,
            show_params(&d.params)
        );
    }
    let names: Vec<&String> = header.space.0.keys().collect();
    let mut csv = format!(
        "rung,trial,epochs,val_{},seconds,{}\n",
        name.to_lowercase(),
        names
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    for d in &table {
        let values: Vec<String> = names
            .iter()
            .map(|n| {
                let v = d.params.get(*n).cloned().unwrap_or_default();
                if v.contains(',') {
                    format!("\"{v}\"")
                } else {
                    v
                }
            })
            .collect();
        csv.push_str(&format!(
            "{},{},{},{},{:.3},{}\n",
            d.rung + 1,
            d.trial + 1,
            d.epochs,
            d.score,
            d.seconds,
            values.join(",")
        ));
    }
    let csv_path = a.results.with_extension("csv");
    nabla::nn::file::atomic_write(&csv_path, csv.as_bytes())?;
    let params: Vec<(String, bool, Vec<String>)> = header
        .space
        .0
        .iter()
        .map(|(n, r)| {
            let choices = match r {
                Range::Choice(v) => v.iter().map(|c| c.to_string()).collect(),
                _ => Vec::new(),
            };
            (n.clone(), r.is_log(), choices)
        })
        .collect();
    let points: Vec<(usize, BTreeMap<String, String>, f64)> = done
        .iter()
        .map(|d| (d.rung, d.params.clone(), d.score))
        .collect();
    let dir = match a.results.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let stem = a
        .results
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let charts = search_charts(&dir, &stem, &params, &points, name)?;
    println!(
        "wrote {}, {} and {} chart(s): {}",
        a.results.with_extension("jsonl").display(),
        csv_path.display(),
        charts.len(),
        charts
            .iter()
            .map(|c| format!("{}.png", c.display()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let Some(best) = best_of(done, last, name) else {
        bail!("no trial finished");
    };
    // Trained again on all the training data (no validation split), for
    // the full epochs, and tested once.
    let mut words = trial_words(&header.common, &best.params, Some(best.epochs));
    if let Some(i) = words.iter().position(|w| w == "--val-split") {
        words.drain(i..(i + 2).min(words.len()));
    }
    words.extend([
        "--val-split".into(),
        "0".into(),
        "--quiet".into(),
        "--out".into(),
    ]);
    words.push(a.out.display().to_string());
    let command = format!(
        "nabla train {}",
        words
            .iter()
            .filter(|w| *w != "--quiet")
            .map(|w| if w.contains([' ', ',', '|']) {
                format!("'{w}'")
            } else {
                w.clone()
            })
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "best: trial {} ({}), validation {name} {} after {} epochs; search took {seconds:.0} s",
        best.trial + 1,
        show_params(&best.params),
        show(name, best.score),
        best.epochs
    );
    println!("training it again on all the training data: {command}");
    let args = parse_flags(words.iter().map(String::as_str))?;
    let trained = thread_pool(a.threads)?.install(|| fit(&args))?;
    let test = trained
        .test
        .as_ref()
        .map(|e| crate::progress::describe(&crate::progress::in_units(&e.score, trained.scale)));
    println!(
        "the best configuration's test {} (the test set used once, here); saved {}",
        test.unwrap_or_else(|| "— no test set held out".into()),
        a.out.display()
    );
    Ok(())
}
