"""The run-time contract every tutorial script follows.

A tutorial is a plain script (``tutorials/NN_name.py``) that reads top to bottom
as a lesson. It starts with::

    from vitoolkit.tutorial import Tutorial
    tut = Tutorial("01_elbo_anatomy")

and then uses

- ``tut.quick`` (bool) to choose the small CI setting,
- ``tut.seed`` (int) to seed its local generators (``tut.generator()``,
  ``tut.rng()``),
- ``tut.record(name, value)`` to print a key number and keep it for the summary,
- ``tut.savefig(fig, name)`` to save a figure (PNG, plus any extra formats asked
  for) into the output folder,
- ``tut.finish()`` at the end to write ``summary.json``.

Settings come from the command line (``--quick``, ``--out DIR``, ``--seed N``,
``--formats png,svg``, ``--threads N``: torch intra-op threads, default 1) or,
when the script runs where there is no command line of its own (a notebook, a
documentation build), from the environment variables ``VITOOLKIT_QUICK``,
``VITOOLKIT_OUT``, ``VITOOLKIT_SEED``, ``VITOOLKIT_FORMATS`` and
``VITOOLKIT_THREADS``. Unknown command-line arguments (a Jupyter kernel's) are
ignored.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Tutorial", "to_jsonable"]

_TRUE = {"1", "true", "yes", "on"}


def to_jsonable(value: Any) -> Any:
    """Convert tensors, arrays and NumPy scalars into JSON-ready Python values.

    Non-finite floats become the strings ``"nan"``, ``"inf"`` or ``"-inf"``, so
    the summary stays valid JSON and a reader sees them rather than losing them.
    """
    try:
        import torch

        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()] if value.ndim else to_jsonable(value.item())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


class Tutorial:
    """Settings, outputs and the summary of one tutorial run.

    Parameters
    ----------
    name : str
        The tutorial's name, ``NN_name`` (the file name without ``.py``).
    argv : list of str, optional
        Command-line arguments; defaults to ``sys.argv[1:]``.
    """

    def __init__(self, name: str, argv: list[str] | None = None):
        parser = argparse.ArgumentParser(prog=f"{name}.py", add_help=True)
        parser.add_argument("--quick", action="store_true", help="small setting for CI")
        parser.add_argument("--out", default=None, help="output folder")
        parser.add_argument("--seed", type=int, default=None, help="random seed")
        parser.add_argument("--formats", default=None, help="figure formats, e.g. png,svg")
        parser.add_argument("--threads", type=int, default=None,
                            help="torch intra-op threads (default 1)")
        args, _unknown = parser.parse_known_args(sys.argv[1:] if argv is None else argv)

        env = os.environ
        self.name = name
        self.quick = bool(args.quick) or env.get("VITOOLKIT_QUICK", "").lower() in _TRUE
        seed = args.seed if args.seed is not None else env.get("VITOOLKIT_SEED", 0)
        try:
            self.seed = int(seed)
        except ValueError as err:
            raise ValueError(f"seed must be an integer, got {seed!r}") from err
        out = args.out or env.get("VITOOLKIT_OUT") or os.path.join("results", name)
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        formats = args.formats or env.get("VITOOLKIT_FORMATS", "png")
        self.formats = [f.strip().lower() for f in formats.split(",") if f.strip()]
        unknown = set(self.formats) - {"png", "svg", "pdf"}
        if unknown:
            raise ValueError(f"formats must be among png, svg, pdf; got {sorted(unknown)}")
        threads = args.threads if args.threads is not None else env.get("VITOOLKIT_THREADS", 1)
        try:
            self.threads = int(threads)
        except ValueError as err:
            raise ValueError(f"threads must be a positive integer, got {threads!r}") from err
        if self.threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        # The tutorials' models are small: one intra-op thread avoids synchronisation
        # costs that dominate tiny tensor operations. Restored by finish().
        import torch

        self._threads_before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        self.summary: dict[str, Any] = {}
        self.figures: list[str] = []
        self._start = time.perf_counter()
        print(f"# {name}  (quick={self.quick}, seed={self.seed}, out={self.out})")

    # -- randomness -------------------------------------------------------
    def generator(self, offset: int = 0):
        """A fresh ``torch.Generator`` seeded with ``seed + offset``."""
        import torch

        return torch.Generator().manual_seed(self.seed + offset)

    def rng(self, offset: int = 0) -> np.random.Generator:
        """A fresh ``numpy.random.Generator`` seeded with ``seed + offset``."""
        return np.random.default_rng(self.seed + offset)

    def choose(self, quick: Any, full: Any) -> Any:
        """Return ``quick`` in the quick setting, else ``full``."""
        return quick if self.quick else full

    # -- outputs ----------------------------------------------------------
    def record(self, name: str, value: Any, fmt: str | None = None) -> Any:
        """Print a key number and keep it for ``summary.json``; return ``value``."""
        value_json = to_jsonable(value)
        self.summary[name] = value_json
        if fmt is not None and isinstance(value_json, (int, float)):
            shown = format(value_json, fmt)
        else:
            shown = value_json
        print(f"{name} = {shown}")
        return value

    def savefig(self, fig, name: str) -> list[Path]:
        """Save ``fig`` as ``<out>/<name>.<fmt>`` for each format; return the paths."""
        paths = []
        for fmt in self.formats:
            path = self.out / f"{name}.{fmt}"
            fig.savefig(path, dpi=150, bbox_inches="tight")
            paths.append(path)
        self.figures.append(name)
        print(f"[figure] {paths[0]}")
        return paths

    def finish(self) -> Path:
        """Write ``summary.json`` (key numbers, figure names, settings) atomically."""
        payload = {
            "tutorial": self.name,
            "quick": self.quick,
            "seed": self.seed,
            "seconds": round(time.perf_counter() - self._start, 3),
            "figures": self.figures,
            "numbers": self.summary,
        }
        path = self.out / "summary.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False))
        os.replace(tmp, path)
        print(f"[summary] {path}")
        import torch

        torch.set_num_threads(self._threads_before)
        return path
