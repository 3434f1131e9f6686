"""Run MCRpy 0.2.0 on a 2D slice: the peer that ``benchmarks/reconstruct.py --mcrpy-python`` runs.

This script runs under MCRpy's own Python (MCRpy 0.2.0 needs TensorFlow < 2.16 and NumPy < 2, so
it lives in a separate virtual environment) and imports nothing from napari-dmcr. It matches the
slice as ``mcrpy.match`` does (characterize, then reconstruct; 2D, or 2D-to-3D with a 3D
``--shape``), times both calls and saves the rounded result, which the caller evaluates with
the same measures as its own reconstructions.

Usage (what ``reconstruct.py`` runs)::

    /path/to/mcrpy-venv/bin/python benchmarks/mcrpy_peer.py SLICE.npy OUT.npy \\
        --descriptors Correlations Variation --weights 1 100 --limit-to 8 --max-iter 500

Prints one JSON line: wall time, loss evaluations and the final loss.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("slice", help="a 2D .npy of 0/1 (the phase to match is 1)")
    parser.add_argument("out", help="where to save the rounded result (.npy)")
    parser.add_argument("--descriptors", nargs="+", default=["Correlations", "Variation"])
    parser.add_argument("--weights", nargs="+", type=float, default=[1.0, 100.0])
    parser.add_argument("--limit-to", type=int, default=8)
    parser.add_argument("--max-iter", type=int, default=500, help="loss evaluations per multigrid level")
    parser.add_argument("--shape", type=int, nargs="+", help="output shape (2 or 3 sizes); the slice's by default")
    parser.add_argument("--multigrid", action="store_true", help="use_multigrid_reconstruction")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import mcrpy
    from mcrpy.src.Settings import (
        CharacterizationSettings,
        ReconstructionSettings,
        select_subsettings,
    )

    np.random.seed(args.seed)  # MCRpy draws its start field from numpy's global generator
    tf.random.set_seed(args.seed)
    image = np.load(args.slice).astype(np.float64)
    with tempfile.TemporaryDirectory() as folder:
        settings = mcrpy.MatchingSettings(
            descriptor_types=list(args.descriptors),
            descriptor_weights=list(args.weights),
            limit_to=args.limit_to,
            max_iter=args.max_iter,
            use_multiphase=False,
            use_multigrid_reconstruction=args.multigrid,
            target_folder=folder,
            convergence_data_steps=10**9,
        )
        microstructure = mcrpy.Microstructure(image, use_multiphase=False)
        shape = tuple(args.shape) if args.shape else image.shape
        start = time.perf_counter()
        descriptors = mcrpy.characterize(
            microstructure, settings=select_subsettings(settings, CharacterizationSettings)
        )
        convergence, last_frame = mcrpy.reconstruct(
            descriptors, shape, settings=select_subsettings(settings, ReconstructionSettings)
        )
        wall = time.perf_counter() - start
    labels = last_frame.decode_phases().astype(np.uint8)
    np.save(args.out, labels)
    losses = [loss for _, loss in convergence["line_data"]]
    print(
        json.dumps(
            {
                "wall_s": wall,
                "evaluations": len(losses),
                "final_loss": float(losses[-1]),
                "shape": list(labels.shape),
                "mcrpy": mcrpy.__version__,
                "tensorflow": tf.__version__,
                "numpy": np.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
