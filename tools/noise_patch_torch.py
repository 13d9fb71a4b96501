"""How often a square of uniform noise alone makes a model say a class.

An independent check of the noise baseline of `advgpu patch`: loads an
advgpu model file into the PyTorch copy of the bundled architecture
(tools/check_torch.py), pastes one square of uniform noise per round at a
random grid position on every held-out digit whose label is not the target
(plain tensor slicing, no advgpu code), and prints the share classified as
the target.

Usage (needs torch, safetensors, numpy):

    python tools/noise_patch_torch.py [--model FILE] [--target 8] [--size 14] [--rounds 4]
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_torch import held_out_digits, small_cnn  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "assets" / "mnist-smallcnn.safetensors"))
    parser.add_argument("--target", type=int, default=8)
    parser.add_argument("--size", type=int, default=14)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model = small_cnn()
    model.load_state_dict(load_file(args.model), strict=True)
    model.eval()
    x, labels = held_out_digits()
    x = x[labels != args.target]
    side = x.shape[-1]
    if not 0 < args.size <= side:
        sys.exit(f"--size {args.size}: expected 1..={side}")
    g = torch.Generator().manual_seed(args.seed)
    hits = 0
    for _ in range(args.rounds):
        noise = torch.rand(1, args.size, args.size, generator=g)
        patched = x.clone()
        corners = torch.randint(0, side - args.size + 1, (len(x), 2), generator=g)
        for i, (r, c) in enumerate(corners.tolist()):
            patched[i, :, r:r + args.size, c:c + args.size] = noise
        with torch.no_grad():
            hits += (model(patched).argmax(dim=1) == args.target).sum().item()
    print(json.dumps({
        "model": args.model,
        "target": args.target,
        "size": args.size,
        "images": len(x),
        "rounds": args.rounds,
        "noise_success_rate": hits / (args.rounds * len(x)),
    }, indent=2))


if __name__ == "__main__":
    main()
