//! How each layer becomes dispatches: uniforms, thread counts, scratch
//! buffers and the choice between kernel variants.
//!
//! [`Plan`](crate::nn::Plan) asks this module for the forward, input-gradient
//! and weight-gradient dispatches of every layer. The heavy operations
//! (convolution forward, convolution weight gradient, matrix products) are
//! built in every [`Variant`] and handed to [`Gpu::choose`], which keeps the
//! one the settings or the autotuner pick. The input gradient of a
//! convolution has two formulations, timed per shape
//! ([`Gpu::choose_formulation`]): a matrix product (`col = w^T gy`, one
//! value per weight tap and output position) followed by a gather
//! (`shaders/col2im.wgsl`), run over chunks of the batch small enough for
//! `col` to stay in cache, which multiplies no padding; or, for stride 1, a
//! convolution of the zero-padded output gradient with flipped weights.

use crate::error::Result;
use crate::gpu::{Candidate, Gpu, GpuTensor, Kernel, Variant, WORKGROUP};
use crate::nn::layer::Layer;
use crate::nn::plan::GpuModel;

/// Uniform of `shaders/conv2d.wgsl` and `shaders/conv2d_tiled.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvParams {
    /// Samples.
    pub batch: u32,
    /// Input channels, height and width.
    pub in_c: u32,
    /// Input height.
    pub in_h: u32,
    /// Input width.
    pub in_w: u32,
    /// Output channels.
    pub out_c: u32,
    /// Output height.
    pub out_h: u32,
    /// Output width.
    pub out_w: u32,
    /// Kernel size.
    pub k: u32,
    /// Stride.
    pub stride: u32,
    /// Zero padding on each side.
    pub pad: u32,
    /// 1 when a bias is added.
    pub has_bias: u32,
    /// Chunks the weight gradient's sum is split into.
    pub splits: u32,
    /// 1 when the forward pass stores `max(y, 0)`: the ReLU after the
    /// convolution, fused into it.
    pub relu: u32,
    /// Padding to a 16-byte multiple.
    pub _pad: [u32; 3],
}

impl ConvParams {
    /// The shape as an autotune key. The batch enters rounded up to a power
    /// of two: the faster variant hardly depends on it, and plans of many
    /// nearby batch sizes (saliency, the last partial batch) then share one
    /// timing.
    fn key(&self, op: &str) -> String {
        format!(
            "{op} n<={} c{}x{}x{} -> c{}x{}x{} k{} s{} p{}",
            self.batch.next_power_of_two(),
            self.in_c,
            self.in_h,
            self.in_w,
            self.out_c,
            self.out_h,
            self.out_w,
            self.k,
            self.stride,
            self.pad
        )
    }

    fn taps(&self) -> u64 {
        u64::from(self.in_c * self.k * self.k)
    }

    /// The input gradient of this stride-1 convolution as a convolution of
    /// the output gradient: channels and planes swapped, padded by
    /// `k - 1 - pad`, with the weights flipped and transposed (see
    /// `flip_weights` in `shaders/conv2d.wgsl`), no bias.
    pub fn input_gradient_as_convolution(&self) -> ConvParams {
        ConvParams {
            batch: self.batch,
            in_c: self.out_c,
            in_h: self.out_h,
            in_w: self.out_w,
            out_c: self.in_c,
            out_h: self.in_h,
            out_w: self.in_w,
            k: self.k,
            stride: 1,
            pad: self.k - 1 - self.pad,
            has_bias: 0,
            splits: 1,
            relu: 0,
            _pad: [0; 3],
        }
    }

    fn positions(&self) -> u64 {
        u64::from(self.batch) * u64::from(self.out_h * self.out_w)
    }
}

/// Uniform of `shaders/linear.wgsl`: `C[m,n] = sum_k A[m,k] B[k,n] (+ bias[n])`
/// with `A[m,k] = a[m * a_ms + k * a_ks]` and `B[k,n] = b[k * b_ks + n * b_ns]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GemmParams {
    /// Rows of C.
    pub m: u32,
    /// Columns of C.
    pub n: u32,
    /// Length of each sum.
    pub k: u32,
    /// 1 when `bias[n]` is added.
    pub has_bias: u32,
    /// Stride of A along m.
    pub a_ms: u32,
    /// Stride of A along k.
    pub a_ks: u32,
    /// Stride of B along k.
    pub b_ks: u32,
    /// Stride of B along n.
    pub b_ns: u32,
    /// B as a batch of matrices of this many columns each, stored one after
    /// another (`u32::MAX`: one matrix).
    pub b_group: u32,
    /// Extra offset of each group of B's columns.
    pub b_gs: u32,
    /// Offset of B's first value.
    pub b_offset: u32,
    /// Padding to a 16-byte multiple.
    pub _pad: u32,
}

impl GemmParams {
    /// A plain product of row-major `A [m, k]` and `B [k, n]`.
    pub fn row_major(m: u32, n: u32, k: u32) -> GemmParams {
        GemmParams {
            m,
            n,
            k,
            has_bias: 0,
            a_ms: k,
            a_ks: 1,
            b_ks: n,
            b_ns: 1,
            ..GemmParams::ZERO
        }
    }

    /// All sizes and strides zero, B one matrix: the base of struct updates.
    pub const ZERO: GemmParams = GemmParams {
        m: 0,
        n: 0,
        k: 0,
        has_bias: 0,
        a_ms: 0,
        a_ks: 0,
        b_ks: 0,
        b_ns: 0,
        b_group: u32::MAX,
        b_gs: 0,
        b_offset: 0,
        _pad: 0,
    };

    /// Floating-point operations: a multiply-add counts 2.
    pub fn flops(&self) -> u64 {
        2 * u64::from(self.m) * u64::from(self.n) * u64::from(self.k)
    }

    /// The shape as an autotune key: each size rounded up to a power of two
    /// (one of them is the batch), the layout exactly.
    fn key(&self, op: &str) -> String {
        let layout = [self.a_ms, self.a_ks, self.b_ks, self.b_ns].map(|s| s == 1);
        let grouped = if self.b_group == u32::MAX {
            ""
        } else {
            " grouped"
        };
        format!(
            "{op} <={}x{}x{} unit strides {layout:?}{grouped}",
            self.m.next_power_of_two(),
            self.n.next_power_of_two(),
            self.k.next_power_of_two()
        )
    }
}

/// Uniform of `shaders/col2im.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Col2imParams {
    chunk: u32,
    first: u32,
    in_c: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    k: u32,
    stride: u32,
    pad: u32,
    _pad: [u32; 2],
}

/// Bytes of the input gradient's per-tap scratch (`col`) for one chunk of
/// the batch: small enough to stay in a CPU's cache or a GPU's L2 between
/// the product that writes it and the gather that reads it. Measured on
/// lavapipe (docs/BENCHMARKS.md).
const COL_CHUNK_BYTES: u64 = 4 << 20;

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

/// Invocations of 4-wide register tiles covering `n` values.
fn quads(n: u32) -> u64 {
    u64::from(n.div_ceil(4))
}

/// Workgroups a kernel should have to keep every core of a device busy;
/// fewer are split further (weight gradients over chunks of the batch).
const TARGET_WORKGROUPS: u64 = 64;

/// Output-block sizes of the tiled kernels (the shaders' constants).
const TILED_CONV_FWD: (u32, u32) = (16, 64);
const TILED_CONV_BWD: u32 = 32;
const TILED_GEMM: u32 = 32;

/// The dispatches of a convolution `y = conv(x, w) + b` as `p` describes.
///
/// The register variant convolves without padding: for `p.pad > 0` it first
/// copies `x` into a zero-bordered scratch buffer. The tiled variant reads
/// the padding on the fly.
pub fn conv_forward(
    gpu: &Gpu,
    p: &ConvParams,
    x: &wgpu::Buffer,
    w: &wgpu::Buffer,
    b: &wgpu::Buffer,
    y: &wgpu::Buffer,
) -> Result<Candidate> {
    let register = conv_forward_register(gpu, p, x, w, b, y)?;
    let (bm, bn) = TILED_CONV_FWD;
    let blocks = u64::from(p.out_c.div_ceil(bm)) * p.positions().div_ceil(u64::from(bn));
    let tiled = Candidate {
        variant: Variant::Tiled,
        kernels: vec![gpu.kernel(
            "conv2d_tiled",
            "forward",
            p,
            &[(1, x), (2, w), (3, b), (4, y)],
            blocks * u64::from(WORKGROUP),
        )?],
        scratch_bytes: 0,
    };
    gpu.choose(&p.key("conv_forward"), vec![register, tiled])
}

/// Channels per workgroup of conv2d.wgsl's `forward` and `forward_narrow`.
const REGISTER_CHANNELS: (u32, u32) = (8, 2);

fn conv_forward_register(
    gpu: &Gpu,
    p: &ConvParams,
    x: &wgpu::Buffer,
    w: &wgpu::Buffer,
    b: &wgpu::Buffer,
    y: &wgpu::Buffer,
) -> Result<Candidate> {
    let mut kernels = Vec::new();
    let mut scratch_bytes = 0;
    let padded;
    let (input, q) = if p.pad == 0 {
        (x, *p)
    } else {
        let (h, w_) = (p.in_h + 2 * p.pad, p.in_w + 2 * p.pad);
        let shape = [p.batch, p.in_c, h, w_].map(|d| d as usize);
        padded = gpu.zeros("zero-padded convolution input", &shape)?;
        let len = shape.iter().product::<usize>() as u64;
        kernels.push(gpu.kernel(
            "conv2d",
            "pad_input",
            p,
            &[(1, x), (11, &padded.buffer)],
            len,
        )?);
        scratch_bytes = padded.buffer.size();
        let q = ConvParams {
            in_h: h,
            in_w: w_,
            pad: 0,
            ..*p
        };
        (&padded.buffer, q)
    };
    // (entry point, output channels per workgroup); 4 positions per invocation.
    let (entry, channels) = if q.out_c >= REGISTER_CHANNELS.0 {
        ("forward", REGISTER_CHANNELS.0)
    } else {
        ("forward_narrow", REGISTER_CHANNELS.1)
    };
    let tiles = u64::from(q.batch) * quads(q.out_h * q.out_w);
    let groups = u64::from(q.out_c.div_ceil(channels)) * tiles.div_ceil(u64::from(WORKGROUP));
    let bindings = [(1, input), (2, w), (3, b), (4, y)];
    kernels.push(gpu.kernel(
        "conv2d",
        entry,
        &q,
        &bindings,
        groups * u64::from(WORKGROUP),
    )?);
    Ok(Candidate {
        variant: Variant::Register,
        kernels,
        scratch_bytes,
    })
}

/// The dispatches of a convolution's weight gradient `gw` from its input `x`
/// and output gradient `gy`: the sum over chunks of the batch when there are
/// too few outputs to fill the device, then the sum of the chunks.
pub fn conv_backward_weight(
    gpu: &Gpu,
    p: &ConvParams,
    x: &wgpu::Buffer,
    gy: &wgpu::Buffer,
    gw: &wgpu::Buffer,
) -> Result<Candidate> {
    let weights = u64::from(p.out_c) * p.taps();

    // Register tiles: 4 channels x 4 taps per invocation, split over samples.
    let register_threads = quads(p.out_c) * p.taps().div_ceil(4);
    let register_splits = split_count(
        register_threads.div_ceil(u64::from(WORKGROUP)),
        u64::from(p.batch),
    );
    let register = with_splits(
        gpu,
        Variant::Register,
        p,
        register_splits,
        weights,
        gw,
        |q, out| {
            gpu.kernel(
                "conv2d",
                "backward_weight",
                q,
                &[(1, x), (5, gy), (7, out)],
                register_threads * u64::from(q.splits),
            )
        },
    )?;

    // Tiled blocks: 32 channels x 32 taps per workgroup, split over positions
    // (at least 256 positions per chunk, so that a chunk is worth its blocks).
    let t = TILED_CONV_BWD;
    let blocks = u64::from(p.out_c.div_ceil(t)) * p.taps().div_ceil(u64::from(t));
    let tiled_splits = split_count(blocks, p.positions().div_ceil(256));
    let tiled = with_splits(
        gpu,
        Variant::Tiled,
        p,
        tiled_splits,
        weights,
        gw,
        |q, out| {
            gpu.kernel(
                "conv2d_tiled",
                "backward_weight",
                q,
                &[(1, x), (5, gy), (7, out)],
                blocks * u64::from(q.splits) * u64::from(WORKGROUP),
            )
        },
    )?;

    gpu.choose(&p.key("conv_backward_weight"), vec![register, tiled])
}

/// The dispatches of a convolution's input gradient `gx` from its output
/// gradient `gy`, in whichever of two formulations is faster for this
/// shape on this device (timed once, then remembered like a variant; with
/// forced kernel variants, always the first):
///
/// - `col2im`, any stride: a matrix product and a gather, chunk by chunk of
///   the batch. It multiplies no padding; on lavapipe it wins where the
///   flipped convolution would multiply many zeros or has one output
///   channel (docs/BENCHMARKS.md).
/// - `flip`, stride 1 with padding below the kernel size: a convolution of
///   the zero-padded output gradient with flipped, transposed weights,
///   which has more work per output value when there are few output
///   channels to sum over.
pub fn conv_backward_input(
    gpu: &Gpu,
    p: &ConvParams,
    w: &wgpu::Buffer,
    gy: &wgpu::Buffer,
    gx: &wgpu::Buffer,
) -> Result<Candidate> {
    let mut candidates = vec![("col2im", conv_backward_input_col2im(gpu, p, w, gy, gx)?)];
    if p.stride == 1 && p.pad < p.k {
        candidates.push(("flip", conv_backward_input_flip(gpu, p, w, gy, gx)?));
    }
    gpu.choose_formulation(&p.key("conv_backward_input"), candidates)
}

/// Stride-1 input gradient as a convolution: flip and transpose the
/// weights (every pass, since training changes them), then convolve the
/// output gradient, padded by `K - 1 - P`, with them.
pub fn conv_backward_input_flip(
    gpu: &Gpu,
    p: &ConvParams,
    w: &wgpu::Buffer,
    gy: &wgpu::Buffer,
    gx: &wgpu::Buffer,
) -> Result<Candidate> {
    let weights = u64::from(p.out_c) * p.taps();
    let flipped = gpu.zeros(
        "flipped weights",
        &[p.in_c, p.out_c, p.k, p.k].map(|d| d as usize),
    )?;
    let flip = gpu.kernel(
        "conv2d",
        "flip_weights",
        p,
        &[(2, w), (10, &flipped.buffer)],
        weights,
    )?;
    // No bias: `w` fills the unused bias binding (read-only, so it may repeat).
    let conv = conv_forward(
        gpu,
        &p.input_gradient_as_convolution(),
        gy,
        &flipped.buffer,
        w,
        gx,
    )?;
    let mut kernels = vec![flip];
    kernels.extend(conv.kernels);
    Ok(Candidate {
        variant: conv.variant,
        kernels,
        scratch_bytes: flipped.buffer.size() + conv.scratch_bytes,
    })
}

/// `col = w^T gy` (a matrix product: taps `Ci K K` x the chunk's output
/// positions, summed over `Co`; its variant chosen like every [`gemm`]),
/// then `col2im` sums, for each input position, the taps that reach it;
/// chunk by chunk of the batch so that `col` stays in cache.
pub fn conv_backward_input_col2im(
    gpu: &Gpu,
    p: &ConvParams,
    w: &wgpu::Buffer,
    gy: &wgpu::Buffer,
    gx: &wgpu::Buffer,
) -> Result<Candidate> {
    let plane = p.out_h * p.out_w;
    let taps = p.in_c * p.k * p.k;
    let per_sample = 4 * u64::from(taps) * u64::from(plane);
    let chunk = (COL_CHUNK_BYTES / per_sample).clamp(1, u64::from(p.batch)) as u32;
    let col = gpu.zeros(
        "input gradient per tap",
        &[taps as usize, (chunk * plane) as usize],
    )?;
    let mut out = Candidate {
        variant: Variant::Register,
        kernels: Vec::new(),
        scratch_bytes: col.buffer.size(),
    };
    for first in (0..p.batch).step_by(chunk as usize) {
        let samples = chunk.min(p.batch - first);
        // A[tap, co] = w[co, tap]; B[co, (n, q)] = gy[first + n, co, q].
        let g = GemmParams {
            m: taps,
            n: samples * plane,
            k: p.out_c,
            a_ms: 1,
            a_ks: taps,
            b_ks: plane,
            b_ns: 1,
            b_group: plane,
            b_gs: (p.out_c - 1) * plane,
            b_offset: first * p.out_c * plane,
            ..GemmParams::ZERO
        };
        // No bias: `w` fills the unused bias binding (a read-only binding,
        // so it may repeat one).
        let product = gemm(gpu, &g, w, gy, w, &col.buffer)?;
        out.variant = product.variant;
        out.kernels.extend(product.kernels);
        out.scratch_bytes += product.scratch_bytes;

        let gather = Col2imParams {
            chunk: samples,
            first,
            in_c: p.in_c,
            in_h: p.in_h,
            in_w: p.in_w,
            out_h: p.out_h,
            out_w: p.out_w,
            k: p.k,
            stride: p.stride,
            pad: p.pad,
            _pad: [0; 2],
        };
        let values = u64::from(samples) * u64::from(p.in_c * p.in_h * p.in_w);
        out.kernels.push(gpu.kernel(
            "col2im",
            "col2im",
            &gather,
            &[(1, &col.buffer), (2, gx)],
            values,
        )?);
    }
    Ok(out)
}

/// Chunks to split a sum into so that `groups` workgroups become about
/// [`TARGET_WORKGROUPS`], at most `max` (and at least 1).
fn split_count(groups: u64, max: u64) -> u32 {
    TARGET_WORKGROUPS
        .div_ceil(groups.max(1))
        .clamp(1, max.max(1))
        .min(u64::from(u32::MAX)) as u32
}

/// A weight-gradient candidate: `kernel` writing straight into `gw`, or with
/// `splits > 1` into a scratch buffer of partial sums, followed by
/// `sum_splits`.
fn with_splits(
    gpu: &Gpu,
    variant: Variant,
    p: &ConvParams,
    splits: u32,
    weights: u64,
    gw: &wgpu::Buffer,
    kernel: impl Fn(&ConvParams, &wgpu::Buffer) -> Result<Kernel>,
) -> Result<Candidate> {
    let variant_p = ConvParams { splits, ..*p };
    if splits == 1 {
        let k = kernel(&variant_p, gw)?;
        return Ok(Candidate {
            variant,
            kernels: vec![k],
            scratch_bytes: 0,
        });
    }
    let partial = gpu.zeros(
        "weight gradient partial sums",
        &[splits as usize, weights as usize],
    )?;
    let k = kernel(&variant_p, &partial.buffer)?;
    let sum = gpu.kernel(
        "conv2d",
        "sum_splits",
        &variant_p,
        &[(9, &partial.buffer), (7, gw)],
        weights,
    )?;
    Ok(Candidate {
        variant,
        kernels: vec![k, sum],
        scratch_bytes: partial.buffer.size(),
    })
}

/// The dispatches of `c = A B (+ bias)` as `g` describes.
pub fn gemm(
    gpu: &Gpu,
    g: &GemmParams,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    c: &wgpu::Buffer,
) -> Result<Candidate> {
    let bindings = [(1, a), (2, b), (3, bias), (4, c)];
    let register = u64::from(g.m.div_ceil(8))
        * quads(g.n).div_ceil(u64::from(WORKGROUP))
        * u64::from(WORKGROUP);
    let blocks = u64::from(g.m.div_ceil(TILED_GEMM)) * u64::from(g.n.div_ceil(TILED_GEMM));
    let candidates = vec![
        Candidate {
            variant: Variant::Register,
            kernels: vec![gpu.kernel("linear", "gemm", g, &bindings, register)?],
            scratch_bytes: 0,
        },
        Candidate {
            variant: Variant::Tiled,
            kernels: vec![gpu.kernel(
                "linear",
                "gemm_tiled",
                g,
                &bindings,
                blocks * u64::from(WORKGROUP),
            )?],
            scratch_bytes: 0,
        },
    ];
    gpu.choose(&g.key("gemm"), candidates)
}

/// Everything one layer's dispatches bind.
pub(crate) struct LayerCtx<'a> {
    pub gpu: &'a Gpu,
    pub model: &'a GpuModel,
    pub i: usize,
    pub x: &'a GpuTensor,
    pub y: &'a GpuTensor,
    pub gx: &'a GpuTensor,
    pub gy: &'a GpuTensor,
    pub grad_params: &'a [GpuTensor],
    /// A convolution whose ReLU is fused into it: store `max(y, 0)`.
    pub relu_follows: bool,
    /// A ReLU fused into the convolution before it: no forward dispatch.
    pub fused: bool,
}

/// A layer's dispatches for one pass, with the scratch bytes they hold.
#[derive(Default)]
pub(crate) struct Built {
    pub kernels: Vec<Kernel>,
    pub scratch_bytes: u64,
}

impl Built {
    fn one(k: Kernel) -> Built {
        Built {
            kernels: vec![k],
            scratch_bytes: 0,
        }
    }

    fn push(&mut self, c: Candidate) {
        self.kernels.extend(c.kernels);
        self.scratch_bytes += c.scratch_bytes;
    }
}

impl From<Candidate> for Built {
    fn from(c: Candidate) -> Built {
        Built {
            kernels: c.kernels,
            scratch_bytes: c.scratch_bytes,
        }
    }
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
                splits: 1,
                relu: 0,
                _pad: [0; 3],
            },
            _ => unreachable!("conv_params is only called for conv2d layers"),
        }
    }

    /// Batch, input features and output features of a linear layer.
    fn linear_dims(&self) -> (u32, u32, u32) {
        (
            self.x.shape[0] as u32,
            self.x.shape[1] as u32,
            self.y.shape[1] as u32,
        )
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

    fn weight(&self) -> &wgpu::Buffer {
        &self.model.params[self.i][0].buffer
    }

    /// The bias buffer, or the placeholder for layers without one.
    fn bias(&self) -> &wgpu::Buffer {
        self.model.params[self.i]
            .get(1)
            .map_or(&self.model.no_bias.buffer, |b| &b.buffer)
    }

    fn norm(&self) -> &(GpuTensor, GpuTensor) {
        self.model.norm[self.i]
            .as_ref()
            .expect("normalize layers have buffers")
    }

    /// The forward pass of the layer.
    pub fn forward(&self, layer: &Layer) -> Result<Built> {
        let (gpu, x, y) = (self.gpu, &self.x.buffer, &self.y.buffer);
        let elements = self.x.len() as u64;
        Ok(match layer {
            Layer::Normalize { .. } => {
                let (mean, std) = self.norm();
                let bindings = [(1, x), (2, y), (5, &mean.buffer), (6, &std.buffer)];
                Built::one(gpu.kernel(
                    "normalize",
                    "forward",
                    &self.elementwise(),
                    &bindings,
                    elements,
                )?)
            }
            Layer::Conv2d { .. } => {
                let p = ConvParams {
                    relu: u32::from(self.relu_follows),
                    ..self.conv_params()
                };
                conv_forward(gpu, &p, x, self.weight(), self.bias(), y)?.into()
            }
            Layer::Relu if self.fused => Built::default(),
            Layer::Relu => Built::one(gpu.kernel(
                "relu",
                "forward",
                &self.elementwise(),
                &[(1, x), (2, y)],
                elements,
            )?),
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
                Built::one(gpu.kernel("pool", entry, &p, &[(1, x), (2, y)], self.y.len() as u64)?)
            }
            Layer::Flatten => Built::default(),
            Layer::Linear { bias, .. } => {
                // y [N, O] = x [N, I] w^T.
                let (n, i, o) = self.linear_dims();
                let g = GemmParams {
                    m: n,
                    n: o,
                    k: i,
                    has_bias: u32::from(*bias),
                    a_ms: i,
                    a_ks: 1,
                    b_ks: 1,
                    b_ns: i,
                    ..GemmParams::ZERO
                };
                gemm(gpu, &g, x, self.weight(), self.bias(), y)?.into()
            }
        })
    }

    /// The gradient with respect to the layer's input, from its output's.
    pub fn backward_input(&self, layer: &Layer, guided: bool) -> Result<Built> {
        let (gpu, x, gx, gy) = (self.gpu, &self.x.buffer, &self.gx.buffer, &self.gy.buffer);
        let elements = self.x.len() as u64;
        Ok(match layer {
            Layer::Normalize { .. } => {
                let (_, std) = self.norm();
                let bindings = [(3, gy), (4, gx), (6, &std.buffer)];
                Built::one(gpu.kernel(
                    "normalize",
                    "backward",
                    &self.elementwise(),
                    &bindings,
                    elements,
                )?)
            }
            Layer::Conv2d { .. } => {
                conv_backward_input(gpu, &self.conv_params(), self.weight(), gy, gx)?.into()
            }
            Layer::Relu => {
                let entry = if guided {
                    "backward_guided"
                } else {
                    "backward"
                };
                let bindings = [(2, &self.y.buffer), (3, gy), (4, gx)];
                Built::one(gpu.kernel("relu", entry, &self.elementwise(), &bindings, elements)?)
            }
            Layer::MaxPool2d {
                kernel_size,
                stride,
            } => {
                let p = self.pool_params(*kernel_size, *stride);
                let bindings = [(1, x), (3, gy), (4, gx)];
                let k = if kernel_size == stride {
                    gpu.kernel(
                        "pool",
                        "max_backward_disjoint",
                        &p,
                        &bindings,
                        self.y.len() as u64,
                    )?
                } else {
                    gpu.kernel("pool", "max_backward", &p, &bindings, elements)?
                };
                Built::one(k)
            }
            Layer::AvgPool2d {
                kernel_size,
                stride,
            } => {
                let p = self.pool_params(*kernel_size, *stride);
                Built::one(gpu.kernel("pool", "avg_backward", &p, &[(3, gy), (4, gx)], elements)?)
            }
            Layer::Flatten => Built::default(),
            Layer::Linear { .. } => {
                // gx [N, I] = gy [N, O] w.
                let (n, i, o) = self.linear_dims();
                let g = GemmParams {
                    m: n,
                    n: i,
                    k: o,
                    has_bias: 0,
                    a_ms: o,
                    a_ks: 1,
                    b_ks: i,
                    b_ns: 1,
                    ..GemmParams::ZERO
                };
                gemm(gpu, &g, gy, self.weight(), &self.model.no_bias.buffer, gx)?.into()
            }
        })
    }

    /// The gradients with respect to the layer's weight and bias.
    pub fn backward_params(&self, layer: &Layer) -> Result<Built> {
        let (gpu, x, gy) = (self.gpu, &self.x.buffer, &self.gy.buffer);
        let mut built = Built::default();
        match layer {
            Layer::Conv2d { bias, .. } => {
                let p = self.conv_params();
                built.push(conv_backward_weight(
                    gpu,
                    &p,
                    x,
                    gy,
                    &self.grad_params[0].buffer,
                )?);
                if *bias {
                    let gb = &self.grad_params[1].buffer;
                    let k = gpu.kernel(
                        "conv2d",
                        "backward_bias",
                        &p,
                        &[(5, gy), (8, gb)],
                        u64::from(p.out_c),
                    )?;
                    built.kernels.push(k);
                }
            }
            Layer::Linear { bias, .. } => {
                // gw [O, I] = gy^T [O, N] x [N, I].
                let (n, i, o) = self.linear_dims();
                let g = GemmParams {
                    m: o,
                    n: i,
                    k: n,
                    has_bias: 0,
                    a_ms: 1,
                    a_ks: o,
                    b_ks: i,
                    b_ns: 1,
                    ..GemmParams::ZERO
                };
                let gw = &self.grad_params[0].buffer;
                built.push(gemm(gpu, &g, gy, x, &self.model.no_bias.buffer, gw)?);
                if *bias {
                    let sums = GemmParams { m: n, n: o, ..g };
                    let gb = &self.grad_params[1].buffer;
                    let k = gpu.kernel(
                        "linear",
                        "backward_bias",
                        &sums,
                        &[(5, gy), (6, gb)],
                        u64::from(o),
                    )?;
                    built.kernels.push(k);
                }
            }
            _ => {}
        }
        Ok(built)
    }
}
