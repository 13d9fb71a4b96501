//! Robustness evaluation: what an attack did to a model's accuracy, and at
//! what cost in perturbation size and time.

use serde::Serialize;

use crate::attack::{run, Attack, Options, Outcome};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::nn::{Classifier, Model};

/// The figures of one attack on one labelled set.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The attack's name.
    pub attack: String,
    /// The attack's radius.
    pub eps: f32,
    /// Samples attacked.
    pub n: usize,
    /// Share of clean images classified correctly.
    pub clean_accuracy: f64,
    /// Share of adversarial images still classified correctly.
    pub robust_accuracy: f64,
    /// Untargeted: share of adversarial images classified wrongly; targeted:
    /// share classified as their target.
    pub success_rate: f64,
    /// Mean over samples of `max |x_adv - x0|`.
    pub linf_mean: f64,
    /// Largest `max |x_adv - x0|`.
    pub linf_max: f64,
    /// Mean over samples of `||x_adv - x0||_2`.
    pub l2_mean: f64,
    /// Largest `||x_adv - x0||_2`.
    pub l2_max: f64,
    /// Mean steps a sample took (lower than steps x restarts with early stopping).
    pub mean_steps: f64,
    /// Wall-clock seconds of the attack (upload, steps, readback).
    pub seconds: f64,
    /// Attack steps (forward + backward + update) per second, summed over images.
    pub image_steps_per_second: f64,
}

/// Runs `attack` on `x0` with true `labels` and measures it.
pub fn evaluate(
    gpu: &Gpu,
    model: &Model,
    attack: &dyn Attack,
    x0: &[f32],
    labels: &[u32],
    options: &Options,
    progress: impl FnMut(u64),
) -> Result<(Outcome, Report)> {
    let clean = Classifier::new(gpu, model, labels.len().clamp(1, 256))?.predict(x0)?;
    let start = std::time::Instant::now();
    let outcome = run(gpu, model, attack, x0, labels, options, progress)?;
    let seconds = start.elapsed().as_secs_f64();

    let spec = attack.spec();
    let n = labels.len();
    let d = model.input_len();
    let share = |count: usize| count as f64 / n.max(1) as f64;
    let (mut linf, mut l2) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let (a, b) = (&outcome.images[i * d..(i + 1) * d], &x0[i * d..(i + 1) * d]);
        linf.push(
            a.iter()
                .zip(b)
                .map(|(p, q)| (p - q).abs() as f64)
                .fold(0.0, f64::max),
        );
        l2.push(
            a.iter()
                .zip(b)
                .map(|(p, q)| ((p - q) as f64).powi(2))
                .sum::<f64>()
                .sqrt(),
        );
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let max = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    let steps_taken: u64 = outcome.steps.iter().map(|s| u64::from(*s)).sum();

    let report = Report {
        attack: attack.name().to_string(),
        eps: spec.eps,
        n,
        clean_accuracy: share(
            clean
                .iter()
                .zip(labels)
                .filter(|(p, l)| **p == **l as usize)
                .count(),
        ),
        robust_accuracy: share(
            outcome
                .pred
                .iter()
                .zip(labels)
                .filter(|(p, l)| p == l)
                .count(),
        ),
        success_rate: share(outcome.success.iter().filter(|s| **s).count()),
        linf_mean: mean(&linf),
        linf_max: max(&linf),
        l2_mean: mean(&l2),
        l2_max: max(&l2),
        mean_steps: steps_taken as f64 / n.max(1) as f64,
        seconds,
        image_steps_per_second: (n * spec.steps * spec.restarts) as f64 / seconds.max(1e-9),
    };
    Ok((outcome, report))
}
