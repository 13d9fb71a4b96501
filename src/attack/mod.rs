//! Gradient attacks: FGSM, BIM, PGD (L-inf and L2) and MI-FGSM.
//!
//! All of them are one skeleton (start, gradient, step, project, clip),
//! written once in [`engine`] and `shaders/attack_step.wgsl`. An attack type
//! only says how it differs, as a [`Spec`]: the norm of its ball, its step
//! size and count, whether it starts at a random point, whether it uses
//! momentum. Inputs live in [0, 1]; `x0` is the clean image and `g` the
//! gradient of the loss with respect to the current image.
//!
//! [`run`] takes host images and returns host images, splitting the work
//! into batches that fit the device. An app that keeps its images on the GPU
//! uses [`AttackEngine`] directly, on its own wgpu device:
//!
//! ```
//! use advgpu::attack::{Attack, AttackEngine, BatchRun, Pgd};
//! use advgpu::gpu::Gpu;
//! use advgpu::nn::GpuModel;
//! use advgpu::wgpu;
//!
//! // The app's own device (here made on the spot).
//! let instance = wgpu::Instance::default();
//! let adapter = pollster::block_on(instance.request_adapter(&Default::default()))?;
//! let (device, queue) = pollster::block_on(adapter.request_device(&Default::default()))?;
//! let gpu = Gpu::from_device(device.clone(), queue, adapter.get_info(), device.limits());
//!
//! let model = advgpu::data::bundled_model()?;
//! let digits = advgpu::data::Digits::bundled()?.held_out().slice(0..4);
//! let engine = AttackEngine::new(&gpu, &GpuModel::new(&gpu, &model)?, 4, &Pgd::default().spec())?;
//! engine.load(&digits.images, &digits.labels_u32())?;
//! let run = BatchRun { n: 4, offset: 0, targeted: false, early_stop: false, seed: 1 };
//! engine.run(&run, |_steps| {})?;
//!
//! // The adversarial batch [4, 1, 28, 28] stays on the GPU: copy it into the
//! // app's own buffer (or bind `engine.adversarial().buffer` directly).
//! let adversarial = &engine.adversarial().buffer;
//! let mine = device.create_buffer(&wgpu::BufferDescriptor {
//!     label: Some("app images"),
//!     size: adversarial.size(),
//!     usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
//!     mapped_at_creation: false,
//! });
//! let mut encoder = device.create_command_encoder(&Default::default());
//! encoder.copy_buffer_to_buffer(adversarial, 0, &mine, 0, adversarial.size());
//! gpu.queue.submit([encoder.finish()]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bim;
pub mod engine;
pub mod eval;
mod fgsm;
mod mifgsm;
mod pgd;
mod pgd_l2;
pub mod reference;

use rand::{Rng, SeedableRng};

pub use bim::Bim;
pub use engine::{AttackEngine, BatchRun, SampleState};
pub use fgsm::Fgsm;
pub use mifgsm::MiFgsm;
pub use pgd::Pgd;
pub use pgd_l2::PgdL2;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::{Classifier, GpuModel, Model};

/// The ball the perturbation `x - x0` is kept in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Norm {
    /// `max |x - x0| <= eps`; steps move every value by `alpha * sign(g)`.
    Linf,
    /// `||x - x0||_2 <= eps`; steps move by `alpha * g / ||g||_2`.
    L2,
}

/// What the shared skeleton needs to know of an attack.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// The ball's norm.
    pub norm: Norm,
    /// Radius of the ball.
    pub eps: f32,
    /// Step size.
    pub alpha: f32,
    /// Steps per restart.
    pub steps: usize,
    /// Independent runs; per sample the first successful (or else the
    /// highest-loss) result is kept.
    pub restarts: usize,
    /// Start uniformly inside the ball instead of at `x0`.
    pub random_start: bool,
    /// MI-FGSM's decay `mu`: `m = mu * m + g / mean(|g|)`, step along `sign(m)`.
    pub momentum: Option<f32>,
}

impl Spec {
    /// Checks every parameter, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        let finite_nonneg = |name: &'static str, v: f32| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::param(name, v, "a finite number >= 0"))
            }
        };
        finite_nonneg("eps", self.eps)?;
        finite_nonneg("alpha", self.alpha)?;
        if self.norm == Norm::Linf && self.eps > 1.0 {
            return Err(Error::param(
                "eps",
                self.eps,
                "at most 1 for an L-inf ball on [0, 1] inputs",
            ));
        }
        if self.steps == 0 || self.steps > 1_000_000 {
            return Err(Error::param("steps", self.steps, "1..=1000000"));
        }
        if self.restarts == 0 || self.restarts > 10_000 {
            return Err(Error::param("restarts", self.restarts, "1..=10000"));
        }
        if let Some(mu) = self.momentum {
            finite_nonneg("mu", mu)?;
        }
        Ok(())
    }
}

/// A gradient attack: a name and the skeleton's settings.
pub trait Attack {
    /// Short name, as on the command line (`pgd`, `fgsm`, ...).
    fn name(&self) -> &'static str;
    /// The settings of the shared skeleton.
    fn spec(&self) -> Spec;
}

/// Which class a targeted attack aims for.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// Untargeted: any wrong class will do.
    None,
    /// One class for the whole batch.
    Class(u32),
    /// One class per sample.
    PerSample(Vec<u32>),
    /// `(label + 1) mod K`.
    Next,
    /// A seeded random class different from the label.
    Random,
    /// The class the model finds least likely on the clean image.
    LeastLikely,
}

impl Target {
    /// Parses `next`, `random`, `least-likely`, or a class number.
    pub fn parse(text: &str) -> Result<Target> {
        match text {
            "next" => Ok(Target::Next),
            "random" => Ok(Target::Random),
            "least-likely" => Ok(Target::LeastLikely),
            _ => text.parse().map(Target::Class).map_err(|_| {
                Error::param(
                    "target",
                    text,
                    "a class number, next, random or least-likely",
                )
            }),
        }
    }

    /// Per-sample target classes, or `None` for untargeted attacks.
    /// `clean_probs` (`[n, classes]`) is needed only for `LeastLikely`.
    pub fn resolve(
        &self,
        labels: &[u32],
        classes: usize,
        clean_probs: Option<&[f32]>,
        seed: u64,
    ) -> Result<Option<Vec<u32>>> {
        let k = classes as u32;
        let check = |t: u32| {
            if t < k {
                Ok(t)
            } else {
                Err(Error::param("target", t, format!("a class in 0..{k}")))
            }
        };
        Ok(Some(match self {
            Target::None => return Ok(None),
            Target::Class(c) => vec![check(*c)?; labels.len()],
            Target::PerSample(v) => {
                if v.len() != labels.len() {
                    return Err(Error::Shape {
                        what: "per-sample targets".into(),
                        expected: format!("{} targets", labels.len()),
                        got: v.len().to_string(),
                    });
                }
                v.iter().map(|t| check(*t)).collect::<Result<_>>()?
            }
            Target::Next => labels.iter().map(|l| (l + 1) % k).collect(),
            Target::Random => {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x7a12_4e0d);
                labels
                    .iter()
                    .map(|l| (l + rng.random_range(1..k.max(2))) % k)
                    .collect()
            }
            Target::LeastLikely => {
                let probs = clean_probs
                    .ok_or_else(|| Error::param("target", "least-likely", "clean probabilities"))?;
                probs
                    .chunks_exact(classes)
                    .map(|p| {
                        let mut best = 0;
                        for (i, v) in p.iter().enumerate() {
                            if *v < p[best] {
                                best = i;
                            }
                        }
                        best as u32
                    })
                    .collect()
            }
        }))
    }
}

/// How an attack is run, beyond its own parameters.
#[derive(Clone, Debug)]
pub struct Options {
    /// Untargeted, or which class to aim for.
    pub target: Target,
    /// Stop changing a sample once it is misclassified (or at its target).
    pub early_stop: bool,
    /// Seed of random starts and random targets; the same seed on the same
    /// adapter gives the same images bit for bit.
    pub seed: u64,
    /// Samples per GPU batch; `None` picks the largest that fits the device,
    /// at most [`DEFAULT_MAX_BATCH`].
    pub batch: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            target: Target::None,
            early_stop: false,
            seed: 0,
            batch: None,
        }
    }
}

/// Largest batch [`run`] uses unless told otherwise.
pub const DEFAULT_MAX_BATCH: usize = 256;

/// Everything an attack produced, per sample.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Adversarial images, same layout as the input.
    pub images: Vec<f32>,
    /// The model's class for each adversarial image.
    pub pred: Vec<u32>,
    /// Untargeted: the prediction differs from the label; targeted: it is the target.
    pub success: Vec<bool>,
    /// Steps each sample took (fewer than `steps * restarts` with early stopping).
    pub steps: Vec<u32>,
    /// Per-sample targets of a targeted attack.
    pub targets: Option<Vec<u32>>,
}

/// Attacks `x0` (`n` samples of the model's input shape, values in [0, 1])
/// with true `labels`, splitting into batches that fit the device.
/// `progress` is told the image-steps done so far.
pub fn run(
    gpu: &Gpu,
    model: &Model,
    attack: &dyn Attack,
    x0: &[f32],
    labels: &[u32],
    options: &Options,
    mut progress: impl FnMut(u64),
) -> Result<Outcome> {
    let spec = attack.spec();
    spec.validate()?;
    let d = model.input_len();
    if x0.len() != labels.len() * d {
        return Err(Error::Shape {
            what: "attack input".into(),
            expected: format!(
                "{} values ({} samples of {:?})",
                labels.len() * d,
                labels.len(),
                model.input_shape
            ),
            got: format!("{} values", x0.len()),
        });
    }
    if let Some(bad) = x0.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(Error::param("pixel", bad, "values in [0, 1]"));
    }
    let classes = model.num_classes();
    if let Some(bad) = labels.iter().find(|l| **l as usize >= classes) {
        return Err(Error::param(
            "label",
            bad,
            format!("a class in 0..{classes}"),
        ));
    }
    let n = labels.len();
    if n == 0 {
        return Ok(Outcome {
            images: Vec::new(),
            pred: Vec::new(),
            success: Vec::new(),
            steps: Vec::new(),
            targets: None,
        });
    }

    let clean_probs = match options.target {
        Target::LeastLikely => {
            Some(Classifier::new(gpu, model, n.min(DEFAULT_MAX_BATCH))?.probabilities(x0)?)
        }
        _ => None,
    };
    let targets = options
        .target
        .resolve(labels, classes, clean_probs.as_deref(), options.seed)?;
    let loss_labels = targets.as_deref().unwrap_or(labels);

    let batch = match options.batch {
        Some(b) if b > 0 => b,
        Some(b) => return Err(Error::param("batch", b, "at least 1")),
        None => n.min(max_batch(gpu, model)?),
    };
    let gm = GpuModel::new(gpu, model)?;
    let engine = AttackEngine::new(gpu, &gm, batch, &spec)?;
    log::debug!(
        "attack {}: {n} samples in batches of {batch}",
        attack.name()
    );

    let mut out = Outcome {
        images: Vec::with_capacity(n * d),
        pred: Vec::with_capacity(n),
        success: Vec::with_capacity(n),
        steps: Vec::with_capacity(n),
        targets: targets.clone(),
    };
    let steps_per_sample = (spec.steps * spec.restarts) as u64;
    let mut xb = vec![0f32; batch * d];
    let mut lb = vec![0u32; batch];
    for start in (0..n).step_by(batch) {
        let m = (n - start).min(batch);
        xb[..m * d].copy_from_slice(&x0[start * d..(start + m) * d]);
        xb[m * d..].fill(0.0);
        lb[..m].copy_from_slice(&loss_labels[start..start + m]);
        lb[m..].fill(0);
        engine.load(&xb, &lb)?;
        let run = BatchRun {
            n: m,
            offset: start,
            targeted: targets.is_some(),
            early_stop: options.early_stop,
            seed: options.seed,
        };
        let before = start as u64 * steps_per_sample;
        engine.run(&run, |steps| progress(before + m as u64 * steps as u64))?;
        let (images, states) = pollster::block_on(engine.read(m))?;
        out.images.extend(images);
        for s in states {
            out.pred.push(s.pred);
            out.success.push(s.success != 0);
            out.steps.push(s.steps);
        }
    }
    Ok(out)
}

/// The largest batch whose biggest buffer fits the device's binding limit,
/// capped at [`DEFAULT_MAX_BATCH`].
pub fn max_batch(gpu: &Gpu, model: &Model) -> Result<usize> {
    Ok(max_batch_uncapped(gpu, model)?.min(DEFAULT_MAX_BATCH))
}

/// The largest batch whose biggest per-batch buffer (an activation, or the
/// input) fits the device's binding limit.
pub fn max_batch_uncapped(gpu: &Gpu, model: &Model) -> Result<usize> {
    let largest = model
        .shapes()?
        .iter()
        .map(|s| s.iter().product::<usize>())
        .chain(std::iter::once(model.input_len()))
        .max()
        .unwrap_or(1)
        .max(1) as u64;
    let fits = (gpu.max_binding_bytes() / (4 * largest)) as usize;
    if fits == 0 {
        return Err(Error::BufferTooLarge {
            what: "one sample's largest activation".into(),
            needed: 4 * largest,
            limit: gpu.max_binding_bytes(),
        });
    }
    Ok(fits)
}

/// Overrides of an attack's defaults, as the command line takes them.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Radius of the ball.
    pub eps: Option<f32>,
    /// Step size.
    pub alpha: Option<f32>,
    /// Steps (per restart).
    pub steps: Option<usize>,
    /// Random restarts (PGD only).
    pub restarts: Option<usize>,
    /// Momentum decay (MI-FGSM only).
    pub mu: Option<f32>,
}

/// The attacks [`by_name`] knows.
pub const METHODS: &[&str] = &["fgsm", "bim", "pgd", "pgd-l2", "mifgsm"];

/// An attack by its command-line name, with `settings` over its defaults.
/// A setting the attack does not have is an error, not silently ignored.
pub fn by_name(name: &str, s: &Settings) -> Result<Box<dyn Attack>> {
    let unused = |what: &'static str, given: bool| {
        if given {
            Err(Error::param(what, "given", format!("no {what} for {name}")))
        } else {
            Ok(())
        }
    };
    let attack: Box<dyn Attack> = match name {
        "fgsm" => {
            unused("alpha", s.alpha.is_some())?;
            unused("steps", s.steps.is_some_and(|v| v != 1))?;
            unused("restarts", s.restarts.is_some_and(|v| v != 1))?;
            unused("mu", s.mu.is_some())?;
            let d = Fgsm::default();
            Box::new(Fgsm {
                eps: s.eps.unwrap_or(d.eps),
            })
        }
        "bim" => {
            unused("restarts", s.restarts.is_some_and(|v| v != 1))?;
            unused("mu", s.mu.is_some())?;
            let d = Bim::default();
            Box::new(Bim {
                eps: s.eps.unwrap_or(d.eps),
                alpha: s.alpha.unwrap_or(d.alpha),
                steps: s.steps.unwrap_or(d.steps),
            })
        }
        "pgd" => {
            unused("mu", s.mu.is_some())?;
            let d = Pgd::default();
            Box::new(Pgd {
                eps: s.eps.unwrap_or(d.eps),
                alpha: s.alpha.unwrap_or(d.alpha),
                steps: s.steps.unwrap_or(d.steps),
                restarts: s.restarts.unwrap_or(d.restarts),
            })
        }
        "pgd-l2" => {
            unused("mu", s.mu.is_some())?;
            let d = PgdL2::default();
            Box::new(PgdL2 {
                eps: s.eps.unwrap_or(d.eps),
                alpha: s.alpha.unwrap_or(d.alpha),
                steps: s.steps.unwrap_or(d.steps),
                restarts: s.restarts.unwrap_or(d.restarts),
            })
        }
        "mifgsm" => {
            unused("restarts", s.restarts.is_some_and(|v| v != 1))?;
            let d = MiFgsm::default();
            Box::new(MiFgsm {
                eps: s.eps.unwrap_or(d.eps),
                alpha: s.alpha.unwrap_or(d.alpha),
                steps: s.steps.unwrap_or(d.steps),
                mu: s.mu.unwrap_or(d.mu),
            })
        }
        other => {
            return Err(Error::param(
                "method",
                other,
                format!("one of {}", METHODS.join(", ")),
            ));
        }
    };
    attack.spec().validate()?;
    Ok(attack)
}
