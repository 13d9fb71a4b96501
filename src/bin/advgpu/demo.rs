//! `advgpu demo`: PGD on a handful of bundled digits, with a gallery.

use std::path::PathBuf;

use advgpu::attack::{eval, Options, Pgd};
use anyhow::{Context, Result};

use crate::attack::{inputs, write_gallery};
use crate::common::{adapter_name, progress_bar, GpuChoice};

#[derive(clap::Args)]
pub struct Args {
    /// Folder for the gallery.
    #[arg(long, default_value = "out/demo")]
    out: PathBuf,
}

/// Digits attacked by the demo.
const DIGITS: usize = 8;

pub fn run(choice: &GpuChoice, args: Args) -> Result<()> {
    let model = advgpu::data::bundled_model()?;
    let gpu = choice.open()?;
    let (x0, labels) = inputs(&gpu, &model, &[], DIGITS)?;
    let pgd = Pgd {
        eps: 0.2,
        alpha: 0.02,
        steps: 20,
        restarts: 1,
    };

    let bar = progress_bar((DIGITS * pgd.steps) as u64, "pgd");
    let (outcome, report) =
        eval::evaluate(&gpu, &model, &pgd, &x0, &labels, &Options::default(), |d| {
            bar.set_position(d)
        })?;
    bar.finish_and_clear();

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let path = args.out.join("gallery.png");
    write_gallery(&gpu, &model, &x0, &outcome.images, &labels, None, &path)?;

    println!(
        "PGD (L-inf eps {}, {} steps of {}) on {DIGITS} held-out digits, {}:",
        pgd.eps,
        pgd.steps,
        pgd.alpha,
        adapter_name(&gpu)
    );
    for (label, pred) in labels.iter().zip(&outcome.pred) {
        println!("  digit {label} -> classified as {pred}");
    }
    println!(
        "accuracy {:.0}% clean, {:.0}% under attack; {:.0} image-steps/s; gallery: {}",
        100.0 * report.clean_accuracy,
        100.0 * report.robust_accuracy,
        report.image_steps_per_second,
        path.display()
    );
    Ok(())
}
