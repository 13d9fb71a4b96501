//! Saliency: which input values a class score depends on, computed on the GPU.
//!
//! Every method here explains one class score `f_c(x)`, the logit of class
//! `c` before the softmax, with a map `a` of the input's shape `[C, H, W]`.
//! They share one skeleton, written once in [`engine`] and
//! `shaders/explain.wgsl`: make `copies` inputs from each image (the image
//! itself, noisy copies, points on a path, occluded copies), run them through
//! the network as one batch, seed the backward pass with a one-hot at the
//! logits instead of the loss gradient (so that it yields `d f_c / d input`),
//! and fold the copies' results into one map. A method only says how it
//! differs, as a [`Spec`]; its doc comment gives the formula and the paper.
//!
//! | method | map |
//! | --- | --- |
//! | [`Gradient`] | `d f_c / d x` |
//! | [`GradientXInput`] | `x * d f_c / d x` |
//! | [`GuidedBackprop`] | `d f_c / d x` with only positive gradients through each ReLU |
//! | [`SmoothGrad`] | mean of `d f_c / d x` at `x + N(0, sigma^2)` |
//! | [`IntegratedGradients`] | `(x - b) * mean_k d f_c / d x (b + alpha_k (x - b))` |
//! | [`Occlusion`] | mean drop of `f_c` when a grey square covers the pixel |
//!
//! ```
//! use advgpu::explain::{self, IntegratedGradients, Options};
//! use advgpu::{data, gpu::{Gpu, GpuOptions}};
//!
//! let gpu = Gpu::new_blocking(&GpuOptions::default())?;
//! let model = data::bundled_model()?;
//! let digits = data::Digits::bundled()?.held_out().slice(0..1);
//! let ig = IntegratedGradients { steps: 32, baseline: 0.0 };
//! let a = explain::explain(&gpu, &model, &ig, &digits.images, &Options::default(), |_| {})?;
//!
//! // Completeness: the attributions add up to the change of the class score
//! // from the black baseline to the digit.
//! let sum: f32 = a.map(0).iter().sum();
//! let gap = a.scores[0] - a.baseline_scores.as_ref().unwrap()[0];
//! assert!((sum - gap).abs() <= 0.05 * gap.abs(), "{sum} vs {gap}");
//! # Ok::<(), advgpu::Error>(())
//! ```

pub mod confounder;
pub mod engine;
mod gallery;
mod gradient;
mod integrated;
mod occlusion;
pub mod reference;
mod smoothgrad;

pub use engine::SaliencyEngine;
pub use gallery::saliency_gallery;
pub use gradient::{Gradient, GradientXInput, GuidedBackprop};
pub use integrated::IntegratedGradients;
pub use occlusion::Occlusion;
pub use smoothgrad::SmoothGrad;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::{GpuModel, Model};

/// Copies per image at most: more would only repeat the same estimate.
pub const MAX_COPIES: usize = 1 << 20;

/// How the copies of an image are made.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Input {
    /// One copy: the image itself.
    Image,
    /// `samples` copies `x + sigma * z`, `z` standard normal, drawn on the
    /// GPU from the seeded Philox generator.
    Noise {
        /// Standard deviation, in input units.
        sigma: f32,
        /// Copies per image.
        samples: usize,
        /// Seed of the noise.
        seed: u64,
    },
    /// `steps` points `b + alpha_k (x - b)`, `alpha_k = (k + 1/2) / steps`,
    /// on the straight path from the constant image `b` to `x`.
    Path {
        /// The baseline's value at every pixel.
        baseline: f32,
        /// Points on the path.
        steps: usize,
    },
    /// One copy per position of a `window` x `window` square of value `fill`
    /// (over all channels), moved by `stride`; the last position in each
    /// direction touches the border, so that every pixel is covered.
    Occlude {
        /// Side of the square, in pixels.
        window: usize,
        /// Step between positions, in pixels.
        stride: usize,
        /// The square's value.
        fill: f32,
    },
}

/// How the copies' results become one map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Finish {
    /// The mean gradient over the copies.
    Mean,
    /// The mean gradient times the input.
    TimesInput,
    /// The mean gradient times `x - b` (needs [`Input::Path`]).
    TimesDelta,
    /// Per pixel, the mean score drop over the windows that cover it (needs
    /// [`Input::Occlude`]); no backward pass runs.
    MeanDrop,
}

/// What the shared skeleton needs to know of a method.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Spec {
    /// How the copies of an image are made.
    pub input: Input,
    /// Guided backpropagation through ReLUs in the backward pass.
    pub guided: bool,
    /// How the copies' results are combined.
    pub finish: Finish,
}

impl Spec {
    /// Checks every parameter against the model's per-sample input shape
    /// `[C, H, W]`, naming the bad one.
    pub fn validate(&self, shape: [usize; 3]) -> Result<()> {
        let count = |name: &'static str, v: usize| {
            if (1..=MAX_COPIES).contains(&v) {
                Ok(())
            } else {
                Err(Error::param(name, v, format!("1..={MAX_COPIES}")))
            }
        };
        match &self.input {
            Input::Image => {}
            Input::Noise { sigma, samples, .. } => {
                count("samples", *samples)?;
                if !(sigma.is_finite() && *sigma >= 0.0) {
                    return Err(Error::param("noise", sigma, "a finite number >= 0"));
                }
            }
            Input::Path { baseline, steps } => {
                count("steps", *steps)?;
                if !baseline.is_finite() {
                    return Err(Error::param("baseline", baseline, "a finite number"));
                }
            }
            Input::Occlude {
                window,
                stride,
                fill,
            } => {
                let side = shape[1].min(shape[2]);
                if !(1..=side).contains(window) {
                    return Err(Error::param(
                        "window",
                        window,
                        format!("1..={side} (the image is {}x{})", shape[2], shape[1]),
                    ));
                }
                if !(1..=side).contains(stride) {
                    return Err(Error::param("stride", stride, format!("1..={side}")));
                }
                if !fill.is_finite() {
                    return Err(Error::param("baseline", fill, "a finite number"));
                }
            }
        }
        let fits = match self.finish {
            Finish::Mean | Finish::TimesInput => !matches!(self.input, Input::Occlude { .. }),
            Finish::TimesDelta => matches!(self.input, Input::Path { .. }),
            Finish::MeanDrop => matches!(self.input, Input::Occlude { .. }),
        };
        if !fits {
            return Err(Error::param(
                "finish",
                format!("{:?}", self.finish),
                format!("a way of combining copies made by {:?}", self.input),
            ));
        }
        Ok(())
    }

    /// Copies made of each image of shape `[C, H, W]`.
    pub fn copies(&self, shape: [usize; 3]) -> usize {
        match &self.input {
            Input::Image => 1,
            Input::Noise { samples, .. } => *samples,
            Input::Path { steps, .. } => *steps,
            Input::Occlude { window, stride, .. } => {
                let (ny, nx) = window_positions(shape, *window, *stride);
                ny * nx
            }
        }
    }

    /// Whether the method needs the backward pass (all but occlusion).
    pub fn backward(&self) -> bool {
        self.finish != Finish::MeanDrop
    }
}

/// Occluder positions along y and x: `ceil((side - window) / stride) + 1`.
pub fn window_positions(shape: [usize; 3], window: usize, stride: usize) -> (usize, usize) {
    let along = |side: usize| side.saturating_sub(window).div_ceil(stride.max(1)) + 1;
    (along(shape[1]), along(shape[2]))
}

/// Top-left corner `(y, x)` of occluder window `j`, as the shader places it.
pub fn window_corner(shape: [usize; 3], window: usize, stride: usize, j: usize) -> (usize, usize) {
    let (_, nx) = window_positions(shape, window, stride);
    let (py, px) = (j / nx, j % nx);
    (
        (py * stride).min(shape[1] - window),
        (px * stride).min(shape[2] - window),
    )
}

/// An attribution method: a name and the skeleton's settings.
pub trait Method {
    /// Short name, as on the command line (`gradient`, `smoothgrad`, ...).
    fn name(&self) -> &'static str;
    /// The settings of the shared skeleton.
    fn spec(&self) -> Spec;
}

/// Which class's score is explained.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum ClassChoice {
    /// The model's arg-max class on each image.
    #[default]
    Predicted,
    /// One class for every image.
    Class(u32),
    /// One class per image.
    PerSample(Vec<u32>),
}

/// How attributions are computed, beyond the method's own parameters.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The class explained.
    pub class: ClassChoice,
    /// Rows (copies of images) per GPU batch; `None` picks the largest that
    /// fits the device, at most [`crate::attack::DEFAULT_MAX_BATCH`].
    pub batch: Option<usize>,
}

/// Attributions of `n` images, with what the model said about them.
#[derive(Clone, Debug)]
pub struct Attributions {
    /// One map per image, `[n, C, H, W]` like the input.
    pub maps: Vec<f32>,
    /// Values per map, `C * H * W`.
    pub d: usize,
    /// The class explained, per image.
    pub classes: Vec<u32>,
    /// Logits at each image, `[n, K]`.
    pub logits: Vec<f32>,
    /// `f_c(x)`: the explained class's logit at each image.
    pub scores: Vec<f32>,
    /// `f_c(b)`: the explained class's logit at the baseline (Integrated
    /// Gradients only), so that completeness can be checked.
    pub baseline_scores: Option<Vec<f32>>,
}

impl Attributions {
    /// The map of image `i`.
    pub fn map(&self, i: usize) -> &[f32] {
        &self.maps[i * self.d..(i + 1) * self.d]
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// The model's arg-max class on each image.
    pub fn predicted(&self) -> Vec<u32> {
        let k = self.logits.len() / self.len().max(1);
        self.logits
            .chunks_exact(k.max(1))
            .map(|row| crate::nn::infer::argmax(row) as u32)
            .collect()
    }
}

/// Attributions of `x` (`n` images of the model's input shape) by `method`,
/// splitting the copies into batches that fit the device. `progress` is told
/// the rows (image copies) done so far, out of `n * spec.copies(shape)`.
pub fn explain(
    gpu: &Gpu,
    model: &Model,
    method: &dyn Method,
    x: &[f32],
    options: &Options,
    progress: impl FnMut(u64),
) -> Result<Attributions> {
    let gm = GpuModel::new(gpu, model)?;
    explain_on(gpu, &gm, method, x, options, progress)
}

/// As [`explain`], for a model already on the GPU.
pub fn explain_on(
    gpu: &Gpu,
    model: &GpuModel,
    method: &dyn Method,
    x: &[f32],
    options: &Options,
    mut progress: impl FnMut(u64),
) -> Result<Attributions> {
    let host = &model.model;
    let spec = method.spec();
    spec.validate(host.input_shape)?;
    let d = host.input_len();
    if d == 0 || !x.len().is_multiple_of(d) {
        return Err(Error::Shape {
            what: "saliency input".into(),
            expected: format!(
                "a multiple of {d} values ({:?} per image)",
                host.input_shape
            ),
            got: format!("{} values", x.len()),
        });
    }
    if let Some(bad) = x.iter().find(|v| !v.is_finite()) {
        return Err(Error::param("pixel", bad, "finite values"));
    }
    let n = x.len() / d;
    let k = host.num_classes();
    check_classes(&options.class, n, k)?;
    let mut out = Attributions {
        maps: Vec::with_capacity(n * d),
        d,
        classes: Vec::with_capacity(n),
        logits: Vec::with_capacity(n * k),
        scores: Vec::with_capacity(n),
        baseline_scores: None,
    };
    if n == 0 {
        return Ok(out);
    }

    let copies = spec.copies(host.input_shape);
    let batch = match options.batch {
        Some(b) if b > 0 => b,
        Some(b) => return Err(Error::param("batch", b, "at least 1")),
        None => (n * copies).min(crate::attack::max_batch(gpu, host)?),
    };
    // A group's largest buffer holds a map, or every occluder drop, per image.
    let per_image = if spec.backward() { d } else { d.max(copies) } as u64;
    let fits = (gpu.max_binding_bytes() / (4 * per_image)).max(1) as usize;
    let group = n.min(engine::MAX_GROUP).min(fits);
    let engine = SaliencyEngine::new(gpu, model, &spec, batch, group)?;
    log::debug!(
        "saliency {}: {n} images x {copies} copies in batches of {batch} rows",
        method.name()
    );

    let baseline_logits = match spec.input {
        Input::Path { baseline, .. } => Some(engine.constant_logits(baseline)?),
        _ => None,
    };
    for start in (0..n).step_by(group) {
        let m = (n - start).min(group);
        let before = (start * copies) as u64;
        let part = engine.run(
            &x[start * d..(start + m) * d],
            start,
            &options.class,
            |rows| progress(before + rows),
        )?;
        out.maps.extend(part.maps);
        out.classes.extend(part.classes);
        out.logits.extend(part.logits);
        out.scores.extend(part.scores);
    }
    out.baseline_scores = baseline_logits.map(|bl| {
        out.classes
            .iter()
            .map(|&c| bl[c as usize])
            .collect::<Vec<f32>>()
    });
    Ok(out)
}

/// Checks that every class asked for exists and that per-image classes
/// match the images.
fn check_classes(choice: &ClassChoice, n: usize, k: usize) -> Result<()> {
    let check = |c: u32| {
        if (c as usize) < k {
            Ok(())
        } else {
            Err(Error::param("class", c, format!("a class in 0..{k}")))
        }
    };
    match choice {
        ClassChoice::Predicted => Ok(()),
        ClassChoice::Class(c) => check(*c),
        ClassChoice::PerSample(v) => {
            if v.len() != n {
                return Err(Error::Shape {
                    what: "per-image classes".into(),
                    expected: format!("{n} classes, one per image"),
                    got: v.len().to_string(),
                });
            }
            v.iter().try_for_each(|c| check(*c))
        }
    }
}

/// The class explained for image `i` (global index) with `logits` its row.
pub(crate) fn resolve_class(choice: &ClassChoice, i: usize, logits: &[f32]) -> u32 {
    match choice {
        ClassChoice::Predicted => crate::nn::infer::argmax(logits) as u32,
        ClassChoice::Class(c) => *c,
        ClassChoice::PerSample(v) => v[i],
    }
}

/// Per pixel, the attribution's magnitude summed over channels: `H * W`
/// values from a `[C, H, W]` map, what a heatmap shows. Values missing from
/// a short map count as 0.
pub fn magnitude(map: &[f32], shape: [usize; 3]) -> Vec<f32> {
    let [c, h, w] = shape;
    (0..h * w)
        .map(|i| {
            (0..c)
                .map(|ch| map.get(ch * h * w + i).map_or(0.0, |v| v.abs()))
                .sum()
        })
        .collect()
}

/// The share of a map's attribution mass, `sum |a|` over channels, that lies
/// on `pixels` (indices `y * W + x`; indices outside the image add nothing);
/// 0 for an all-zero map.
pub fn mass_share(map: &[f32], shape: [usize; 3], pixels: &[usize]) -> f64 {
    let heat = magnitude(map, shape);
    let total: f64 = heat.iter().map(|v| f64::from(*v)).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let on: f64 = pixels
        .iter()
        .filter_map(|&p| heat.get(p))
        .map(|v| f64::from(*v))
        .sum();
    on / total
}

/// Overrides of a method's defaults, as the command line takes them.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// SmoothGrad: noisy copies per image.
    pub samples: Option<usize>,
    /// SmoothGrad: noise standard deviation.
    pub noise: Option<f32>,
    /// Integrated Gradients: points on the path.
    pub steps: Option<usize>,
    /// Integrated Gradients: the baseline; occlusion: the square's value.
    pub baseline: Option<f32>,
    /// Occlusion: side of the square.
    pub window: Option<usize>,
    /// Occlusion: step between positions.
    pub stride: Option<usize>,
    /// SmoothGrad: seed of the noise.
    pub seed: Option<u64>,
}

/// The methods [`by_name`] knows, with the settings each one takes.
pub const METHODS: &[(&str, &[&str])] = &[
    ("gradient", &[]),
    ("gradient-x-input", &[]),
    ("guided-backprop", &[]),
    ("smoothgrad", &["samples", "noise", "seed"]),
    ("integrated-gradients", &["steps", "baseline"]),
    ("occlusion", &["window", "stride", "baseline"]),
];

impl Settings {
    /// The names of the settings that are given.
    fn given(&self) -> Vec<&'static str> {
        [
            ("samples", self.samples.is_some()),
            ("noise", self.noise.is_some()),
            ("steps", self.steps.is_some()),
            ("baseline", self.baseline.is_some()),
            ("window", self.window.is_some()),
            ("stride", self.stride.is_some()),
            ("seed", self.seed.is_some()),
        ]
        .into_iter()
        .filter_map(|(n, g)| g.then_some(n))
        .collect()
    }
}

/// The settings method `name` takes.
fn own_settings(name: &str) -> Result<&'static [&'static str]> {
    METHODS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, own)| *own)
        .ok_or_else(|| {
            let names: Vec<&str> = METHODS.iter().map(|(n, _)| *n).collect();
            Error::param("method", name, format!("one of {}", names.join(", ")))
        })
}

/// A method by its command-line name, with `settings` over its defaults.
/// A setting the method does not have is an error, not silently ignored.
pub fn by_name(name: &str, s: &Settings) -> Result<Box<dyn Method>> {
    let own = own_settings(name)?;
    if let Some(what) = s.given().into_iter().find(|g| !own.contains(g)) {
        return Err(Error::param(what, "given", format!("no {what} for {name}")));
    }
    Ok(match name {
        "gradient" => Box::new(Gradient),
        "gradient-x-input" => Box::new(GradientXInput),
        "guided-backprop" => Box::new(GuidedBackprop),
        "smoothgrad" => {
            let d = SmoothGrad::default();
            Box::new(SmoothGrad {
                samples: s.samples.unwrap_or(d.samples),
                noise: s.noise.unwrap_or(d.noise),
                seed: s.seed.unwrap_or(d.seed),
            })
        }
        "integrated-gradients" => {
            let d = IntegratedGradients::default();
            Box::new(IntegratedGradients {
                steps: s.steps.unwrap_or(d.steps),
                baseline: s.baseline.unwrap_or(d.baseline),
            })
        }
        _ => {
            let d = Occlusion::default();
            Box::new(Occlusion {
                window: s.window.unwrap_or(d.window),
                stride: s.stride.unwrap_or(d.stride),
                fill: s.baseline.unwrap_or(d.fill),
            })
        }
    })
}

/// Several methods by name (`all` for every one), each taking those of
/// `settings` it has; a setting that none of them takes is an error.
pub fn by_names(names: &[&str], s: &Settings) -> Result<Vec<Box<dyn Method>>> {
    let names: Vec<&str> = if names == ["all"] {
        METHODS.iter().map(|(n, _)| *n).collect()
    } else {
        names.to_vec()
    };
    if names.is_empty() {
        return Err(Error::param("method", "", "at least one method"));
    }
    let mut owned = Vec::new();
    for name in &names {
        owned.extend_from_slice(own_settings(name)?);
    }
    if let Some(what) = s.given().into_iter().find(|g| !owned.contains(g)) {
        let expected = match names.as_slice() {
            [one] => format!("no {what} for {one}"),
            many => format!(
                "a method that takes {what}; none of {} does",
                many.join(", ")
            ),
        };
        return Err(Error::param(what, "given", expected));
    }
    names
        .iter()
        .map(|name| {
            let own = own_settings(name)?;
            let keep = |n: &str| own.contains(&n);
            let only = Settings {
                samples: s.samples.filter(|_| keep("samples")),
                noise: s.noise.filter(|_| keep("noise")),
                steps: s.steps.filter(|_| keep("steps")),
                baseline: s.baseline.filter(|_| keep("baseline")),
                window: s.window.filter(|_| keep("window")),
                stride: s.stride.filter(|_| keep("stride")),
                seed: s.seed.filter(|_| keep("seed")),
            };
            by_name(name, &only)
        })
        .collect()
}

/// A reference value by name (`black` 0, `grey` or `gray` 0.5, `white` 1)
/// or as a number: an Integrated Gradients baseline, an occluder's fill.
pub fn parse_level(text: &str) -> Result<f32> {
    match text {
        "black" => Ok(0.0),
        "grey" | "gray" => Ok(0.5),
        "white" => Ok(1.0),
        _ => text
            .parse::<f32>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| {
                Error::param(
                    "baseline",
                    text,
                    "black, grey, white or a finite number (0 is black, 1 white)",
                )
            }),
    }
}
