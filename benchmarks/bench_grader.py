"""Benchmark: the exercise grader, isolated (a child process per submission) against in-process.

Run: ``python benchmarks/bench_grader.py [--n 100] [--timeout 2] [--exercise iwae_bound] [--json FILE]``.

Writes a folder of ``--n`` submissions of one exercise (by default 100 of ``iwae_bound``:
70 correct ones written five ways, 25 wrong ones (five known mistakes), 5 that never return),
then, in this one run:

- ``in-process``: each non-hanging submission loaded in this process
  (:func:`vitoolkit.exercises.load_function`) and graded with ``check(..., isolate=False)``,
  the grader as it was before isolation (a hanging one would never return, so they are left out);
- ``isolated``: the whole folder graded by :func:`vitoolkit.exercises.batch.grade_folder`
  (what ``vitoolkit exercise grade`` does), each submission in its own child process
  with the time limit ``--timeout``; the fork server is started first and timed on its own
  (a one-off cost per grading session).

It prints the time per submission and per check (median over the non-hanging submissions),
the batch time, and the isolated / in-process ratios. The machine's load
(``os.getloadavg``) is printed with the table: on a shared machine compare the ratios within
one run, not absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import textwrap
import time
from pathlib import Path

CORRECT = [
    "import math\nimport torch\n\ndef iwae_bound(log_weights):\n"
    "    return torch.logsumexp(log_weights, 0) - math.log(log_weights.shape[0])\n",
    "import torch\n\ndef iwae_bound(log_weights):\n"
    "    return torch.logsumexp(log_weights, dim=0) - torch.log(torch.tensor(log_weights.shape[0]))\n",
    "import numpy as np\n\ndef iwae_bound(log_weights):\n    lw = np.asarray(log_weights)\n"
    "    top = lw.max(0)\n    return top + np.log(np.mean(np.exp(lw - top), axis=0))\n",
    "import math\n\ndef iwae_bound(log_weights):\n    lw = log_weights.float()\n"
    "    return lw.logsumexp(0) - math.log(lw.shape[0])\n",
    "import math\nimport torch\n\ndef iwae_bound(log_weights):\n    m = log_weights.max(0).values\n"
    "    return m + torch.log(torch.exp(log_weights - m).sum(0)) - math.log(len(log_weights))\n",
]
WRONG = [
    "def iwae_bound(log_weights):\n    return log_weights.mean(0)\n",
    "import torch\n\ndef iwae_bound(log_weights):\n    return torch.logsumexp(log_weights, 0)\n",
    "import math\nimport torch\n\ndef iwae_bound(log_weights):\n"
    "    return torch.logsumexp(log_weights, 0) - math.log(log_weights.shape[1])\n",
    "import torch\n\ndef iwae_bound(log_weights):\n    return torch.log(torch.exp(log_weights).mean(0))\n",
    "def iwae_bound(log_weights):\n    return log_weights.max(0).values\n",
]
HANG = "def iwae_bound(log_weights):\n    while True:\n        pass\n"


def write_class(folder: Path, n: int) -> dict[str, str]:
    """``n`` submissions in ``folder``: 70% correct, 25% wrong, 5% hanging; returns stem -> kind."""
    kinds = {}
    n_hang = max(1, round(0.05 * n))
    n_wrong = round(0.25 * n)
    for i in range(n):
        if i < n_hang:
            kind, source = "hang", HANG
        elif i < n_hang + n_wrong:
            kind, source = "wrong", WRONG[i % len(WRONG)]
        else:
            kind, source = "correct", CORRECT[i % len(CORRECT)]
        stem = f"student_{i:03d}"
        (folder / f"{stem}.py").write_text(textwrap.dedent(source))
        kinds[stem] = kind
    return kinds


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="number of submissions (default 100)")
    parser.add_argument("--timeout", type=float, default=2.0, help="time limit per submission, s (default 2)")
    parser.add_argument("--exercise", default="iwae_bound", help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)

    from vitoolkit.exercises import check, check_file, load_function
    from vitoolkit.exercises.batch import grade_folder

    seed = 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "class"
        folder.mkdir()
        kinds = write_class(folder, args.n)
        load_before = os.getloadavg()

        # The fork server: started once per grading session (imports torch and the exercises).
        start = time.perf_counter()
        check_file(args.exercise, folder / "student_099.py" if args.n > 99 else next(
            folder / f"{s}.py" for s, k in kinds.items() if k != "hang"), seed=seed, timeout=60)
        server_start = time.perf_counter() - start

        # In-process (the grader before isolation): non-hanging submissions only.
        in_process = {}
        n_checks = []
        for stem, kind in kinds.items():
            if kind == "hang":
                continue
            start = time.perf_counter()
            fn = load_function(folder / f"{stem}.py", args.exercise)
            report = check(args.exercise, fn, seed=seed, isolate=False)
            in_process[stem] = time.perf_counter() - start
            n_checks.append(len(report.checks))

        # Isolated: the whole folder, as `vitoolkit exercise grade` does.
        start = time.perf_counter()
        rows = grade_folder(args.exercise, folder, seed=seed, timeout=args.timeout)
        batch = time.perf_counter() - start
        load_after = os.getloadavg()

    isolated = {r.student: r.seconds for r in rows}
    finished = [s for s, k in kinds.items() if k != "hang"]
    med_in = statistics.median(in_process[s] for s in finished)
    med_iso = statistics.median(isolated[s] for s in finished)
    checks = statistics.median(n_checks)
    hang_total = sum(isolated[s] for s, k in kinds.items() if k == "hang")
    in_total = sum(in_process.values())
    iso_finished_total = sum(isolated[s] for s in finished)
    verdicts_ok = all(r.passed == (kinds[r.student] == "correct") for r in rows)
    figures = {
        "submissions": args.n, "hanging": sum(k == "hang" for k in kinds.values()),
        "wrong": sum(k == "wrong" for k in kinds.values()), "timeout_s": args.timeout,
        "checks_per_submission": checks, "fork_server_start_s": round(server_start, 3),
        "in_process_per_submission_s": round(med_in, 4), "isolated_per_submission_s": round(med_iso, 4),
        "in_process_per_check_s": round(med_in / checks, 5),
        "isolated_per_check_s": round(med_iso / checks, 5),
        "ratio_per_submission": round(med_iso / med_in, 2),
        "in_process_batch_without_hangs_s": round(in_total, 2),
        "isolated_batch_without_hangs_s": round(iso_finished_total, 2),
        "ratio_batch_without_hangs": round(iso_finished_total / in_total, 2),
        "isolated_batch_s": round(batch, 2), "hangs_s": round(hang_total, 2),
        "verdicts_as_expected": verdicts_ok, "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
    }
    print(f"machine load (1, 5, 15 min): before {figures['load_before']}, after {figures['load_after']}")
    print(f"{args.n} submissions of {args.exercise} ({figures['wrong']} wrong, {figures['hanging']} hanging; "
          f"{checks:g} checks each; time limit {args.timeout:g} s)")
    print(f"fork server start (once per session): {server_start:.2f} s")
    print(f"{'':28}{'in-process':>12}{'isolated':>12}{'ratio':>8}")
    print(f"{'per submission (median)':28}{med_in:>11.3f}s{med_iso:>11.3f}s{med_iso / med_in:>8.2f}")
    print(f"{'per check (median)':28}{med_in / checks:>11.4f}s{med_iso / checks:>11.4f}s"
          f"{med_iso / med_in:>8.2f}")
    print(f"{'batch, without the hangs':28}{in_total:>11.2f}s{iso_finished_total:>11.2f}s"
          f"{iso_finished_total / in_total:>8.2f}")
    print(f"{'batch of all ' + str(args.n):28}{'(hangs)':>12}{batch:>11.2f}s   "
          f"({hang_total:.1f} s of it in {figures['hanging']} time limits)")
    print(f"verdicts as expected (correct pass, wrong and hanging fail): {verdicts_ok}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
