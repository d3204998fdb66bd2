"""Resident-memory growth of ``CategoricalVAE.log_likelihood`` against its memory guard.

Issue 24: a guard must count at least what the call really allocates. For each
configuration this script runs the call once, reads the peak resident set (VmHWM of
``/proc/self/status``, reset through ``/proc/self/clear_refs`` before the call; Linux only)
and prints its growth next to the largest figure the guard passed to ``check_memory``.
Each configuration runs in a fresh process (memory freed by an earlier call stays resident
in the allocator and would hide the next call's growth).
A ratio (counted / growth) of at least 1 means the guard's estimate is an upper bound.

Run: ``python benchmarks/measure_categorical_memory.py`` (about two minutes on one core).
"""

from __future__ import annotations

import subprocess
import sys
import time

import torch

import vitoolkit.vae.categorical as categorical
from vitoolkit.vae import CategoricalVAE

#: (k, n, hidden_dims, num_latents, num_categories, data_dim)
CONFIGS = [
    (2**22, 1, (8,), 2, 3, 6),
    (2**25, 1, (8,), 2, 3, 6),  # streamed
    (2**20, 4, (32, 16), 3, 4, 20),
    (2**23, 3, (64,), 2, 10, 30),  # streamed
    (100_000, 300, (16,), 4, 3, 50),  # streamed, several examples per pass
]


def _peak_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def measure(k, n, hidden, num_latents, num_categories, data_dim) -> tuple[int, int]:
    """(resident growth, bytes the guard counted) of one log_likelihood call."""
    model = CategoricalVAE(data_dim, num_latents, num_categories, hidden_dims=hidden, seed=0)
    x = (torch.rand(n, data_dim, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    model.log_likelihood(x, 64, generator=torch.Generator().manual_seed(1))  # warm up
    counted = []
    real = categorical.check_memory

    def spy(nbytes, *args, **kwargs):
        counted.append(nbytes)
        return real(nbytes, *args, **kwargs)

    categorical.check_memory = spy
    try:
        _reset_peak()
        base = _peak_rss()
        model.log_likelihood(x, k, generator=torch.Generator().manual_seed(1))
        return _peak_rss() - base, max(counted)
    finally:
        categorical.check_memory = real


def run_one(index: int) -> None:
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    grown, counted = measure(*CONFIGS[index])
    k, n, hidden, lat, cat, dim = CONFIGS[index]
    print(f"k={k} n={n} hidden={hidden} L={lat} C={cat} D={dim}: resident growth "
          f"{grown / 2**20:.1f} MiB, guard {counted / 2**20:.1f} MiB, ratio "
          f"{counted / max(grown, 1):.2f} ({time.perf_counter() - t0:.1f} s)", flush=True)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        run_one(int(sys.argv[2]))
        return
    for index in range(len(CONFIGS)):
        subprocess.run([sys.executable, __file__, "--one", str(index)], check=True)


if __name__ == "__main__":
    main()
