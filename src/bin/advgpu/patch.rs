//! `advgpu patch`: train a universal adversarial patch on the bundled training
//! digits and measure it on the held-out ones, against a noise patch.

use std::path::{Path, PathBuf};

use advgpu::attack::patch::{
    self, gallery, EvalConfig, Evaluation, Optimizer, Patch, PatchConfig, Placement, Shape,
};
use advgpu::data::Digits;
use advgpu::gpu::Gpu;
use advgpu::report::plot::{LinePlot, Series};
use advgpu::report::save_rgb;
use anyhow::{Context, Result};
use serde_json::json;

use crate::common::{adapter_name, held_out, load_model, print_json, progress_bar, GpuChoice};

/// Held-out digits shown in a gallery.
const GALLERY_ROWS: usize = 8;
/// Patch pictures are drawn this many screen pixels per patch pixel.
const PATCH_ZOOM: u32 = 12;

#[derive(clap::Args)]
pub struct Args {
    /// The class the patch makes the model predict.
    #[arg(long, default_value_t = 8)]
    target: u32,
    /// Patch side in pixels. Several, comma-separated, train one patch each
    /// and plot success against size.
    #[arg(long, value_delimiter = ',', default_value = "14")]
    size: Vec<usize>,
    /// Scale range MIN,MAX of training placements (one value: a fixed scale);
    /// 1 draws one patch pixel over one image pixel.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    scale: Vec<f32>,
    /// Largest rotation either way, in degrees, in training and evaluation.
    #[arg(long, default_value_t = 0.0)]
    rotation: f32,
    /// Place the patch at sub-pixel offsets (bilinear blending even at scale
    /// 1) instead of with its corner on the pixel grid.
    #[arg(long)]
    subpixel: bool,
    /// Optimisation steps.
    #[arg(long, default_value_t = 500)]
    steps: usize,
    /// Training images (each with its own random placement) per step.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Step size: Adam's learning rate, or the size of a signed step.
    #[arg(long, default_value_t = 0.05)]
    lr: f32,
    /// adam or sign.
    #[arg(long, default_value = "adam")]
    optimizer: String,
    /// Weight of the total-variation penalty (0: off).
    #[arg(long, default_value_t = 0.0)]
    tv: f32,
    /// round, square, or a greyscale image file (white = patch), resized to the patch.
    #[arg(long, default_value = "square")]
    shape: String,
    /// Seed of the initial patch, the training draws and the evaluation placements.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Scales to measure success at (default: the training range's ends and middle).
    #[arg(long, value_delimiter = ',')]
    eval_scales: Option<Vec<f32>>,
    /// Held-out digits to measure on (default: all 1,000).
    #[arg(long)]
    n: Option<usize>,
    /// Fresh random placements per held-out digit and scale.
    #[arg(long, default_value_t = 4)]
    placements: usize,
    /// Folder for the patch pictures, galleries and plot.
    #[arg(long, default_value = "out/patch")]
    out: PathBuf,
    /// Model file (default: the bundled MNIST model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// What one patch size produced.
struct SizeResult {
    size: usize,
    patch: Evaluation,
    noise: Evaluation,
    train_seconds: f64,
    history: Vec<patch::Progress>,
    patch_png: PathBuf,
    gallery_png: PathBuf,
}

pub fn run(choice: &GpuChoice, args: Args) -> Result<()> {
    let placement = match args.scale[..] {
        [s] => Placement {
            scale_min: s,
            scale_max: s,
            rotation: args.rotation,
            subpixel: args.subpixel,
        },
        [lo, hi] => Placement {
            scale_min: lo,
            scale_max: hi,
            rotation: args.rotation,
            subpixel: args.subpixel,
        },
        _ => anyhow::bail!("--scale {:?}: expected MIN,MAX or one scale", args.scale),
    };
    placement.validate()?;
    anyhow::ensure!(!args.size.is_empty(), "--size: expected at least one size");
    let optimizer = Optimizer::parse(&args.optimizer)?;
    let eval_scales = args.eval_scales.clone().unwrap_or_else(|| {
        let (lo, hi) = (placement.scale_min, placement.scale_max);
        let mut s = vec![lo, 0.5 * (lo + hi), hi];
        s.dedup();
        s
    });
    let model = load_model(&args.model)?;
    let gpu = choice.open()?;
    let digits = Digits::bundled()?;
    let (train, held) = (digits.train(), held_out(args.n)?);
    let held_labels = held.labels_u32();

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating --out {}", args.out.display()))?;
    let mut results = Vec::new();
    for &size in &args.size {
        let shape = Shape::parse(&args.shape, size, size)?;
        let config = PatchConfig {
            target: args.target,
            height: size,
            width: size,
            shape: shape.clone(),
            placement: placement.clone(),
            steps: args.steps,
            batch: args.batch,
            lr: args.lr,
            optimizer,
            tv: args.tv,
            seed: args.seed,
        };
        let bar = progress_bar(args.steps as u64, &format!("patch {size}"));
        let trained = patch::train(&gpu, &model, &train.images, &config, |p| {
            bar.set_position(p.step as u64);
            bar.set_prefix(format!("batch success {:.0}%", 100.0 * p.success));
        })?;
        bar.finish_and_clear();

        let eval = EvalConfig {
            target: args.target,
            scales: eval_scales.clone(),
            rotation: args.rotation,
            subpixel: args.subpixel,
            placements: args.placements,
            seed: args.seed,
            ..Default::default()
        };
        let noise = Patch::noise(model.input_shape[0], size, size, &shape, args.seed)?;
        let patch_eval = patch::evaluate(
            &gpu,
            &model,
            &trained.patch,
            &held.images,
            &held_labels,
            &eval,
        )?;
        let noise_eval = patch::evaluate(&gpu, &model, &noise, &held.images, &held_labels, &eval)?;
        log::info!(
            "patch {size}x{size}: {:.1}% of held-out non-{} digits reach the target ({:.1}% with noise)",
            100.0 * patch_eval.success_rate,
            args.target,
            100.0 * noise_eval.success_rate
        );

        let patch_png = args.out.join(format!("patch_{size}.png"));
        save_rgb(&gallery::zoomed(&trained.patch, PATCH_ZOOM), &patch_png)?;
        let gallery_png = args.out.join(format!("patch_gallery_{size}.png"));
        let at = Placement {
            scale_min: eval_scales[0],
            scale_max: eval_scales[0],
            rotation: args.rotation,
            subpixel: args.subpixel,
        };
        let title = format!("patch for {}", model.class_name(args.target as usize));
        let patches = [(title.as_str(), &trained.patch), ("noise patch", &noise)];
        gallery::patch_gallery(
            &gpu,
            &model,
            &held.images,
            &held_labels,
            args.target,
            patches,
            &at,
            args.seed,
            GALLERY_ROWS,
        )?
        .save(&gallery_png)?;
        results.push(SizeResult {
            size,
            patch: patch_eval,
            noise: noise_eval,
            train_seconds: trained.seconds,
            history: trained.history,
            patch_png,
            gallery_png,
        });
    }

    let plot_png = if results.len() > 1 {
        let path = args.out.join("patch_success_by_size.png");
        plot_by_size(&results, args.target, &path)?;
        Some(path)
    } else {
        None
    };

    if args.json {
        return print_json(&json_report(
            &args,
            &gpu,
            &placement,
            &results,
            plot_png.as_deref(),
        ));
    }
    println!(
        "universal patch for class {} on {} held-out digits (not {}), {} fresh placements each, {}",
        args.target,
        results[0].patch.images,
        args.target,
        args.placements,
        adapter_name(&gpu)
    );
    println!(
        "{:>5} {:>6} {:>14} {:>14} {:>7} {:>10}",
        "size", "scale", "patch success", "noise success", "trials", "train s"
    );
    for r in &results {
        for (p, n) in r.patch.by_scale.iter().zip(&r.noise.by_scale) {
            println!(
                "{:>5} {:>6.2} {:>13.1}% {:>13.1}% {:>7} {:>10.0}",
                r.size,
                p.scale,
                100.0 * p.success_rate,
                100.0 * n.success_rate,
                p.trials,
                r.train_seconds
            );
        }
    }
    for r in &results {
        println!(
            "wrote {} and {}",
            r.patch_png.display(),
            r.gallery_png.display()
        );
    }
    if let Some(p) = plot_png {
        println!("wrote {}", p.display());
    }
    Ok(())
}

/// The JSON object of a run: the settings, and per size the success of the
/// patch and of noise; `success_rate` and `noise_success_rate` at the top
/// when a single size was trained.
fn json_report(
    args: &Args,
    gpu: &Gpu,
    placement: &Placement,
    results: &[SizeResult],
    plot: Option<&Path>,
) -> serde_json::Value {
    let per_size: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let image_steps = (args.steps * args.batch) as f64;
            json!({
                "size": r.size,
                "success_rate": r.patch.success_rate,
                "noise_success_rate": r.noise.success_rate,
                "by_scale": r.patch.by_scale,
                "noise_by_scale": r.noise.by_scale,
                "train_seconds": r.train_seconds,
                "image_steps_per_second": image_steps / r.train_seconds.max(1e-9),
                "history": r.history,
                "patch": r.patch_png.display().to_string(),
                "gallery": r.gallery_png.display().to_string(),
            })
        })
        .collect();
    let mut value = json!({
        "adapter": adapter_name(gpu),
        "target": args.target,
        "steps": args.steps,
        "batch": args.batch,
        "lr": args.lr,
        "optimizer": args.optimizer,
        "shape": args.shape,
        "tv": args.tv,
        "scale": [placement.scale_min, placement.scale_max],
        "rotation": placement.rotation,
        "subpixel": placement.subpixel,
        "seed": args.seed,
        "train_images": advgpu::data::TRAIN_SPLIT,
        "eval_images": results[0].patch.images,
        "excluded": results[0].patch.excluded,
        "placements": args.placements,
        "results": per_size,
    });
    if let [r] = results {
        value["success_rate"] = json!(r.patch.success_rate);
        value["noise_success_rate"] = json!(r.noise.success_rate);
    }
    if let Some(p) = plot {
        value["plot"] = json!(p.display().to_string());
    }
    value
}

/// Success against patch size: one line per evaluation scale, and noise.
fn plot_by_size(results: &[SizeResult], target: u32, path: &Path) -> Result<()> {
    let mut plot = LinePlot::new(
        format!("universal patch for class {target}, held-out digits"),
        "patch side (pixels)".into(),
        format!("share classified as {target}"),
    );
    plot.y_range = Some((0.0, 1.0));
    for (si, s) in results[0].patch.by_scale.iter().enumerate() {
        plot.series.push(Series {
            label: format!("trained patch, scale {}", s.scale),
            points: results
                .iter()
                .map(|r| (r.size as f64, r.patch.by_scale[si].success_rate))
                .collect(),
        });
    }
    plot.series.push(Series {
        label: "uniform noise patch".into(),
        points: results
            .iter()
            .map(|r| (r.size as f64, r.noise.success_rate))
            .collect(),
    });
    Ok(plot.save(path)?)
}
