//! The shared skeleton of every gradient attack, on GPU buffers.
//!
//! One [`AttackEngine`] holds, for a fixed batch size, the model's plan
//! (forward, loss, backward to the input), the clean images `x0`, the current
//! images (the plan's input buffer), momentum / noise scratch, the best result
//! so far and a per-sample state (active, steps taken, success, kept class).
//! Every dispatch is built once in [`AttackEngine::new`]; a step is recorded
//! as: forward, loss, backward, `check` (early stop), the attack's own
//! statistic and update kernels, projection (for a masked attack, one masked
//! step that also restores every value outside the mask). Many steps go into one
//! submission; the host reads back only the final images and per-sample
//! results. The update rules are in `shaders/attack_step.wgsl`.

use crate::attack::reference::philox_key;
use crate::attack::{Norm, Spec};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuTensor, Kernel};
use crate::nn::{GpuModel, Plan, PlanOptions};

/// Steps recorded per submission: enough to keep the queue full, few enough
/// that progress is reported about once a second on slow devices.
pub const STEPS_PER_SUBMIT: usize = 10;

/// Uniform of `shaders/attack_step.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct AttackParams {
    n: u32,
    d: u32,
    offset: u32,
    key: u32,
    restart: u32,
    targeted: u32,
    early_stop: u32,
    random_start: u32,
    eps: f32,
    alpha: f32,
    mu: f32,
    sign: f32,
}

/// `SampleState` of `shaders/attack_step.wgsl`, as read back.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SampleState {
    /// 1 while the sample still takes steps.
    pub running: u32,
    /// Steps the sample took (all of them, over every restart it ran).
    pub steps: u32,
    /// 1 if the kept result fools the model (or reaches the target).
    pub success: u32,
    /// The model's class for the kept result.
    pub pred: u32,
    /// `sign * loss` of the kept result.
    pub objective: f32,
    stat: f32,
    radius: f32,
    _pad: u32,
}

/// How one batch is attacked: which samples are real, where they sit in the
/// whole set (for the random counters), and the run's switches.
#[derive(Clone, Copy, Debug)]
pub struct BatchRun {
    /// Real samples in the batch; the rest is padding.
    pub n: usize,
    /// Global index of the batch's first sample.
    pub offset: usize,
    /// Whether the labels are targets.
    pub targeted: bool,
    /// Whether successful samples stop changing.
    pub early_stop: bool,
    /// The seed of the random starts.
    pub seed: u64,
}

/// The dispatches of one attack, built once.
struct Kernels {
    init: Kernel,
    restart_begin: Kernel,
    start: Vec<Kernel>,
    check: Kernel,
    update: Vec<Kernel>,
    keep_best: Kernel,
}

/// An attack ready to run on batches of a fixed size.
pub struct AttackEngine {
    gpu: Gpu,
    spec: Spec,
    plan: Plan,
    x0: GpuTensor,
    best_x: GpuTensor,
    state: GpuTensor,
    uniform: wgpu::Buffer,
    kernels: Kernels,
    _scratch: GpuTensor,
    _mask: Option<GpuTensor>,
}

impl AttackEngine {
    /// Allocates every buffer and builds every dispatch for `batch` samples.
    pub fn new(gpu: &Gpu, model: &GpuModel, batch: usize, spec: &Spec) -> Result<AttackEngine> {
        spec.validate()?;
        let plan = Plan::new(
            gpu,
            model,
            batch,
            PlanOptions {
                input_grad: true,
                ..Default::default()
            },
        )?;
        let shape = plan.input().shape.clone();
        let n = plan.batch;
        let values = plan.input().len() as u64;

        let sample = [shape[1], shape[2], shape[3]];
        let mask = match spec.mask_values(sample)? {
            Some(values) => Some(gpu.upload("attack mask", &[values.len()], &values)?),
            None => None,
        };
        let x0 = gpu.zeros("clean images", &shape)?;
        let best_x = gpu.zeros("best adversarial images", &shape)?;
        let scratch = gpu.zeros("attack scratch", &shape)?;
        let state = gpu.zeros("attack state", &[n, std::mem::size_of::<SampleState>() / 4])?;
        let uniform = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("attack params"),
            size: std::mem::size_of::<AttackParams>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });

        let (x0b, x, grad, scr, st) = (
            &x0.buffer,
            &plan.input().buffer,
            &plan.grad_input().buffer,
            &scratch.buffer,
            &state.buffer,
        );
        let (pred, labels, loss, best) = (
            &plan.pred.buffer,
            &plan.labels.buffer,
            &plan.loss.buffer,
            &best_x.buffer,
        );
        let k = |entry: &'static str, bindings: &[(u32, &wgpu::Buffer)], threads: u64| {
            gpu.kernel_with_uniform("attack_step", entry, &uniform, bindings, threads)
        };
        let per_sample = n as u64;

        let start = match (&mask, spec.norm, spec.random_start) {
            (Some(m), _, _) => vec![k(
                "start_masked",
                &[(1, x0b), (2, x), (4, scr), (10, &m.buffer)],
                values,
            )?],
            (None, Norm::L2, true) => vec![
                k("start_l2_noise", &[(4, scr)], values)?,
                k("start_l2_norm", &[(4, scr), (5, st)], per_sample)?,
                k(
                    "start_l2_apply",
                    &[(1, x0b), (2, x), (4, scr), (5, st)],
                    values,
                )?,
            ],
            (None, _, _) => vec![k("start", &[(1, x0b), (2, x), (4, scr)], values)?],
        };
        let update = match (&mask, spec.norm, spec.momentum) {
            (Some(m), _, _) => vec![k(
                "step_masked",
                &[(1, x0b), (2, x), (3, grad), (5, st), (10, &m.buffer)],
                values,
            )?],
            (None, Norm::Linf, None) => vec![k(
                "step_linf",
                &[(1, x0b), (2, x), (3, grad), (5, st)],
                values,
            )?],
            (None, Norm::Linf, Some(_)) => vec![
                k("grad_l1_mean", &[(3, grad), (5, st)], per_sample)?,
                k(
                    "step_momentum",
                    &[(1, x0b), (2, x), (3, grad), (4, scr), (5, st)],
                    values,
                )?,
            ],
            (None, Norm::L2, _) => vec![
                k("grad_l2_norm", &[(3, grad), (5, st)], per_sample)?,
                k("step_l2", &[(2, x), (3, grad), (5, st)], values)?,
                k("l2_delta_norm", &[(1, x0b), (2, x), (5, st)], per_sample)?,
                k("l2_project", &[(1, x0b), (2, x), (5, st)], values)?,
            ],
        };
        let kernels = Kernels {
            init: k("init", &[(5, st)], per_sample)?,
            restart_begin: k("restart_begin", &[(5, st)], per_sample)?,
            start,
            check: k("check", &[(5, st), (6, pred), (7, labels)], per_sample)?,
            update,
            keep_best: k(
                "keep_best",
                &[
                    (2, x),
                    (5, st),
                    (6, pred),
                    (7, labels),
                    (8, loss),
                    (9, best),
                ],
                per_sample,
            )?,
        };

        Ok(AttackEngine {
            gpu: gpu.clone(),
            spec: spec.clone(),
            plan,
            x0,
            best_x,
            state,
            uniform,
            kernels,
            _scratch: scratch,
            _mask: mask,
        })
    }

    /// Samples per batch.
    pub fn batch(&self) -> usize {
        self.plan.batch
    }

    /// The clean-image buffer `[batch, C, H, W]`. An app that keeps its
    /// images on the GPU copies them here instead of calling [`AttackEngine::load`].
    pub fn clean(&self) -> &GpuTensor {
        &self.x0
    }

    /// The labels the loss is taken against (u32 `[batch]`): true labels, or targets.
    pub fn labels(&self) -> &GpuTensor {
        &self.plan.labels
    }

    /// The adversarial images after [`AttackEngine::run`], on the GPU.
    pub fn adversarial(&self) -> &GpuTensor {
        &self.best_x
    }

    /// Uploads a batch: clean images (`batch * C * H * W` values; pad with
    /// zeros) and the class each sample's loss is taken against.
    pub fn load(&self, x0: &[f32], labels: &[u32]) -> Result<()> {
        self.gpu.write(&self.x0, x0)?;
        self.gpu.write(&self.plan.labels, labels)
    }

    /// Runs the attack on the loaded batch. `progress` is called after each
    /// submission with the number of steps done (over all restarts).
    pub fn run(&self, run: &BatchRun, mut progress: impl FnMut(usize)) -> Result<()> {
        if run.n == 0 || run.n > self.plan.batch {
            return Err(Error::param(
                "n",
                run.n,
                format!("1..={} (the engine's batch size)", self.plan.batch),
            ));
        }
        let gpu = &self.gpu;
        let sign = if run.targeted { -1.0 } else { 1.0 };
        self.plan.set_loss(gpu, 1.0, sign);
        let mut params = AttackParams {
            n: run.n as u32,
            d: (self.plan.input().len() / self.plan.batch) as u32,
            offset: run.offset as u32,
            key: philox_key(run.seed),
            restart: 0,
            targeted: u32::from(run.targeted),
            early_stop: u32::from(run.early_stop),
            random_start: u32::from(self.spec.random_start),
            eps: self.spec.eps,
            alpha: self.spec.alpha,
            mu: self.spec.momentum.unwrap_or(0.0),
            sign,
        };

        let mut done = 0;
        for restart in 0..self.spec.restarts {
            params.restart = restart as u32;
            gpu.queue
                .write_buffer(&self.uniform, 0, bytemuck::bytes_of(&params));
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                let first = if restart == 0 {
                    &self.kernels.init
                } else {
                    &self.kernels.restart_begin
                };
                first.record(&mut pass);
                self.kernels.start.iter().for_each(|k| k.record(&mut pass));
            }
            gpu.queue.submit([encoder.finish()]);

            let mut step = 0;
            while step < self.spec.steps {
                let chunk = STEPS_PER_SUBMIT.min(self.spec.steps - step);
                let mut encoder = gpu.device.create_command_encoder(&Default::default());
                {
                    let mut pass = encoder.begin_compute_pass(&Default::default());
                    for _ in 0..chunk {
                        self.record_step(&mut pass);
                    }
                }
                gpu.queue.submit([encoder.finish()]);
                gpu.wait()?;
                step += chunk;
                done += chunk;
                progress(done);
            }

            // Judge the restart's final images and keep the better result.
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                self.plan.record_forward(&mut pass);
                self.plan.record_loss(&mut pass);
                self.kernels.keep_best.record(&mut pass);
            }
            gpu.queue.submit([encoder.finish()]);
        }
        gpu.wait()
    }

    /// Records one step: forward, loss, backward to the input, early-stop
    /// check, update, projection. Exposed so that benchmarks can time it.
    pub fn record_step(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.plan.record_step(pass);
        self.kernels.check.record(pass);
        self.kernels.update.iter().for_each(|k| k.record(pass));
    }

    /// Reads back the adversarial images and per-sample states of the first `n` samples.
    pub async fn read(&self, n: usize) -> Result<(Vec<f32>, Vec<SampleState>)> {
        let d = self.plan.input().len() / self.plan.batch;
        let mut images: Vec<f32> = self.gpu.read(&self.best_x).await?;
        images.truncate(n * d);
        let raw: Vec<u32> = self.gpu.read(&self.state).await?;
        let mut states: Vec<SampleState> = bytemuck::cast_slice(&raw).to_vec();
        states.truncate(n);
        Ok((images, states))
    }

    /// Bytes of all GPU buffers the engine allocated.
    pub fn bytes(&self) -> u64 {
        self.plan.bytes + 3 * self.x0.buffer.size() + self.state.buffer.size()
    }
}
