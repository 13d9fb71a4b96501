//! `advgpu robustness`: accuracy under attack at a list of eps values.

use std::path::PathBuf;

use advgpu::attack::{self, eval, Options, Settings, Target};
use advgpu::report::plot::{LinePlot, Series};
use anyhow::{Context, Result};
use serde_json::json;

use crate::attack::inputs;
use crate::common::{adapter_name, load_model, print_json, progress_bar, GpuChoice};

#[derive(clap::Args)]
pub struct Args {
    /// fgsm, bim, pgd, pgd-l2 or mifgsm.
    #[arg(long, default_value = "pgd")]
    method: String,
    /// Comma-separated radii.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,0.05,0.1,0.15,0.2,0.25,0.3"
    )]
    eps: Vec<f32>,
    /// Step size; default 2.5 * eps / steps, so that steps can cross the ball.
    #[arg(long)]
    alpha: Option<f32>,
    /// Steps per attack.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Random restarts (pgd, pgd-l2).
    #[arg(long)]
    restarts: Option<usize>,
    /// Held-out digits to attack.
    #[arg(long, default_value_t = 1000)]
    n: usize,
    /// Aim for a class: a number, next, random or least-likely.
    #[arg(long)]
    target: Option<String>,
    /// Seed of random starts.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folder for the curve.
    #[arg(long, default_value = "out/robustness")]
    out: PathBuf,
    /// Model file (default: the bundled MNIST model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(choice: &GpuChoice, args: Args) -> Result<()> {
    anyhow::ensure!(!args.eps.is_empty(), "--eps: expected at least one value");
    let target = args
        .target
        .as_deref()
        .map(Target::parse)
        .transpose()?
        .unwrap_or(Target::None);
    let attacks = args
        .eps
        .iter()
        .map(|&eps| {
            let steps = if args.method == "fgsm" {
                None
            } else {
                Some(args.steps)
            };
            let alpha = if args.method == "fgsm" {
                None
            } else {
                Some(args.alpha.unwrap_or(2.5 * eps / args.steps as f32))
            };
            attack::by_name(
                &args.method,
                &Settings {
                    eps: Some(eps),
                    alpha,
                    steps,
                    restarts: args.restarts,
                    mu: None,
                    mask: None,
                },
            )
        })
        .collect::<advgpu::Result<Vec<_>>>()?;
    let model = load_model(&args.model)?;
    let gpu = choice.open()?;
    let (x0, labels) = inputs(&gpu, &model, &[], args.n)?;
    let options = Options {
        target,
        early_stop: false,
        seed: args.seed,
        batch: None,
    };

    let per = (labels.len() * args.steps.max(1)) as u64;
    let bar = progress_bar(per * attacks.len() as u64, "robustness");
    let mut reports = Vec::new();
    for (i, a) in attacks.iter().enumerate() {
        let spec = a.spec();
        let scale = (args.steps.max(1) / spec.steps.max(1)) as u64;
        let (_, r) = eval::evaluate(&gpu, &model, a.as_ref(), &x0, &labels, &options, |done| {
            bar.set_position(i as u64 * per + done * scale);
        })?;
        reports.push(r);
    }
    bar.finish_and_clear();

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating --out {}", args.out.display()))?;
    let plot_path = args.out.join("robustness.png");
    let mut plot = LinePlot::new(
        format!("{} on {} held-out digits", args.method, labels.len()),
        "eps".into(),
        "share of the digits".into(),
    );
    plot.y_range = Some((0.0, 1.0));
    plot.series.push(Series {
        label: "robust accuracy".into(),
        points: reports
            .iter()
            .map(|r| (r.eps as f64, r.robust_accuracy))
            .collect(),
    });
    plot.series.push(Series {
        label: "attack success rate".into(),
        points: reports
            .iter()
            .map(|r| (r.eps as f64, r.success_rate))
            .collect(),
    });
    plot.save(&plot_path)?;

    if args.json {
        return print_json(&json!({
            "method": args.method,
            "n": labels.len(),
            "steps": args.steps,
            "adapter": adapter_name(&gpu),
            "plot": plot_path.display().to_string(),
            "results": reports,
        }));
    }
    println!(
        "{} on {} held-out digits, {} ({})",
        args.method,
        labels.len(),
        adapter_name(&gpu),
        plot_path.display()
    );
    println!(
        "{:>6} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8} {:>12}",
        "eps",
        "clean",
        "robust",
        "success",
        "Linf mean",
        "Linf max",
        "L2 mean",
        "L2 max",
        "img-steps/s"
    );
    for r in &reports {
        println!(
            "{:>6.3} {:>7.1}% {:>7.1}% {:>7.1}% {:>9.4} {:>9.4} {:>8.3} {:>8.3} {:>12.0}",
            r.eps,
            100.0 * r.clean_accuracy,
            100.0 * r.robust_accuracy,
            100.0 * r.success_rate,
            r.linf_mean,
            r.linf_max,
            r.l2_mean,
            r.l2_max,
            r.image_steps_per_second
        );
    }
    Ok(())
}
