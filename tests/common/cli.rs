//! Running the advgpu binary from the command-line tests.

use std::path::Path;
use std::process::{Command, Output};

/// Runs the advgpu binary with `args` in `dir`.
pub fn advgpu(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_advgpu"))
        .args(args)
        .current_dir(dir)
        // Register kernels, no tuning, and no cache file in the user's home.
        .env("ADVGPU_KERNELS", "register")
        .env("ADVGPU_TUNE_CACHE", "")
        .env("RUST_LOG", "error")
        .output()
        .expect("the advgpu binary runs")
}

/// The one JSON object a successful run printed.
pub fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

/// The error text of a run that failed without a panic.
pub fn refused(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!err.contains("panicked"), "{err}");
    err
}
