//! `advgpu attack METHOD`: adversarial images for image files or bundled digits.

use std::path::{Path, PathBuf};

use advgpu::attack::{self, eval, Options, Settings, Target};
use advgpu::data::images::{load_image, save_png};
use advgpu::gpu::Gpu;
use advgpu::nn::{Classifier, Model};
use advgpu::report::gallery::attack_gallery;
use anyhow::{Context, Result};
use serde_json::json;

use crate::common::{adapter_name, held_out, load_model, print_json, progress_bar, GpuChoice};

/// Samples shown in a gallery; more would make an unreadably tall picture.
const GALLERY_ROWS: usize = 12;

#[derive(clap::Args)]
pub struct Args {
    /// fgsm, bim, pgd, pgd-l2, mifgsm or masked.
    method: String,
    /// Image files to attack (their label is the model's clean prediction);
    /// without any, the first --n held-out digits.
    images: Vec<PathBuf>,
    /// Number of held-out digits to attack when no image is given.
    #[arg(long, default_value_t = 16)]
    n: usize,
    #[command(flatten)]
    settings: SettingsArgs,
    /// Aim for a class: a number, next (label + 1), random or least-likely.
    #[arg(long)]
    target: Option<String>,
    /// Seed of random starts and random targets.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop changing a sample once the attack succeeds on it.
    #[arg(long)]
    early_stop: bool,
    /// masked: a greyscale PNG of the model's input size; pixels >= 128 may
    /// change, the others stay exactly as they are (default: the bundled
    /// eyeglass frame, assets/masks/eyeglasses-28.png).
    #[arg(long)]
    mask: Option<PathBuf>,
    /// Folder for the adversarial PNGs and the gallery.
    #[arg(long, default_value = "out/attack")]
    out: PathBuf,
    /// Model file (default: the bundled MNIST model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The attack settings, shared with `robustness`.
#[derive(clap::Args)]
pub struct SettingsArgs {
    /// Radius of the perturbation ball (default: 8/255 for L-inf, 1.0 for L2).
    #[arg(long, allow_negative_numbers = true)]
    pub eps: Option<f32>,
    /// Step size (default: 2/255 for L-inf, 0.2 for L2).
    #[arg(long, allow_negative_numbers = true)]
    pub alpha: Option<f32>,
    /// Steps (default 10).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Random restarts (pgd and pgd-l2; default 1).
    #[arg(long)]
    pub restarts: Option<usize>,
    /// Momentum decay (mifgsm; default 1.0).
    #[arg(long, allow_negative_numbers = true)]
    pub mu: Option<f32>,
}

impl SettingsArgs {
    pub fn settings(&self) -> Settings {
        Settings {
            eps: self.eps,
            alpha: self.alpha,
            steps: self.steps,
            restarts: self.restarts,
            mu: self.mu,
            mask: None,
        }
    }
}

pub fn run(choice: &GpuChoice, args: Args) -> Result<()> {
    let model = load_model(&args.model)?;
    let mut settings = args.settings.settings();
    if let Some(path) = &args.mask {
        let [_, h, w] = model.input_shape;
        settings.mask = Some(
            load_image(path, [1, h, w])
                .with_context(|| format!("reading --mask {}", path.display()))?,
        );
    }
    let attack = attack::by_name(&args.method, &settings)?;
    let target = args
        .target
        .as_deref()
        .map(Target::parse)
        .transpose()?
        .unwrap_or(Target::None);
    let gpu = choice.open()?;

    let (x0, labels) = inputs(&gpu, &model, &args.images, args.n)?;
    let options = Options {
        target,
        early_stop: args.early_stop,
        seed: args.seed,
        batch: None,
    };
    let spec = attack.spec();
    let total = (labels.len() * spec.steps * spec.restarts) as u64;
    let bar = progress_bar(total, attack.name());
    let (outcome, report) = eval::evaluate(
        &gpu,
        &model,
        attack.as_ref(),
        &x0,
        &labels,
        &options,
        |done| bar.set_position(done),
    )?;
    bar.finish_and_clear();

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating --out {}", args.out.display()))?;
    let d = model.input_len();
    for i in 0..labels.len() {
        save_png(
            &args.out.join(format!("adv_{i:04}.png")),
            &outcome.images[i * d..(i + 1) * d],
            model.input_shape,
        )?;
    }
    let gallery_path = args.out.join("gallery.png");
    write_gallery(
        &gpu,
        &model,
        &x0,
        &outcome.images,
        &labels,
        outcome.targets.as_deref(),
        &gallery_path,
    )?;

    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["adapter"] = json!(adapter_name(&gpu));
        value["alpha"] = json!(spec.alpha);
        value["steps"] = json!(spec.steps);
        value["restarts"] = json!(spec.restarts);
        value["targeted"] = json!(outcome.targets.is_some());
        value["seed"] = json!(args.seed);
        value["out"] = json!(args.out.display().to_string());
        value["gallery"] = json!(gallery_path.display().to_string());
        return print_json(&value);
    }
    println!(
        "{} eps {} on {} images: clean accuracy {:.1}%, robust accuracy {:.1}%, success {:.1}%, \
         mean L-inf {:.4}, mean L2 {:.3}, {:.0} image-steps/s on {}",
        report.attack,
        report.eps,
        report.n,
        100.0 * report.clean_accuracy,
        100.0 * report.robust_accuracy,
        100.0 * report.success_rate,
        report.linf_mean,
        report.l2_mean,
        report.image_steps_per_second,
        adapter_name(&gpu)
    );
    println!(
        "wrote {} adversarial PNGs and {}",
        labels.len(),
        gallery_path.display()
    );
    Ok(())
}

/// The clean images and their labels: files labelled by the model's own
/// prediction, or held-out digits with their true labels.
pub fn inputs(
    gpu: &Gpu,
    model: &Model,
    files: &[PathBuf],
    n: usize,
) -> Result<(Vec<f32>, Vec<u32>)> {
    if files.is_empty() {
        let held = held_out(Some(n))?;
        return Ok((held.images.clone(), held.labels_u32()));
    }
    let mut x = Vec::new();
    for f in files {
        x.extend(load_image(f, model.input_shape).context("reading an image to attack")?);
    }
    let labels = Classifier::new(gpu, model, files.len().min(256))?
        .predict(&x)?
        .into_iter()
        .map(|c| c as u32)
        .collect();
    Ok((x, labels))
}

/// The gallery of the first rows of an attack (see
/// `advgpu::report::gallery::attack_gallery`), written to `path`.
pub fn write_gallery(
    gpu: &Gpu,
    model: &Model,
    x0: &[f32],
    adv: &[f32],
    labels: &[u32],
    targets: Option<&[u32]>,
    path: &Path,
) -> Result<()> {
    let rows = labels.len().min(GALLERY_ROWS);
    attack_gallery(gpu, model, x0, adv, labels, targets, rows)?.save(path)?;
    Ok(())
}
