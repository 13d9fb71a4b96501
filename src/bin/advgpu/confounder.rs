//! `advgpu confounder`: a clean and a confounded model side by side, with
//! accuracy with and without the spurious square, and how much of their
//! saliency falls on it.

use std::path::{Path, PathBuf};

use advgpu::data::Digits;
use advgpu::explain::confounder::{architecture, study, Confounder, Signal, StudyConfig};
use advgpu::gpu::Gpu;
use advgpu::nn::Model;
use advgpu::train::{Optimizer, TrainConfig};
use anyhow::{Context, Result};
use serde_json::json;

use crate::common::{adapter_name, print_json, progress_bar, GpuChoice};

#[derive(clap::Args)]
pub struct Args {
    /// The model trained without the square (advgpu train --confounder clean);
    /// without it, one is trained and written to --out.
    #[arg(long)]
    clean: Option<PathBuf>,
    /// The model trained with it (advgpu train --confounder mark); without
    /// it, one is trained and written to --out.
    #[arg(long)]
    confounded: Option<PathBuf>,
    /// Training: small-cnn (the bundled model's) or mlp (trains in seconds).
    #[arg(long, default_value = "small-cnn")]
    arch: String,
    /// Training: passes over the 9,000 training digits.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Training: largest random shift of the digits (and squares), in pixels.
    #[arg(long, default_value_t = 2)]
    shift: usize,
    /// Training: seed of initialisation, shuffling and shifts.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Share of training labels replaced by another class.
    #[arg(long, default_value_t = 0.3)]
    label_noise: f64,
    /// Seed of which labels are replaced, and by what.
    #[arg(long, default_value_t = 0)]
    label_seed: u64,
    /// Held-out digits whose attributions are measured (accuracy uses all 1,000).
    #[arg(long, default_value_t = 100)]
    explained: usize,
    /// Integrated Gradients steps.
    #[arg(long, default_value_t = 32)]
    steps: usize,
    /// Folder for the gallery (and the models, when trained here).
    #[arg(long, default_value = "out/confounder")]
    out: PathBuf,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(choice: &GpuChoice, args: Args) -> Result<()> {
    let confounder = |signal| Confounder {
        label_noise: args.label_noise,
        seed: args.label_seed,
        ..Confounder::new(signal)
    };
    confounder(Signal::Mark).validate()?;
    let config = TrainConfig {
        epochs: args.epochs,
        max_shift: args.shift,
        seed: args.seed,
        optimizer: Optimizer::Adam,
        ..TrainConfig::default()
    };
    config.validate()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating --out {}", args.out.display()))?;
    let gpu = choice.open()?;
    let digits = Digits::bundled()?;

    let mut trained = Vec::new();
    let mut get = |path: &Option<PathBuf>, signal: Signal| -> Result<Model> {
        if let Some(p) = path {
            return Model::load(p).with_context(|| format!("loading {}", p.display()));
        }
        let out = args.out.join(format!("{}.safetensors", name(signal)));
        let model = train_one(
            &gpu,
            &args.arch,
            &config,
            &confounder(signal),
            &digits,
            &out,
        )?;
        trained.push(out.display().to_string());
        Ok(model)
    };
    let clean = get(&args.clean, Signal::Clean)?;
    let confounded = get(&args.confounded, Signal::Mark)?;

    let study_config = StudyConfig {
        explained: args.explained,
        ig_steps: args.steps,
        ..StudyConfig::default()
    };
    let bar = progress_bar(0, "saliency");
    let start = std::time::Instant::now();
    let s = study(
        &gpu,
        &clean,
        &confounded,
        &digits.held_out(),
        &confounder(Signal::Mark),
        &study_config,
        |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let gallery_path = args.out.join("gallery.png");
    s.gallery(&confounder(Signal::Mark))?
        .save(&gallery_path)
        .context("writing the gallery")?;
    let training_path = args.out.join("training.png");
    confounder(Signal::Mark)
        .training_gallery(&digits.train(), 10, 20)?
        .save(&training_path)
        .context("writing the picture of the training copy")?;

    if args.json {
        let mut value = serde_json::to_value(&s)?;
        value["confounder"] = serde_json::to_value(confounder(Signal::Mark))?;
        value["trained"] = json!(trained);
        value["seconds"] = json!(seconds);
        value["adapter"] = json!(adapter_name(&gpu));
        value["gallery"] = json!(gallery_path.display().to_string());
        value["training_picture"] = json!(training_path.display().to_string());
        return print_json(&value);
    }
    print!("{}", s.table());
    println!(
        "measured in {seconds:.0} s on {}; wrote {}, {}{}",
        adapter_name(&gpu),
        gallery_path.display(),
        training_path.display(),
        if trained.is_empty() {
            String::new()
        } else {
            format!(" and {}", trained.join(", "))
        }
    );
    Ok(())
}

fn name(signal: Signal) -> &'static str {
    match signal {
        Signal::Mark => "confounded",
        Signal::Clean => "clean",
    }
}

/// Trains one model of `arch` on the confounder's training copy and writes it to `out`.
fn train_one(
    gpu: &Gpu,
    arch: &str,
    config: &TrainConfig,
    confounder: &Confounder,
    digits: &Digits,
    out: &Path,
) -> Result<Model> {
    let init = Model::init(
        architecture(arch, [1, 28, 28], 10)?,
        [1, 28, 28],
        config.seed,
    )?;
    let init = Model {
        classes: Some((0..10).map(|d| d.to_string()).collect()),
        ..init
    };
    let bar = progress_bar(0, name(confounder.signal));
    let model = confounder.train(gpu, &init, &digits.train(), config, |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.step as u64);
        bar.set_prefix(format!("epoch {} loss {:.4}", p.epoch + 1, p.loss));
    })?;
    bar.finish_and_clear();
    model
        .save(out)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(model)
}
