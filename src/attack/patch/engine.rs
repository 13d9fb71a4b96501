//! The patch on the GPU: buffers and dispatches to draw placements, paste,
//! carry the gradient back to the patch and update it, all built once.
//!
//! A training step is recorded as: `draw` (a placement and an image per
//! slot), `paste` (into the plan's input), the plan's forward, loss and
//! backward to the input, `paste_backward` (to the patch), `tv` (when the
//! penalty is on), `adam` or `sign_step`, `advance` (the step counter, which
//! the next step's draws and Adam's bias correction read). Many steps go into
//! one submission; the host reads back only the loss and predictions of the
//! last step for progress, and the patch at the end.
//!
//! Limitation: the draw counter is a u32 (`step * batch + slot`); past 2^32
//! image-steps in one run it wraps and placements start to repeat.

use crate::attack::engine::STEPS_PER_SUBMIT;
use crate::attack::patch::reference::training_key;
use crate::attack::patch::{Optimizer, Patch, PatchConfig, Placement, Progress, Transform};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor, Kernel};
use crate::nn::{GpuModel, Plan, PlanOptions};

/// Uniform of `shaders/patch.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct PasteParams {
    batch: u32,
    n: u32,
    channels: u32,
    height: u32,
    width: u32,
    patch_h: u32,
    patch_w: u32,
    images: u32,
    key: u32,
    random_image: u32,
    first_image: u32,
    draw_base: u32,
    scale_min: f32,
    scale_max: f32,
    rotation: f32,
    subpixel: u32,
}

impl PasteParams {
    fn new(plan: &Plan, patch: &Patch, images: usize, key: u32, placement: &Placement) -> Self {
        let s = &plan.input().shape;
        PasteParams {
            batch: plan.batch as u32,
            n: plan.batch as u32,
            channels: s[1] as u32,
            height: s[2] as u32,
            width: s[3] as u32,
            patch_h: patch.height as u32,
            patch_w: patch.width as u32,
            images: images as u32,
            key,
            random_image: 0,
            first_image: 0,
            draw_base: 0,
            scale_min: placement.scale_min,
            scale_max: placement.scale_max,
            rotation: placement.rotation.to_radians(),
            subpixel: u32::from(placement.subpixel),
        }
    }
}

/// Uniform of `shaders/patch_update.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct UpdateParams {
    len: u32,
    patch_h: u32,
    patch_w: u32,
    _pad: u32,
    lr: f32,
    tv: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

/// The buffers the paste kernels read and write besides the plan's.
struct PatchBuffers<'a> {
    data: &'a GpuTensor,
    patch: &'a GpuTensor,
    mask: &'a GpuTensor,
    counter: &'a GpuTensor,
    /// The patch gradient, when the plan computes the input gradient.
    grad_patch: Option<&'a GpuTensor>,
}

/// Drawing placements and pasting onto one plan's input, and the gradient
/// back to the patch.
struct Paster {
    uniform: wgpu::Buffer,
    transforms: GpuTensor,
    draw: Kernel,
    paste: Kernel,
    backward: Option<Kernel>,
}

impl Paster {
    fn new(gpu: &Gpu, plan: &Plan, b: &PatchBuffers<'_>) -> Result<Paster> {
        let uniform = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("patch params"),
            size: std::mem::size_of::<PasteParams>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let words = std::mem::size_of::<Transform>() / 4;
        let transforms = gpu.zeros("patch transforms", &[plan.batch, words])?;
        let k = |entry: &'static str, bindings: &[(u32, &wgpu::Buffer)], threads: u64| {
            gpu.kernel_with_uniform("patch", entry, &uniform, bindings, threads)
        };
        let (tr, x) = (&transforms.buffer, &plan.input().buffer);

        let draw = k(
            "draw",
            &[(4, tr), (8, &b.counter.buffer)],
            plan.batch as u64,
        )?;
        let paste = k(
            "paste",
            &[
                (1, &b.data.buffer),
                (2, &b.patch.buffer),
                (3, &b.mask.buffer),
                (4, tr),
                (5, x),
            ],
            plan.input().len() as u64,
        )?;
        let backward = match b.grad_patch {
            Some(g) => Some(k(
                "paste_backward",
                &[
                    (3, &b.mask.buffer),
                    (4, tr),
                    (6, &plan.grad_input().buffer),
                    (7, &g.buffer),
                ],
                g.len() as u64,
            )?),
            None => None,
        };
        Ok(Paster {
            uniform,
            transforms,
            draw,
            paste,
            backward,
        })
    }

    fn write(&self, gpu: &Gpu, params: &PasteParams) {
        gpu.queue
            .write_buffer(&self.uniform, 0, bytemuck::bytes_of(params));
    }

    fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.draw.record(pass);
        self.paste.record(pass);
    }

    fn read_transforms(&self, gpu: &Gpu) -> Result<Vec<Transform>> {
        let raw: Vec<u32> = gpu.read_blocking(&self.transforms)?;
        Ok(bytemuck::cast_slice(&raw).to_vec())
    }
}

/// One gradient evaluation of a [`PatchTrainer`], as read back.
#[derive(Clone, Debug)]
pub struct PatchGradient {
    /// `d(-L)/dP - tv * dTV/dP` `[C, h, w]`, with `L` the mean cross-entropy
    /// towards the target over the batch: the direction the update ascends.
    pub grad: Vec<f32>,
    /// The placement of each slot.
    pub transforms: Vec<Transform>,
    /// The patched images the model saw `[batch, C, H, W]`.
    pub images: Vec<f32>,
}

/// A patch being trained: every buffer and dispatch of a step, built once.
pub struct PatchTrainer {
    gpu: Gpu,
    plan: Plan,
    patch: GpuTensor,
    grad: GpuTensor,
    counter: GpuTensor,
    paster: Paster,
    tv: Option<Kernel>,
    update: Kernel,
    advance: Kernel,
    target: u32,
    shape: (usize, usize, usize),
    mask: Vec<f32>,
    // Bound by the dispatches above; kept alive with them.
    _buffers: Vec<GpuTensor>,
}

impl PatchTrainer {
    /// Uploads `images` (`n` samples of the model's input shape) and the
    /// `initial` patch, and builds every dispatch for `config`.
    pub fn new(
        gpu: &Gpu,
        model: &GpuModel,
        images: &[f32],
        config: &PatchConfig,
        initial: &Patch,
    ) -> Result<PatchTrainer> {
        config.validate(&model.model)?;
        initial.validate(&model.model)?;
        if (initial.height, initial.width) != (config.height, config.width) {
            return Err(Error::Shape {
                what: "initial patch".into(),
                expected: format!("{}x{} (the config's size)", config.height, config.width),
                got: format!("{}x{}", initial.height, initial.width),
            });
        }
        let d = model.model.input_len();
        let n = images.len() / d.max(1);
        if n == 0 || images.len() != n * d {
            return Err(Error::Shape {
                what: "patch training images".into(),
                expected: format!("a positive multiple of {d} values"),
                got: format!("{} values", images.len()),
            });
        }

        let plan = Plan::new(
            gpu,
            model,
            config.batch,
            PlanOptions {
                input_grad: true,
                ..Default::default()
            },
        )?;
        // The gradient of -(mean cross-entropy to the target): ascending it
        // raises the target's log-probability.
        plan.set_loss(gpu, 1.0 / plan.batch as f32, -1.0);
        gpu.write(&plan.labels, &vec![config.target; plan.batch])?;

        let [c, ih, iw] = model.model.input_shape;
        let data = gpu.upload("patch training images", &[n, c, ih, iw], images)?;
        let (ph, pw) = (initial.height, initial.width);
        let patch = gpu.upload("patch", &[c, ph, pw], &initial.pixels)?;
        let mask = gpu.upload("patch mask", &[ph, pw], &initial.mask)?;
        let grad = gpu.zeros("patch gradient", &[c, ph, pw])?;
        let m = gpu.zeros("patch adam m", &[c, ph, pw])?;
        let v = gpu.zeros("patch adam v", &[c, ph, pw])?;
        let counter = gpu.zeros("patch step counter", &[1])?;

        let paster = Paster::new(
            gpu,
            &plan,
            &PatchBuffers {
                data: &data,
                patch: &patch,
                mask: &mask,
                counter: &counter,
                grad_patch: Some(&grad),
            },
        )?;
        let mut params = PasteParams::new(
            &plan,
            initial,
            n,
            training_key(config.seed),
            &config.placement,
        );
        params.random_image = 1;
        paster.write(gpu, &params);

        let uniform = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("patch update params"),
            size: std::mem::size_of::<UpdateParams>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let update_params = UpdateParams {
            len: (c * ph * pw) as u32,
            patch_h: ph as u32,
            patch_w: pw as u32,
            lr: config.lr,
            tv: config.tv,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            ..Default::default()
        };
        gpu.queue
            .write_buffer(&uniform, 0, bytemuck::bytes_of(&update_params));
        let values = (c * ph * pw) as u64;
        let k = |entry: &'static str, bindings: &[(u32, &wgpu::Buffer)], threads: u64| {
            gpu.kernel_with_uniform("patch_update", entry, &uniform, bindings, threads)
        };
        let (pb, mb, gb, cb) = (&patch.buffer, &mask.buffer, &grad.buffer, &counter.buffer);
        let tv = if config.tv > 0.0 {
            Some(k("tv", &[(1, pb), (2, mb), (3, gb)], values)?)
        } else {
            None
        };
        let update = match config.optimizer {
            Optimizer::Adam => k(
                "adam",
                &[(1, pb), (3, gb), (4, &m.buffer), (5, &v.buffer), (6, cb)],
                values,
            )?,
            Optimizer::Sign => k("sign_step", &[(1, pb), (3, gb)], values)?,
        };
        let advance = k("advance", &[(6, cb)], 1)?;

        Ok(PatchTrainer {
            gpu: gpu.clone(),
            plan,
            patch,
            grad,
            counter,
            paster,
            tv,
            update,
            advance,
            target: config.target,
            shape: (c, ph, pw),
            mask: initial.mask.clone(),
            _buffers: vec![data, mask, m, v],
        })
    }

    /// Bytes of all GPU buffers the trainer allocated.
    pub fn bytes(&self) -> u64 {
        let own = [
            &self.patch,
            &self.grad,
            &self.counter,
            &self.paster.transforms,
        ];
        self.plan.bytes
            + own.iter().map(|t| t.buffer.size()).sum::<u64>()
            + self._buffers.iter().map(|t| t.buffer.size()).sum::<u64>()
    }

    /// Records the gradient of one step: draw, paste, forward, loss, backward
    /// to the input, back to the patch, and the penalty.
    pub fn record_gradient(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.paster.record(pass);
        self.plan.record_step(pass);
        if let Some(b) = &self.paster.backward {
            b.record(pass);
        }
        if let Some(tv) = &self.tv {
            tv.record(pass);
        }
    }

    /// Records one whole step: the gradient, the update and the step count.
    pub fn record_step(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.record_gradient(pass);
        self.update.record(pass);
        self.advance.record(pass);
    }

    /// Takes `steps` steps, calling `progress` after each submission, and
    /// returns what it was told.
    pub fn run(&self, steps: usize, mut progress: impl FnMut(Progress)) -> Result<Vec<Progress>> {
        let gpu = &self.gpu;
        let mut history = Vec::new();
        let mut done = 0;
        while done < steps {
            let chunk = STEPS_PER_SUBMIT.min(steps - done);
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                for _ in 0..chunk {
                    self.record_step(&mut pass);
                }
            }
            gpu.queue.submit([encoder.finish()]);
            done += chunk;

            // The last step's forward pass, before its update.
            let loss: Vec<f32> = gpu.read_blocking(&self.plan.loss)?;
            let pred: Vec<u32> = gpu.read_blocking(&self.plan.pred)?;
            let mean = loss.iter().sum::<f32>() / loss.len() as f32;
            if !mean.is_finite() {
                return Err(Error::gpu(
                    "training a patch",
                    format!("the loss became {mean} at step {done}"),
                ));
            }
            let hits = pred.iter().filter(|p| **p == self.target).count();
            let p = Progress {
                step: done,
                total: steps,
                loss: mean,
                success: hits as f32 / pred.len() as f32,
            };
            history.push(p);
            progress(p);
        }
        Ok(history)
    }

    /// Computes the next step's gradient without updating the patch or
    /// counting the step, and reads it back (for tests and inspection).
    pub fn gradient(&self) -> Result<PatchGradient> {
        let gpu = &self.gpu;
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            self.record_gradient(&mut pass);
        }
        gpu.queue.submit([encoder.finish()]);
        Ok(PatchGradient {
            grad: gpu.read_blocking(&self.grad)?,
            transforms: self.paster.read_transforms(gpu)?,
            images: gpu.read_blocking(self.plan.input())?,
        })
    }

    /// The steps taken so far, as the GPU counted them.
    pub fn steps_taken(&self) -> Result<u32> {
        Ok(self.gpu.read_blocking::<u32>(&self.counter)?[0])
    }

    /// The patch as it is now.
    pub fn patch(&self) -> Result<Patch> {
        let (c, h, w) = self.shape;
        Ok(Patch {
            channels: c,
            height: h,
            width: w,
            pixels: self.gpu.read_blocking(&self.patch)?,
            mask: self.mask.clone(),
        })
    }
}

/// A fixed patch pasted on a fixed set of images at fresh placements, and
/// classified: the dispatches of evaluation.
pub(crate) struct Evaluator {
    gpu: Gpu,
    plan: Plan,
    paster: Paster,
    params: PasteParams,
    // Bound by the dispatches above; kept alive with them.
    _buffers: Vec<GpuTensor>,
}

impl Evaluator {
    /// Uploads `patch` and `images` and plans batches of `batch`.
    pub(crate) fn new(
        gpu: &Gpu,
        model: &GpuModel,
        patch: &Patch,
        images: &[f32],
        batch: usize,
        key: u32,
    ) -> Result<Evaluator> {
        let [c, ih, iw] = model.model.input_shape;
        let n = images.len() / model.model.input_len().max(1);
        let plan = Plan::new(gpu, model, batch, PlanOptions::default())?;
        let data = gpu.upload("patched images", &[n, c, ih, iw], images)?;
        let pixels = gpu.upload("patch", &[c, patch.height, patch.width], &patch.pixels)?;
        let mask = gpu.upload("patch mask", &[patch.height, patch.width], &patch.mask)?;
        let counter = gpu.zeros("patch draw counter", &[1])?;
        let paster = Paster::new(
            gpu,
            &plan,
            &PatchBuffers {
                data: &data,
                patch: &pixels,
                mask: &mask,
                counter: &counter,
                grad_patch: None,
            },
        )?;
        let params = PasteParams::new(&plan, patch, n, key, &Placement::default());
        Ok(Evaluator {
            gpu: gpu.clone(),
            plan,
            paster,
            params,
            _buffers: vec![data, pixels, mask, counter],
        })
    }

    /// Images per batch.
    pub(crate) fn batch(&self) -> usize {
        self.plan.batch
    }

    /// Pastes the patch on images `first..first + count` with placements
    /// drawn at counters `draw_base + slot`, and returns the model's class
    /// for every slot (those past `count` are meaningless).
    pub(crate) fn run(
        &self,
        placement: &Placement,
        first: usize,
        count: usize,
        draw_base: u32,
    ) -> Result<Vec<u32>> {
        let gpu = &self.gpu;
        let params = PasteParams {
            n: count as u32,
            first_image: first as u32,
            draw_base,
            scale_min: placement.scale_min,
            scale_max: placement.scale_max,
            rotation: placement.rotation.to_radians(),
            subpixel: u32::from(placement.subpixel),
            ..self.params
        };
        self.paster.write(gpu, &params);
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            self.paster.record(&mut pass);
            self.plan.record_forward(&mut pass);
            self.plan.record_loss(&mut pass);
        }
        gpu.queue.submit([encoder.finish()]);
        gpu.read_blocking(&self.plan.pred)
    }

    /// The last batch's patched images and placements.
    pub(crate) fn read_batch(&self) -> Result<(Vec<f32>, Vec<Transform>)> {
        Ok((
            self.gpu.read_blocking(self.plan.input())?,
            self.paster.read_transforms(&self.gpu)?,
        ))
    }
}
