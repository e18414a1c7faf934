"""Benchmark: the batched L-BFGS attack against a per-example scipy L-BFGS-B reference.

Both solve Szegedy et al.'s penalty problem ``c ||r||_2 + CE(f(x + r), l)`` on the box with the
same stopping tolerances and the same search over ``c`` (the tests' reference,
``tests/attacks/lbfgs_reference.py``, runs scipy on each example alone; both with
``convex=True``, since FC10 is linear); the model is FC10(1e-4) trained on a seeded 10,000-image
subset of MNIST, the targets seeded random wrong labels. Prints and writes (``--out``) examples
per second of each, their ratio, and the distortions (ours must be equal or smaller).

    python benchmarks/lbfgs_attack.py --batch 100 --out benchmarks/results/lbfgs_attack_cpu.json

This is a measurement, not a test: speed depends on the machine (recorded in the JSON).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from advtut.attacks.base import random_wrong_labels
from advtut.attacks.lbfgs import lbfgs_attack
from advtut.chapters.blindspots.experiments import train_model
from advtut.chapters.blindspots.source import TABLE1
from advtut.data import load_mnist
from advtut.evaluation import predict

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "attacks"))
from lbfgs_reference import lbfgs_attack_scipy  # noqa: E402  (the tests' scipy reference)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=100, help="digits attacked (default 100)")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    ap.add_argument("--device", default="cpu",
                    help="cpu or cuda (the scipy reference runs its model there too)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3,
                    help="timed runs of the batched attack (best kept)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's)")
    ap.add_argument("--out", type=Path, default=None, help="write the numbers as JSON here")
    args = ap.parse_args()
    if args.batch < 1:
        raise SystemExit(f"--batch must be >= 1, got {args.batch}")
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(args.seed)
    train = load_mnist("train")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))
    x_tr, y_tr = train.x[order[:10_000]], train.y[order[:10_000]]
    model = train_model(TABLE1[0], x_tr, y_tr, max_iter=300, progress=False)
    dt = getattr(torch, args.dtype)
    dev = torch.device(args.device)
    model = copy.deepcopy(model).to(dev, dt).eval()
    pool = train.x[order[10_000:]].to(dev, dt)
    pool_y = train.y[order[10_000:]].to(dev)
    right = (predict(model, pool) == pool_y.cpu()).nonzero().squeeze(1)[:args.batch]
    x, y = pool[right.to(dev)], pool_y[right.to(dev)]
    target = random_wrong_labels(y, seed=args.seed + 1, n_classes=10).to(dev)

    lbfgs_attack(model, x[:2], target[:2], convex=True)  # warm-up
    times = []
    for _ in range(args.repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        ours = lbfgs_attack(model, x, target, convex=True)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    t_ours = min(times)
    t0 = time.perf_counter()
    ref = lbfgs_attack_scipy(model, x, target, convex=True)
    t_ref = time.perf_counter() - t0
    ratio = (ours.distortion / ref.distortion).double().cpu()
    out = {
        "benchmark": "lbfgs_attack batched vs per-example scipy L-BFGS-B",
        "model": "FC10(1e-4), 10,000 training images, 300 L-BFGS iterations",
        "batch": len(x), "dtype": args.dtype, "device": str(dev),
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name() if dev.type == "cuda" else None},
        "batched_seconds": t_ours, "scipy_seconds": t_ref,
        "batched_examples_per_s": len(x) / t_ours, "scipy_examples_per_s": len(x) / t_ref,
        "speedup": t_ref / t_ours,
        "success_batched": float(ours.success.double().mean()),
        "success_scipy": float(ref.success.double().mean()),
        "mean_distortion_batched": float(ours.distortion.mean()),
        "mean_distortion_scipy": float(ref.distortion.mean()),
        "distortion_ratio_median": float(ratio.median()),
        "distortion_ratio_max": float(ratio.max()),
        "distortion_ratio_min": float(ratio.min()),
        "solves_per_example": float(ours.n_solves.double().mean()),
    }
    print(json.dumps(out, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
