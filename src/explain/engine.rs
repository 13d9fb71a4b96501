//! The shared skeleton of every attribution method, on GPU buffers.
//!
//! One [`SaliencyEngine`] holds, for a fixed batch of rows, the model's plan
//! (forward, and backward to the input unless the method is occlusion), a
//! group of images, the class and score explained per image, the running mean
//! of the gradients, the occlusion drops and the finished maps. Every
//! dispatch is built once in [`SaliencyEngine::new`]. A group of images runs
//! as:
//!
//! 1. a clean pass: the images themselves, forward only; the host reads the
//!    logits back and picks the class explained per image;
//! 2. the copies, `batch` rows per submission: make the inputs, forward, then
//!    either seed the one-hot, backward and fold the gradients into the
//!    running mean, or (occlusion) record each row's score drop;
//! 3. finish: combine into one map per image, and read the maps back.
//!
//! The rules are in `shaders/explain.wgsl`.

use crate::attack::reference::philox_key;
use crate::error::Result;
use crate::explain::{resolve_class, window_positions, ClassChoice, Finish, Input, Spec};
use crate::gpu::{Gpu, GpuTensor, Kernel};
use crate::nn::{GpuModel, Plan, PlanOptions};

/// Images per group at most: the group's buffers hold `MAX_GROUP` maps.
pub const MAX_GROUP: usize = 1024;

/// Uniform of `shaders/explain.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct ExplainParams {
    images: u32,
    d: u32,
    copies: u32,
    row0: u32,
    rows: u32,
    batch: u32,
    classes: u32,
    key: u32,
    offset: u32,
    channels: u32,
    height: u32,
    width: u32,
    window: u32,
    stride: u32,
    nx: u32,
    ny: u32,
    sigma: f32,
    reference: f32,
    _pad0: u32,
    _pad1: u32,
}

/// What one group of images produced.
#[derive(Clone, Debug)]
pub struct GroupResult {
    /// Maps `[m, C, H, W]`.
    pub maps: Vec<f32>,
    /// The class explained per image.
    pub classes: Vec<u32>,
    /// Logits at each image `[m, K]`.
    pub logits: Vec<f32>,
    /// The explained class's logit per image.
    pub scores: Vec<f32>,
}

/// The dispatches of one method, built once.
struct Kernels {
    clean_input: Kernel,
    input: Kernel,
    seed: Option<Kernel>,
    reduce: Kernel,
    finish: Kernel,
}

/// A method ready to run on groups of up to `group` images, `batch` rows at a time.
pub struct SaliencyEngine {
    gpu: Gpu,
    spec: Spec,
    plan: Plan,
    group: usize,
    copies: usize,
    base: ExplainParams,
    x: GpuTensor,
    class: GpuTensor,
    score: GpuTensor,
    out: GpuTensor,
    uniform: wgpu::Buffer,
    kernels: Kernels,
    _acc: GpuTensor,
    _drops: GpuTensor,
}

impl SaliencyEngine {
    /// Allocates every buffer and builds every dispatch.
    pub fn new(
        gpu: &Gpu,
        model: &GpuModel,
        spec: &Spec,
        batch: usize,
        group: usize,
    ) -> Result<SaliencyEngine> {
        let host = &model.model;
        let shape = host.input_shape;
        spec.validate(shape)?;
        let plan = Plan::new(
            gpu,
            model,
            batch,
            PlanOptions {
                input_grad: spec.backward(),
                weight_grads: false,
                guided_relu: spec.guided,
            },
        )?;
        let group = group.max(1);
        let d = host.input_len();
        let copies = spec.copies(shape);

        let x = gpu.zeros("saliency images", &[group, d])?;
        let class = gpu.zeros("explained classes", &[group])?;
        let score = gpu.zeros("explained scores", &[group])?;
        let acc = gpu.zeros("mean gradients", &[group, d])?;
        let drops_len = if spec.backward() { 1 } else { group * copies };
        let drops = gpu.zeros("occlusion drops", &[drops_len])?;
        let out = gpu.zeros("saliency maps", &[group, d])?;
        let uniform = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("saliency params"),
            size: std::mem::size_of::<ExplainParams>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });

        let mut base = ExplainParams {
            d: d as u32,
            batch: plan.batch as u32,
            classes: plan.classes() as u32,
            channels: shape[0] as u32,
            height: shape[1] as u32,
            width: shape[2] as u32,
            ..Default::default()
        };
        let input_entry = match spec.input {
            Input::Image => "input_image",
            Input::Noise { sigma, seed, .. } => {
                base.sigma = sigma;
                base.key = philox_key(seed);
                "input_noise"
            }
            Input::Path { baseline, .. } => {
                base.reference = baseline;
                "input_path"
            }
            Input::Occlude {
                window,
                stride,
                fill,
            } => {
                let (ny, nx) = window_positions(shape, window, stride);
                base.window = window as u32;
                base.stride = stride as u32;
                base.ny = ny as u32;
                base.nx = nx as u32;
                base.reference = fill;
                "input_occlude"
            }
        };

        let (xb, input, grad_input, logits, grad_logits) = (
            &x.buffer,
            &plan.input().buffer,
            &plan.grad_input().buffer,
            &plan.logits().buffer,
            &plan.grads[plan.grads.len() - 1].buffer,
        );
        let (cls, sc, ac, dr, ob) = (
            &class.buffer,
            &score.buffer,
            &acc.buffer,
            &drops.buffer,
            &out.buffer,
        );
        let k = |entry: &'static str, bindings: &[(u32, &wgpu::Buffer)], threads: usize| {
            gpu.kernel_with_uniform("explain", entry, &uniform, bindings, threads as u64)
        };
        let chunk_values = plan.batch * d;
        let group_values = group * d;
        let (seed, reduce) = if spec.backward() {
            (
                Some(k(
                    "seed_score",
                    &[(5, grad_logits), (6, cls)],
                    plan.batch * plan.classes(),
                )?),
                k("accumulate", &[(3, grad_input), (8, ac)], group_values)?,
            )
        } else {
            (
                None,
                k(
                    "score_drop",
                    &[(4, logits), (6, cls), (7, sc), (9, dr)],
                    plan.batch,
                )?,
            )
        };
        let finish = match spec.finish {
            Finish::Mean => k("finish_mean", &[(8, ac), (10, ob)], group_values)?,
            Finish::TimesInput => k(
                "finish_times_input",
                &[(1, xb), (8, ac), (10, ob)],
                group_values,
            )?,
            Finish::TimesDelta => k(
                "finish_times_delta",
                &[(1, xb), (8, ac), (10, ob)],
                group_values,
            )?,
            Finish::MeanDrop => k("finish_occlusion", &[(9, dr), (10, ob)], group_values)?,
        };
        let kernels = Kernels {
            clean_input: k("input_image", &[(1, xb), (2, input)], chunk_values)?,
            input: k(input_entry, &[(1, xb), (2, input)], chunk_values)?,
            seed,
            reduce,
            finish,
        };

        Ok(SaliencyEngine {
            gpu: gpu.clone(),
            spec: spec.clone(),
            plan,
            group,
            copies,
            base,
            x,
            class,
            score,
            out,
            uniform,
            kernels,
            _acc: acc,
            _drops: drops,
        })
    }

    /// Rows per batch.
    pub fn batch(&self) -> usize {
        self.plan.batch
    }

    /// Copies made of each image.
    pub fn copies(&self) -> usize {
        self.copies
    }

    /// The model's logits `[K]` at the constant image `value` (the baseline
    /// of Integrated Gradients).
    pub fn constant_logits(&self, value: f32) -> Result<Vec<f32>> {
        let gpu = &self.gpu;
        gpu.write(self.plan.input(), &vec![value; self.plan.input().len()])?;
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            self.plan.record_forward(&mut pass);
        }
        gpu.queue.submit([encoder.finish()]);
        let logits: Vec<f32> = gpu.read_blocking(self.plan.logits())?;
        Ok(logits[..self.plan.classes()].to_vec())
    }

    /// Attributions of the images `x` (at most `group` of them), the first
    /// of which has global index `offset` (for the noise counters and
    /// per-image classes). `progress` is told the rows done in this group.
    pub fn run(
        &self,
        x: &[f32],
        offset: usize,
        class: &ClassChoice,
        mut progress: impl FnMut(u64),
    ) -> Result<GroupResult> {
        let gpu = &self.gpu;
        let d = self.base.d as usize;
        let m = x.len() / d;
        if m == 0 || m > self.group || x.len() != m * d {
            return Err(crate::Error::Shape {
                what: "saliency group".into(),
                expected: format!("1..={} images of {d} values", self.group),
                got: format!("{} values", x.len()),
            });
        }
        let mut padded = x.to_vec();
        padded.resize(self.group * d, 0.0);
        gpu.write(&self.x, &padded)?;
        let base = ExplainParams {
            images: m as u32,
            offset: offset as u32,
            ..self.base
        };

        // 1. The clean pass: logits at the images, and the class explained.
        let k = self.plan.classes();
        let mut logits = Vec::with_capacity(m * k);
        for row0 in (0..m).step_by(self.plan.batch) {
            let rows = (m - row0).min(self.plan.batch);
            self.write_params(&ExplainParams {
                copies: 1,
                row0: row0 as u32,
                rows: rows as u32,
                ..base
            });
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                self.kernels.clean_input.record(&mut pass);
                self.plan.record_forward(&mut pass);
            }
            gpu.queue.submit([encoder.finish()]);
            let chunk: Vec<f32> = gpu.read_blocking(self.plan.logits())?;
            logits.extend_from_slice(&chunk[..rows * k]);
        }
        let classes: Vec<u32> = (0..m)
            .map(|i| resolve_class(class, offset + i, &logits[i * k..(i + 1) * k]))
            .collect();
        let scores: Vec<f32> = (0..m)
            .map(|i| logits[i * k + classes[i] as usize])
            .collect();
        let mut padded_classes = classes.clone();
        padded_classes.resize(self.group, 0);
        gpu.write(&self.class, &padded_classes)?;
        let mut padded_scores = scores.clone();
        padded_scores.resize(self.group, 0.0);
        gpu.write(&self.score, &padded_scores)?;

        // 2. The copies, one submission per batch of rows.
        let base = ExplainParams {
            copies: self.copies as u32,
            ..base
        };
        let total = m * self.copies;
        for row0 in (0..total).step_by(self.plan.batch) {
            let rows = (total - row0).min(self.plan.batch);
            self.write_params(&ExplainParams {
                row0: row0 as u32,
                rows: rows as u32,
                ..base
            });
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                self.kernels.input.record(&mut pass);
                self.plan.record_forward(&mut pass);
                if let Some(seed) = &self.kernels.seed {
                    seed.record(&mut pass);
                    self.plan.record_backward(&mut pass);
                }
                self.kernels.reduce.record(&mut pass);
            }
            gpu.queue.submit([encoder.finish()]);
            gpu.wait()?;
            progress((row0 + rows) as u64);
        }

        // 3. One map per image.
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            self.kernels.finish.record(&mut pass);
        }
        gpu.queue.submit([encoder.finish()]);
        let mut maps: Vec<f32> = gpu.read_blocking(&self.out)?;
        maps.truncate(m * d);
        log::debug!(
            "saliency group of {m} images at {offset}: {total} rows, guided {}",
            self.spec.guided
        );
        Ok(GroupResult {
            maps,
            classes,
            logits,
            scores,
        })
    }

    /// Queues the uniform for the next submission.
    fn write_params(&self, params: &ExplainParams) {
        self.gpu
            .queue
            .write_buffer(&self.uniform, 0, bytemuck::bytes_of(params));
    }
}
