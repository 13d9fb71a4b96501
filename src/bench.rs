//! Attack throughput: fixed workloads, timed the same way on every GPU, in a
//! report whose schema stays stable so that reports from different machines
//! can be put side by side.
//!
//! Every workload runs the bundled architecture (the weights do not change
//! the speed) on batches of bundled digits:
//!
//! | workload | one run is | image-steps per run |
//! | --- | --- | --- |
//! | `forward` | forward pass and loss | batch |
//! | `forward_backward` | forward, loss, backward to the input | batch |
//! | `pgd_step` | one PGD L-inf step (forward, loss, backward, update, projection) | batch |
//! | `pgd10` | a whole 10-step PGD attack: upload, start, 10 steps, keep-best (one more forward pass), readback | 10 x batch |
//! | `patch_step` | one step of universal-patch training: draw placements, paste a 14x14 patch, forward, loss, backward, gradient to the patch, Adam | batch |
//!
//! Each case is run once to warm up, then [`BenchConfig::reps`] times; the
//! report gives the median, minimum and maximum seconds per run.
//!
//! FLOPs are counted from the layer shapes, a multiply-add as 2
//! ([`crate::nn::Layer::forward_flops`]): conv2d `2 Co Ho Wo Ci K^2`, linear
//! `2 O I`, pools `K^2` per output, ReLU 1 and normalize 2 per value. The
//! gradient with respect to a layer's input is counted as the same number
//! again (for conv2d and linear that is exact: every multiply-add of the
//! forward pass has one in the input gradient). The loss and the attack's
//! own update (a few operations per pixel, under 0.1% of the total), and
//! the patch's pasting and its gradient (about 30 operations per image
//! pixel), are not counted. `gflops` is that count divided by the median time.
//!
//! Host time to record and submit the command buffers of a PGD step is
//! measured apart from the GPU time (`record_seconds` and `submit_seconds`,
//! per step), so that a slow driver and a slow recorder can be told apart.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::attack::patch::{Patch, PatchConfig, PatchTrainer};
use crate::attack::{Attack, AttackEngine, BatchRun, Pgd};
use crate::data::{small_cnn, Digits};
use crate::error::{Error, Result};
use crate::gpu::tune::Decision;
use crate::gpu::{Gpu, Variant};
use crate::nn::ops::{gemm, GemmParams};
use crate::nn::{GpuModel, Model, Plan, PlanOptions};

/// The `schema` field of every report this version writes.
pub const SCHEMA: &str = "advgpu-bench/1";

/// The workloads, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// Forward pass and loss.
    Forward,
    /// Forward, loss and backward to the input.
    ForwardBackward,
    /// One PGD L-inf step.
    PgdStep,
    /// A 10-step PGD attack, with upload and readback.
    Pgd10,
    /// One step of universal-patch training (14x14 patch, Adam).
    PatchStep,
}

impl Workload {
    /// Every workload.
    pub const ALL: [Workload; 5] = [
        Workload::Forward,
        Workload::ForwardBackward,
        Workload::PgdStep,
        Workload::Pgd10,
        Workload::PatchStep,
    ];

    /// The name used in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Forward => "forward",
            Workload::ForwardBackward => "forward_backward",
            Workload::PgdStep => "pgd_step",
            Workload::Pgd10 => "pgd10",
            Workload::PatchStep => "patch_step",
        }
    }

    /// Attack steps (or passes) per image in one run.
    pub fn steps(self) -> u64 {
        match self {
            Workload::Pgd10 => 10,
            _ => 1,
        }
    }

    /// Parses a name of [`Workload::name`].
    pub fn parse(text: &str) -> Result<Workload> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name() == text)
            .ok_or_else(|| {
                let names: Vec<_> = Workload::ALL.iter().map(|w| w.name()).collect();
                Error::param("workload", text, format!("one of {}", names.join(", ")))
            })
    }
}

/// What to measure.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchConfig {
    /// Workloads to run.
    pub workloads: Vec<Workload>,
    /// Batch sizes; those that do not fit the device are skipped.
    pub batches: Vec<usize>,
    /// Timed runs per case, after one warm-up run.
    pub reps: usize,
    /// Seconds the timed cases may take, counted from the start: a case
    /// whose estimate (from the same workload at the previous batch size)
    /// does not fit in what is left is skipped, with the reason in the
    /// report. The layer profile and the roofline run after the cases.
    pub budget_seconds: f64,
    /// Also time the matrix product at comparable sizes (`--roofline`).
    pub roofline: bool,
    /// Also time every layer at this batch size (the largest run, if none).
    pub layer_batch: Option<usize>,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            workloads: Workload::ALL.to_vec(),
            batches: vec![1, 16, 64, 256, 1024],
            reps: 3,
            budget_seconds: 240.0,
            roofline: false,
            layer_batch: None,
        }
    }
}

impl BenchConfig {
    /// Checks every setting, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        if self.reps == 0 || self.reps > 1000 {
            return Err(Error::param("reps", self.reps, "1..=1000"));
        }
        if self.batches.is_empty() || self.batches.contains(&0) {
            return Err(Error::param(
                "batches",
                format!("{:?}", self.batches),
                "one or more batch sizes >= 1",
            ));
        }
        if !(self.budget_seconds.is_finite() && self.budget_seconds > 0.0) {
            return Err(Error::param(
                "budget",
                self.budget_seconds,
                "a positive number of seconds",
            ));
        }
        if self.workloads.is_empty() {
            return Err(Error::param("workloads", "none", "at least one workload"));
        }
        Ok(())
    }
}

/// Median, minimum and maximum of repeated measurements, in seconds.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    /// The middle value (the mean of the two middle ones for an even count).
    pub median: f64,
    /// The fastest run.
    pub min: f64,
    /// The slowest run.
    pub max: f64,
}

impl Stats {
    /// Statistics of `samples`, which must not be empty.
    pub fn of(samples: &[f64]) -> Stats {
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        };
        Stats {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }
}

/// One workload at one batch size.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Case {
    /// The workload.
    pub workload: Workload,
    /// Images per batch.
    pub batch: usize,
    /// Why the case did not run (device limits, time budget); `None` if it ran.
    pub skipped: Option<String>,
    /// Timed runs.
    pub reps: usize,
    /// Seconds per run.
    pub seconds: Option<Stats>,
    /// `batch * steps / median seconds`.
    pub image_steps_per_second: f64,
    /// FLOPs of one run (see the module documentation).
    pub flops: u64,
    /// `flops / median seconds / 1e9`.
    pub gflops: f64,
    /// Bytes of every GPU buffer the workload allocated.
    pub memory_bytes: u64,
    /// PGD and patch steps only: host seconds to record one step's dispatches.
    pub record_seconds: Option<f64>,
    /// PGD and patch steps only: host seconds to submit one step's command buffer.
    pub submit_seconds: Option<f64>,
}

/// GPU time of one layer's dispatches.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerTime {
    /// Index in the model's layer list.
    pub layer: usize,
    /// The layer type.
    pub kind: String,
    /// `forward` or `backward` (input gradient).
    pub pass: String,
    /// The shader entry points, in order.
    pub kernels: Vec<String>,
    /// Seconds, median of [`BenchConfig::reps`] runs.
    pub seconds: f64,
    /// FLOPs of the layer's pass over the batch.
    pub flops: u64,
    /// `flops / seconds / 1e9`.
    pub gflops: f64,
}

/// The per-layer profile of forward and backward at one batch size.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerProfile {
    /// Images per batch.
    pub batch: usize,
    /// `timestamp_queries` (GPU clock) or `host` (submit-and-wait per layer).
    pub clock: String,
    /// Every layer with work, forward then backward.
    pub layers: Vec<LayerTime>,
}

/// The best matrix product of the adapter at sizes like the network's.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Roofline {
    /// Every size and variant tried.
    pub products: Vec<Product>,
    /// The best `gflops` among them.
    pub best_gflops: f64,
}

/// One timed matrix product `C [m, n] = A [m, k] B [k, n]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Product {
    /// Rows of C.
    pub m: u32,
    /// Columns of C.
    pub n: u32,
    /// Length of each sum.
    pub k: u32,
    /// The kernel variant.
    pub variant: Variant,
    /// Seconds per product (median).
    pub seconds: f64,
    /// `2 m n k / seconds / 1e9`.
    pub gflops: f64,
}

/// The adapter a report was measured on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdapterReport {
    /// The adapter's name.
    pub name: String,
    /// Vulkan, Metal, Dx12, BrowserWebGpu, ...
    pub backend: String,
    /// Discrete, integrated, CPU, ...
    pub device_type: String,
    /// The driver's name.
    pub driver: String,
    /// The driver's version text.
    pub driver_info: String,
    /// Limits that bound batch sizes and kernels.
    pub max_storage_buffer_binding_size: u64,
    /// Largest buffer.
    pub max_buffer_size: u64,
    /// Workgroup memory per workgroup.
    pub max_compute_workgroup_storage_size: u32,
    /// Workgroups per dispatch dimension.
    pub max_compute_workgroups_per_dimension: u32,
    /// Whether GPU timestamps were available.
    pub timestamp_queries: bool,
}

/// A whole benchmark run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The advgpu version that measured.
    pub advgpu_version: String,
    /// The adapter.
    pub adapter: AdapterReport,
    /// The settings.
    pub config: BenchConfig,
    /// Which kernel setting the device had (`auto`, `register`, `tiled`).
    pub kernels: String,
    /// The kernel variant chosen for each heavy operation.
    pub tuning: Vec<TuningEntry>,
    /// Every case, in order.
    pub cases: Vec<Case>,
    /// Per-layer GPU time, if measured.
    pub layer_profile: Option<LayerProfile>,
    /// The matrix-product roofline, if asked for.
    pub roofline: Option<Roofline>,
    /// Wall-clock seconds of the whole benchmark.
    pub total_seconds: f64,
}

/// One autotune decision, as written in reports.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TuningEntry {
    /// The operation and shape.
    pub op: String,
    /// The variant used (`register`, `tiled`), or for a formulation
    /// decision the formulation (`col2im`, `flip`).
    pub variant: String,
}

impl From<&Decision> for TuningEntry {
    fn from(d: &Decision) -> Self {
        TuningEntry {
            op: d.op.clone(),
            variant: d.variant.clone(),
        }
    }
}

impl Report {
    /// The case of `workload` at `batch` that ran, if any.
    pub fn case(&self, workload: Workload, batch: usize) -> Option<&Case> {
        self.cases
            .iter()
            .find(|c| c.workload == workload && c.batch == batch && c.skipped.is_none())
    }

    /// Reads a report written by [`Report::to_json`], checking its schema.
    pub fn from_json(text: &str, name: &str) -> Result<Report> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| Error::Data {
            path: name.into(),
            reason: format!("not JSON: {e}"),
        })?;
        let schema = value
            .get("schema")
            .and_then(|s| s.as_str())
            .unwrap_or("none");
        if schema != SCHEMA {
            return Err(Error::Data {
                path: name.into(),
                reason: format!(
                    "schema {schema:?}, expected {SCHEMA:?} (a report of `advgpu bench --json`)"
                ),
            });
        }
        serde_json::from_value(value).map_err(|e| Error::Data {
            path: name.into(),
            reason: format!("not a bench report: {e}"),
        })
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        // A report is plain data (strings, numbers, enums): serialising cannot fail.
        serde_json::to_string_pretty(self).expect("reports serialise")
    }
}

/// What the progress callback is told.
#[derive(Clone, Debug)]
pub struct BenchProgress {
    /// Cases finished (run or skipped).
    pub done: usize,
    /// Cases in all.
    pub total: usize,
    /// What runs now.
    pub what: String,
}

/// FLOPs of one forward pass of `model` over `batch` images, and of one
/// backward pass to the input (the same count, see the module docs).
fn pass_flops(model: &Model, batch: usize) -> Result<u64> {
    Ok(model.forward_flops()? * batch as u64)
}

/// Runs the benchmark on `gpu`.
pub fn run(
    gpu: &Gpu,
    config: &BenchConfig,
    mut progress: impl FnMut(&BenchProgress),
) -> Result<Report> {
    config.validate()?;
    let started = Instant::now();
    let model = Model::init(small_cnn(), [1, 28, 28], 0)?;
    let digits = Digits::bundled()?.held_out();
    let gm = GpuModel::new(gpu, &model)?;
    let max_batch = crate::attack::max_batch_uncapped(gpu, &model)?;

    let total = config.workloads.len() * config.batches.len();
    let mut cases = Vec::with_capacity(total);
    // Batch-major order: every workload at one batch size before any at the
    // next, so that a budget that runs out cuts the largest batches of every
    // workload rather than whole workloads.
    let mut per_image: Vec<Option<f64>> = vec![None; config.workloads.len()];
    for &batch in &config.batches {
        for (w, &workload) in config.workloads.iter().enumerate() {
            progress(&BenchProgress {
                done: cases.len(),
                total,
                what: format!("{} batch {batch}", workload.name()),
            });
            let left = config.budget_seconds - started.elapsed().as_secs_f64();
            // Seconds per image of this workload at the last batch size that ran.
            let estimate = per_image[w].map(|s| s * batch as f64 * (config.reps + 1) as f64);
            let skip = if batch > max_batch {
                Some(format!(
                    "batch {batch} exceeds the device's buffer limits (at most {max_batch})"
                ))
            } else {
                estimate.filter(|e| *e > left).map(|e| {
                    format!("estimated {e:.0} s, more than the {left:.0} s left of the budget")
                })
            };
            let case = match skip {
                Some(reason) => skipped(workload, batch, reason),
                None => {
                    let c = run_case(gpu, &gm, &digits, workload, batch, config.reps)?;
                    if let Some(s) = &c.seconds {
                        per_image[w] = Some(s.median / batch as f64);
                    }
                    c
                }
            };
            cases.push(case);
        }
    }
    // Reported grouped by workload, in the configured order.
    let order = |w: Workload| config.workloads.iter().position(|x| *x == w);
    cases.sort_by_key(|c| order(c.workload));

    let layer_batch = config.layer_batch.or_else(|| {
        cases
            .iter()
            .filter(|c| c.workload == Workload::ForwardBackward && c.skipped.is_none())
            .map(|c| c.batch)
            .max()
    });
    let layer_profile = match layer_batch {
        Some(b) if b <= max_batch => Some(profile_layers(gpu, &gm, b, config.reps)?),
        _ => None,
    };
    let roofline = if config.roofline {
        Some(roofline(gpu, &ROOFLINE_SIZES, config.reps)?)
    } else {
        None
    };

    Ok(Report {
        schema: SCHEMA.to_string(),
        advgpu_version: env!("CARGO_PKG_VERSION").to_string(),
        adapter: adapter_report(gpu),
        config: config.clone(),
        kernels: match gpu.kernel_choice() {
            crate::gpu::KernelChoice::Auto => "auto".to_string(),
            crate::gpu::KernelChoice::Force(v) => v.name().to_string(),
        },
        tuning: gpu.tuning().iter().map(TuningEntry::from).collect(),
        cases,
        layer_profile,
        roofline,
        total_seconds: started.elapsed().as_secs_f64(),
    })
}

fn adapter_report(gpu: &Gpu) -> AdapterReport {
    let (info, l) = (&gpu.info, &gpu.limits);
    AdapterReport {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: info.driver.clone(),
        driver_info: info.driver_info.clone(),
        max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
        max_buffer_size: l.max_buffer_size,
        max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
        max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
        timestamp_queries: gpu
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY),
    }
}

fn skipped(workload: Workload, batch: usize, reason: String) -> Case {
    Case {
        workload,
        batch,
        skipped: Some(reason),
        reps: 0,
        seconds: None,
        image_steps_per_second: 0.0,
        flops: 0,
        gflops: 0.0,
        memory_bytes: 0,
        record_seconds: None,
        submit_seconds: None,
    }
}

/// The first `batch` held-out digits (repeated if there are fewer) and labels.
fn batch_of(digits: &Digits, batch: usize) -> (Vec<f32>, Vec<u32>) {
    let d = digits.image_len();
    let labels = digits.labels_u32();
    let mut x = Vec::with_capacity(batch * d);
    let mut l = Vec::with_capacity(batch);
    for i in 0..batch {
        let j = i % digits.len();
        x.extend_from_slice(digits.image(j));
        l.push(labels[j]);
    }
    (x, l)
}

/// Times `once` after a warm-up run: seconds per run.
fn time_runs(reps: usize, mut once: impl FnMut() -> Result<()>) -> Result<Stats> {
    once()?;
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        once()?;
        samples.push(start.elapsed().as_secs_f64());
    }
    Ok(Stats::of(&samples))
}

fn run_case(
    gpu: &Gpu,
    gm: &GpuModel,
    digits: &Digits,
    workload: Workload,
    batch: usize,
    reps: usize,
) -> Result<Case> {
    let (x, labels) = batch_of(digits, batch);
    let flops_pass = pass_flops(&gm.model, batch)?;
    let mut case = skipped(workload, batch, String::new());
    case.skipped = None;
    case.reps = reps;

    let seconds = match workload {
        Workload::Forward | Workload::ForwardBackward => {
            let backward = workload == Workload::ForwardBackward;
            let options = PlanOptions {
                input_grad: backward,
                ..Default::default()
            };
            let plan = Plan::new(gpu, gm, batch, options)?;
            plan.write_batch(gpu, &x, &labels)?;
            case.memory_bytes = plan.bytes;
            case.flops = if backward { 2 * flops_pass } else { flops_pass };
            if backward {
                time_runs(reps, || plan.run(gpu))?
            } else {
                time_runs(reps, || plan.run_forward(gpu))?
            }
        }
        Workload::PgdStep => {
            let engine = pgd_engine(gpu, gm, batch, 1)?;
            engine.load(&x, &labels)?;
            case.memory_bytes = engine.bytes();
            case.flops = 2 * flops_pass;
            time_steps(gpu, &mut case, reps, |pass| engine.record_step(pass))?
        }
        Workload::PatchStep => {
            let config = PatchConfig {
                batch,
                ..PatchConfig::default()
            };
            let initial = Patch::initial(&config, gm.model.input_shape[0])?;
            let trainer = PatchTrainer::new(gpu, gm, &digits.images, &config, &initial)?;
            case.memory_bytes = trainer.bytes();
            case.flops = 2 * flops_pass;
            time_steps(gpu, &mut case, reps, |pass| trainer.record_step(pass))?
        }
        Workload::Pgd10 => {
            let engine = pgd_engine(gpu, gm, batch, 10)?;
            case.memory_bytes = engine.bytes();
            // Ten forward and backward passes, and the forward pass that
            // judges the final images (keep-best).
            case.flops = (10 * 2 + 1) * flops_pass;
            let run = BatchRun {
                n: batch,
                offset: 0,
                targeted: false,
                early_stop: false,
                seed: 0,
            };
            time_runs(reps, || {
                engine.load(&x, &labels)?;
                engine.run(&run, |_| {})?;
                pollster::block_on(engine.read(batch)).map(|_| ())
            })?
        }
    };
    case.image_steps_per_second = (batch as u64 * workload.steps()) as f64 / seconds.median;
    case.gflops = case.flops as f64 / seconds.median / 1e9;
    case.seconds = Some(seconds);
    Ok(case)
}

/// The default PGD (eps 8/255, alpha 2/255) with `steps` steps.
fn pgd_engine(gpu: &Gpu, gm: &GpuModel, batch: usize, steps: usize) -> Result<AttackEngine> {
    let pgd = Pgd {
        steps,
        ..Pgd::default()
    };
    AttackEngine::new(gpu, gm, batch, &pgd.spec())
}

/// Times one step recorded by `record` (recorded, submitted, waited for),
/// and sets the case's host cost of recording and submitting per step,
/// measured over a full submission of steps as attacks record them.
fn time_steps(
    gpu: &Gpu,
    case: &mut Case,
    reps: usize,
    record: impl Fn(&mut wgpu::ComputePass<'_>),
) -> Result<Stats> {
    let stats = time_runs(reps, || {
        record_and_submit(gpu, 1, &record);
        gpu.wait()
    })?;
    let steps = crate::attack::engine::STEPS_PER_SUBMIT;
    let (recorded, submitted) = record_and_submit(gpu, steps, &record);
    gpu.wait()?;
    case.record_seconds = Some(recorded / steps as f64);
    case.submit_seconds = Some(submitted / steps as f64);
    Ok(stats)
}

/// Records `steps` steps into one command buffer and submits it without
/// waiting: host seconds spent recording, and submitting.
fn record_and_submit(
    gpu: &Gpu,
    steps: usize,
    record: &impl Fn(&mut wgpu::ComputePass<'_>),
) -> (f64, f64) {
    let start = Instant::now();
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        for _ in 0..steps {
            record(&mut pass);
        }
    }
    let commands = encoder.finish();
    let recorded = Instant::now();
    gpu.queue.submit([commands]);
    let submitted = Instant::now();
    (
        (recorded - start).as_secs_f64(),
        (submitted - recorded).as_secs_f64(),
    )
}

/// Per-layer time of forward and backward (to the input) at `batch`.
fn profile_layers(gpu: &Gpu, gm: &GpuModel, batch: usize, reps: usize) -> Result<LayerProfile> {
    let options = PlanOptions {
        input_grad: true,
        ..Default::default()
    };
    let plan = Plan::new(gpu, gm, batch, options)?;
    plan.run(gpu)?;
    let model = &gm.model;
    let shapes = model.shapes()?;
    let timestamps = crate::gpu::Timestamps::new(gpu);

    let passes = [
        ("forward", plan.forward_layers().collect::<Vec<_>>()),
        ("backward", plan.backward_layers().collect::<Vec<_>>()),
    ];
    let mut layers = Vec::new();
    for (pass, list) in passes {
        for (i, kernels) in list {
            if kernels.is_empty() {
                continue;
            }
            let mut samples = Vec::with_capacity(reps);
            for _ in 0..reps {
                let s = match &timestamps {
                    Some(t) => t.time(gpu, kernels)?,
                    None => gpu.time_kernels(kernels)?,
                };
                samples.push(s);
            }
            let seconds = Stats::of(&samples).median;
            let flops = model.layers[i].forward_flops(&shapes[i]) * batch as u64;
            layers.push(LayerTime {
                layer: i,
                kind: model.layers[i].kind().to_string(),
                pass: pass.to_string(),
                kernels: kernels
                    .iter()
                    .map(|k| format!("{}::{}", k.shader, k.name))
                    .collect(),
                seconds,
                flops,
                gflops: flops as f64 / seconds.max(1e-12) / 1e9,
            });
        }
    }
    Ok(LayerProfile {
        batch,
        clock: if timestamps.is_some() {
            "timestamp_queries"
        } else {
            "host"
        }
        .to_string(),
        layers,
    })
}

/// Matrix-product sizes of the roofline: square ones, and the shapes of the
/// bundled network's heaviest layers as products (a convolution over a
/// batch of 64 is `Co x (64 Ho Wo) x (Ci K^2)`; the first linear layer over
/// 256 samples is `256 x 200 x 1024`).
pub const ROOFLINE_SIZES: [(u32, u32, u32); 5] = [
    (512, 512, 512),
    (1024, 1024, 1024),
    (32, 64 * 24 * 24, 288),
    (64, 64 * 8 * 8, 576),
    (256, 200, 1024),
];

/// Times [`gemm`] in every variant at each `(m, n, k)` of `sizes`
/// ([`ROOFLINE_SIZES`] in reports).
pub fn roofline(gpu: &Gpu, sizes: &[(u32, u32, u32)], reps: usize) -> Result<Roofline> {
    let mut products = Vec::new();
    for &(m, n, k) in sizes {
        let g = GemmParams::row_major(m, n, k);
        let a = gpu.zeros("roofline a", &[m as usize, k as usize])?;
        let b = gpu.zeros("roofline b", &[k as usize, n as usize])?;
        let bias = gpu.zeros("roofline bias", &[1])?;
        let c = gpu.zeros("roofline c", &[m as usize, n as usize])?;
        for variant in Variant::ALL {
            let forced = gpu
                .clone()
                .with_kernels(crate::gpu::KernelChoice::Force(variant), None);
            let product = gemm(&forced, &g, &a.buffer, &b.buffer, &bias.buffer, &c.buffer)?;
            let stats = time_runs(reps, || forced.time_kernels(&product.kernels).map(|_| ()))?;
            products.push(Product {
                m,
                n,
                k,
                variant,
                seconds: stats.median,
                gflops: g.flops() as f64 / stats.median / 1e9,
            });
        }
    }
    let best_gflops = products.iter().map(|p| p.gflops).fold(0.0, f64::max);
    Ok(Roofline {
        products,
        best_gflops,
    })
}

/// One row of [`compare`]: the same case in two reports.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// The workload.
    pub workload: Workload,
    /// Images per batch.
    pub batch: usize,
    /// Image-steps per second in the first report.
    pub a: f64,
    /// Image-steps per second in the second report.
    pub b: f64,
    /// `b / a`.
    pub ratio: f64,
}

/// The cases both reports ran, with their throughput ratio `b / a`.
pub fn compare(a: &Report, b: &Report) -> Vec<Comparison> {
    a.cases
        .iter()
        .filter(|c| c.skipped.is_none())
        .filter_map(|ca| {
            let cb = b.case(ca.workload, ca.batch)?;
            Some(Comparison {
                workload: ca.workload,
                batch: ca.batch,
                a: ca.image_steps_per_second,
                b: cb.image_steps_per_second,
                ratio: cb.image_steps_per_second / ca.image_steps_per_second,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_take_the_middle_value() {
        let s = Stats::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Stats::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
    }

    #[test]
    fn workload_names_round_trip() {
        for w in Workload::ALL {
            assert_eq!(Workload::parse(w.name()).unwrap(), w);
        }
        assert!(Workload::parse("train").is_err());
    }
}
