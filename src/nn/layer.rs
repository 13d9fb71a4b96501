//! Layer kinds, their hyperparameters, shapes and FLOP counts.
//!
//! Tensors are laid out NCHW, `[batch, channels, height, width]`, and weights
//! in PyTorch order: conv2d `[out_channels, in_channels, k, k]`, linear
//! `[out_features, in_features]`. A per-sample shape is `[C, H, W]` for images
//! and `[F]` after `flatten`.

use serde::{Deserialize, Serialize};

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

/// One layer of a sequential model, as stored in a model file's metadata.
///
/// Serialised as `{"type": "conv2d", ...}`; the index in the layer list is
/// the index of the layer in a PyTorch `nn.Sequential`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Layer {
    /// `y = (x - mean[c]) / std[c]` per channel.
    Normalize {
        /// Per-channel mean.
        mean: Vec<f32>,
        /// Per-channel standard deviation (positive).
        std: Vec<f32>,
    },
    /// 2-D convolution with a square kernel and zero padding.
    Conv2d {
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Kernel height and width.
        kernel_size: usize,
        /// Step between windows.
        #[serde(default = "one")]
        stride: usize,
        /// Zeros added on each side.
        #[serde(default)]
        padding: usize,
        /// Whether the layer has a bias tensor.
        #[serde(default = "yes")]
        bias: bool,
    },
    /// `max(x, 0)`.
    Relu,
    /// Max over square windows, no padding, floor mode.
    #[serde(rename = "maxpool2d")]
    MaxPool2d {
        /// Window height and width.
        kernel_size: usize,
        /// Step between windows (PyTorch's default is the kernel size).
        stride: usize,
    },
    /// Mean over square windows, no padding, floor mode.
    #[serde(rename = "avgpool2d")]
    AvgPool2d {
        /// Window height and width.
        kernel_size: usize,
        /// Step between windows.
        stride: usize,
    },
    /// `[C, H, W]` to `[C * H * W]`, in NCHW order.
    Flatten,
    /// `y = x w^T + b`.
    Linear {
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
        /// Whether the layer has a bias tensor.
        #[serde(default = "yes")]
        bias: bool,
    },
}

/// Largest kernel, stride, padding or channel count a model file may declare;
/// far above any real small CNN, and small enough that products of a few of
/// them cannot overflow.
pub const MAX_HYPERPARAMETER: usize = 1 << 16;

impl Layer {
    /// The layer's type name, as in the model file.
    pub fn kind(&self) -> &'static str {
        match self {
            Layer::Normalize { .. } => "normalize",
            Layer::Conv2d { .. } => "conv2d",
            Layer::Relu => "relu",
            Layer::MaxPool2d { .. } => "maxpool2d",
            Layer::AvgPool2d { .. } => "avgpool2d",
            Layer::Flatten => "flatten",
            Layer::Linear { .. } => "linear",
        }
    }

    /// The per-sample output shape for a per-sample `input` shape, or why the
    /// two do not fit.
    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let image = |what: &str| -> Result<[usize; 3], String> {
            match *input {
                [c, h, w] => Ok([c, h, w]),
                _ => Err(format!(
                    "{what} needs an image input [C, H, W], got {input:?}"
                )),
            }
        };
        let window = |size: usize, k: usize, stride: usize, pad: usize| -> Result<usize, String> {
            for (name, v) in [("kernel_size", k), ("stride", stride), ("padding", pad)] {
                if v > MAX_HYPERPARAMETER {
                    return Err(format!("{name} = {v} is larger than {MAX_HYPERPARAMETER}"));
                }
            }
            if k == 0 || stride == 0 {
                return Err(format!(
                    "kernel_size and stride must be at least 1, got {k} and {stride}"
                ));
            }
            let padded = size + 2 * pad;
            if k > padded {
                return Err(format!(
                    "kernel_size {k} is larger than the padded input size {padded}"
                ));
            }
            Ok((padded - k) / stride + 1)
        };

        match self {
            Layer::Normalize { mean, std } => {
                let [c, _, _] = image("normalize")?;
                if mean.len() != c || std.len() != c {
                    return Err(format!(
                        "normalize has {} means and {} stds for {c} input channels",
                        mean.len(),
                        std.len()
                    ));
                }
                if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
                    return Err(format!("normalize std {s} is not a positive finite number"));
                }
                if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
                    return Err(format!("normalize mean {m} is not finite"));
                }
                Ok(input.to_vec())
            }
            Layer::Conv2d {
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
                ..
            } => {
                let [c, h, w] = image("conv2d")?;
                if *in_channels != c {
                    return Err(format!(
                        "conv2d in_channels is {in_channels}, but its input has {c} channels"
                    ));
                }
                if *out_channels == 0 || *out_channels > MAX_HYPERPARAMETER {
                    return Err(format!(
                        "conv2d out_channels {out_channels} is outside 1..={MAX_HYPERPARAMETER}"
                    ));
                }
                Ok(vec![
                    *out_channels,
                    window(h, *kernel_size, *stride, *padding)?,
                    window(w, *kernel_size, *stride, *padding)?,
                ])
            }
            Layer::Relu => Ok(input.to_vec()),
            Layer::MaxPool2d {
                kernel_size,
                stride,
            }
            | Layer::AvgPool2d {
                kernel_size,
                stride,
            } => {
                let [c, h, w] = image(self.kind())?;
                Ok(vec![
                    c,
                    window(h, *kernel_size, *stride, 0)?,
                    window(w, *kernel_size, *stride, 0)?,
                ])
            }
            Layer::Flatten => Ok(vec![input.iter().fold(1usize, |a, &d| a.saturating_mul(d))]),
            Layer::Linear {
                in_features,
                out_features,
                ..
            } => {
                let f: usize = match *input {
                    [f] => f,
                    _ => {
                        return Err(format!(
                            "linear needs a flat input [F] (add a flatten layer), got {input:?}"
                        ))
                    }
                };
                if *in_features != f {
                    return Err(format!(
                        "linear in_features is {in_features}, but its input has {f} features"
                    ));
                }
                if *out_features == 0 || *out_features > MAX_HYPERPARAMETER * 16 {
                    return Err(format!(
                        "linear out_features {out_features} is out of range"
                    ));
                }
                Ok(vec![*out_features])
            }
        }
    }

    /// The shapes of this layer's tensors, by name suffix (`weight`, `bias`).
    pub fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        match self {
            Layer::Conv2d {
                in_channels,
                out_channels,
                kernel_size: k,
                bias,
                ..
            } => {
                let mut v = vec![("weight", vec![*out_channels, *in_channels, *k, *k])];
                if *bias {
                    v.push(("bias", vec![*out_channels]));
                }
                v
            }
            Layer::Linear {
                in_features,
                out_features,
                bias,
            } => {
                let mut v = vec![("weight", vec![*out_features, *in_features])];
                if *bias {
                    v.push(("bias", vec![*out_features]));
                }
                v
            }
            _ => Vec::new(),
        }
    }

    /// Floating-point operations of the forward pass for one sample, counting
    /// a multiply-add as 2: conv2d `2 * Co*Ho*Wo * Ci*K*K`, linear `2 * O*I`;
    /// pools one per value read, elementwise layers one or two per value.
    pub fn forward_flops(&self, output: &[usize]) -> u64 {
        let out: u64 = output.iter().product::<usize>() as u64;
        match self {
            Layer::Conv2d {
                in_channels,
                kernel_size,
                ..
            } => 2 * out * (*in_channels * kernel_size * kernel_size) as u64,
            Layer::Linear { in_features, .. } => 2 * out * *in_features as u64,
            Layer::MaxPool2d { kernel_size, .. } | Layer::AvgPool2d { kernel_size, .. } => {
                out * (kernel_size * kernel_size) as u64
            }
            Layer::Normalize { .. } => 2 * out,
            Layer::Relu => out,
            Layer::Flatten => 0,
        }
    }
}
