//! What several commands share: the GPU, the model, reports and progress bars.

use std::path::PathBuf;

use advgpu::data::Digits;
use advgpu::gpu::{Gpu, GpuOptions};
use advgpu::nn::Model;
use anyhow::{Context, Result};

/// The global `--adapter` and `--kernels` choices.
pub struct GpuChoice {
    pub adapter: Option<String>,
    /// `auto`, `register` or `tiled`; `None` leaves `ADVGPU_KERNELS` or the default.
    pub kernels: Option<String>,
}

impl GpuChoice {
    /// Opens the chosen adapter.
    pub fn open(&self) -> Result<Gpu> {
        let mut options = GpuOptions::from_env()?;
        options.adapter = self.adapter.clone();
        if let Some(k) = &self.kernels {
            options.kernels = k.parse()?;
        }
        Ok(Gpu::new_blocking(&options)?)
    }
}

/// `--model PATH`, or the bundled model.
pub fn load_model(path: &Option<PathBuf>) -> Result<Model> {
    match path {
        Some(p) => Model::load(p).with_context(|| format!("loading --model {}", p.display())),
        None => Ok(advgpu::data::bundled_model()?),
    }
}

/// A short name of the adapter for reports: "name (backend)".
/// The first `n` bundled held-out digits (all of them for `None`); `--n`
/// outside 1..=1000 is refused.
pub fn held_out(n: Option<usize>) -> Result<Digits> {
    let held = Digits::bundled()?.held_out();
    let n = n.unwrap_or(held.len());
    anyhow::ensure!(
        n >= 1 && n <= held.len(),
        "--n {n}: expected 1..={} held-out digits",
        held.len()
    );
    Ok(held.slice(0..n))
}

pub fn adapter_name(gpu: &Gpu) -> String {
    format!("{} ({:?})", gpu.info.name, gpu.info.backend)
}

/// Prints one JSON object on stdout.
pub fn print_json(value: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A progress bar on stderr; hidden when stderr is not a terminal.
pub fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>10} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta} {prefix}",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}
