//! A plain CPU reference of every layer, forward and backward.
//!
//! Written for clarity, not speed: direct loops over the formulas in the
//! shader headers, accumulating in f64. The tests hold every GPU kernel to
//! these functions, and these functions to finite differences.

// Index loops mirror the formulas term by term; iterators would hide them.
#![allow(clippy::needless_range_loop)]

use crate::error::Result;
use crate::nn::layer::Layer;
use crate::nn::model::{Model, Tensor};

/// Output of one layer for a batch `x` of shape `[N, ...]`.
pub fn layer_forward(layer: &Layer, params: &[Tensor], x: &Tensor) -> Tensor {
    let n = x.shape[0];
    match layer {
        Layer::Normalize { mean, std } => {
            let (c, plane) = (x.shape[1], x.shape[2] * x.shape[3]);
            let data = x
                .data
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let ch = (i / plane) % c;
                    (v - mean[ch]) / std[ch]
                })
                .collect();
            Tensor {
                shape: x.shape.clone(),
                data,
            }
        }
        Layer::Conv2d {
            out_channels,
            kernel_size: k,
            stride,
            padding,
            ..
        } => {
            let g = ConvGeom::new(&x.shape, *out_channels, *k, *stride, *padding);
            let mut y = Tensor::zeros(vec![n, g.co, g.oh, g.ow]);
            for b in 0..n {
                for co in 0..g.co {
                    for oh in 0..g.oh {
                        for ow in 0..g.ow {
                            let mut acc = params.get(1).map_or(0.0, |bias| bias.data[co] as f64);
                            for ci in 0..g.ci {
                                for kh in 0..g.k {
                                    for kw in 0..g.k {
                                        if let Some(xi) = g.x_index(b, ci, oh, ow, kh, kw) {
                                            acc += params[0].data[g.w_index(co, ci, kh, kw)] as f64
                                                * x.data[xi] as f64;
                                        }
                                    }
                                }
                            }
                            y.data[g.y_index(b, co, oh, ow)] = acc as f32;
                        }
                    }
                }
            }
            y
        }
        Layer::Relu => Tensor {
            shape: x.shape.clone(),
            data: x.data.iter().map(|v| v.max(0.0)).collect(),
        },
        Layer::MaxPool2d {
            kernel_size,
            stride,
        }
        | Layer::AvgPool2d {
            kernel_size,
            stride,
        } => {
            let is_max = matches!(layer, Layer::MaxPool2d { .. });
            let (c, h, w) = (x.shape[1], x.shape[2], x.shape[3]);
            let (oh, ow) = (
                (h - kernel_size) / stride + 1,
                (w - kernel_size) / stride + 1,
            );
            let mut y = Tensor::zeros(vec![n, c, oh, ow]);
            for plane in 0..n * c {
                for r in 0..oh {
                    for s in 0..ow {
                        let window = pool_window(plane, h, w, r, s, *kernel_size, *stride);
                        y.data[(plane * oh + r) * ow + s] = if is_max {
                            x.data[first_max(&x.data, &window)]
                        } else {
                            let sum: f64 = window.iter().map(|&i| x.data[i] as f64).sum();
                            (sum / window.len() as f64) as f32
                        };
                    }
                }
            }
            y
        }
        Layer::Flatten => Tensor {
            shape: vec![n, x.len() / n.max(1)],
            data: x.data.clone(),
        },
        Layer::Linear {
            in_features,
            out_features,
            ..
        } => {
            let mut y = Tensor::zeros(vec![n, *out_features]);
            for b in 0..n {
                for o in 0..*out_features {
                    let mut acc = params.get(1).map_or(0.0, |bias| bias.data[o] as f64);
                    for i in 0..*in_features {
                        acc += x.data[b * in_features + i] as f64
                            * params[0].data[o * in_features + i] as f64;
                    }
                    y.data[b * out_features + o] = acc as f32;
                }
            }
            y
        }
    }
}

/// Gradients of one layer: with respect to its input `x`, and to each of its
/// tensors (weight, then bias), given the gradient `gy` of its output.
/// Parameter gradients are summed over the batch.
pub fn layer_backward(
    layer: &Layer,
    params: &[Tensor],
    x: &Tensor,
    gy: &Tensor,
) -> (Tensor, Vec<Tensor>) {
    let n = x.shape[0];
    let mut gx = Tensor::zeros(x.shape.clone());
    match layer {
        Layer::Normalize { std, .. } => {
            let (c, plane) = (x.shape[1], x.shape[2] * x.shape[3]);
            for (i, g) in gx.data.iter_mut().enumerate() {
                *g = gy.data[i] / std[(i / plane) % c];
            }
            (gx, Vec::new())
        }
        Layer::Conv2d {
            out_channels,
            kernel_size: k,
            stride,
            padding,
            bias,
            ..
        } => {
            let g = ConvGeom::new(&x.shape, *out_channels, *k, *stride, *padding);
            let mut gw = vec![0f64; params[0].len()];
            let mut gb = vec![0f64; g.co];
            let mut gxa = vec![0f64; x.len()];
            for b in 0..n {
                for co in 0..g.co {
                    for oh in 0..g.oh {
                        for ow in 0..g.ow {
                            let go = gy.data[g.y_index(b, co, oh, ow)] as f64;
                            gb[co] += go;
                            for ci in 0..g.ci {
                                for kh in 0..g.k {
                                    for kw in 0..g.k {
                                        if let Some(xi) = g.x_index(b, ci, oh, ow, kh, kw) {
                                            let wi = g.w_index(co, ci, kh, kw);
                                            gw[wi] += go * x.data[xi] as f64;
                                            gxa[xi] += go * params[0].data[wi] as f64;
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            gx.data = to_f32(&gxa);
            let mut grads = vec![Tensor {
                shape: params[0].shape.clone(),
                data: to_f32(&gw),
            }];
            if *bias {
                grads.push(Tensor {
                    shape: vec![g.co],
                    data: to_f32(&gb),
                });
            }
            (gx, grads)
        }
        Layer::Relu => {
            for (i, g) in gx.data.iter_mut().enumerate() {
                *g = if x.data[i] > 0.0 { gy.data[i] } else { 0.0 };
            }
            (gx, Vec::new())
        }
        Layer::MaxPool2d {
            kernel_size,
            stride,
        }
        | Layer::AvgPool2d {
            kernel_size,
            stride,
        } => {
            let is_max = matches!(layer, Layer::MaxPool2d { .. });
            let (c, h, w) = (x.shape[1], x.shape[2], x.shape[3]);
            let (oh, ow) = (gy.shape[2], gy.shape[3]);
            for plane in 0..n * c {
                for r in 0..oh {
                    for s in 0..ow {
                        let go = gy.data[(plane * oh + r) * ow + s];
                        let window = pool_window(plane, h, w, r, s, *kernel_size, *stride);
                        if is_max {
                            gx.data[first_max(&x.data, &window)] += go;
                        } else {
                            for &i in &window {
                                gx.data[i] += go / window.len() as f32;
                            }
                        }
                    }
                }
            }
            (gx, Vec::new())
        }
        Layer::Flatten => (
            Tensor {
                shape: x.shape.clone(),
                data: gy.data.clone(),
            },
            Vec::new(),
        ),
        Layer::Linear {
            in_features,
            out_features,
            bias,
        } => {
            let (fi, fo) = (*in_features, *out_features);
            let mut gw = vec![0f64; fo * fi];
            let mut gb = vec![0f64; fo];
            for b in 0..n {
                for i in 0..fi {
                    let mut acc = 0f64;
                    for o in 0..fo {
                        acc += gy.data[b * fo + o] as f64 * params[0].data[o * fi + i] as f64;
                    }
                    gx.data[b * fi + i] = acc as f32;
                }
                for o in 0..fo {
                    let go = gy.data[b * fo + o] as f64;
                    gb[o] += go;
                    for i in 0..fi {
                        gw[o * fi + i] += go * x.data[b * fi + i] as f64;
                    }
                }
            }
            let mut grads = vec![Tensor {
                shape: vec![fo, fi],
                data: to_f32(&gw),
            }];
            if *bias {
                grads.push(Tensor {
                    shape: vec![fo],
                    data: to_f32(&gb),
                });
            }
            (gx, grads)
        }
    }
}

/// Per-sample softmax cross-entropy and its gradient with respect to the
/// logits, unscaled: `softmax(z) - onehot(label)`.
pub fn softmax_cross_entropy(logits: &Tensor, labels: &[usize]) -> (Vec<f32>, Tensor) {
    let (n, k) = (logits.shape[0], logits.shape[1]);
    let mut loss = vec![0f32; n];
    let mut grad = Tensor::zeros(logits.shape.clone());
    for b in 0..n {
        let z = &logits.data[b * k..(b + 1) * k];
        let zmax = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = z.iter().map(|v| (*v as f64 - zmax).exp()).sum();
        loss[b] = (sum.ln() + zmax - z[labels[b]] as f64) as f32;
        for c in 0..k {
            let p = (z[c] as f64 - zmax).exp() / sum;
            grad.data[b * k + c] = (p - if c == labels[b] { 1.0 } else { 0.0 }) as f32;
        }
    }
    (loss, grad)
}

/// Activations of a whole model: `out[0]` is the input, `out[i + 1]` the
/// output of layer `i`, the last one the logits.
pub fn forward(model: &Model, x: &Tensor) -> Vec<Tensor> {
    let mut acts = vec![x.clone()];
    for (layer, params) in model.layers.iter().zip(&model.params) {
        let next = layer_forward(layer, params, acts.last().expect("starts non-empty"));
        acts.push(next);
    }
    acts
}

/// The loss and every gradient of a model on one labelled batch.
#[derive(Clone, Debug)]
pub struct Gradients {
    /// Logits `[N, K]`.
    pub logits: Tensor,
    /// Per-sample cross-entropy `[N]`.
    pub loss: Vec<f32>,
    /// Gradient of the batch-mean loss with respect to the input.
    pub grad_input: Tensor,
    /// Gradient of the batch-mean loss with respect to every tensor, per layer.
    pub grad_params: Vec<Vec<Tensor>>,
}

/// Forward, mean cross-entropy over the batch, and backward through every layer.
pub fn loss_and_gradients(model: &Model, x: &Tensor, labels: &[usize]) -> Result<Gradients> {
    let acts = forward(model, x);
    let logits = acts.last().expect("at least the input").clone();
    let (loss, mut g) = softmax_cross_entropy(&logits, labels);
    let scale = 1.0 / x.shape[0] as f32;
    g.data.iter_mut().for_each(|v| *v *= scale);

    let mut grad_params = vec![Vec::new(); model.layers.len()];
    for (i, layer) in model.layers.iter().enumerate().rev() {
        let (gx, gp) = layer_backward(layer, &model.params[i], &acts[i], &g);
        grad_params[i] = gp;
        g = gx;
    }
    Ok(Gradients {
        logits,
        loss,
        grad_input: g,
        grad_params,
    })
}

/// Index arithmetic of one convolution, shared by forward and backward.
struct ConvGeom {
    ci: usize,
    h: usize,
    w: usize,
    co: usize,
    oh: usize,
    ow: usize,
    k: usize,
    stride: usize,
    pad: usize,
}

impl ConvGeom {
    fn new(x_shape: &[usize], co: usize, k: usize, stride: usize, pad: usize) -> ConvGeom {
        let (ci, h, w) = (x_shape[1], x_shape[2], x_shape[3]);
        ConvGeom {
            ci,
            h,
            w,
            co,
            oh: (h + 2 * pad - k) / stride + 1,
            ow: (w + 2 * pad - k) / stride + 1,
            k,
            stride,
            pad,
        }
    }

    /// Index of the input pixel under tap (kh, kw) of output (oh, ow), or
    /// `None` where the tap falls on padding.
    fn x_index(
        &self,
        b: usize,
        ci: usize,
        oh: usize,
        ow: usize,
        kh: usize,
        kw: usize,
    ) -> Option<usize> {
        let r = (oh * self.stride + kh).checked_sub(self.pad)?;
        let c = (ow * self.stride + kw).checked_sub(self.pad)?;
        (r < self.h && c < self.w).then(|| ((b * self.ci + ci) * self.h + r) * self.w + c)
    }

    fn w_index(&self, co: usize, ci: usize, kh: usize, kw: usize) -> usize {
        ((co * self.ci + ci) * self.k + kh) * self.k + kw
    }

    fn y_index(&self, b: usize, co: usize, oh: usize, ow: usize) -> usize {
        ((b * self.co + co) * self.oh + oh) * self.ow + ow
    }
}

/// Flat indices of pooling window (r, s) of `plane`, row-major.
fn pool_window(
    plane: usize,
    h: usize,
    w: usize,
    r: usize,
    s: usize,
    k: usize,
    stride: usize,
) -> Vec<usize> {
    let base = plane * h * w;
    (0..k)
        .flat_map(|kh| (0..k).map(move |kw| base + (r * stride + kh) * w + s * stride + kw))
        .collect()
}

/// The first index holding the window's maximum (row-major), as PyTorch picks it.
fn first_max(x: &[f32], window: &[usize]) -> usize {
    let mut best = window[0];
    for &i in &window[1..] {
        if x[i] > x[best] {
            best = i;
        }
    }
    best
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|x| *x as f32).collect()
}
