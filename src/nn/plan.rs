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

use crate::error::Result;
use crate::gpu::{record_all, Gpu, GpuTensor, Kernel};
use crate::nn::layer::Layer;
use crate::nn::model::{Model, Tensor};

/// A model's weights on the GPU.
pub struct GpuModel {
    /// The host model these buffers were made from (weights as uploaded).
    pub model: Model,
    /// Per layer, its tensors on the GPU, in the order of [`Layer::param_shapes`].
    pub params: Vec<Vec<GpuTensor>>,
    /// Per layer, `(mean, std)` buffers of a normalize layer.
    norm: Vec<Option<(GpuTensor, GpuTensor)>>,
    /// A one-value buffer bound where a layer has no bias.
    no_bias: GpuTensor,
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
    forward: Vec<Kernel>,
    loss_kernel: Kernel,
    backward: Vec<Kernel>,
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

        // Activations, front to back; flatten reuses its input's buffer.
        let mut acts = vec![alloc("input", &with_batch(&host.input_shape))?];
        for (i, layer) in host.layers.iter().enumerate() {
            let shape = with_batch(&shapes[i]);
            let t = match layer {
                Layer::Flatten => GpuTensor {
                    buffer: acts[i].buffer.clone(),
                    shape,
                },
                _ => alloc(&format!("layer {i} output"), &shape)?,
            };
            acts.push(t);
        }

        // Gradients, back to front, with the same aliasing.
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
            };
            forward.extend(ctx.forward(layer)?);
            if i > 0 || options.input_grad {
                backward.extend(ctx.backward_input(layer, options.guided_relu)?);
            }
            if options.weight_grads {
                weight.extend(ctx.backward_params(layer)?);
            }
        }
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
        self.forward.iter().for_each(|k| k.record(pass));
    }

    /// Records the loss and its gradient with respect to the logits.
    pub fn record_loss(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.loss_kernel.record(pass);
    }

    /// Records the backward pass: input gradients, then weight gradients, as planned.
    pub fn record_backward(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.backward.iter().for_each(|k| k.record(pass));
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

    /// The dispatches of the forward pass, for per-layer timing.
    pub fn forward_kernels(&self) -> &[Kernel] {
        &self.forward
    }

    /// The dispatches of the backward pass, for per-layer timing.
    pub fn backward_kernels(&self) -> &[Kernel] {
        &self.backward
    }

    /// Records `kernels` into a fresh pass of `encoder` (used by benchmarks).
    pub fn record_kernels(encoder: &mut wgpu::CommandEncoder, kernels: &[&Kernel]) {
        record_all(encoder, kernels);
    }
}

/// Everything one layer's dispatches bind.
struct LayerCtx<'a> {
    gpu: &'a Gpu,
    model: &'a GpuModel,
    i: usize,
    x: &'a GpuTensor,
    y: &'a GpuTensor,
    gx: &'a GpuTensor,
    gy: &'a GpuTensor,
    grad_params: &'a [GpuTensor],
}

/// Uniform of `shaders/conv2d.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ConvParams {
    batch: u32,
    in_c: u32,
    in_h: u32,
    in_w: u32,
    out_c: u32,
    out_h: u32,
    out_w: u32,
    k: u32,
    stride: u32,
    pad: u32,
    has_bias: u32,
    _pad: u32,
}

/// Uniform of `shaders/linear.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LinearParams {
    batch: u32,
    in_f: u32,
    out_f: u32,
    has_bias: u32,
}

/// Uniform of `shaders/pool.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PoolParams {
    planes: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    k: u32,
    stride: u32,
    _pad: u32,
}

/// Uniform of `shaders/relu.wgsl` and `shaders/normalize.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ElementwiseParams {
    len: u32,
    channels: u32,
    plane: u32,
    _pad: u32,
}

fn tiles(n: usize) -> u64 {
    n.div_ceil(4) as u64
}

impl LayerCtx<'_> {
    fn conv_params(&self) -> ConvParams {
        let (x, y) = (&self.x.shape, &self.y.shape);
        match &self.model.model.layers[self.i] {
            Layer::Conv2d {
                kernel_size,
                stride,
                padding,
                bias,
                ..
            } => ConvParams {
                batch: x[0] as u32,
                in_c: x[1] as u32,
                in_h: x[2] as u32,
                in_w: x[3] as u32,
                out_c: y[1] as u32,
                out_h: y[2] as u32,
                out_w: y[3] as u32,
                k: *kernel_size as u32,
                stride: *stride as u32,
                pad: *padding as u32,
                has_bias: u32::from(*bias),
                _pad: 0,
            },
            _ => unreachable!("conv_params is only called for conv2d layers"),
        }
    }

    fn linear_params(&self, bias: bool) -> LinearParams {
        LinearParams {
            batch: self.x.shape[0] as u32,
            in_f: self.x.shape[1] as u32,
            out_f: self.y.shape[1] as u32,
            has_bias: u32::from(bias),
        }
    }

    fn pool_params(&self, k: usize, stride: usize) -> PoolParams {
        let (x, y) = (&self.x.shape, &self.y.shape);
        PoolParams {
            planes: (x[0] * x[1]) as u32,
            in_h: x[2] as u32,
            in_w: x[3] as u32,
            out_h: y[2] as u32,
            out_w: y[3] as u32,
            k: k as u32,
            stride: stride as u32,
            _pad: 0,
        }
    }

    fn elementwise(&self) -> ElementwiseParams {
        let s = &self.x.shape;
        ElementwiseParams {
            len: self.x.len() as u32,
            channels: s.get(1).copied().unwrap_or(1) as u32,
            plane: s
                .get(2..)
                .map(|r| r.iter().product::<usize>())
                .unwrap_or(1)
                .max(1) as u32,
            _pad: 0,
        }
    }

    /// The bias buffer, or the placeholder for layers without one.
    fn bias(&self) -> &wgpu::Buffer {
        self.model.params[self.i]
            .get(1)
            .map_or(&self.model.no_bias.buffer, |b| &b.buffer)
    }

    fn forward(&self, layer: &Layer) -> Result<Vec<Kernel>> {
        let (gpu, x, y) = (self.gpu, &self.x.buffer, &self.y.buffer);
        let k = match layer {
            Layer::Normalize { .. } => {
                let (mean, std) = self.model.norm[self.i]
                    .as_ref()
                    .expect("normalize layers have buffers");
                gpu.kernel(
                    "normalize",
                    "forward",
                    &self.elementwise(),
                    &[(1, x), (2, y), (5, &mean.buffer), (6, &std.buffer)],
                    self.x.len() as u64,
                )?
            }
            Layer::Conv2d { .. } => {
                let p = self.conv_params();
                let w = &self.model.params[self.i][0].buffer;
                let threads = u64::from(p.batch)
                    * tiles(p.out_c as usize)
                    * u64::from(p.out_h)
                    * tiles(p.out_w as usize);
                gpu.kernel(
                    "conv2d",
                    "forward",
                    &p,
                    &[(1, x), (2, w), (3, self.bias()), (4, y)],
                    threads,
                )?
            }
            Layer::Relu => gpu.kernel(
                "relu",
                "forward",
                &self.elementwise(),
                &[(1, x), (2, y)],
                self.x.len() as u64,
            )?,
            Layer::MaxPool2d {
                kernel_size,
                stride,
            }
            | Layer::AvgPool2d {
                kernel_size,
                stride,
            } => {
                let entry = if matches!(layer, Layer::MaxPool2d { .. }) {
                    "max_forward"
                } else {
                    "avg_forward"
                };
                let p = self.pool_params(*kernel_size, *stride);
                gpu.kernel("pool", entry, &p, &[(1, x), (2, y)], self.y.len() as u64)?
            }
            Layer::Flatten => return Ok(Vec::new()),
            Layer::Linear { bias, .. } => {
                let p = self.linear_params(*bias);
                let w = &self.model.params[self.i][0].buffer;
                let threads = tiles(p.out_f as usize) * tiles(p.batch as usize);
                gpu.kernel(
                    "linear",
                    "forward",
                    &p,
                    &[(1, x), (2, w), (3, self.bias()), (4, y)],
                    threads,
                )?
            }
        };
        Ok(vec![k])
    }

    fn backward_input(&self, layer: &Layer, guided: bool) -> Result<Vec<Kernel>> {
        let (gpu, x, gx, gy) = (self.gpu, &self.x.buffer, &self.gx.buffer, &self.gy.buffer);
        let len = self.x.len() as u64;
        let k = match layer {
            Layer::Normalize { .. } => {
                let (_, std) = self.model.norm[self.i]
                    .as_ref()
                    .expect("normalize layers have buffers");
                gpu.kernel(
                    "normalize",
                    "backward",
                    &self.elementwise(),
                    &[(3, gy), (4, gx), (6, &std.buffer)],
                    len,
                )?
            }
            Layer::Conv2d { .. } => {
                let p = self.conv_params();
                let w = &self.model.params[self.i][0].buffer;
                let threads = u64::from(p.batch)
                    * tiles(p.in_c as usize)
                    * u64::from(p.in_h)
                    * tiles(p.in_w as usize);
                gpu.kernel(
                    "conv2d",
                    "backward_input",
                    &p,
                    &[(2, w), (5, gy), (6, gx)],
                    threads,
                )?
            }
            Layer::Relu => {
                let entry = if guided {
                    "backward_guided"
                } else {
                    "backward"
                };
                gpu.kernel(
                    "relu",
                    entry,
                    &self.elementwise(),
                    &[(1, x), (3, gy), (4, gx)],
                    len,
                )?
            }
            Layer::MaxPool2d {
                kernel_size,
                stride,
            } => {
                let p = self.pool_params(*kernel_size, *stride);
                gpu.kernel("pool", "max_backward", &p, &[(1, x), (3, gy), (4, gx)], len)?
            }
            Layer::AvgPool2d {
                kernel_size,
                stride,
            } => {
                let p = self.pool_params(*kernel_size, *stride);
                gpu.kernel("pool", "avg_backward", &p, &[(3, gy), (4, gx)], len)?
            }
            Layer::Flatten => return Ok(Vec::new()),
            Layer::Linear { bias, .. } => {
                let p = self.linear_params(*bias);
                let w = &self.model.params[self.i][0].buffer;
                let threads = tiles(p.in_f as usize) * tiles(p.batch as usize);
                gpu.kernel(
                    "linear",
                    "backward_input",
                    &p,
                    &[(2, w), (5, gy), (6, gx)],
                    threads,
                )?
            }
        };
        Ok(vec![k])
    }

    fn backward_params(&self, layer: &Layer) -> Result<Vec<Kernel>> {
        let (gpu, x, gy) = (self.gpu, &self.x.buffer, &self.gy.buffer);
        let mut out = Vec::new();
        match layer {
            Layer::Conv2d { bias, .. } => {
                let p = self.conv_params();
                let taps = (p.in_c * p.k * p.k) as usize;
                let threads = tiles(p.out_c as usize) * tiles(taps);
                let gw = &self.grad_params[0].buffer;
                out.push(gpu.kernel(
                    "conv2d",
                    "backward_weight",
                    &p,
                    &[(1, x), (5, gy), (7, gw)],
                    threads,
                )?);
                if *bias {
                    let gb = &self.grad_params[1].buffer;
                    out.push(gpu.kernel(
                        "conv2d",
                        "backward_bias",
                        &p,
                        &[(5, gy), (8, gb)],
                        u64::from(p.out_c),
                    )?);
                }
            }
            Layer::Linear { bias, .. } => {
                let p = self.linear_params(*bias);
                let threads = tiles(p.in_f as usize) * tiles(p.out_f as usize);
                let gw = &self.grad_params[0].buffer;
                out.push(gpu.kernel(
                    "linear",
                    "backward_weight",
                    &p,
                    &[(1, x), (5, gy), (7, gw)],
                    threads,
                )?);
                if *bias {
                    let gb = &self.grad_params[1].buffer;
                    out.push(gpu.kernel(
                        "linear",
                        "backward_bias",
                        &p,
                        &[(5, gy), (8, gb)],
                        u64::from(p.out_f),
                    )?);
                }
            }
            _ => {}
        }
        Ok(out)
    }
}
