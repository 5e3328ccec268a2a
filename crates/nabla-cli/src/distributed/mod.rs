//! `mpirun -np N nabla train …`: data-parallel training over MPI (with the
//! `mpi` feature), and the refusal to run as N separate copies without it.
//!
//! The library's [`nabla_train::DataParallel`] does the work; this room
//! starts MPI, gives each rank its share of the host's cores, and ends the
//! job cleanly when a rank fails.

#[cfg(feature = "mpi")]
mod mpi_group;

use crate::cmd_train::TrainArgs;
use anyhow::Result;
use std::process::ExitCode;

/// The number of processes an MPI launcher started, if this process is one
/// of them (Open MPI's, or a PMI launcher's such as MPICH's or Slurm's).
pub fn launched_ranks() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
}

/// Refuses to run a command as several copies under an MPI launcher when
/// they would not share the work: without the `mpi` feature, or any command
/// but `train`.
///
/// # Errors
/// What the launcher started and what to do instead.
pub fn check_launch(is_train: bool) -> Result<()> {
    let Some(n) = launched_ranks().filter(|&n| n > 1) else {
        return Ok(());
    };
    if !cfg!(feature = "mpi") {
        anyhow::bail!(
            "started as one of {n} MPI ranks, but this nabla was built without MPI: the {n} copies would train separately and overwrite each other's files; build it with `cargo build --release -p nabla-cli --features mpi`"
        );
    }
    if !is_train {
        anyhow::bail!(
            "started as one of {n} MPI ranks: only `nabla train` runs data-parallel; run other commands as one process"
        );
    }
    Ok(())
}

/// Whether this process should train data-parallel with the others.
pub fn is_parallel() -> bool {
    cfg!(feature = "mpi") && launched_ranks().is_some_and(|n| n > 1)
}

/// Threads for one rank: `--threads`, or the host's cores shared among
/// the ranks on this host.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
fn threads_per_rank(asked: usize) -> usize {
    if asked > 0 {
        return asked;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let local = ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    (cores / local).max(1)
}

/// Runs `nabla train` as one rank of an MPI job.
#[cfg(feature = "mpi")]
pub fn run_train(a: TrainArgs) -> Result<ExitCode> {
    use nabla_train::{DataParallel, TrainError};
    let settings = a.parallel_settings()?;
    let session = mpi_group::Session::start(settings.timeout)?;
    let group = session.group();
    let rank = nabla_train::Collective::rank(&*group);
    let parallel = DataParallel {
        group,
        reduction: settings.reduction,
        bucket_bytes: settings.bucket_bytes,
        overlap: settings.overlap,
    };
    #[cfg(unix)]
    say_when_ended(rank);
    let threads = threads_per_rank(a.threads());
    let result = crate::thread_pool(threads)?.install(|| {
        let trained = crate::cmd_train::fit_with(&a, Some(&parallel))?;
        if parallel.is_primary() {
            crate::cmd_train::report(&a, &trained);
        }
        anyhow::Ok(())
    });
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("nabla: error: rank {rank}: {}", crate::error_line(&e));
            // An error the ranks met together (they checked their settings
            // or weights, or a step failed on one and so on all) ends each
            // rank normally; any other leaves the others waiting, so end them.
            let together = matches!(
                e.downcast_ref::<TrainError>(),
                Some(
                    TrainError::Distributed(_)
                        | TrainError::Diverged { .. }
                        | TrainError::NonFiniteGradient { .. }
                        | TrainError::Anomaly { .. }
                )
            );
            if !together {
                session.abort(1);
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The line a rank prints when the launcher ends it (another rank died).
#[cfg(all(feature = "mpi", unix))]
static ENDED: std::sync::OnceLock<Box<[u8]>> = std::sync::OnceLock::new();

/// When the launcher ends this rank (with SIGTERM, after another rank died
/// or failed), say so in one line before leaving.
#[cfg(all(feature = "mpi", unix))]
fn say_when_ended(rank: usize) {
    extern "C" fn ended(_: libc::c_int) {
        if let Some(line) = ENDED.get() {
            // SAFETY: write(2) and _exit(2) are async-signal-safe; the
            // line was made before the handler was installed.
            unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
        }
        unsafe { libc::_exit(143) }
    }
    let line = format!(
        "nabla: error: rank {rank}: ended by the MPI launcher because another rank died or failed (see its message); the last checkpoint written stays valid\n"
    );
    let _ = ENDED.set(line.into_bytes().into_boxed_slice());
    // SAFETY: the handler only calls async-signal-safe functions.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            ended as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
}

/// Without MPI there is no data-parallel run ([`check_launch`] refuses it).
#[cfg(not(feature = "mpi"))]
pub fn run_train(a: TrainArgs) -> Result<ExitCode> {
    let _ = a;
    anyhow::bail!("this nabla was built without MPI (build it with --features mpi)")
}
