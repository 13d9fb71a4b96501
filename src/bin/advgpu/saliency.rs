//! `advgpu saliency METHOD`: attribution maps for image files or bundled digits.

use std::path::PathBuf;
use std::time::Instant;

use advgpu::data::images::load_image;
use advgpu::explain::{self, saliency_gallery, Attributions, ClassChoice, Options, Settings};
use advgpu::nn::Model;
use anyhow::{Context, Result};
use serde_json::json;

use crate::common::{adapter_name, held_out, load_model, print_json, progress_bar, GpuChoice};

/// Images shown in the gallery; more would make an unreadably tall picture.
const GALLERY_ROWS: usize = 12;

#[derive(clap::Args)]
pub struct Args {
    /// gradient, gradient-x-input, guided-backprop, smoothgrad,
    /// integrated-gradients or occlusion; several separated by commas, or all.
    method: String,
    /// Image files to explain; without any, the first --n held-out digits.
    images: Vec<PathBuf>,
    /// Number of held-out digits to explain when no image is given.
    #[arg(long, default_value_t = 8)]
    n: usize,
    /// The class whose score is explained (default: the predicted one).
    #[arg(long)]
    class: Option<u32>,
    /// SmoothGrad: noisy copies per image (default 50).
    #[arg(long)]
    samples: Option<usize>,
    /// SmoothGrad: standard deviation of the noise, in pixel units (default 0.15).
    #[arg(long)]
    noise: Option<f32>,
    /// Integrated Gradients: points on the path (default 64).
    #[arg(long)]
    steps: Option<usize>,
    /// Integrated Gradients' baseline (default black) or the occluder's value
    /// (default grey): black, grey, white or a number.
    #[arg(long)]
    baseline: Option<String>,
    /// Occlusion: side of the square in pixels (default 6).
    #[arg(long)]
    window: Option<usize>,
    /// Occlusion: step between positions in pixels (default 2).
    #[arg(long)]
    stride: Option<usize>,
    /// SmoothGrad: seed of the noise (default 0).
    #[arg(long)]
    seed: Option<u64>,
    /// Image copies per GPU batch (default: as many as fit, at most 256).
    #[arg(long)]
    batch: Option<usize>,
    /// Folder for the gallery.
    #[arg(long, default_value = "out/saliency")]
    out: PathBuf,
    /// Model file (default: the bundled MNIST model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(choice: &GpuChoice, args: Args) -> Result<()> {
    let settings = Settings {
        samples: args.samples,
        noise: args.noise,
        steps: args.steps,
        baseline: args
            .baseline
            .as_deref()
            .map(explain::parse_level)
            .transpose()?,
        window: args.window,
        stride: args.stride,
        seed: args.seed,
    };
    let names: Vec<&str> = args.method.split(',').map(str::trim).collect();
    let methods = explain::by_names(&names, &settings)?;
    let model = load_model(&args.model)?;
    for m in &methods {
        m.spec().validate(model.input_shape)?;
    }
    let (x, labels) = inputs(&model, &args.images, args.n)?;
    let d = model.input_len();
    let n = x.len() / d;
    let options = Options {
        class: args
            .class
            .map_or(ClassChoice::Predicted, ClassChoice::Class),
        batch: args.batch,
    };
    let gpu = choice.open()?;

    let rows: Vec<u64> = methods
        .iter()
        .map(|m| (n * m.spec().copies(model.input_shape)) as u64)
        .collect();
    let bar = progress_bar(rows.iter().sum(), "saliency");
    let mut results = Vec::new();
    let mut done = 0;
    for (m, r) in methods.iter().zip(&rows) {
        bar.set_prefix(m.name());
        let start = Instant::now();
        let a = explain::explain(&gpu, &model, m.as_ref(), &x, &options, |k| {
            bar.set_position(done + k)
        })?;
        done += r;
        results.push((a, start.elapsed().as_secs_f64()));
    }
    bar.finish_and_clear();

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating --out {}", args.out.display()))?;
    let gallery_path = args.out.join("gallery.png");
    let maps: Vec<(&str, &Attributions)> = methods
        .iter()
        .zip(&results)
        .map(|(m, (a, _))| (m.name(), a))
        .collect();
    saliency_gallery(&model, &x, labels.as_deref(), &maps, GALLERY_ROWS)?
        .save(&gallery_path)
        .context("writing the gallery")?;

    if args.json {
        let per_method: Vec<serde_json::Value> = methods
            .iter()
            .zip(&results)
            .zip(&rows)
            .map(|((m, (a, seconds)), r)| {
                json!({
                    "method": m.name(),
                    "spec": m.spec(),
                    "rows": r,
                    "seconds": seconds,
                    "rows_per_second": *r as f64 / seconds.max(1e-9),
                    "classes": a.classes,
                    "scores": a.scores,
                    "baseline_scores": a.baseline_scores,
                    "completeness_error": completeness_error(a),
                    "attribution_sums": (0..a.len()).map(|i| a.map(i).iter().sum::<f32>()).collect::<Vec<_>>(),
                })
            })
            .collect();
        return print_json(&json!({
            "n": n,
            "labels": labels,
            "predicted": results.first().map(|(a, _)| a.predicted()),
            "methods": per_method,
            "adapter": adapter_name(&gpu),
            "gallery": gallery_path.display().to_string(),
        }));
    }
    for ((m, (a, seconds)), r) in methods.iter().zip(&results).zip(&rows) {
        let mut line = format!(
            "{:<21} {n} images, {r} image copies in {seconds:.2} s ({:.0} copies/s)",
            m.name(),
            *r as f64 / seconds.max(1e-9)
        );
        if let Some(e) = completeness_error(a) {
            line.push_str(&format!(
                "; sum of attributions within {:.2}% of f(x) - f(baseline) (worst image)",
                100.0 * e
            ));
        }
        println!("{line}");
    }
    println!(
        "on {}; wrote {}",
        adapter_name(&gpu),
        gallery_path.display()
    );
    Ok(())
}

/// Integrated Gradients: the worst relative gap between the sum of the
/// attributions and `f(x) - f(b)` over the images.
fn completeness_error(a: &Attributions) -> Option<f64> {
    let base = a.baseline_scores.as_ref()?;
    Some(
        (0..a.len())
            .map(|i| {
                let sum: f64 = a.map(i).iter().map(|v| f64::from(*v)).sum();
                let gap = f64::from(a.scores[i]) - f64::from(base[i]);
                (sum - gap).abs() / gap.abs().max(1e-12)
            })
            .fold(0.0, f64::max),
    )
}

/// Image files, or the first `n` held-out digits with their labels.
fn inputs(model: &Model, files: &[PathBuf], n: usize) -> Result<(Vec<f32>, Option<Vec<u8>>)> {
    if files.is_empty() {
        let held = held_out(Some(n))?;
        anyhow::ensure!(
            model.input_shape == [1, held.rows, held.cols],
            "the bundled digits are 1x{}x{}, the model takes {:?}; give image files",
            held.rows,
            held.cols,
            model.input_shape
        );
        let held = held.slice(0..n);
        return Ok((held.images, Some(held.labels)));
    }
    let mut x = Vec::new();
    for f in files {
        x.extend(load_image(f, model.input_shape).context("reading an image to explain")?);
    }
    Ok((x, None))
}
