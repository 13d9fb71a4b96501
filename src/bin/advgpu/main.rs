//! The `advgpu` command line: one module per command; the library does the work.

mod attack;
mod bench;
mod common;
mod confounder;
mod demo;
mod eval;
mod info;
mod patch;
mod predict;
mod robustness;
mod saliency;
mod train;

use clap::{Parser, Subcommand};

/// Adversarial attacks on the GPU, for any vendor's GPU (wgpu: Vulkan, Metal, DX12).
#[derive(Parser)]
#[command(name = "advgpu", version, about)]
struct Cli {
    /// Use the adapter whose name contains this text (see `advgpu info`);
    /// WGPU_BACKEND=vulkan|metal|dx12 limits the backends searched.
    #[arg(long, global = true)]
    adapter: Option<String>,

    /// Kernel variants: auto (time both on first use, remembered per adapter
    /// in ~/.cache/advgpu/kernels.json or $ADVGPU_TUNE_CACHE), register or
    /// tiled (nothing timed; convolution input gradients as product and
    /// gather). Default: $ADVGPU_KERNELS, else auto.
    #[arg(long, global = true)]
    kernels: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List GPU adapters, the one chosen, and its limits.
    Info(info::Args),
    /// Accuracy on the held-out digits.
    Eval(eval::Args),
    /// Top classes of image files.
    Predict(predict::Args),
    /// Train the small MNIST CNN on the bundled training digits.
    Train(train::Args),
    /// Attack image files or held-out digits and write the adversarial images.
    Attack(attack::Args),
    /// Accuracy under attack at several eps values, with a curve.
    Robustness(robustness::Args),
    /// Train a universal adversarial patch and measure it on held-out digits.
    Patch(patch::Args),
    /// PGD on a few bundled digits: the quickest look at what advgpu does.
    Demo(demo::Args),
    /// Saliency maps (gradient, SmoothGrad, Integrated Gradients, occlusion, ...)
    /// of image files or held-out digits, in one gallery.
    Saliency(saliency::Args),
    /// A clean and a confounded model side by side: accuracy with and without
    /// the spurious square, and the share of saliency on it.
    Confounder(confounder::Args),
    /// Attack throughput on this GPU, comparable across machines (--json, --compare).
    Bench(bench::Args),
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("advgpu=info"))
        .init();
    let cli = Cli::parse();
    let gpu = common::GpuChoice {
        adapter: cli.adapter,
        kernels: cli.kernels,
    };
    let result = match cli.command {
        Command::Info(a) => info::run(&gpu, a),
        Command::Eval(a) => eval::run(&gpu, a),
        Command::Predict(a) => predict::run(&gpu, a),
        Command::Train(a) => train::run(&gpu, a),
        Command::Attack(a) => attack::run(&gpu, a),
        Command::Robustness(a) => robustness::run(&gpu, a),
        Command::Patch(a) => patch::run(&gpu, a),
        Command::Demo(a) => demo::run(&gpu, a),
        Command::Saliency(a) => saliency::run(&gpu, a),
        Command::Confounder(a) => confounder::run(&gpu, a),
        Command::Bench(a) => bench::run(&gpu, a),
    };
    if let Err(e) = result {
        eprintln!("error: {}", describe(&e));
        std::process::exit(1);
    }
}

/// The error and its causes, joined by ": ", leaving out a cause that the
/// message before it already quotes (the library's errors name their source
/// in their own message, and also expose it as their `source()`).
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}
