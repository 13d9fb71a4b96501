//! `advgpu predict IMAGE...`: top classes with probabilities.

use std::path::PathBuf;

use advgpu::data::images::load_image;
use advgpu::nn::Classifier;
use anyhow::{Context, Result};
use serde_json::json;

use crate::common::{adapter_name, load_model, print_json, GpuChoice};

#[derive(clap::Args)]
pub struct Args {
    /// Image files (PNG), of the model's input size.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Model file (default: the bundled MNIST model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(choice: &GpuChoice, args: Args) -> Result<()> {
    let model = load_model(&args.model)?;
    let mut x = Vec::new();
    for path in &args.images {
        x.extend(
            load_image(path, model.input_shape).with_context(|| "reading an image to classify")?,
        );
    }
    let gpu = choice.open()?;
    let classifier = Classifier::new(&gpu, &model, args.images.len().min(256))?;
    let probs = classifier.probabilities(&x)?;
    let k = model.num_classes();

    let mut results = Vec::new();
    for (path, p) in args.images.iter().zip(probs.chunks_exact(k)) {
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by(|a, b| p[*b].total_cmp(&p[*a]));
        let top: Vec<_> = order
            .iter()
            .take(args.top.max(1))
            .map(|&c| json!({"class": c, "name": model.class_name(c), "probability": p[c]}))
            .collect();
        results.push(json!({"image": path.display().to_string(), "top": top}));
    }
    if args.json {
        return print_json(&json!({"predictions": results, "adapter": adapter_name(&gpu)}));
    }
    for r in &results {
        let tops: Vec<String> = r["top"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                format!(
                    "{} {:.1}%",
                    t["name"].as_str().unwrap_or("?"),
                    100.0 * t["probability"].as_f64().unwrap_or(0.0)
                )
            })
            .collect();
        println!(
            "{}: {}",
            r["image"].as_str().unwrap_or("?"),
            tops.join(", ")
        );
    }
    Ok(())
}
