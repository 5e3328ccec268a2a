//! What the end-to-end tests share: running the binary and checking that a
//! failure is one clean line.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `nabla args…` in `cwd`.
pub fn nabla(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nabla"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the binary runs")
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a clean failure: non-zero exit, one `nabla: error:` line containing `needle`.
pub fn fails_with(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "expected failure, got success: {}",
        stdout(o)
    );
    assert!(
        !err.contains("internal error") && !err.contains("panicked"),
        "panic: {err}"
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    assert!(
        err.starts_with("nabla: error: ") && err.contains(needle),
        "{needle:?} not in: {err}"
    );
}
