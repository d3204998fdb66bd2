"""Speed of the Mohamed et al. (2020) variance sweep: vitoolkit vs a per-sample loop vs Pyro.

The full sweep of the paper's figures 2-3: 3 costs x 4 estimators (score, pathwise,
measure-valued, coupled measure-valued) x 2 parameters (mu, sigma) x 25 values of k,
1e5 samples each, per-sample estimates kept (so variances can be computed).

Compared in the same run:

1. ``vitoolkit.gradients.experiments.mohamed_sweep`` (one batched call per cost and
   estimator; both parameters from the same call).
2. The straightforward loop a user would write: one autograd backward pass per sample
   (score, pathwise) or four scalar cost evaluations per sample (measure-valued). It
   is timed on a subset of samples and extrapolated to the full sweep (said in the output).
3. Pyro's ``Trace_ELBO`` (pathwise) and ``TraceGraph_ELBO`` with a non-reparameterised
   guide (score function) with vectorised particles, for the same number of particles,
   over the score and pathwise part of the sweep (Pyro has no measure-valued
   estimator). Pyro returns only the averaged gradient, not per-sample estimates.

4. ``--part core``: the rest of the package's hot paths, each timed alone (ELBO
   gradients of the conjugate model for every estimator, black-box VI runs, the
   discrete estimators, the exact gradients), the minimum CPU time of ``--repeats``
   runs, so the figures can be compared across versions of the package
   (``PYTHONPATH=<old checkout> python benchmarks/bench_gradients.py --part core``).

All methods run with one intra-op thread (fair to the per-sample loop, whose tiny
operations are slowed by thread hand-offs on a shared machine). Times are CPU
seconds of this process (``time.process_time``), which a busy shared machine
disturbs less than wall time.

Run: ``python benchmarks/bench_gradients.py [--part sweep|core|all] [--samples N] [--subset M]``.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from vitoolkit.gradients import exact_gaussian_gradient, make_cost
from vitoolkit.gradients.experiments import MOHAMED_COSTS, MOHAMED_ESTIMATORS, mohamed_sweep

SQRT_2PI = math.sqrt(2 * math.pi)


def naive_per_sample(cost, estimator, mu, sigma, n, gen):
    """One scalar computation (and backward pass) per sample, as a user would write it."""
    out = []
    for _ in range(n):
        m = torch.tensor(mu, dtype=torch.float64, requires_grad=True)
        s = torch.tensor(sigma, dtype=torch.float64, requires_grad=True)
        if estimator == "pathwise":
            eps = torch.randn((), generator=gen, dtype=torch.float64)
            f = cost((m + s * eps).reshape(1))
            out.append(torch.autograd.grad(f, (m, s)))
        elif estimator == "score":
            x = (m + s * torch.randn((), generator=gen, dtype=torch.float64)).detach()
            log_q = torch.distributions.Normal(m, s).log_prob(x)
            g_m, g_s = torch.autograd.grad(log_q, (m, s))
            f = cost(x.reshape(1))
            out.append((f * g_m, f * g_s))
        else:
            coupled = estimator == "measure_valued_coupled"
            u = torch.rand(4, generator=gen, dtype=torch.float64)
            r1 = math.sqrt(-2 * math.log1p(-float(u[0])))
            r2 = r1 if coupled else math.sqrt(-2 * math.log1p(-float(u[1])))
            g_m = (cost(torch.tensor([mu + sigma * r1], dtype=torch.float64))
                   - cost(torch.tensor([mu - sigma * r2], dtype=torch.float64))) / (sigma * SQRT_2PI)
            maxwell = float(torch.randn(3, generator=gen, dtype=torch.float64).norm())
            maxwell *= 1.0 if float(u[2]) < 0.5 else -1.0
            eps = maxwell * float(u[3]) if coupled else float(torch.randn((), generator=gen))
            g_s = (cost(torch.tensor([mu + sigma * maxwell], dtype=torch.float64))
                   - cost(torch.tensor([mu + sigma * eps], dtype=torch.float64))) / sigma
            out.append((g_m, g_s))
    return out


def pyro_gradient(cost, mu, sigma, num_particles, score):
    """Pyro's gradient of -ELBO for guide N(mu, sigma), model N(0, 10^2) with factor f(x)."""
    import pyro
    import pyro.distributions as dist
    from pyro.infer import Trace_ELBO, TraceGraph_ELBO

    pyro.clear_param_store()

    def model():
        x = pyro.sample("x", dist.Normal(torch.tensor(0.0, dtype=torch.float64), 10.0))
        pyro.factor("cost", cost(x.unsqueeze(-1)))

    def guide():
        loc = pyro.param("loc", torch.tensor(mu, dtype=torch.float64))
        scale = pyro.param("scale", torch.tensor(sigma, dtype=torch.float64),
                           constraint=dist.constraints.positive)
        d = dist.Normal(loc, scale)
        if score:
            d = d.has_rsample_(False)  # force the score-function (REINFORCE) path
        pyro.sample("x", d)

    elbo_cls = TraceGraph_ELBO if score else Trace_ELBO
    elbo = elbo_cls(num_particles=num_particles, vectorize_particles=True, max_plate_nesting=0)
    guide()  # create the parameters
    params = [pyro.param("loc").unconstrained(), pyro.param("scale").unconstrained()]
    elbo.loss_and_grads(model, guide)  # gradients of -ELBO land in .grad
    grads = [p.grad for p in params]
    # d/d scale from d/d log scale (positive constraint = exp transform).
    return -grads[0], -grads[1] / pyro.param("scale").detach()


def _cpu_time(fn, repeats):
    best = math.inf
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def core_workloads():
    """(name, callable) pairs for the package's hot paths outside the Mohamed sweep."""
    from vitoolkit.gradients.bbvi import BayesianLogisticRegression, ConjugateGaussianModel, run_bbvi
    from vitoolkit.gradients.discrete import discrete_gradients, exact_discrete_gradient
    from vitoolkit.gradients.elbo import elbo_gradients

    def gen(seed=0):
        return torch.Generator().manual_seed(seed)

    data = 1.5 + torch.randn((20, 2), generator=gen(1), dtype=torch.float64)
    conj = ConjugateGaussianModel(data, prior_loc=0.3, prior_scale=2.0, noise_scale=1.2)
    logreg = BayesianLogisticRegression.synthetic(100, 2, generator=gen(2),
                                                  reference_samples=50_000, seed=1)
    loc = torch.tensor([0.5, 2.0], dtype=torch.float64)
    scale = torch.tensor([0.6, 0.3], dtype=torch.float64)
    logits = torch.tensor([[0.3, -0.5, 1.0, 0.2], [-1.0, 0.0, 0.5, 2.0]], dtype=torch.float64)
    target = torch.tensor([0.45, 0.2, 0.9, 0.6], dtype=torch.float64)

    def bits(b):
        return ((b - target) ** 2).sum(-1) + 2.0 * b[..., 0] * b[..., -1]

    rows = [(f"elbo_gradients {e}, 200k draws", lambda e=e: elbo_gradients(
        conj.log_joint, loc, scale, estimator=e, num_samples=200_000, generator=gen()))
        for e in ("pathwise", "stl", "score", "score_baseline")]
    rows += [(f"run_bbvi conjugate {e}, 300 it x 8", lambda e=e: run_bbvi(
        conj, estimator=e, num_iterations=300, num_samples=8, generator=gen()))
        for e in ("stl", "score_baseline")]
    rows.append(("run_bbvi logistic pathwise, 200 it x 8", lambda: run_bbvi(
        logreg, estimator="pathwise", num_iterations=200, num_samples=8, generator=gen())))
    rows.append(("BayesianLogisticRegression(200k reference draws)", lambda: (
        BayesianLogisticRegression.synthetic(100, 2, generator=gen(2), reference_samples=200_000))))
    rows.append(("ConjugateGaussianModel + log_evidence x 1000", lambda: [
        ConjugateGaussianModel(data, prior_scale=2.0).log_evidence() for _ in range(1000)]))
    for fam in ("bernoulli", "categorical"):
        for est in ("score_loo", "gumbel_softmax"):
            rows.append((f"discrete_gradients {fam} {est}, 200k", lambda fam=fam, est=est: (
                discrete_gradients(bits, logits, family=fam, estimator=est, num_samples=200_000,
                                   generator=gen(), temperature=0.5))))
    rows.append(("exact_discrete_gradient bernoulli D=4 x 200", lambda: [
        exact_discrete_gradient(bits, logits, family="bernoulli") for _ in range(200)]))
    rows.append(("gaussian_gradients pathwise 1-D, 20 draws x 2000 calls", lambda: [
        gaussian_gradients_small() for _ in range(2000)]))
    return rows


def gaussian_gradients_small():
    from vitoolkit.gradients import Quadratic, gaussian_gradients

    return gaussian_gradients(Quadratic(1.0), [0.5], [1.0], estimator="pathwise", num_samples=20)


def run_core(repeats):
    import vitoolkit

    print(f"core workloads (package at {vitoolkit.__file__}), min CPU seconds of {repeats} runs")
    rows = core_workloads()
    for _name, fn in rows:
        fn()  # warm-up
    total = 0.0
    for name, fn in rows:
        t = _cpu_time(fn, repeats)
        total += t
        print(f"  {name:58s} {t:8.4f}")
    print(f"  {'total':58s} {total:8.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("sweep", "core", "all"), default="all")
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--subset", type=int, default=2_000,
                        help="samples timed per estimator for the per-sample loop")
    parser.add_argument("--repeats", type=int, default=3, help="runs per core workload")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.part in ("core", "all"):
        run_core(args.repeats)
    if args.part == "core":
        return
    ks = np.geomspace(0.1, 10.0, 25)
    n = args.samples
    configs = len(MOHAMED_COSTS) * len(MOHAMED_ESTIMATORS) * len(ks)
    print(f"sweep: {len(MOHAMED_COSTS)} costs x {len(MOHAMED_ESTIMATORS)} estimators x 2 params "
          f"x {len(ks)} k, {n} samples each (torch {torch.__version__}, 1 thread)")

    # 1. vitoolkit
    mohamed_sweep(ks[:2], num_samples=1000)  # warm-up
    t0 = time.process_time()
    sweep = mohamed_sweep(ks, num_samples=n, generator=torch.Generator().manual_seed(0))
    t_ours = time.process_time() - t0
    sp_costs = ("score", "pathwise")
    t0 = time.process_time()
    mohamed_sweep(ks, estimators=sp_costs, num_samples=n, generator=torch.Generator().manual_seed(0))
    t_ours_sp = time.process_time() - t0

    # 2. per-sample loop, timed on a subset and extrapolated
    per_sample = {}
    gen = torch.Generator().manual_seed(1)
    for est in MOHAMED_ESTIMATORS:
        times = []
        for name in MOHAMED_COSTS:
            cost = make_cost(name, 1.0)
            t0 = time.process_time()
            naive_per_sample(cost, est, 1.0, 1.0, args.subset, gen)
            times.append((time.process_time() - t0) / args.subset)
        per_sample[est] = float(np.mean(times))
    t_naive = sum(per_sample.values()) * n * len(ks) * len(MOHAMED_COSTS)
    t_naive_sp = sum(per_sample[e] for e in sp_costs) * n * len(ks) * len(MOHAMED_COSTS)

    # 3. Pyro, score and pathwise part of the sweep, same number of particles
    try:
        import pyro  # noqa: F401

        have_pyro = True
    except ImportError:
        have_pyro = False
    if have_pyro:
        errors = []
        t0 = time.process_time()
        for name in MOHAMED_COSTS:
            for k in ks:
                cost = make_cost(name, float(k))
                for score in (True, False):
                    g_loc, g_scale = pyro_gradient(cost, 1.0, 1.0, n, score)
                    if not score:
                        # -ELBO's gradient: d/dtheta E f - E log p0 terms - entropy.
                        e_loc, e_scale = exact_gaussian_gradient(cost, [1.0], [1.0])
                        errors.append(abs(float(g_loc) - (float(e_loc[0]) - 1.0 / 100)))
                        errors.append(abs(float(g_scale) - (float(e_scale[0]) - 1.0 / 100 + 1.0)))
        t_pyro = time.process_time() - t0
        pyro_note = f"max |Pyro pathwise - exact| over the sweep = {max(errors):.3g}"

    bias = max(float(np.max(np.abs(np.asarray(c["mean"][e][p]) - c["exact"][p])
                            / np.asarray(c["stderr"][e][p])))
               for c in sweep.values() for e in c["mean"] for p in ("loc", "scale"))
    print(f"check: largest |bias| of any vitoolkit estimate = {bias:.2f} standard errors")
    print()
    print(f"{'method':58s} {'CPU s':>10s} {'ratio to vitoolkit':>19s}")
    rows = [
        ("vitoolkit.mohamed_sweep (all 4 estimators)", t_ours, t_ours),
        (f"per-sample loop, all 4 (extrapolated from {args.subset}/est/cost)", t_naive, t_ours),
        ("vitoolkit, score + pathwise only", t_ours_sp, t_ours_sp),
        ("per-sample loop, score + pathwise (extrapolated)", t_naive_sp, t_ours_sp),
    ]
    if have_pyro:
        rows.append(("Pyro Trace_ELBO + TraceGraph_ELBO, vectorised", t_pyro, t_ours_sp))
    for name, t, ref in rows:
        print(f"{name:58s} {t:10.2f} {t / ref:19.1f}")
    print()
    print("per-sample loop, seconds per sample: "
          + ", ".join(f"{e} {v * 1e6:.0f} us" for e, v in per_sample.items()))
    print(f"configurations: {configs} (x 2 parameters each)")
    if have_pyro:
        print(pyro_note + " (Pyro returns only the mean gradient, not per-sample estimates)")
    else:
        print("Pyro not installed: skipped")


if __name__ == "__main__":
    main()
