//! A model on the GPU, and a plan that runs it forward and backward for one
//! batch size.
//!
//! [`GpuModel`] holds the weights in storage buffers. A [`Plan`] allocates
//! every activation and gradient buffer for a fixed batch, and builds every
//! dispatch (pipeline plus bind group) once; recording a forward or backward
//! pass afterwards only replays them into a compute pass. Attacks and
//! training loops therefore create one plan and record it many times.
//!
//! Buffer roles: `acts[0]` is the input `[N, C, H, W]`, `acts[i + 1]` the
//! output of layer `i`, the last one the logits `[N, K]`; `grads[i]` is the
//! gradient of the loss with respect to `acts[i]`, so `grads[0]` is the
//! gradient to the input. `flatten` aliases its input's buffer both ways.
//! A ReLU right after a convolution is fused into it: the convolution
//! stores `max(y, 0)`, the ReLU's output aliases its input's buffer and has
//! no forward dispatch, and its backward reads that output (`y > 0` exactly
//! where the pre-activation was positive).

use crate::error::Result;
use crate::gpu::{record_all, Gpu, GpuTensor, Kernel};
use crate::nn::layer::Layer;
use crate::nn::model::{Model, Tensor};
use crate::nn::ops::LayerCtx;

/// A model's weights on the GPU.
pub struct GpuModel {
    /// The host model these buffers were made from (weights as uploaded).
    pub model: Model,
    /// Per layer, its tensors on the GPU, in the order of [`Layer::param_shapes`].
    pub params: Vec<Vec<GpuTensor>>,
    /// Per layer, `(mean, std)` buffers of a normalize layer.
    pub(crate) norm: Vec<Option<(GpuTensor, GpuTensor)>>,
    /// A one-value buffer bound where a layer has no bias.
    pub(crate) no_bias: GpuTensor,
}

impl GpuModel {
    /// Uploads `model`'s weights.
    pub fn new(gpu: &Gpu, model: &Model) -> Result<GpuModel> {
        let mut params = Vec::new();
        let mut norm = Vec::new();
        for (i, (layer, tensors)) in model.layers.iter().zip(&model.params).enumerate() {
            params.push(
                tensors
                    .iter()
                    .map(|t| gpu.upload(&format!("layer {i} parameter"), &t.shape, &t.data))
                    .collect::<Result<Vec<_>>>()?,
            );
            norm.push(match layer {
                Layer::Normalize { mean, std } => Some((
                    gpu.upload("normalize mean", &[mean.len()], mean)?,
                    gpu.upload("normalize std", &[std.len()], std)?,
                )),
                _ => None,
            });
        }
        Ok(GpuModel {
            model: model.clone(),
            params,
            norm,
            no_bias: gpu.zeros("no bias", &[1])?,
        })
    }

    /// Reads the current weights back into a host model (after training).
    pub async fn download(&self, gpu: &Gpu) -> Result<Model> {
        let mut model = self.model.clone();
        for (host, dev) in model.params.iter_mut().zip(&self.params) {
            for (h, d) in host.iter_mut().zip(dev) {
                h.data = gpu.read(d).await?;
            }
        }
        Ok(model)
    }
}

/// What a plan computes besides the forward pass and the loss.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlanOptions {
    /// The gradient with respect to the input (`grads[0]`): attacks, saliency.
    pub input_grad: bool,
    /// Gradients with respect to every weight and bias: training.
    pub weight_grads: bool,
    /// Guided backpropagation through ReLUs (Springenberg et al. 2015): only
    /// positive gradients pass back. Saliency only; wrong for attacks.
    pub guided_relu: bool,
}

/// Uniform of `shaders/loss.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LossParams {
    batch: u32,
    classes: u32,
    scale: f32,
    sign: f32,
}

/// Per layer, whether it is a ReLU fused into the convolution before it.
fn fused_relus(layers: &[Layer]) -> Vec<bool> {
    (0..layers.len())
        .map(|i| {
            i > 0
                && matches!(layers[i], Layer::Relu)
                && matches!(layers[i - 1], Layer::Conv2d { .. })
        })
        .collect()
}

/// Every buffer and dispatch to run one model on batches of one size.
pub struct Plan {
    /// Samples per batch.
    pub batch: usize,
    /// `acts[0]` input, `acts[i + 1]` output of layer `i`; last: logits.
    pub acts: Vec<GpuTensor>,
    /// `grads[i]`: gradient of the loss with respect to `acts[i]`.
    pub grads: Vec<GpuTensor>,
    /// The class each sample's loss is taken against (u32 `[N]`).
    pub labels: GpuTensor,
    /// Per-sample loss `[N]`, written by the loss kernel.
    pub loss: GpuTensor,
    /// Per-sample arg-max class (u32 `[N]`), written by the loss kernel.
    pub pred: GpuTensor,
    /// Per layer, the gradients of its tensors (when planned with weight gradients).
    pub grad_params: Vec<Vec<GpuTensor>>,
    /// Bytes of all buffers this plan allocated.
    pub bytes: u64,
    classes: usize,
    loss_uniform: wgpu::Buffer,
    /// Per layer, its forward dispatches.
    forward: Vec<Vec<Kernel>>,
    loss_kernel: Kernel,
    /// Per layer, last layer first, its input-gradient dispatches; then per
    /// layer its weight-gradient dispatches.
    backward: Vec<(usize, Vec<Kernel>)>,
}

impl Plan {
    /// Allocates buffers and builds dispatches for batches of `batch` samples.
    pub fn new(gpu: &Gpu, model: &GpuModel, batch: usize, options: PlanOptions) -> Result<Plan> {
        let host = &model.model;
        let shapes = host.shapes()?;
        let n = batch.max(1);
        let with_batch =
            |s: &[usize]| -> Vec<usize> { std::iter::once(n).chain(s.iter().copied()).collect() };
        let mut bytes = 0u64;
        let mut alloc = |what: &str, shape: &[usize]| -> Result<GpuTensor> {
            let t = gpu.zeros(what, shape)?;
            bytes += t.buffer.size();
            Ok(t)
        };

        // Activations, front to back; flatten and a fused ReLU reuse their
        // input's buffer.
        let fused = fused_relus(&host.layers);
        let mut acts = vec![alloc("input", &with_batch(&host.input_shape))?];
        for (i, layer) in host.layers.iter().enumerate() {
            let shape = with_batch(&shapes[i]);
            let t = if fused[i] || matches!(layer, Layer::Flatten) {
                GpuTensor {
                    buffer: acts[i].buffer.clone(),
                    shape,
                }
            } else {
                alloc(&format!("layer {i} output"), &shape)?
            };
            acts.push(t);
        }

        // Gradients, back to front; flatten aliases them too.
        let depth = host.layers.len();
        let mut grads: Vec<Option<GpuTensor>> = vec![None; depth + 1];
        grads[depth] = Some(alloc("logits gradient", &acts[depth].shape)?);
        for i in (0..depth).rev() {
            let shape = acts[i].shape.clone();
            let g = match host.layers[i] {
                Layer::Flatten => GpuTensor {
                    buffer: grads[i + 1].as_ref().expect("filled above").buffer.clone(),
                    shape,
                },
                _ if i == 0 && !options.input_grad => alloc("unused input gradient", &[1])?,
                _ => alloc(&format!("layer {i} input gradient"), &shape)?,
            };
            grads[i] = Some(g);
        }
        let grads: Vec<GpuTensor> = grads
            .into_iter()
            .map(|g| g.expect("every slot filled"))
            .collect();

        let mut grad_params = Vec::new();
        for (i, tensors) in model.params.iter().enumerate() {
            let mut g = Vec::new();
            if options.weight_grads {
                for t in tensors {
                    g.push(alloc(&format!("layer {i} parameter gradient"), &t.shape)?);
                }
            }
            grad_params.push(g);
        }
        let labels = alloc("labels", &[n])?;
        let loss = alloc("loss", &[n])?;
        let pred = alloc("predictions", &[n])?;

        let mut forward = Vec::new();
        let mut backward = Vec::new();
        let mut weight = Vec::new();
        let mut scratch = 0u64;
        for (i, layer) in host.layers.iter().enumerate() {
            let ctx = LayerCtx {
                gpu,
                model,
                i,
                x: &acts[i],
                y: &acts[i + 1],
                gx: &grads[i],
                gy: &grads[i + 1],
                grad_params: &grad_params[i],
                relu_follows: fused.get(i + 1).copied().unwrap_or(false),
                fused: fused[i],
            };
            let f = ctx.forward(layer)?;
            scratch += f.scratch_bytes;
            forward.push(f.kernels);
            if i > 0 || options.input_grad {
                let b = ctx.backward_input(layer, options.guided_relu)?;
                scratch += b.scratch_bytes;
                backward.push((i, b.kernels));
            }
            if options.weight_grads {
                let w = ctx.backward_params(layer)?;
                scratch += w.scratch_bytes;
                weight.push((i, w.kernels));
            }
        }
        bytes += scratch;
        // Input gradients run last layer first; weight gradients only need
        // each layer's output gradient, so they follow in any order.
        backward.reverse();
        backward.extend(weight);

        let classes = host.num_classes();
        let logits = &acts[depth];
        let loss_uniform = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("loss params"),
            size: std::mem::size_of::<LossParams>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let loss_kernel = gpu.kernel_with_uniform(
            "loss",
            "softmax_cross_entropy",
            &loss_uniform,
            &[
                (1, &logits.buffer),
                (2, &labels.buffer),
                (3, &loss.buffer),
                (4, &grads[depth].buffer),
                (5, &pred.buffer),
            ],
            n as u64,
        )?;

        let plan = Plan {
            batch: n,
            acts,
            grads,
            labels,
            loss,
            pred,
            grad_params,
            bytes,
            classes,
            loss_uniform,
            forward,
            loss_kernel,
            backward,
        };
        plan.set_loss(gpu, 1.0, 1.0);
        Ok(plan)
    }

    /// The input buffer `[N, C, H, W]`.
    pub fn input(&self) -> &GpuTensor {
        &self.acts[0]
    }

    /// The logits `[N, K]`.
    pub fn logits(&self) -> &GpuTensor {
        self.acts.last().expect("plans have an input")
    }

    /// The gradient with respect to the input (planned with `input_grad`).
    pub fn grad_input(&self) -> &GpuTensor {
        &self.grads[0]
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Sets how the loss gradient is scaled: `scale` 1/N for a batch mean,
    /// 1 for per-sample gradients; `sign` -1 to descend towards the labels
    /// (targeted attacks). Takes effect from the next submission.
    pub fn set_loss(&self, gpu: &Gpu, scale: f32, sign: f32) {
        let p = LossParams {
            batch: self.batch as u32,
            classes: self.classes as u32,
            scale,
            sign,
        };
        gpu.queue
            .write_buffer(&self.loss_uniform, 0, bytemuck::bytes_of(&p));
    }

    /// Records the forward pass.
    pub fn record_forward(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.forward.iter().flatten().for_each(|k| k.record(pass));
    }

    /// Records the loss and its gradient with respect to the logits.
    pub fn record_loss(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.loss_kernel.record(pass);
    }

    /// Records the backward pass: input gradients, then weight gradients, as planned.
    pub fn record_backward(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.backward
            .iter()
            .flat_map(|(_, ks)| ks)
            .for_each(|k| k.record(pass));
    }

    /// Records forward, loss and backward in one pass.
    pub fn record_step(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.record_forward(pass);
        self.record_loss(pass);
        self.record_backward(pass);
    }

    /// Uploads a batch: `x` of `N * C * H * W` values and `labels` of `N`.
    pub fn write_batch(&self, gpu: &Gpu, x: &[f32], labels: &[u32]) -> Result<()> {
        gpu.write(self.input(), x)?;
        gpu.write(&self.labels, labels)
    }

    /// Runs forward, loss and backward once on the current buffers and waits.
    pub fn run(&self, gpu: &Gpu) -> Result<()> {
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            self.record_step(&mut pass);
        }
        gpu.queue.submit([encoder.finish()]);
        gpu.wait()
    }

    /// Runs the forward pass and the loss only, and waits.
    pub fn run_forward(&self, gpu: &Gpu) -> Result<()> {
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            self.record_forward(&mut pass);
            self.record_loss(&mut pass);
        }
        gpu.queue.submit([encoder.finish()]);
        gpu.wait()
    }

    /// Host copy of a GPU tensor with its shape.
    pub fn read(&self, gpu: &Gpu, t: &GpuTensor) -> Result<Tensor> {
        Tensor::new(t.shape.clone(), gpu.read_blocking(t)?)
    }

    /// The forward pass's dispatches of each layer, for per-layer timing.
    pub fn forward_layers(&self) -> impl Iterator<Item = (usize, &[Kernel])> {
        self.forward
            .iter()
            .enumerate()
            .map(|(i, k)| (i, k.as_slice()))
    }

    /// The backward pass's dispatches of each layer, in the order they run
    /// (input gradients last layer first, then weight gradients), for
    /// per-layer timing.
    pub fn backward_layers(&self) -> impl Iterator<Item = (usize, &[Kernel])> {
        self.backward.iter().map(|(i, k)| (*i, k.as_slice()))
    }

    /// Records `kernels` into a fresh pass of `encoder` (used by benchmarks).
    pub fn record_kernels(encoder: &mut wgpu::CommandEncoder, kernels: &[&Kernel]) {
        record_all(encoder, kernels);
    }
}
