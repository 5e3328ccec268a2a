//! `nabla`: train a network on MNIST, a CSV table or a folder of images,
//! evaluate it, predict with it (digits people drew, new rows, new photos),
//! check gradients, run the material's demos and draw plots.
//!
//! This binary is the only place for argument parsing and `anyhow`; the work
//! is done by the library crates.

mod charts;
mod cmd_compare;
mod cmd_demo;
mod cmd_eval;
mod cmd_lr_find;
mod cmd_model;
mod cmd_search;
mod cmd_trace;
mod cmd_train;
mod data_source;
mod distributed;
mod model_file;
mod plot;
mod progress;
mod serve;
mod shipped;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Backpropagation made real: train and run neural networks on MNIST, CSV tables and image folders.
#[derive(Parser)]
#[command(name = "nabla", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a network: on the embedded MNIST subset, --data-dir IDX files, a --csv table or an --images folder.
    Train(Box<cmd_train::TrainArgs>),
    /// Test accuracy, mean loss, per-class accuracy and the confusion matrix of a model.
    Eval(cmd_eval::EvalArgs),
    /// Predict: digits from PNG or JPEG images, images like a training folder's, or the rows of a --csv file.
    Predict(cmd_eval::PredictArgs),
    /// Train two or more configurations on the same seeds and say whether they differ beyond seed noise.
    Compare(Box<cmd_compare::CompareArgs>),
    /// The learning-rate range test: one pass with the rate growing exponentially, the loss against it, a suggested rate.
    LrFind(Box<cmd_lr_find::LrFindArgs>),
    /// Random search (optionally successive halving) over hyper-parameter ranges, chosen on the validation split.
    Search(Box<cmd_search::SearchArgs>),
    /// Show a model file's layers, shapes and parameter count.
    Inspect(cmd_model::InspectArgs),
    /// Compare a model's backprop gradients with numerical differentiation (f64).
    Gradcheck(cmd_model::GradcheckArgs),
    /// Run one of the source material's demos (numbers and pictures).
    Demo(cmd_demo::DemoArgs),
    /// Print a recorded graph with every value and derivative, and draw it (DOT and SVG): apple, oranges, or a model on one image.
    Trace(cmd_trace::TraceArgs),
    /// A local web page: draw a digit and watch it flow through the network and back (every layer's activations, the output's wish, the gradients).
    Serve(serve::ServeArgs),
    /// Draw loss and accuracy curves from a --metrics-out file.
    Plot(plot::PlotArgs),
    /// Draw the filters of a convolutional layer as an image grid (PNG).
    Filters(cmd_model::FiltersArgs),
    /// Fetch the four dataset files from a public mirror and verify them.
    Download(cmd_model::DownloadArgs),
}

/// An error and its causes in one line, each said once: a cause whose text
/// its error already shows (`path: No such file or directory`) is not
/// repeated.
fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain().map(|c| c.to_string()) {
        if line.contains(&cause) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&cause);
    }
    line
}

/// Output into a closed pipe (`nabla eval … | head -1`) ends the process
/// quietly, as it does Unix tools: Rust ignores SIGPIPE, which turns every
/// later `println!` into a panic.
fn die_quietly_on_closed_pipes() {
    #[cfg(unix)]
    // SAFETY: restoring a signal's default disposition at start-up, before
    // any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    die_quietly_on_closed_pipes();
    // A panic is a bug in nabla, never the user's fault: report it in one line.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("nabla: internal error: {info}");
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return argument_error(e),
    };
    if let Err(e) = distributed::check_launch(matches!(cli.command, Command::Train(_))) {
        eprintln!("nabla: error: {}", error_line(&e));
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Train(args) => cmd_train::run(*args),
        Command::Compare(args) => cmd_compare::run(*args),
        Command::Eval(args) => cmd_eval::run_eval(args),
        Command::LrFind(args) => cmd_lr_find::run(*args),
        Command::Search(args) => cmd_search::run(*args),
        Command::Predict(args) => cmd_eval::run_predict(args),
        Command::Inspect(args) => cmd_model::run_inspect(args),
        Command::Gradcheck(args) => cmd_model::run_gradcheck(args),
        Command::Demo(args) => cmd_demo::run(args),
        Command::Trace(args) => cmd_trace::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Plot(args) => plot::run(args),
        Command::Filters(args) => cmd_model::run_filters(args),
        Command::Download(args) => cmd_model::run_download(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nabla: error: {}", error_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// Help and version go out as clap prints them; an argument error becomes one
/// line (clap's message, its possible values and tip joined), exit status 2.
fn argument_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.use_stderr() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let text = e.render().to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .map(|l| l.trim_start_matches("error: "))
        .collect();
    eprintln!("nabla: error: {} (see `nabla --help`)", parts.join("; "));
    ExitCode::from(2)
}

/// A thread pool of `threads` workers (0: one per core). Work is run inside
/// it with `install`, so the parallel sections of a training step are cheap
/// work-stealing joins between workers rather than wake-ups from outside.
fn thread_pool(threads: usize) -> anyhow::Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| anyhow::anyhow!("--threads {threads}: {e}"))
}

/// Where a file argument would be written, checked before long work starts.
fn check_writable_parent(path: &std::path::Path, flag: &str) -> anyhow::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        anyhow::bail!(
            "{flag} {}: the directory {} does not exist",
            path.display(),
            parent.display()
        );
    }
    if path.is_dir() {
        anyhow::bail!(
            "{flag} {}: is a directory; give a file name",
            path.display()
        );
    }
    // Creating a file there is the one test that holds for permissions,
    // read-only mounts and quotas alike; it is removed at once.
    tempfile::Builder::new()
        .prefix(".nabla-probe-")
        .tempfile_in(&parent)
        .map_err(|e| {
            anyhow::anyhow!(
                "{flag} {}: cannot write in {}: {}",
                path.display(),
                parent.display(),
                std::io::Error::from(e.kind())
            )
        })?;
    Ok(())
}
