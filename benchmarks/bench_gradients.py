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

All methods run with one intra-op thread (fair to the per-sample loop, whose tiny
operations are slowed by thread hand-offs on a shared machine).

Run: ``python benchmarks/bench_gradients.py [--samples N] [--subset M]``.
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--subset", type=int, default=2_000,
                        help="samples timed per estimator for the per-sample loop")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ks = np.geomspace(0.1, 10.0, 25)
    n = args.samples
    configs = len(MOHAMED_COSTS) * len(MOHAMED_ESTIMATORS) * len(ks)
    print(f"sweep: {len(MOHAMED_COSTS)} costs x {len(MOHAMED_ESTIMATORS)} estimators x 2 params "
          f"x {len(ks)} k, {n} samples each (torch {torch.__version__}, 1 thread)")

    # 1. vitoolkit
    mohamed_sweep(ks[:2], num_samples=1000)  # warm-up
    t0 = time.perf_counter()
    sweep = mohamed_sweep(ks, num_samples=n, generator=torch.Generator().manual_seed(0))
    t_ours = time.perf_counter() - t0
    sp_costs = ("score", "pathwise")
    t0 = time.perf_counter()
    mohamed_sweep(ks, estimators=sp_costs, num_samples=n, generator=torch.Generator().manual_seed(0))
    t_ours_sp = time.perf_counter() - t0

    # 2. per-sample loop, timed on a subset and extrapolated
    per_sample = {}
    gen = torch.Generator().manual_seed(1)
    for est in MOHAMED_ESTIMATORS:
        times = []
        for name in MOHAMED_COSTS:
            cost = make_cost(name, 1.0)
            t0 = time.perf_counter()
            naive_per_sample(cost, est, 1.0, 1.0, args.subset, gen)
            times.append((time.perf_counter() - t0) / args.subset)
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
        t0 = time.perf_counter()
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
        t_pyro = time.perf_counter() - t0
        pyro_note = f"max |Pyro pathwise - exact| over the sweep = {max(errors):.3g}"

    bias = max(float(np.max(np.abs(np.asarray(c["mean"][e][p]) - c["exact"][p])
                            / np.asarray(c["stderr"][e][p])))
               for c in sweep.values() for e in c["mean"] for p in ("loc", "scale"))
    print(f"check: largest |bias| of any vitoolkit estimate = {bias:.2f} standard errors")
    print()
    print(f"{'method':58s} {'seconds':>10s} {'ratio to vitoolkit':>19s}")
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
