"""The peer comparison: torchattacks' PGD on the same model file and digits.

Runs torchattacks.PGD (PyTorch) on the bundled held-out digits with an
advgpu model file, and prints the same JSON fields as
`advgpu attack pgd --json`, so the two can be read side by side on any
machine. Timing covers the attack only (the model is loaded, the digits are
on the device and one warm-up batch has run before the clock starts), like
advgpu's `seconds` field.

Usage (needs torch, torchattacks, safetensors, numpy):

    python tools/peer_torchattacks.py --n 1000 --eps 0.3 --alpha 0.01 --steps 40
    target/release/advgpu attack pgd --n 1000 --eps 0.3 --alpha 0.01 --steps 40 --json

    # throughput as in `advgpu bench` (10-step PGD, batch 256):
    python tools/peer_torchattacks.py --n 1024 --steps 10 --batch 256

Options: --model FILE (default: the bundled model), --device cpu|cuda,
--threads N (CPU threads for PyTorch), --seed.
"""

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_torch import held_out_digits  # noqa: E402
from export_torch import load  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "assets" / "mnist-smallcnn.safetensors"))
    parser.add_argument("--n", type=int, default=1000, help="held-out digits (repeated past 1,000)")
    parser.add_argument("--eps", type=float, default=8 / 255)
    parser.add_argument("--alpha", type=float, default=2 / 255)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", choices=["next"], default=None,
                        help="targeted towards (label + 1) mod 10, like advgpu's --target next")
    args = parser.parse_args()
    if args.n < 1 or args.batch < 1 or args.steps < 1:
        parser.error("--n, --batch and --steps must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)

    import torchattacks

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    model = load(args.model).to(device).eval()
    x, labels = held_out_digits()
    reps = -(-args.n // len(labels))
    x = x.repeat(reps, 1, 1, 1)[: args.n].to(device)
    labels = labels.repeat(reps)[: args.n].to(device)
    attack = torchattacks.PGD(model, eps=args.eps, alpha=args.alpha, steps=args.steps, random_start=True)
    classes = len(model.classes) if model.classes else 10
    if args.target == "next":
        # torchattacks announces the mode change on stdout, where the JSON goes.
        with contextlib.redirect_stdout(sys.stderr):
            attack.set_mode_targeted_by_function(lambda images, labels: (labels + 1) % classes)

    with torch.no_grad():
        clean = torch.cat([model(x[i:i + args.batch]).argmax(1) for i in range(0, args.n, args.batch)])
    attack(x[: args.batch], labels[: args.batch])  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    adv = torch.cat([attack(x[i:i + args.batch], labels[i:i + args.batch]) for i in range(0, args.n, args.batch)])
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        pred = torch.cat([model(adv[i:i + args.batch]).argmax(1) for i in range(0, args.n, args.batch)])

    delta = (adv - x).flatten(1)
    linf = delta.abs().max(dim=1).values
    l2 = delta.norm(dim=1)
    report = {
        "attack": "pgd",
        "implementation": f"torchattacks {torchattacks.__version__}, torch {torch.__version__}",
        "eps": args.eps,
        "alpha": args.alpha,
        "steps": args.steps,
        "restarts": 1,
        "batch": args.batch,
        "n": args.n,
        "clean_accuracy": float((clean == labels).float().mean()),
        "robust_accuracy": float((pred == labels).float().mean()),
        "success_rate": float((pred == (labels + 1) % classes).float().mean()) if args.target
        else float((pred != labels).float().mean()),
        "targeted": args.target is not None,
        "linf_mean": float(linf.mean()),
        "linf_max": float(linf.max()),
        "l2_mean": float(l2.mean()),
        "l2_max": float(l2.max()),
        "mean_steps": float(args.steps),
        "seconds": seconds,
        "image_steps_per_second": args.n * args.steps / seconds,
        "adapter": f"{device.type} ({torch.get_num_threads()} threads)" if device.type == "cpu"
        else torch.cuda.get_device_name(device),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
