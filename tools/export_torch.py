"""Write a PyTorch nn.Sequential as an advgpu model file, and read one back.

The file is one safetensors file: the Sequential's state_dict as F32 tensors
("{i}.weight", "{i}.bias") plus metadata that lists the layers. The format is
described in docs/MODEL_FORMAT.md.

Usage (needs torch and safetensors; copy this file next to your code or put
tools/ on sys.path):

    import torch.nn as nn
    from export_torch import Normalize, export, load

    model = nn.Sequential(
        Normalize([0.1307], [0.3081]),
        nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 13 * 13, 10),
    )
    ...  # train
    export(model, [1, 28, 28], "mnist.safetensors", classes=[str(d) for d in range(10)])
    again = load("mnist.safetensors")  # an equal nn.Sequential

Supported modules: Normalize (below), nn.Conv2d, nn.ReLU, nn.MaxPool2d,
nn.AvgPool2d, nn.Flatten, nn.Linear. Kernels must be square, padding is zero
padding of the same amount on every side, pools use floor mode and no
padding. Anything else raises ValueError naming the layer index and value.
"""

import json

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

FORMAT_VERSION = "1"


class Normalize(nn.Module):
    """Per-channel input normalisation: y[:, c] = (x[:, c] - mean[c]) / std[c].

    mean and std are plain attributes, not buffers, so a Sequential that
    starts with this layer has the same state_dict as one without it; the
    values travel in the model file's metadata instead.
    """

    def __init__(self, mean, std):
        super().__init__()
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(
                f"Normalize: mean has {len(self.mean)} values and std has "
                f"{len(self.std)}; need one of each per channel"
            )
        if any(not s > 0 for s in self.std):
            raise ValueError(f"Normalize: std = {list(self.std)} must be positive")

    def forward(self, x):
        shape = (1, len(self.mean), 1, 1)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape)
        return (x - mean) / std

    def extra_repr(self):
        return f"mean={list(self.mean)}, std={list(self.std)}"


def export(model, input_shape, path, classes=None):
    """Writes model to path in advgpu's format.

    model: an nn.Sequential of supported modules (see the module docstring).
    input_shape: [channels, height, width] of one input image.
    classes: optional class names, one per output of the last layer.

    The layer hyperparameters are checked against each other along the way
    (channels, flattened size), so a model that would fail to load in advgpu
    fails here instead, with the layer index in the message.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"export needs an nn.Sequential, got {type(model).__name__}")
    if len(model) == 0:
        raise ValueError("export: the Sequential has no layers")
    shape = _check_input_shape(input_shape)

    layers = []
    tensors = {}
    for i, module in enumerate(model):
        layer, shape = _describe(i, module, shape)
        layers.append(layer)
        # Indexed by position, which is what the Sequential's own state_dict
        # uses unless its children were given names.
        for name, value in module.state_dict().items():
            tensors[f"{i}.{name}"] = (
                value.detach().to(device="cpu", dtype=torch.float32).contiguous().clone()
            )

    if len(shape) != 1:
        raise ValueError(
            f"export: the model must end in logits [batch, classes], "
            f"but layer {len(model) - 1} outputs {shape} per image"
        )
    metadata = {
        "advgpu.format": FORMAT_VERSION,
        "advgpu.input_shape": _json(list(input_shape)),
        "advgpu.layers": _json(layers),
    }
    if classes is not None:
        classes = [str(c) for c in classes]
        if len(classes) != shape[0]:
            raise ValueError(
                f"export: {len(classes)} class names for {shape[0]} model outputs"
            )
        metadata["advgpu.classes"] = _json(classes)

    save_file(tensors, str(path), metadata=metadata)


def load(path):
    """Reads an advgpu model file into an nn.Sequential (strict state_dict load).

    The returned module also carries the file's `input_shape` ([C, H, W]) and
    `classes` (a list, or None) as plain attributes.
    """
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    version = metadata.get("advgpu.format")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path}: advgpu.format = {version!r}, expected {FORMAT_VERSION!r}"
        )
    for key in ("advgpu.input_shape", "advgpu.layers"):
        if key not in metadata:
            raise ValueError(f"{path}: metadata key {key} is missing")

    modules = [_build(i, layer) for i, layer in enumerate(json.loads(metadata["advgpu.layers"]))]
    model = nn.Sequential(*modules)
    model.load_state_dict(load_file(str(path)), strict=True)

    model.input_shape = json.loads(metadata["advgpu.input_shape"])
    classes = metadata.get("advgpu.classes")
    model.classes = json.loads(classes) if classes is not None else None
    return model


def _json(value):
    return json.dumps(value, separators=(",", ":"))


def _check_input_shape(input_shape):
    shape = list(input_shape)
    if len(shape) != 3 or any(not isinstance(d, int) or d <= 0 for d in shape):
        raise ValueError(f"export: input_shape = {input_shape!r}, expected [C, H, W] > 0")
    return shape


def _refuse(i, module, what, value, allowed):
    return ValueError(
        f"layer {i} ({type(module).__name__}): {what} = {value!r} is not supported; {allowed}"
    )


def _square(i, module, what, value):
    """An int, or a pair of equal ints, as one int."""
    if isinstance(value, int):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2 and value[0] == value[1]:
        return int(value[0])
    raise _refuse(i, module, what, value, "it must be the same along height and width")


def _need_image(i, module, shape):
    if len(shape) != 3:
        raise ValueError(
            f"layer {i} ({type(module).__name__}) needs [C, H, W] input, "
            f"but the layer before it outputs {shape}"
        )


def _pool_out(i, module, shape, k, s):
    # Floor mode: floor((size - k) / s) + 1 along each spatial axis.
    out = [shape[0]] + [(d - k) // s + 1 for d in shape[1:]]
    if any(d <= 0 for d in out):
        raise ValueError(
            f"layer {i} ({type(module).__name__}): kernel {k} does not fit input {shape}"
        )
    return out


def _describe(i, m, shape):
    """Layer JSON for module m at index i, and its per-image output shape."""
    if isinstance(m, Normalize):
        _need_image(i, m, shape)
        if len(m.mean) != shape[0]:
            raise ValueError(
                f"layer {i} (Normalize): {len(m.mean)} means, but its input is {shape}"
            )
        return {"type": "normalize", "mean": list(m.mean), "std": list(m.std)}, shape

    if isinstance(m, nn.Conv2d):
        _need_image(i, m, shape)
        k = _square(i, m, "kernel_size", m.kernel_size)
        s = _square(i, m, "stride", m.stride)
        if m.padding == "valid":
            p = 0
        elif isinstance(m.padding, str):
            raise _refuse(i, m, "padding", m.padding, "give the padding as a number")
        else:
            p = _square(i, m, "padding", m.padding)
        if _square(i, m, "dilation", m.dilation) != 1:
            raise _refuse(i, m, "dilation", m.dilation, "only 1")
        if m.groups != 1:
            raise _refuse(i, m, "groups", m.groups, "only 1")
        if m.padding_mode != "zeros":
            raise _refuse(i, m, "padding_mode", m.padding_mode, "only 'zeros'")
        if m.in_channels != shape[0]:
            raise ValueError(
                f"layer {i} (Conv2d): in_channels = {m.in_channels}, "
                f"but its input is {shape}"
            )
        # floor((size + 2 * padding - kernel) / stride) + 1
        out = [m.out_channels] + [(d + 2 * p - k) // s + 1 for d in shape[1:]]
        if any(d <= 0 for d in out):
            raise ValueError(f"layer {i} (Conv2d): kernel {k} does not fit input {shape}")
        layer = {
            "type": "conv2d",
            "in_channels": m.in_channels,
            "out_channels": m.out_channels,
            "kernel_size": k,
            "stride": s,
            "padding": p,
            "bias": m.bias is not None,
        }
        return layer, out

    if isinstance(m, nn.ReLU):
        return {"type": "relu"}, shape

    if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
        _need_image(i, m, shape)
        k = _square(i, m, "kernel_size", m.kernel_size)
        s = _square(i, m, "stride", m.stride if m.stride is not None else k)
        if _square(i, m, "padding", m.padding) != 0:
            raise _refuse(i, m, "padding", m.padding, "pools take no padding")
        if m.ceil_mode:
            raise _refuse(i, m, "ceil_mode", m.ceil_mode, "only floor mode")
        if isinstance(m, nn.MaxPool2d):
            if _square(i, m, "dilation", m.dilation) != 1:
                raise _refuse(i, m, "dilation", m.dilation, "only 1")
            if m.return_indices:
                raise _refuse(i, m, "return_indices", True, "only False")
            kind = "maxpool2d"
        else:
            if m.divisor_override is not None:
                raise _refuse(i, m, "divisor_override", m.divisor_override, "only None")
            kind = "avgpool2d"
        return {"type": kind, "kernel_size": k, "stride": s}, _pool_out(i, m, shape, k, s)

    if isinstance(m, nn.Flatten):
        if (m.start_dim, m.end_dim) != (1, -1):
            raise _refuse(
                i, m, "(start_dim, end_dim)", (m.start_dim, m.end_dim), "only (1, -1)"
            )
        n = 1
        for d in shape:
            n *= d
        return {"type": "flatten"}, [n]

    if isinstance(m, nn.Linear):
        if shape != [m.in_features]:
            hint = " (put nn.Flatten() before it)" if len(shape) != 1 else ""
            raise ValueError(
                f"layer {i} (Linear): in_features = {m.in_features}, but its input "
                f"is {shape} per image{hint}"
            )
        layer = {
            "type": "linear",
            "in_features": m.in_features,
            "out_features": m.out_features,
            "bias": m.bias is not None,
        }
        return layer, [m.out_features]

    raise ValueError(
        f"layer {i}: module {type(m).__name__} is not supported "
        "(Normalize, Conv2d, ReLU, MaxPool2d, AvgPool2d, Flatten, Linear)"
    )


def _build(i, layer):
    """The torch module for one layer object of the metadata."""
    try:
        return _build_module(i, layer)
    except KeyError as missing:
        raise ValueError(f"layer {i} ({layer.get('type')}): key {missing} is missing") from None


def _build_module(i, layer):
    kind = layer.get("type")
    if kind == "normalize":
        return Normalize(layer["mean"], layer["std"])
    if kind == "conv2d":
        return nn.Conv2d(
            layer["in_channels"],
            layer["out_channels"],
            layer["kernel_size"],
            stride=layer["stride"],
            padding=layer["padding"],
            bias=layer["bias"],
        )
    if kind == "relu":
        return nn.ReLU()
    if kind == "maxpool2d":
        return nn.MaxPool2d(layer["kernel_size"], stride=layer["stride"])
    if kind == "avgpool2d":
        return nn.AvgPool2d(layer["kernel_size"], stride=layer["stride"])
    if kind == "flatten":
        return nn.Flatten()
    if kind == "linear":
        return nn.Linear(layer["in_features"], layer["out_features"], bias=layer["bias"])
    raise ValueError(f"layer {i}: unknown layer type {kind!r}")
