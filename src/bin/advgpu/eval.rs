//! `advgpu eval`: accuracy on the held-out digits.

use std::path::PathBuf;

use advgpu::nn::{Classifier, Evaluation};
use anyhow::Result;
use serde_json::json;

use crate::common::{adapter_name, held_out, load_model, print_json, GpuChoice};

#[derive(clap::Args)]
pub struct Args {
    /// Model file (default: the bundled MNIST model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Evaluate only the first N held-out digits.
    #[arg(long)]
    n: Option<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// With --json, also list every digit's predicted class (`predictions`),
    /// e.g. to compare with another framework (tools/check_torch.py).
    #[arg(long, requires = "json")]
    predictions: bool,
}

pub fn run(choice: &GpuChoice, args: Args) -> Result<()> {
    let gpu = choice.open()?;
    let model = load_model(&args.model)?;
    let held = held_out(args.n)?;
    let classifier = Classifier::new(&gpu, &model, 250)?;
    let start = std::time::Instant::now();
    let predictions = classifier.predict(&held.images)?;
    let e = Evaluation::of(&predictions, &held.labels)?;
    let seconds = start.elapsed().as_secs_f64();
    if args.json {
        let mut value = json!({
            "accuracy": e.accuracy,
            "n": e.n,
            "correct": e.correct,
            "adapter": adapter_name(&gpu),
            "seconds": seconds,
        });
        if args.predictions {
            value["predictions"] = json!(predictions);
        }
        return print_json(&value);
    }
    println!(
        "accuracy {:.2}% ({}/{}) on the held-out digits, {:.2} s on {}",
        100.0 * e.accuracy,
        e.correct,
        e.n,
        seconds,
        adapter_name(&gpu)
    );
    Ok(())
}
