"""Check that an advgpu model file is a plain PyTorch state_dict.

Builds the bundled architecture as an ordinary nn.Sequential by hand, loads
the file with load_state_dict (strict), classifies the 1,000 held-out
bundled digits with PyTorch on the CPU, and compares every prediction with
what `advgpu eval --json --predictions` says for the same file.

Usage (needs torch, safetensors and numpy):

    cargo build --release
    python tools/check_torch.py [--model assets/mnist-smallcnn.safetensors] \
        [--advgpu target/release/advgpu]

Prints one JSON object; exits with status 1 if any prediction differs.
"""

import argparse
import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
TRAIN_SPLIT = 9000


def small_cnn():
    """The bundled architecture, written out as PyTorch modules."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(),
        nn.Conv2d(32, 32, 3), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(),
        nn.Conv2d(64, 64, 3), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(1024, 200), nn.ReLU(),
        nn.Linear(200, 200), nn.ReLU(),
        nn.Linear(200, 10),
    )


def read_idx(path, magic, dims):
    """The array in a gzip-compressed IDX file (big-endian header, u8 data)."""
    raw = gzip.open(path, "rb").read()
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise ValueError(f"{path}: magic {found:#010x}, expected {magic:#010x}")
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def held_out_digits():
    folder = ROOT / "assets" / "mnist"
    images = read_idx(folder / "mnist-10k-images-idx3-ubyte.gz", 0x0803, 3)
    labels = read_idx(folder / "mnist-10k-labels-idx1-ubyte.gz", 0x0801, 1)
    x = torch.from_numpy(images[TRAIN_SPLIT:].astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels[TRAIN_SPLIT:].astype(np.int64))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "assets" / "mnist-smallcnn.safetensors"))
    parser.add_argument("--advgpu", default=str(ROOT / "target" / "release" / "advgpu"))
    args = parser.parse_args()

    model = small_cnn()
    model.load_state_dict(load_file(args.model), strict=True)
    model.eval()
    x, labels = held_out_digits()
    with torch.no_grad():
        torch_pred = model(x).argmax(dim=1)

    out = subprocess.run(
        [args.advgpu, "eval", "--model", args.model, "--json", "--predictions"],
        check=True, capture_output=True, text=True,
    )
    advgpu = json.loads(out.stdout)
    advgpu_pred = torch.tensor(advgpu["predictions"])

    differ = int((advgpu_pred != torch_pred).sum())
    report = {
        "model": args.model,
        "n": len(labels),
        "torch_version": torch.__version__,
        "torch_accuracy": float((torch_pred == labels).float().mean()),
        "advgpu_accuracy": advgpu["accuracy"],
        "advgpu_adapter": advgpu["adapter"],
        "predictions_that_differ": differ,
    }
    print(json.dumps(report, indent=2))
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
