//! `nabla demo`: the source material's demos. Their code is the numbered
//! examples of the `nabla` crate, compiled in here, so the tutorial and the
//! command can never disagree.

use crate::plot;
use anyhow::Result;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[allow(dead_code)]
#[path = "../../nabla/examples/01_computational_graph.rs"]
pub(crate) mod ex01;
#[allow(dead_code)]
#[path = "../../nabla/examples/02_numerical_diff.rs"]
mod ex02;
#[allow(dead_code)]
#[path = "../../nabla/examples/03_gradient_descent.rs"]
mod ex03;
#[allow(dead_code)]
#[path = "../../nabla/examples/04_simple_net.rs"]
mod ex04;
#[allow(dead_code)]
#[path = "../../nabla/examples/05_autograd_fit.rs"]
mod ex05;

/// The flags of `nabla demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Which demo.
    #[arg(value_enum)]
    which: Demo,
    /// Where the tangent and descent demos write their pictures (PNG and SVG).
    #[arg(long, default_value = ".")]
    out_dir: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum Demo {
    /// The apple (and orange) computational graphs: 220 and 715 with every derivative.
    Apple,
    /// Numerical differentiation of 0.01x² + 0.1x and its tangent at x = 5.
    Tangent,
    /// Gradient descent on x0² + x1² from (-3, 4), and its path.
    Descent,
    /// simpleNet: the numerical and the backprop gradient of a 2x3 network.
    Simplenet,
    /// The PyTorch-style autograd fit of y = 2x from w = 1.
    Autograd,
}

/// Runs `nabla demo`.
pub fn run(a: DemoArgs) -> Result<ExitCode> {
    match a.which {
        Demo::Apple => ex01::main()?,
        Demo::Tangent => {
            ex02::main()?;
            std::fs::create_dir_all(&a.out_dir)?;
            let (slope, intercept) = ex02::tangent(5.0);
            let stem = a.out_dir.join("tangent");
            plot::tangent(ex02::f, slope, intercept, &stem)?;
            println!("wrote {0}.png and {0}.svg", stem.display());
        }
        Demo::Descent => {
            ex03::main()?;
            std::fs::create_dir_all(&a.out_dir)?;
            let path = ex03::descend(0.1, 20)?;
            let points: Vec<(f64, f64)> = path
                .history
                .iter()
                .map(|x| (x.data()[0], x.data()[1]))
                .collect();
            let stem = a.out_dir.join("descent");
            plot::descent_path(&points, &stem)?;
            println!(
                "wrote {0}.png and {0}.svg (lr 0.1, 20 steps)",
                stem.display()
            );
        }
        Demo::Simplenet => ex04::main()?,
        Demo::Autograd => ex05::main()?,
    }
    Ok(ExitCode::SUCCESS)
}
