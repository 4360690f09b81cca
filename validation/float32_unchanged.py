"""float32 outputs of this tree equal (bit for bit) those of another checkout, e.g. ``main``.

The bfloat16 work touched the models' code paths; ``precision: float32`` must compute exactly
what it computed before. This runs the same forwards in two processes, one importing this tree
and one importing ``--reference`` (another checkout of the repository), on windows cut from the
bundled chr19 example: SpliceAI (published weights, 2 windows of 15,000 nt, plus strand and the
reverse complement) and SpTransformer (random weights, 2 windows of 9,000 nt, plain forward and
the incremental REF/ALT pass with 3 SNVs), and compares the logits with ``torch.equal``.

    python validation/float32_unchanged.py --reference /work/main
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import sys, tempfile
import numpy as np, torch
sys.path.insert(0, sys.argv[3])
from bench_model import genome_windows
from sptx_pipeline.models import load_model
from sptx_pipeline.models.random_checkpoint import write_random_checkpoint
torch.set_num_threads(int(sys.argv[2]))
out = {}
with torch.inference_mode():
    spliceai = load_model("spliceai", "cpu", "float32")
    w = genome_windows(2, 5000, 5000)
    out["spliceai"] = spliceai(w).numpy()
    out["spliceai_rc"] = spliceai(torch.where(w < 4, 3 - w, w).flip(1)).numpy()
    model = load_model(str(write_random_checkpoint(tempfile.mkdtemp(), seed=3)), "cpu", "float32")
    w = genome_windows(2, 1000, 4000)
    out["sptransformer"] = model(w).numpy()
    alt = w[[0, 0, 1]].clone()
    for i, pos in enumerate((4500, 4510, 3000)):
        alt[i, pos] = (alt[i, pos] + 1) % 4
    spans = [(4500, 4501), (4510, 4511), (3000, 3001)]
    out["sptransformer_substituted"] = model.forward_substituted(w, alt, [0, 0, 1], spans).numpy()
np.savez(sys.argv[1], **out)
"""


def run(tree: Path, path: Path, threads: int) -> dict[str, np.ndarray]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    bench = str(tree / "benchmarks")
    subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(threads), bench], check=True, env=env
    )
    with np.load(path) as data:
        return dict(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="the other checkout")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ours = run(ROOT, Path(tmp) / "ours.npz", args.threads)
        theirs = run(args.reference.resolve(), Path(tmp) / "theirs.npz", args.threads)
    failed = 0
    for name in ours:
        same = ours[name].shape == theirs[name].shape and np.array_equal(ours[name], theirs[name])
        diff = (
            np.abs(ours[name] - theirs[name]).max()
            if ours[name].shape == theirs[name].shape
            else "shape"
        )
        print(f"{name:28s} {str(ours[name].shape):16s} bit-identical: {same} (max diff {diff})")
        failed += not same
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
