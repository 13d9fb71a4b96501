//! The `advgpu` command line: one module per command; the library does the work.

mod common;
mod eval;
mod info;
mod predict;
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
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("advgpu=info")).init();
    let cli = Cli::parse();
    let gpu = common::GpuChoice { adapter: cli.adapter };
    let result = match cli.command {
        Command::Info(a) => info::run(&gpu, a),
        Command::Eval(a) => eval::run(&gpu, a),
        Command::Predict(a) => predict::run(&gpu, a),
        Command::Train(a) => train::run(&gpu, a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
