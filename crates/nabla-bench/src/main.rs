//! The side-by-side benchmark: nabla and PyTorch on the same workloads, data,
//! batch sizes and thread count, in one run.
//!
//! ```sh
//! cargo run --release -p nabla-bench -- [--data-dir DIR] [--threads 2] [--repeats 5] [--simd plain|avx2|avx512]
//! ```
//!
//! `--simd` runs nabla's kernels at that level at most (the `gemm` crate's
//! matrix products keep their own), to compare levels on one machine.
//!
//! The PyTorch side is `bench/pytorch_bench.py`, run when `python3 -c "import torch"`
//! works (`pip install torch`); without it the nabla side still runs.
//! Every figure is the median of `--repeats` runs after a warm-up run.

mod alloc_count;
mod workloads;

#[global_allocator]
static ALLOCATOR: alloc_count::Counting = alloc_count::Counting;

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use workloads::{Measured, Workload};

struct Args {
    data_dir: PathBuf,
    threads: usize,
    repeats: usize,
    pytorch: bool,
    only: Option<String>,
    simd: Option<nabla::tensor::SimdLevel>,
}

fn parse_args() -> Result<Args> {
    let default_dir = ["../shared/data/mnist", "crates/nabla-data/assets"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("train-images-idx3-ubyte.gz").is_file())
        .unwrap_or_else(|| PathBuf::from("crates/nabla-data/assets"));
    let mut args = Args {
        data_dir: default_dir,
        threads: 2,
        repeats: 5,
        pytorch: true,
        only: None,
        simd: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--data-dir" => args.data_dir = PathBuf::from(value("--data-dir")?),
            "--threads" => args.threads = value("--threads")?.parse().context("--threads")?,
            "--repeats" => args.repeats = value("--repeats")?.parse().context("--repeats")?,
            "--no-pytorch" => args.pytorch = false,
            "--only" => args.only = Some(value("--only")?),
            "--simd" => {
                let name = value("--simd")?;
                let level = nabla::tensor::SimdLevel::from_name(&name)
                    .with_context(|| format!("--simd {name}: expected plain, avx2 or avx512"))?;
                args.simd = Some(level);
            }
            "-h" | "--help" => {
                println!("usage: nabla-bench [--data-dir DIR] [--threads N] [--repeats N] [--no-pytorch] [--only TEXT] [--simd plain|avx2|avx512]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other} (see --help)"),
        }
    }
    if args.threads == 0 || args.repeats == 0 {
        bail!("--threads and --repeats must be at least 1");
    }
    Ok(args)
}

fn pytorch(args: &Args) -> Result<Option<BTreeMap<String, serde_json::Value>>> {
    if !args.pytorch {
        return Ok(None);
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/pytorch_bench.py");
    let probe = Command::new("python3")
        .args(["-c", "import torch, numpy"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        println!("PyTorch not found (python3 -c 'import torch, numpy' failed): `pip install torch` to compare; nabla side only.\n");
        return Ok(None);
    }
    let out = Command::new("python3")
        .arg(&script)
        .arg(&args.data_dir)
        .arg(args.threads.to_string())
        .arg(args.repeats.to_string())
        .output()
        .context("running bench/pytorch_bench.py")?;
    if !out.status.success() {
        bail!(
            "bench/pytorch_bench.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(Some(
        serde_json::from_slice(&out.stdout).context("reading the PyTorch results")?,
    ))
}

fn fmt_time(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .context("thread pool")?;
    // Everything runs on a worker of the pool, so parallel sections inside a
    // step are cheap work-stealing joins, not wake-ups of sleeping threads.
    pool.install(|| run(args))
}

fn run(args: Args) -> Result<()> {
    let data = nabla_data::ImageDataset::load_dir(&args.data_dir, nabla_data::DatasetKind::Mnist)
        .with_context(|| format!("--data-dir {}", args.data_dir.display()))?
        .train;
    if let Some(level) = args.simd {
        if level > nabla::tensor::detected_simd_level() {
            bail!(
                "--simd {level}: this CPU offers at most {}",
                nabla::tensor::detected_simd_level()
            );
        }
        nabla::tensor::limit_simd_level(Some(level));
    }
    println!("CPU: {}", nabla::tensor::cpu_description());
    println!(
        "kernels: {}; matrix products through the gemm crate at its own choice, {}",
        nabla::tensor::kernel_levels(),
        nabla::tensor::gemm_library_level()
    );
    println!(
        "nabla vs PyTorch, {} threads, {} training images from {}, median of {} runs after a warm-up\n",
        args.threads,
        data.len(),
        args.data_dir.display(),
        args.repeats
    );
    // PyTorch first, so the two sides never compete for the cores.
    let torch = pytorch(&args)?;
    let nabla_gemm = workloads::sgemm_rate(args.repeats.min(5))?;
    let torch_gemm = torch
        .as_ref()
        .and_then(|t| t.get("sgemm 1024 GFLOP/s"))
        .and_then(|v| v.as_f64());
    let machine_gemm = torch_gemm.map_or(nabla_gemm, |t| t.max(nabla_gemm));
    println!(
        "sgemm 1024³: nabla {nabla_gemm:.1} GFLOP/s{}",
        torch_gemm.map_or(String::new(), |t| format!(", PyTorch {t:.1} GFLOP/s"))
    );
    if let Some(v) = torch.as_ref().and_then(|t| t.get("torch_version")) {
        println!("PyTorch {v}");
    }
    println!("GEMM-bound time = FLOPs / {machine_gemm:.1} GFLOP/s (the faster measured sgemm)\n");
    println!("| workload | nabla | PyTorch | nabla / PyTorch | GEMM-bound | nabla / bound |");
    println!("| --- | --- | --- | --- | --- | --- |");
    // --only TEXT: the workload of that name, or else every workload whose name contains it.
    let all = Workload::all();
    let exact = args
        .only
        .as_ref()
        .is_some_and(|o| all.iter().any(|w| w.name() == o));
    let selected = all.into_iter().filter(|w| match &args.only {
        None => true,
        Some(o) if exact => w.name() == o,
        Some(o) => w.name().contains(o.as_str()),
    });
    for w in selected {
        let Measured { seconds, flops } = w.run(&data, args.repeats)?;
        let t = torch
            .as_ref()
            .and_then(|t| t.get(w.name()))
            .and_then(|v| v.as_f64());
        let bound = flops / (machine_gemm * 1e9);
        println!(
            "| {} | {} | {} | {} | {} | {:.2} |",
            w.name(),
            fmt_time(seconds),
            t.map_or("-".into(), fmt_time),
            t.map_or("-".into(), |t| format!("{:.3}", seconds / t)),
            fmt_time(bound),
            seconds / bound
        );
    }
    let (own, gemm) = workloads::allocations_per_step(&data, alloc_count::allocations)?;
    println!(
        "\nallocations per steady-state training step (784-100-10, batch 100, SGD): \
         {own} by nabla, {gemm} inside the gemm library (its packing buffers)"
    );
    Ok(())
}
