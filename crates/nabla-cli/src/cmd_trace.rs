//! `nabla trace`: a recorded graph with every value going forward and every
//! derivative coming back, printed as a table and written as Graphviz DOT
//! and as SVG — the material's graphs, or one pass of a model on one image.

use crate::cmd_eval::image_input;
use crate::model_file::load_model;
use anyhow::{bail, Context, Result};
use clap::Args;
use nabla::autograd::{Reduction, Tape, Target, Trace};
use nabla::nn::Module;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cmd_demo::ex01;

/// The flags of `nabla trace`.
#[derive(Args)]
pub struct TraceArgs {
    /// `apple` or `oranges` (the material's graphs); with --model, an image (PNG or JPEG) to run the model on.
    what: PathBuf,
    /// A model file: record one forward and backward pass of it on the image.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The class the loss is taken against (default: the model's prediction).
    #[arg(long)]
    target: Option<usize>,
    /// Where to write the drawing: OUT.dot and OUT.svg (default: apple, oranges, or IMAGE.trace for the image IMAGE.png).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `nabla trace`.
pub fn run(a: TraceArgs) -> Result<ExitCode> {
    let (trace, default_stem) = match &a.model {
        None => {
            if a.target.is_some() {
                bail!("--target is for a model's trace: add --model FILE");
            }
            let oranges = match a.what.to_str() {
                Some("apple") => false,
                Some("oranges") => true,
                _ => bail!(
                    "{}: expected apple or oranges, or an image with --model FILE",
                    a.what.display()
                ),
            };
            let trace = ex01::trace(oranges)?;
            (
                trace,
                PathBuf::from(if oranges { "oranges" } else { "apple" }),
            )
        }
        Some(model) => {
            let stem = a
                .what
                .file_stem()
                .map(PathBuf::from)
                .unwrap_or_else(|| "trace".into());
            (
                model_trace(model, &a.what, a.target)?,
                stem.with_extension("trace"),
            )
        }
    };
    print!("{}", trace.table());
    let mut stem = a.out.unwrap_or(default_stem);
    // `--out graph.svg` means the stem `graph`.
    if matches!(
        stem.extension().and_then(|e| e.to_str()),
        Some("dot" | "svg")
    ) {
        stem.set_extension("");
    }
    let with = |ext: &str| PathBuf::from(format!("{}.{ext}", stem.display()));
    let (dot, svg) = (with("dot"), with("svg"));
    write(&dot, &trace.dot())?;
    write(&svg, &trace.svg())?;
    println!("\nwrote {} and {}", dot.display(), svg.display());
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, text: &str) -> Result<()> {
    nabla::nn::file::atomic_write(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// One forward pass of the model at `path` on `image` and the backward
/// pass of its cross-entropy against `target` (or the predicted class),
/// with the layers as scopes and the parameters by name.
fn model_trace(path: &Path, image: &Path, target: Option<usize>) -> Result<Trace> {
    let (model, spec) = load_model::<f32>(path)?;
    if spec.data.table.is_some() {
        bail!(
            "{}: a model of a CSV table; trace runs image models",
            path.display()
        );
    }
    let classes = spec.data.classes.len();
    if let Some(t) = target {
        if t >= classes.max(1) {
            bail!(
                "--target {t}: the model has {classes} classes (0 to {})",
                classes.saturating_sub(1)
            );
        }
    }
    let x = image_input(&spec, image, &path.display().to_string())?;
    let tape = Tape::<f32>::new();
    tape.set_record_scopes(true);
    let input = tape.var(x).named("image");
    let logits = model.forward(input)?.named("scores");
    let predicted = logits.value().argmax_axis(1)?[0];
    let class = target.unwrap_or(predicted);
    let loss = logits
        .softmax_cross_entropy(Target::Indices(vec![class]), Reduction::Mean)?
        .named(&format!("loss (class {class})"));
    let grads = tape.backward(loss)?;
    let mut trace = Trace::of(&tape, Some(&grads));
    trace.name_params(model.named_params().into_iter().map(|(n, p)| (p.id(), n)));
    println!(
        "{}: predicted {predicted}, loss against class {class}\n",
        image.display()
    );
    Ok(trace)
}
