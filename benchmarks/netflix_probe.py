"""Protocol N2: Netflix probe RMSE, end to end (parse, train on everything but the probe pairs, score the probe).

Usage (from the repository root)::

    .venv/bin/python benchmarks/netflix_probe.py --netflix-dir PATH --device cuda
    .venv/bin/python benchmarks/netflix_probe.py --quick        # the small generated sample, a few seconds

Without ``--netflix-dir`` it reads ``$MFKIT_NETFLIX_DIR``, else the generated sample of
``mfkit.data.netflix_sample_dir()``. The default model (``mfkit.explicit.default_netflix_model``) is biased MF with
k = 128 trained by minibatch SVD-style SGD (batch 32768, 25 epochs), sized for the full data on one GPU (target: probe RMSE <= 0.905 in <= 5
minutes on one H100). Prints one line ``N2 probe_rmse=... probe_mae=... parse_s=... fit_s=... score_s=...
total_s=...`` and saves it with ``save_results``.
"""
from __future__ import annotations

import argparse
import sys

from _common import save_results

from mfkit.explicit import BiasedMF, default_netflix_model, netflix_probe_rmse
from mfkit.utils import get_device, setup


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--netflix-dir", default=None, help="Netflix Prize folder (combined_data_*.txt, probe.txt)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when available)")
    parser.add_argument("--epochs", type=int, default=None, help="override the number of SGD epochs")
    parser.add_argument("--quick", action="store_true", help="a small model for a smoke run (the tests use it)")
    parser.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/netflix_probe.json")
    args = parser.parse_args(argv)

    device = setup(seed=0, device=args.device)
    if args.quick:
        model = BiasedMF(n_factors=16, reg=0.05, lr=0.01, n_epochs=5, batch_size=1024, device=device)
    else:
        model = default_netflix_model(device)
    if args.epochs is not None:
        model.n_epochs = args.epochs
    out = netflix_probe_rmse(args.netflix_dir, model=model, device=device)
    print(f"N2 folder={out['folder']} n_train={out['n_train']} n_probe={out['n_probe']} device={get_device(device)}")
    print(f"N2 model={out['model']}")
    print(f"N2 probe_rmse={out['probe_rmse']:.4f} probe_mae={out['probe_mae']:.4f} parse_s={out['parse_s']:.2f} "
          f"fit_s={out['fit_s']:.2f} score_s={out['score_s']:.2f} total_s={out['total_s']:.2f}")
    if not args.no_save:
        command = "python benchmarks/netflix_probe.py " + " ".join(argv if argv is not None else sys.argv[1:])
        save_results("netflix_probe", [out], ["mfkit/explicit.py", "mfkit/data/netflix.py"], command.strip(),
                     extra={"protocol": "N2"})
    return out


if __name__ == "__main__":
    main()
