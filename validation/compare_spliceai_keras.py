"""Compare our PyTorch SpliceAI with the official Keras models, per position, on real genes.

Not part of CI. Needs a second Python environment with TensorFlow and the ``spliceai`` package
(kept apart from the project's environment, which has no TensorFlow), e.g.::

    python -m venv /work/venvs/keras
    /work/venvs/keras/bin/pip install tensorflow-cpu spliceai==1.3.1
    python validation/compare_spliceai_keras.py --keras-python /work/venvs/keras/bin/python

The Keras side runs in that interpreter as a subprocess (``--keras-worker``) and does what the
official ``spliceai`` tool does in ``get_delta_scores``: ``keras.models.load_model`` on the five
``spliceai{1..5}.h5`` of the package (``compile=False``), ``spliceai.utils.one_hot_encode`` on the
sequence (N = all-zero), ``x[:, ::-1, ::-1]`` on the minus strand, the mean of the five
``predict`` outputs, flipped back. Our side encodes tokens and reverse-complements them with its
own code (validation/direct_scoring.py) and scores each gene twice: as one window and in chunks of
5000 (the pipeline's tile size), which must agree because the receptive field equals the flank.

Each gene's window is its body plus 5000 bases of real genome on each side.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FASTA = ROOT / "config/example/grch37_chr19_1-1500000.fa"
GTF = ROOT / "config/example/grch37_chr19_1-1500000.gtf"
GENES = ("GPX4", "STK11", "CBARP", "GAMT")  # two on each strand
FLANK = 5000
TOLERANCE = 1e-4


def keras_worker(inputs: str, outputs: str) -> None:
    """Run in the TensorFlow environment: official models, official encoding, mean of five."""
    import importlib.resources
    import types

    import numpy as np
    import spliceai.utils as official
    from keras.models import load_model

    # spliceai 1.3.1's one_hot_encode calls np.fromstring(str, int8), which NumPy 2 removed; give
    # that module a numpy whose fromstring is the byte-wise equivalent and keep its code as is.
    shim = types.ModuleType("numpy_shim")
    shim.__dict__.update(np.__dict__)
    shim.fromstring = lambda s, dtype: np.frombuffer(s.encode("latin-1"), dtype)
    official.np = shim

    folder = importlib.resources.files("spliceai") / "models"
    models = [load_model(str(folder / f"spliceai{i}.h5"), compile=False) for i in range(1, 6)]
    data = np.load(inputs)
    result = {}
    for name in data["names"]:
        seq, strand = str(data[f"{name}_seq"]), str(data[f"{name}_strand"])
        x = official.one_hot_encode(seq)[None, :]
        if strand == "-":
            x = x[:, ::-1, ::-1]
        y = np.mean([m.predict(x, verbose=0) for m in models], axis=0)
        if strand == "-":
            y = y[:, ::-1]
        result[str(name)] = y[0]
    np.savez(outputs, **result)


def torch_side(genes) -> tuple[dict, dict, dict]:
    """Window sequences and our probabilities (one window; 5000-chunks), genomic orientation."""
    import pyfaidx
    import torch
    from direct_scoring import encode, reverse_complement, score_interval, window_sequence

    from sptx_pipeline.models import load_model

    model = load_model("spliceai")
    fasta = pyfaidx.Fasta(str(FASTA))
    seqs, whole, chunked = {}, {}, {}
    for g in genes.itertuples():
        start, end = g.start - 1, g.end
        seq = window_sequence(fasta, g.chrom, start - FLANK, end + FLANK)
        tokens = encode(seq)
        if g.strand == "-":
            tokens = reverse_complement(tokens)
        with torch.no_grad():
            probs = model.postprocess(model(torch.from_numpy(tokens)[None].long()))[0].numpy()
        whole[g.gene_name] = probs[::-1] if g.strand == "-" else probs
        frame = score_interval(model, fasta, g.chrom, start, end, g.strand, chunk=5000)
        chunked[g.gene_name] = frame[list(model.channels)].to_numpy()
        seqs[g.gene_name] = seq
    return seqs, whole, chunked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keras-python", default="/work/venvs/keras/bin/python")
    parser.add_argument("--keras-worker", nargs=2, metavar=("INPUTS", "OUTPUTS"))
    args = parser.parse_args()
    if args.keras_worker:
        keras_worker(*args.keras_worker)
        return 0

    from direct_scoring import read_genes

    genes = read_genes(str(GTF))
    genes = genes[genes["gene_name"].isin(GENES)]
    seqs, whole, chunked = torch_side(genes)
    with tempfile.TemporaryDirectory() as tmp:
        inputs, outputs = Path(tmp, "in.npz"), Path(tmp, "out.npz")
        arrays = {"names": np.array(list(seqs))}
        for g in genes.itertuples():
            arrays[f"{g.gene_name}_seq"] = np.array(seqs[g.gene_name])
            arrays[f"{g.gene_name}_strand"] = np.array(g.strand)
        np.savez(inputs, **arrays)
        subprocess.run(
            [args.keras_python, __file__, "--keras-worker", str(inputs), str(outputs)],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        keras = dict(np.load(outputs))

    worst = 0.0
    print(
        f"{'gene':8} {'strand':6} {'positions':>9} {'max|diff| 1 window':>19} {'5000-chunks':>12}"
    )
    for g in genes.itertuples():
        reference = keras[g.gene_name]
        assert reference.shape == whole[g.gene_name].shape == chunked[g.gene_name].shape
        d_whole = float(np.abs(whole[g.gene_name] - reference).max())
        d_chunk = float(np.abs(chunked[g.gene_name] - reference).max())
        worst = max(worst, d_whole, d_chunk)
        print(f"{g.gene_name:8} {g.strand:6} {len(reference):9d} {d_whole:19.3e} {d_chunk:12.3e}")
    verdict = "OK" if worst <= TOLERANCE else "FAIL"
    print(f"largest absolute probability difference: {worst:.3e} (tolerance {TOLERANCE}) {verdict}")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
