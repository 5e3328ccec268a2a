//! `nabla serve`: a local web page where a digit drawn with the mouse or a
//! finger flows through a network and back. Every stroke is sent to the
//! server, which preprocesses it as `predict` does, runs one forward pass
//! keeping every layer's output, and one backward pass from the
//! cross-entropy against the chosen digit ([`nabla::nn::explain`]); the page
//! draws the activations, the probabilities, the output's wish, the
//! gradient reaching each layer and the input's sensitivity.
//!
//! The page is three static files compiled into the binary. Requests are
//! bounded: the body's size, the image's pixels, the rate over all clients
//! and the time one analysis may take.

mod http;
mod models;
mod report;

use crate::shipped::Shipped;
use anyhow::{Context, Result};
use clap::Args;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

pub use models::Served;

/// The flags of `nabla serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// A digit model file to serve (give several to switch between them); default: the shipped cnn and mlp.
    #[arg(long = "model")]
    models: Vec<PathBuf>,
    /// The port to listen on (0: any free port, printed at start).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// The address to listen on; anything but loopback makes the page reachable from other machines.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// The most analyses per second over all clients; more get 429 Too Many Requests.
    #[arg(long, default_value_t = 60)]
    rate: u32,
}

/// The limits every request is held to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest request body, in bytes.
    pub body_bytes: usize,
    /// The largest side of an image, in pixels.
    pub image_side: u32,
    /// Analyses per second over all clients (also the burst allowed).
    pub rate: u32,
    /// The longest one analysis may take before the client gets 503.
    pub timeout: std::time::Duration,
}

impl Limits {
    fn new(rate: u32) -> Self {
        Limits {
            // A 1024² canvas as PNG is a few hundred KB at most.
            body_bytes: 2 << 20,
            image_side: 1024,
            rate: rate.max(1),
            timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// Runs `nabla serve` until interrupted.
pub fn run(a: ServeArgs) -> Result<ExitCode> {
    let served = if a.models.is_empty() {
        Shipped::ALL
            .iter()
            .map(|&s| Served::shipped(s))
            .collect::<Result<Vec<_>>>()?
    } else {
        a.models
            .iter()
            .map(|p| Served::file(p))
            .collect::<Result<Vec<_>>>()?
    };
    let served = unique_ids(served);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the server's runtime")?;
    let addr = SocketAddr::new(a.host, a.port);
    runtime.block_on(http::serve(addr, served, Limits::new(a.rate)))?;
    Ok(ExitCode::SUCCESS)
}

/// Model ids a query can name: `a`, `a-2`, … for files of one stem.
fn unique_ids(mut served: Vec<Served>) -> Vec<Served> {
    let mut seen = std::collections::HashSet::new();
    for m in &mut served {
        let mut id = m.id.clone();
        let mut n = 1;
        while !seen.insert(id.clone()) {
            n += 1;
            id = format!("{}-{n}", m.id);
        }
        m.id.clone_from(&id);
        m.info.id = id;
    }
    served
}
