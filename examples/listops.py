"""Print a few generated ListOps examples and the label distribution (the generator lives in
neurocompile/models/listops.py; the loader train.py uses is neurocompile.models.data.load_listops).

    .venv/bin/python examples/listops.py --n 5 --max-length 128 --min-length 32
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from neurocompile.models.listops import VOCAB, ListOpsSpec, generate_listops  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Preview generated ListOps data.")
    p.add_argument("--n", type=int, default=5, help="examples to print")
    p.add_argument("--stats", type=int, default=2000, help="examples for the label distribution")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--min-length", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    spec = ListOpsSpec(max_length=args.max_length, min_length=args.min_length)
    x, y = generate_listops(max(args.n, args.stats), args.seed, spec)
    for ids, label in zip(x[: args.n], y[: args.n]):
        print(f"{label}  <-  {' '.join(VOCAB[i] for i in ids if i != 0)}")
    counts = np.bincount(y[: args.stats], minlength=10)
    print("label distribution:", " ".join(f"{d}:{c / counts.sum():.3f}" for d, c in enumerate(counts)))
    print(f"majority-class rate {counts.max() / counts.sum():.3f}; lengths "
          f"{int((x > 0).sum(1).min())}..{int((x > 0).sum(1).max())}")


if __name__ == "__main__":
    main()
