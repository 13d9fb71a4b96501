//! A sequential model on the host: layers, weights, and the model file.
//!
//! The file is one safetensors file whose tensors are named and shaped exactly
//! like a PyTorch `nn.Sequential` state_dict (`"0.weight"`, `"0.bias"`, ...)
//! and whose metadata holds the layer list; `docs/MODEL_FORMAT.md` documents
//! it. Loading trusts nothing: the safetensors parser checks that every
//! tensor's byte range lies inside the file before anything is read, and this
//! module then checks every layer against its input shape and every tensor
//! against its layer, so an absurd header is refused before any allocation it
//! asks for.

use std::collections::HashMap;
use std::path::Path;

use rand::{Rng, SeedableRng};
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::nn::layer::Layer;

/// Metadata key of the format version.
pub const KEY_FORMAT: &str = "advgpu.format";
/// Metadata key of the layer list (JSON array).
pub const KEY_LAYERS: &str = "advgpu.layers";
/// Metadata key of the per-sample input shape `[C, H, W]` (JSON array).
pub const KEY_INPUT_SHAPE: &str = "advgpu.input_shape";
/// Metadata key of the optional class names (JSON array of strings).
pub const KEY_CLASSES: &str = "advgpu.classes";

/// Largest number of values a model's input may have per sample (C * H * W).
pub const MAX_INPUT_VALUES: usize = 1 << 24;

/// A dense f32 tensor on the host, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// The shape, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor from its shape and values; the lengths must agree.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor> {
        let len: usize = shape.iter().product();
        if len != data.len() {
            return Err(Error::Shape {
                what: "tensor data".into(),
                expected: format!("{len} values for shape {shape:?}"),
                got: format!("{} values", data.len()),
            });
        }
        Ok(Tensor { shape, data })
    }

    /// A zero tensor.
    pub fn zeros(shape: Vec<usize>) -> Tensor {
        let len = shape.iter().product();
        Tensor {
            shape,
            data: vec![0.0; len],
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// A sequential model: its layers, the input it takes and its weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// Layers in order; the index is the PyTorch `nn.Sequential` index.
    pub layers: Vec<Layer>,
    /// Per-sample input shape `[C, H, W]`.
    pub input_shape: [usize; 3],
    /// Class names, one per output, if the file has them.
    pub classes: Option<Vec<String>>,
    /// Per layer, its tensors in the order of [`Layer::param_shapes`]
    /// (weight, then bias); empty for layers without parameters.
    pub params: Vec<Vec<Tensor>>,
}

impl Model {
    /// Builds a model and checks that everything fits together.
    pub fn new(
        layers: Vec<Layer>,
        input_shape: [usize; 3],
        classes: Option<Vec<String>>,
        params: Vec<Vec<Tensor>>,
    ) -> Result<Model> {
        let model = Model {
            layers,
            input_shape,
            classes,
            params,
        };
        model.validate("<memory>")?;
        Ok(model)
    }

    /// A freshly initialised model, PyTorch's default scheme: weights and
    /// biases uniform in `±1/sqrt(fan_in)`, seeded.
    pub fn init(layers: Vec<Layer>, input_shape: [usize; 3], seed: u64) -> Result<Model> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let params = layers
            .iter()
            .map(|layer| {
                let shapes = layer.param_shapes();
                let fan_in: usize = shapes
                    .first()
                    .map(|(_, s)| s[1..].iter().product())
                    .unwrap_or(1);
                let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
                shapes
                    .into_iter()
                    .map(|(_, shape)| {
                        let len = shape.iter().product();
                        let data = (0..len).map(|_| rng.random_range(-bound..bound)).collect();
                        Tensor { shape, data }
                    })
                    .collect()
            })
            .collect();
        Model::new(layers, input_shape, None, params)
    }

    /// Per-sample shape after each layer (`shapes()[i]` is layer i's output).
    pub fn shapes(&self) -> Result<Vec<Vec<usize>>> {
        let mut shape = self.input_shape.to_vec();
        let mut out = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            shape = layer.output_shape(&shape).map_err(|e| {
                Error::model("<memory>", format!("layer {i} ({}): {e}", layer.kind()))
            })?;
            out.push(shape.clone());
        }
        Ok(out)
    }

    /// Number of output classes (the last layer's output size).
    pub fn num_classes(&self) -> usize {
        self.shapes()
            .ok()
            .and_then(|s| s.last().map(|l| l.iter().product()))
            .unwrap_or(0)
    }

    /// Values per input sample, `C * H * W`.
    pub fn input_len(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// The name of class `k`, or its number when the file has no names.
    pub fn class_name(&self, k: usize) -> String {
        self.classes
            .as_ref()
            .and_then(|c| c.get(k).cloned())
            .unwrap_or_else(|| k.to_string())
    }

    /// Forward FLOPs per sample, summed over layers (see [`Layer::forward_flops`]).
    pub fn forward_flops(&self) -> Result<u64> {
        let shapes = self.shapes()?;
        Ok(self
            .layers
            .iter()
            .zip(&shapes)
            .map(|(l, out)| l.forward_flops(out))
            .sum())
    }

    /// Checks layer chaining, the output and every tensor's shape.
    fn validate(&self, path: &str) -> Result<()> {
        if self.layers.is_empty() {
            return Err(Error::model(path, "the layer list is empty"));
        }
        check_input_shape(self.input_shape, path)?;
        let shapes = self.shapes().map_err(|e| match e {
            Error::Model { reason, .. } => Error::model(path, reason),
            other => other,
        })?;
        let out = shapes.last().cloned().unwrap_or_default();
        if out.len() != 1 {
            return Err(Error::model(
                path,
                format!("the last layer must output class scores [K], but outputs {out:?}"),
            ));
        }
        if let Some(classes) = &self.classes {
            if classes.len() != out[0] {
                return Err(Error::model(
                    path,
                    format!("{} class names for {} outputs", classes.len(), out[0]),
                ));
            }
        }
        if self.params.len() != self.layers.len() {
            return Err(Error::model(
                path,
                format!(
                    "{} parameter groups for {} layers",
                    self.params.len(),
                    self.layers.len()
                ),
            ));
        }
        for (i, (layer, tensors)) in self.layers.iter().zip(&self.params).enumerate() {
            let expected = layer.param_shapes();
            if expected.len() != tensors.len() {
                return Err(Error::model(
                    path,
                    format!(
                        "layer {i} ({}) needs {} tensors, has {}",
                        layer.kind(),
                        expected.len(),
                        tensors.len()
                    ),
                ));
            }
            for ((name, shape), t) in expected.iter().zip(tensors) {
                if &t.shape != shape || t.data.len() != shape.iter().product::<usize>() {
                    return Err(Error::model(
                        path,
                        format!(
                            "tensor \"{i}.{name}\" has shape {:?}, expected {shape:?}",
                            t.shape
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Reads a model file.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Model::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses a model file held in memory; `name` is used in error messages.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Model> {
        // The parser validates the header and every tensor's byte range
        // against the buffer's real length before handing out views.
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| Error::model(name, format!("not a valid safetensors file: {e}")))?;
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| Error::model(name, format!("not a valid safetensors file: {e}")))?;
        let meta = header.metadata().clone().unwrap_or_default();

        let get = |key: &str| {
            meta.get(key)
                .ok_or_else(|| Error::model(name, format!("metadata has no \"{key}\" entry")))
        };
        let format = get(KEY_FORMAT)?;
        if format != "1" {
            return Err(Error::model(
                name,
                format!("format version {format:?} is not supported (expected \"1\")"),
            ));
        }
        let layers: Vec<Layer> = serde_json::from_str(get(KEY_LAYERS)?)
            .map_err(|e| Error::model(name, format!("layer list \"{KEY_LAYERS}\": {e}")))?;
        let input: Vec<usize> = serde_json::from_str(get(KEY_INPUT_SHAPE)?)
            .map_err(|e| Error::model(name, format!("\"{KEY_INPUT_SHAPE}\": {e}")))?;
        let input_shape: [usize; 3] = input.as_slice().try_into().map_err(|_| {
            Error::model(
                name,
                format!("\"{KEY_INPUT_SHAPE}\" must be [C, H, W], got {input:?}"),
            )
        })?;
        let classes = match meta.get(KEY_CLASSES) {
            Some(text) => Some(
                serde_json::from_str::<Vec<String>>(text)
                    .map_err(|e| Error::model(name, format!("\"{KEY_CLASSES}\": {e}")))?,
            ),
            None => None,
        };

        check_input_shape(input_shape, name)?;

        // Shapes first, from the metadata alone, so that tensors are only
        // converted once the whole structure is known to be sound.
        let skeleton = Model {
            layers,
            input_shape,
            classes,
            params: Vec::new(),
        };
        skeleton.shapes().map_err(|e| match e {
            Error::Model { reason, .. } => Error::model(name, reason),
            other => other,
        })?;

        let mut unused: HashMap<String, ()> = st
            .names()
            .into_iter()
            .map(|n| (n.to_string(), ()))
            .collect();
        let mut params = Vec::with_capacity(skeleton.layers.len());
        for (i, layer) in skeleton.layers.iter().enumerate() {
            let mut tensors = Vec::new();
            for (suffix, shape) in layer.param_shapes() {
                let key = format!("{i}.{suffix}");
                let view = st.tensor(&key).map_err(|_| {
                    Error::model(
                        name,
                        format!(
                            "missing tensor \"{key}\" ({} layer {i} needs shape {shape:?})",
                            layer.kind()
                        ),
                    )
                })?;
                if view.dtype() != Dtype::F32 {
                    return Err(Error::model(
                        name,
                        format!("tensor \"{key}\" is {:?}, expected F32", view.dtype()),
                    ));
                }
                if view.shape() != shape.as_slice() {
                    return Err(Error::model(
                        name,
                        format!(
                            "tensor \"{key}\" has shape {:?}, expected {shape:?}",
                            view.shape()
                        ),
                    ));
                }
                let data = view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                unused.remove(&key);
                tensors.push(Tensor { shape, data });
            }
            params.push(tensors);
        }
        if let Some(extra) = unused.keys().min() {
            return Err(Error::model(
                name,
                format!("tensor \"{extra}\" belongs to no layer (is the layer list complete?)"),
            ));
        }

        let model = Model { params, ..skeleton };
        model.validate(name)?;
        log::info!(
            "model {name}: {} layers, input {:?}, {} classes",
            model.layers.len(),
            model.input_shape,
            model.num_classes()
        );
        Ok(model)
    }

    /// Serialises the model into the file format.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut meta = HashMap::new();
        meta.insert(KEY_FORMAT.to_string(), "1".to_string());
        meta.insert(KEY_LAYERS.to_string(), to_json(&self.layers)?);
        meta.insert(KEY_INPUT_SHAPE.to_string(), to_json(&self.input_shape)?);
        if let Some(classes) = &self.classes {
            meta.insert(KEY_CLASSES.to_string(), to_json(classes)?);
        }

        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .layers
            .iter()
            .zip(&self.params)
            .enumerate()
            .flat_map(|(i, (layer, tensors))| {
                layer
                    .param_shapes()
                    .into_iter()
                    .zip(tensors)
                    .map(move |((suffix, _), t)| {
                        let raw = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
                        (format!("{i}.{suffix}"), t.shape.clone(), raw)
                    })
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(k, shape, raw)| {
                safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), raw)
                    .map(|v| (k.clone(), v))
                    .map_err(|e| Error::model("<memory>", format!("tensor {k}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        safetensors::serialize(views, Some(meta))
            .map_err(|e| Error::model("<memory>", e.to_string()))
    }

    /// Writes the model file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_bytes()?).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Refuses an input shape with an empty dimension or more than
/// [`MAX_INPUT_VALUES`] values, before any size is computed from it.
fn check_input_shape(shape: [usize; 3], path: &str) -> Result<()> {
    let [c, h, w] = shape;
    if c == 0 || h == 0 || w == 0 || c.saturating_mul(h).saturating_mul(w) > MAX_INPUT_VALUES {
        return Err(Error::model(
            path,
            format!("input shape {shape:?} must have every dimension >= 1 and at most {MAX_INPUT_VALUES} values"),
        ));
    }
    Ok(())
}

fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::model("<memory>", e.to_string()))
}
