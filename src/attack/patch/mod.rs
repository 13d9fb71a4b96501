//! Universal adversarial patches (Brown, Mané, Roy, Abadi and Gilmer 2017,
//! "Adversarial Patch"): one patch that, pasted anywhere on any image, makes
//! the model predict a chosen target class.
//!
//! The patch `P` (`[C, h, w]`, values in [0, 1]) and its shape `M` (`[h, w]`
//! in [0, 1]: square, round, or a mask image) live in GPU buffers. Each
//! training step draws, per image of the batch, a random training image and a
//! random transformation `t` (scale, rotation, position anywhere the patch
//! fits), pastes the patch by bilinear sampling, `A(P, x, t)`, runs the model
//! forward and back, and carries the gradient through the sampling to the
//! patch pixels. That is expectation over transformation: with target `y*`,
//!
//! `P* = argmax_P  E_{x, t} [ log p(y* | A(P, x, t)) ] - tv * TV(P)`,
//!
//! estimated on each batch, stepped by Adam or by signed steps, and clipped to
//! [0, 1] (`shaders/patch.wgsl` for sampling and its gradient,
//! `shaders/patch_update.wgsl` for the update). The gradient through the
//! sampling is gathered per patch pixel in a fixed order, so a seed gives the
//! same patch bit for bit on one adapter.
//!
//! [`evaluate`] measures the success rate on images the patch was not trained
//! on, over fresh random placements, at each scale; [`apply`] pastes a patch
//! for pictures, [`gallery`] draws them. [`reference`](mod@reference) has the CPU version
//! of every rule.
//!
//! ```no_run
//! use advgpu::attack::patch::{self, PatchConfig, EvalConfig};
//! use advgpu::{data, gpu::{Gpu, GpuOptions}};
//!
//! let gpu = Gpu::new_blocking(&GpuOptions::default())?;
//! let model = data::bundled_model()?;
//! let digits = data::Digits::bundled()?;
//! let config = PatchConfig { target: 8, steps: 50, ..Default::default() };
//! let trained = patch::train(&gpu, &model, &digits.train().images, &config, |_| {})?;
//! let held = digits.held_out();
//! let eval = EvalConfig { target: 8, ..Default::default() };
//! let report = patch::evaluate(&gpu, &model, &trained.patch, &held.images, &held.labels_u32(), &eval)?;
//! println!("success on held-out digits: {:.1}%", 100.0 * report.success_rate);
//! # Ok::<(), advgpu::Error>(())
//! ```

mod engine;
pub mod gallery;
pub mod reference;

use std::path::Path;

use serde::Serialize;

pub use engine::{PatchGradient, PatchTrainer};

use crate::attack::reference::{philox2x32, philox_key, unit};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::{GpuModel, Model};

/// Salt of the Philox key of the initial patch (so that it does not repeat the placements).
const INIT_SALT: u32 = 0x1b87_3593;
/// Salt of the key of noise patches.
const NOISE_SALT: u32 = 0xcc9e_2d51;
/// Salt of the key of evaluation placements: fresh, not the training ones.
pub(crate) const EVAL_SALT: u32 = 0x85eb_ca6b;

/// The outline of a patch.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// Every pixel of the `h x w` square.
    Square,
    /// The ellipse inscribed in the `h x w` box (a disc for square patches):
    /// the pixels whose centre lies inside it.
    Round,
    /// One weight in [0, 1] per pixel (`h * w`, row-major); fractional
    /// weights blend the patch with the image.
    Mask(Vec<f32>),
}

impl Shape {
    /// `round`, `square`, or a greyscale image file, resized to `h x w`.
    pub fn parse(text: &str, h: usize, w: usize) -> Result<Shape> {
        match text {
            "round" => Ok(Shape::Round),
            "square" => Ok(Shape::Square),
            path => Ok(Shape::Mask(load_mask(Path::new(path), h, w)?)),
        }
    }

    /// The weights `[h * w]` of this shape at size `h x w`.
    pub fn weights(&self, h: usize, w: usize) -> Result<Vec<f32>> {
        match self {
            Shape::Square => Ok(vec![1.0; h * w]),
            Shape::Round => Ok((0..h * w)
                .map(|q| {
                    let u = ((q % w) as f32 + 0.5) / (0.5 * w as f32) - 1.0;
                    let v = ((q / w) as f32 + 0.5) / (0.5 * h as f32) - 1.0;
                    if u * u + v * v <= 1.0 {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect()),
            Shape::Mask(m) => {
                if m.len() != h * w {
                    return Err(Error::Shape {
                        what: "patch mask".into(),
                        expected: format!("{} values ({h}x{w})", h * w),
                        got: format!("{} values", m.len()),
                    });
                }
                if let Some(bad) = m.iter().find(|v| !(0.0..=1.0).contains(*v)) {
                    return Err(Error::param("mask", bad, "values in [0, 1]"));
                }
                if m.iter().all(|v| *v == 0.0) {
                    return Err(Error::param("mask", "all zero", "at least one pixel > 0"));
                }
                Ok(m.clone())
            }
        }
    }

    /// A short name for reports: `square`, `round` or `mask`.
    pub fn name(&self) -> &'static str {
        match self {
            Shape::Square => "square",
            Shape::Round => "round",
            Shape::Mask(_) => "mask",
        }
    }
}

/// A greyscale image file as patch weights, resized to `h x w` (a triangle
/// filter), values in [0, 1]: white is patch, black is image.
pub fn load_mask(path: &Path, h: usize, w: usize) -> Result<Vec<f32>> {
    let img = image::open(path).map_err(|source| Error::Image {
        path: path.to_path_buf(),
        source,
    })?;
    let grey = image::imageops::resize(
        &img.to_luma8(),
        w as u32,
        h as u32,
        image::imageops::FilterType::Triangle,
    );
    Ok(grey.pixels().map(|p| f32::from(p.0[0]) / 255.0).collect())
}

/// The distribution of transformations a patch is pasted with.
#[derive(Clone, Debug, PartialEq)]
pub struct Placement {
    /// Smallest scale: 1 draws one patch pixel over one image pixel.
    pub scale_min: f32,
    /// Largest scale.
    pub scale_max: f32,
    /// Largest rotation either way, in degrees; angles are uniform in
    /// `[-rotation, rotation]`.
    pub rotation: f32,
    /// `false`: the corner of the patch's bounding box sits on the pixel
    /// grid (at scale 1 without rotation the patch is pasted pixel for
    /// pixel, unblurred); `true`: anywhere, at sub-pixel offsets, so that
    /// bilinear sampling blends neighbouring patch pixels.
    pub subpixel: bool,
}

impl Default for Placement {
    /// Scale 1, no rotation, grid positions: the setting the figures in
    /// `docs/PATCHES.md` use.
    fn default() -> Self {
        Placement {
            scale_min: 1.0,
            scale_max: 1.0,
            rotation: 0.0,
            subpixel: false,
        }
    }
}

impl Placement {
    /// Checks the ranges, naming the bad value.
    pub fn validate(&self) -> Result<()> {
        let (lo, hi) = (self.scale_min, self.scale_max);
        if !(lo.is_finite() && lo > 0.0 && lo <= MAX_SCALE) {
            return Err(Error::param(
                "scale",
                lo,
                format!("a minimum in (0, {MAX_SCALE}]"),
            ));
        }
        if !(hi.is_finite() && hi >= lo && hi <= MAX_SCALE) {
            return Err(Error::param(
                "scale",
                format!("{lo},{hi}"),
                format!("MIN,MAX with MIN <= MAX <= {MAX_SCALE}"),
            ));
        }
        if !(self.rotation.is_finite() && (0.0..=180.0).contains(&self.rotation)) {
            return Err(Error::param(
                "rotation",
                self.rotation,
                "degrees in [0, 180]",
            ));
        }
        Ok(())
    }
}

/// Largest scale accepted; beyond it the patch is mostly off any image.
pub const MAX_SCALE: f32 = 16.0;

/// How the patch is updated from its gradient `g` (ascending the target's
/// log-probability).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// Adam (Kingma and Ba 2015), beta1 0.9, beta2 0.999, eps 1e-8: `P += lr * m^ / (sqrt(v^) + eps)`.
    Adam,
    /// Signed steps: `P += lr * sign(g)`.
    Sign,
}

impl Optimizer {
    /// `adam` or `sign`.
    pub fn parse(text: &str) -> Result<Optimizer> {
        match text {
            "adam" => Ok(Optimizer::Adam),
            "sign" => Ok(Optimizer::Sign),
            other => Err(Error::param("optimizer", other, "adam or sign")),
        }
    }
}

/// Everything a patch is trained with.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchConfig {
    /// The class the patch makes the model predict.
    pub target: u32,
    /// Patch height in patch pixels. Default 14.
    pub height: usize,
    /// Patch width. Default 14.
    pub width: usize,
    /// Outline. Default square.
    pub shape: Shape,
    /// Scale and rotation ranges. Default scale 1, no rotation.
    pub placement: Placement,
    /// Optimisation steps. Default 500.
    pub steps: usize,
    /// Images (each with its own placement) per step. Default 64.
    pub batch: usize,
    /// Step size (Adam's learning rate, or the signed step). Default 0.05.
    pub lr: f32,
    /// Update rule. Default Adam.
    pub optimizer: Optimizer,
    /// Weight of the total-variation penalty (see `shaders/patch_update.wgsl`). Default 0.
    pub tv: f32,
    /// Seed of the initial patch, the images drawn and the placements.
    pub seed: u64,
}

impl Default for PatchConfig {
    fn default() -> Self {
        PatchConfig {
            target: 0,
            height: 14,
            width: 14,
            shape: Shape::Square,
            placement: Placement::default(),
            steps: 500,
            batch: 64,
            lr: 0.05,
            optimizer: Optimizer::Adam,
            tv: 0.0,
            seed: 0,
        }
    }
}

impl PatchConfig {
    /// Checks every setting against `model`, naming the bad one.
    pub fn validate(&self, model: &Model) -> Result<()> {
        check_target(self.target, model)?;
        check_size(self.height, self.width, model)?;
        self.placement.validate()?;
        self.shape.weights(self.height, self.width)?;
        if self.steps == 0 || self.steps > 1_000_000 {
            return Err(Error::param("steps", self.steps, "1..=1000000"));
        }
        if self.batch == 0 {
            return Err(Error::param("batch", self.batch, "at least 1"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::param("lr", self.lr, "a finite number > 0"));
        }
        if !(self.tv.is_finite() && self.tv >= 0.0) {
            return Err(Error::param("tv", self.tv, "a finite number >= 0"));
        }
        Ok(())
    }
}

fn check_target(target: u32, model: &Model) -> Result<()> {
    let k = model.num_classes();
    if target as usize >= k {
        return Err(Error::param("target", target, format!("a class in 0..{k}")));
    }
    Ok(())
}

fn check_size(h: usize, w: usize, model: &Model) -> Result<()> {
    let [_, ih, iw] = model.input_shape;
    if h == 0 || w == 0 || h > ih || w > iw {
        return Err(Error::param(
            "size",
            format!("{h}x{w}"),
            format!("1x1 up to the image size {ih}x{iw}"),
        ));
    }
    Ok(())
}

/// A patch: its pixels and its shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Patch {
    /// Channels (the model's input channels).
    pub channels: usize,
    /// Height in patch pixels.
    pub height: usize,
    /// Width.
    pub width: usize,
    /// Values in [0, 1], `[channels, height, width]`.
    pub pixels: Vec<f32>,
    /// Shape weights in [0, 1], `[height, width]`.
    pub mask: Vec<f32>,
}

impl Patch {
    /// Uniform noise in [0, 1] from Philox with `key` (counter: the value's index), in `shape`.
    fn uniform(channels: usize, h: usize, w: usize, shape: &Shape, key: u32) -> Result<Patch> {
        let pixels = (0..channels * h * w)
            .map(|k| unit(philox2x32(key, [k as u32, 0])[0]))
            .collect();
        Ok(Patch {
            channels,
            height: h,
            width: w,
            pixels,
            mask: shape.weights(h, w)?,
        })
    }

    /// A patch of uniform noise, the baseline a trained patch is compared with.
    pub fn noise(channels: usize, h: usize, w: usize, shape: &Shape, seed: u64) -> Result<Patch> {
        Patch::uniform(channels, h, w, shape, philox_key(seed) ^ NOISE_SALT)
    }

    /// The starting point of training: uniform noise from the config's seed.
    pub fn initial(config: &PatchConfig, channels: usize) -> Result<Patch> {
        Patch::uniform(
            channels,
            config.height,
            config.width,
            &config.shape,
            philox_key(config.seed) ^ INIT_SALT,
        )
    }

    /// The pixels as seen on an image: `pixels * mask` (black outside the shape).
    pub fn visible(&self) -> Vec<f32> {
        let area = self.height * self.width;
        self.pixels
            .iter()
            .enumerate()
            .map(|(k, v)| v * self.mask[k % area])
            .collect()
    }

    /// Checks the sizes and ranges against `model`.
    pub fn validate(&self, model: &Model) -> Result<()> {
        check_size(self.height, self.width, model)?;
        let c = model.input_shape[0];
        let area = self.height * self.width;
        if self.channels != c || self.pixels.len() != c * area || self.mask.len() != area {
            return Err(Error::Shape {
                what: "patch".into(),
                expected: format!(
                    "{c} channels, {} pixel values and {area} mask values",
                    c * area
                ),
                got: format!(
                    "{} channels, {} pixel values and {} mask values",
                    self.channels,
                    self.pixels.len(),
                    self.mask.len()
                ),
            });
        }
        let bad = self
            .pixels
            .iter()
            .chain(&self.mask)
            .find(|v| !(0.0..=1.0).contains(*v));
        if let Some(bad) = bad {
            return Err(Error::param("patch value", bad, "values in [0, 1]"));
        }
        Ok(())
    }
}

/// One placement of the patch on one image, as the GPU drew it (`Transform`
/// of `shaders/patch.wgsl`). Image pixel `q` sees the patch at
/// `R(-theta) (q - centre) / scale + (w / 2 - 1/2, h / 2 - 1/2)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Transform {
    /// Centre x in image pixels (pixel centres at +0.5).
    pub cx: f32,
    /// Centre y.
    pub cy: f32,
    /// Image pixels one patch pixel covers along each axis.
    pub scale: f32,
    /// `cos(theta)`.
    pub cos: f32,
    /// `sin(theta)`.
    pub sin: f32,
    /// Index of the image (in the set given) the patch was pasted on.
    pub image: u32,
    _pad: [u32; 2],
}

impl Transform {
    /// A transformation from its parts.
    pub fn new(cx: f32, cy: f32, scale: f32, theta: f32, image: u32) -> Transform {
        Transform {
            cx,
            cy,
            scale,
            cos: theta.cos(),
            sin: theta.sin(),
            image,
            _pad: [0; 2],
        }
    }
}

/// What the progress callback of [`train`] is told after each submission.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Progress {
    /// Steps done.
    pub step: usize,
    /// Steps in the run.
    pub total: usize,
    /// Mean cross-entropy towards the target over the last step's batch.
    pub loss: f32,
    /// Share of the last step's batch the model classified as the target.
    pub success: f32,
}

/// A trained patch and how training went.
#[derive(Clone, Debug)]
pub struct Trained {
    /// The patch.
    pub patch: Patch,
    /// Progress after each submission (every few steps).
    pub history: Vec<Progress>,
    /// Wall-clock seconds of the optimisation.
    pub seconds: f64,
}

/// Checks a set of images for `model`: a whole number of samples, values in [0, 1].
fn check_images(what: &'static str, images: &[f32], model: &Model) -> Result<usize> {
    let d = model.input_len();
    if images.is_empty() || d == 0 || !images.len().is_multiple_of(d) {
        return Err(Error::Shape {
            what: what.into(),
            expected: format!(
                "a positive multiple of {d} values ({:?} per image)",
                model.input_shape
            ),
            got: format!("{} values", images.len()),
        });
    }
    if let Some(bad) = images.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(Error::param("pixel", bad, "values in [0, 1]"));
    }
    Ok(images.len() / d)
}

/// Trains a patch on `images` (`n` samples of the model's input shape,
/// values in [0, 1]). `progress` is called every few steps.
pub fn train(
    gpu: &Gpu,
    model: &Model,
    images: &[f32],
    config: &PatchConfig,
    progress: impl FnMut(Progress),
) -> Result<Trained> {
    config.validate(model)?;
    check_images("patch training images", images, model)?;
    let gm = GpuModel::new(gpu, model)?;
    let initial = Patch::initial(config, model.input_shape[0])?;
    let trainer = PatchTrainer::new(gpu, &gm, images, config, &initial)?;
    let start = std::time::Instant::now();
    let history = trainer.run(config.steps, progress)?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(Trained {
        patch: trainer.patch()?,
        history,
        seconds,
    })
}

/// How a patch is evaluated.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalConfig {
    /// The class the patch aims for; images of this class are left out.
    pub target: u32,
    /// The scales to measure at, one result each. Default `[1]`.
    pub scales: Vec<f32>,
    /// Largest rotation either way, in degrees. Default 0.
    pub rotation: f32,
    /// Sub-pixel positions (see [`Placement::subpixel`]). Default false.
    pub subpixel: bool,
    /// Random placements per image. Default 4.
    pub placements: usize,
    /// Seed of the placements (drawn from another stream than training's).
    pub seed: u64,
    /// Images per GPU batch. Default 128.
    pub batch: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            target: 0,
            scales: vec![1.0],
            rotation: 0.0,
            subpixel: false,
            placements: 4,
            seed: 0,
            batch: 128,
        }
    }
}

/// The success of a patch at one scale.
#[derive(Clone, Debug, Serialize)]
pub struct ScaleResult {
    /// The scale.
    pub scale: f32,
    /// Placements tried (images x placements per image).
    pub trials: usize,
    /// Placements after which the model predicted the target.
    pub hits: usize,
    /// `hits / trials`.
    pub success_rate: f64,
}

/// The success of a patch on a held-out set.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    /// The target class.
    pub target: u32,
    /// Images evaluated (those whose label is not the target).
    pub images: usize,
    /// Images left out because their label is the target.
    pub excluded: usize,
    /// Placements per image and scale.
    pub placements: usize,
    /// Largest rotation, degrees.
    pub rotation: f32,
    /// Whether positions were sub-pixel.
    pub subpixel: bool,
    /// One result per scale.
    pub by_scale: Vec<ScaleResult>,
    /// Hits over trials, all scales together.
    pub success_rate: f64,
}

/// The success rate of `patch` on `images` with true `labels`, over fresh
/// random placements: for each scale and each image whose label is not the
/// target, `placements` placements (position anywhere the patch fits, angle
/// uniform in `[-rotation, rotation]`), each counted a hit when the model
/// predicts the target.
pub fn evaluate(
    gpu: &Gpu,
    model: &Model,
    patch: &Patch,
    images: &[f32],
    labels: &[u32],
    config: &EvalConfig,
) -> Result<Evaluation> {
    patch.validate(model)?;
    check_target(config.target, model)?;
    let n = check_images("evaluation images", images, model)?;
    if labels.len() != n {
        return Err(Error::Shape {
            what: "evaluation labels".into(),
            expected: format!("{n} labels, one per image"),
            got: labels.len().to_string(),
        });
    }
    if config.scales.is_empty() {
        return Err(Error::param("scales", "none", "at least one scale"));
    }
    if config.placements == 0 {
        return Err(Error::param("placements", 0, "at least 1"));
    }
    if config.batch == 0 {
        return Err(Error::param("batch", 0, "at least 1"));
    }
    for &s in &config.scales {
        Placement {
            scale_min: s,
            scale_max: s,
            rotation: config.rotation,
            subpixel: config.subpixel,
        }
        .validate()?;
    }

    // Images of the target class cannot be moved to it; they are left out.
    let d = model.input_len();
    let kept: Vec<usize> = (0..n).filter(|&i| labels[i] != config.target).collect();
    if kept.is_empty() {
        return Err(Error::param(
            "target",
            config.target,
            "a class that is not the label of every image",
        ));
    }
    let x: Vec<f32> = kept
        .iter()
        .flat_map(|&i| images[i * d..(i + 1) * d].iter().copied())
        .collect();

    let gm = GpuModel::new(gpu, model)?;
    let key = reference::evaluation_key(config.seed);
    let paster = engine::Evaluator::new(gpu, &gm, patch, &x, config.batch.min(kept.len()), key)?;
    let m = kept.len();
    let mut by_scale = Vec::new();
    let (mut all_hits, mut all_trials) = (0usize, 0usize);
    for (si, &scale) in config.scales.iter().enumerate() {
        let mut hits = 0;
        for round in 0..config.placements {
            // Each (scale, round, image) has its own draw counter.
            let base = ((si * config.placements + round) * m) as u32;
            for first in (0..m).step_by(paster.batch()) {
                let count = (m - first).min(paster.batch());
                let placement = Placement {
                    scale_min: scale,
                    scale_max: scale,
                    rotation: config.rotation,
                    subpixel: config.subpixel,
                };
                let pred = paster.run(&placement, first, count, base + first as u32)?;
                hits += pred[..count]
                    .iter()
                    .filter(|p| **p == config.target)
                    .count();
            }
        }
        let trials = m * config.placements;
        log::debug!("patch at scale {scale}: {hits} of {trials} placements reach the target");
        all_hits += hits;
        all_trials += trials;
        by_scale.push(ScaleResult {
            scale,
            trials,
            hits,
            success_rate: hits as f64 / trials as f64,
        });
    }
    Ok(Evaluation {
        target: config.target,
        images: m,
        excluded: n - m,
        placements: config.placements,
        rotation: config.rotation,
        subpixel: config.subpixel,
        by_scale,
        success_rate: all_hits as f64 / all_trials.max(1) as f64,
    })
}

/// Images with a patch pasted on, and what the model makes of them.
#[derive(Clone, Debug)]
pub struct Applied {
    /// The patched images, same layout as the input.
    pub images: Vec<f32>,
    /// The model's class for each.
    pub pred: Vec<u32>,
    /// The placement used for each.
    pub transforms: Vec<Transform>,
}

/// Pastes `patch` once on each of `images` at a random placement drawn from
/// `placement` with `seed` (the evaluation stream), and classifies the result.
pub fn apply(
    gpu: &Gpu,
    model: &Model,
    patch: &Patch,
    images: &[f32],
    placement: &Placement,
    seed: u64,
) -> Result<Applied> {
    patch.validate(model)?;
    placement.validate()?;
    let n = check_images("images to patch", images, model)?;
    let gm = GpuModel::new(gpu, model)?;
    let key = reference::evaluation_key(seed);
    let paster = engine::Evaluator::new(gpu, &gm, patch, images, n.min(256), key)?;
    let d = model.input_len();
    let mut out = Applied {
        images: Vec::with_capacity(n * d),
        pred: Vec::with_capacity(n),
        transforms: Vec::with_capacity(n),
    };
    for first in (0..n).step_by(paster.batch()) {
        let count = (n - first).min(paster.batch());
        let pred = paster.run(placement, first, count, first as u32)?;
        let (x, t) = paster.read_batch()?;
        out.pred.extend_from_slice(&pred[..count]);
        out.images.extend_from_slice(&x[..count * d]);
        out.transforms.extend_from_slice(&t[..count]);
    }
    Ok(out)
}
