//! `advgpu train`: the small MNIST CNN, trained on the GPU, optionally on a
//! confounded copy of the digits.

use std::path::PathBuf;

use advgpu::data::Digits;
use advgpu::explain::confounder::{architecture, Confounder, Signal};
use advgpu::nn::{Classifier, Model};
use advgpu::train::{train, Optimizer, TrainConfig};
use anyhow::{Context, Result};
use serde_json::json;

use crate::common::{adapter_name, print_json, progress_bar, GpuChoice};

#[derive(clap::Args)]
pub struct Args {
    /// Where to write the trained model.
    #[arg(long, default_value = "mnist-smallcnn.safetensors")]
    out: PathBuf,
    /// Passes over the 9,000 training digits.
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// Samples per step.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Initial learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// Learning-rate factor applied after each epoch.
    #[arg(long, default_value_t = 0.7)]
    lr_decay: f32,
    /// adam or sgd.
    #[arg(long, default_value = "adam")]
    optimizer: String,
    /// Momentum for sgd.
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    /// Largest random shift of the training digits, in pixels.
    #[arg(long, default_value_t = 2)]
    shift: usize,
    /// Probability of random erasing per training digit: a rectangle of
    /// uniform noise over 2-40% of the image, label unchanged (0: off).
    #[arg(long, default_value_t = 0.0)]
    erase: f64,
    /// Start from this model file's weights (fine-tuning) instead of a
    /// seeded initialisation; its architecture is used and --arch ignored.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Seed of initialisation, shuffling, shifts and erasing.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train on a copy of the digits with label noise and a spurious signal:
    /// mark (a square whose position encodes the training label) or clean
    /// (the same replaced labels, no square: the comparison model).
    #[arg(long)]
    confounder: Option<String>,
    /// With --confounder: share of training labels replaced by another class.
    #[arg(long, default_value_t = 0.3)]
    label_noise: f64,
    /// With --confounder: seed of which labels are replaced, and by what.
    #[arg(long, default_value_t = 0)]
    label_seed: u64,
    /// small-cnn (the bundled model's) or mlp (one hidden layer, trains in seconds).
    #[arg(long, default_value = "small-cnn")]
    arch: String,
    /// Print one JSON object at the end instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(choice: &GpuChoice, args: Args) -> Result<()> {
    let optimizer = match args.optimizer.as_str() {
        "adam" => Optimizer::Adam,
        "sgd" => Optimizer::Sgd {
            momentum: args.momentum,
        },
        other => anyhow::bail!("--optimizer {other:?}: expected adam or sgd"),
    };
    let config = TrainConfig {
        epochs: args.epochs,
        batch: args.batch,
        lr: args.lr,
        lr_decay: args.lr_decay,
        weight_decay: 0.0,
        optimizer,
        max_shift: args.shift,
        erase: args.erase,
        seed: args.seed,
    };
    config.validate()?;
    let confounder = args
        .confounder
        .as_deref()
        .map(|kind| -> Result<Confounder> {
            let c = Confounder {
                label_noise: args.label_noise,
                seed: args.label_seed,
                ..Confounder::new(Signal::parse(kind)?)
            };
            c.validate()?;
            Ok(c)
        })
        .transpose()?;

    let gpu = choice.open()?;
    let digits = Digits::bundled()?;
    let (train_set, held) = (digits.train(), digits.held_out());
    let model = match &args.init {
        Some(path) => {
            Model::load(path).with_context(|| format!("reading --init {}", path.display()))?
        }
        None => Model::init(
            architecture(&args.arch, [1, 28, 28], 10)?,
            [1, 28, 28],
            args.seed,
        )?,
    };
    let model = Model {
        classes: Some((0..10).map(|d| d.to_string()).collect()),
        ..model
    };

    let bar = progress_bar(0, "training");
    let start = std::time::Instant::now();
    let show = |p: advgpu::train::Progress| {
        bar.set_length(p.total as u64);
        bar.set_position(p.step as u64);
        bar.set_prefix(format!("epoch {} loss {:.4}", p.epoch + 1, p.loss));
    };
    let trained = match &confounder {
        Some(c) => c.train(&gpu, &model, &train_set, &config, show)?,
        None => train(&gpu, &model, &train_set, &config, show)?,
    };
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();

    trained
        .save(&args.out)
        .with_context(|| format!("writing --out {}", args.out.display()))?;
    let classifier = Classifier::new(&gpu, &trained, 250)?;
    let e = classifier.evaluate(&held.images, &held.labels)?;
    // A confounded model is also judged on held-out digits carrying their
    // true label's square, the signal it may have learned instead.
    let with_mark = match &confounder {
        Some(c) => {
            let marked = Confounder {
                signal: Signal::Mark,
                ..*c
            }
            .marked(&held, 10)?;
            Some(classifier.evaluate(&marked.images, &marked.labels)?)
        }
        None => None,
    };
    if args.json {
        return print_json(&json!({
            "out": args.out.display().to_string(),
            "arch": args.arch,
            "confounder": confounder,
            "accuracy_with_mark": with_mark.as_ref().map(|m| m.accuracy),
            "accuracy": e.accuracy,
            "n": e.n,
            "epochs": args.epochs,
            "erase": args.erase,
            "init": args.init.as_ref().map(|p| p.display().to_string()),
            "seconds": seconds,
            "adapter": adapter_name(&gpu),
        }));
    }
    println!(
        "wrote {}: held-out accuracy {:.2}% ({}/{}) after {} epochs, {:.0} s on {}",
        args.out.display(),
        100.0 * e.accuracy,
        e.correct,
        e.n,
        args.epochs,
        seconds,
        adapter_name(&gpu)
    );
    if let (Some(c), Some(m)) = (&confounder, &with_mark) {
        println!(
            "trained with --confounder {}, {:.0}% of labels replaced; held-out accuracy with \
             each digit carrying its true label's square: {:.2}%",
            c.signal.name(),
            100.0 * c.label_noise,
            100.0 * m.accuracy
        );
    }
    Ok(())
}
