"""Benchmark vitoolkit.fitting against scipy.optimize on the same objectives.

Reference: ``scipy.optimize.minimize(method="L-BFGS-B")`` with finite-difference
gradients, minimising the same divergences written in NumPy on the same
trapezoidal grid, from the same starting point. Reported per case: CPU time
(``time.process_time``, median of ``--repeats`` runs; CPU time rather than wall
time so that other load on a shared machine does not count), objective
evaluations, the ratio of times
(vitoolkit / scipy) and the largest parameter difference between the two fits.
Also checked against closed forms (Bishop PRML 10.1.2): the mean-field variances.

Run: ``python benchmarks/bench_fitting.py [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch
from scipy.optimize import minimize
from scipy.special import logsumexp

from vitoolkit.divergences import evaluate_on_grid, grid_divergence, make_grid
from vitoolkit.fitting import (
    Ring,
    bimodal_1d,
    correlated_gaussian,
    fit_alpha_sweep,
    fit_gaussian,
    mixture_2d,
)


def _unpack(theta, d, family):
    loc = theta[:d]
    if family == "diagonal":
        return loc, np.diag(np.exp(theta[d:2 * d]))
    tril = np.zeros((d, d))
    tril[np.tril_indices(d)] = theta[d:]
    tril[np.diag_indices(d)] = np.exp(np.diag(tril))
    return loc, tril


def _pack(loc, tril, family):
    d = len(loc)
    if family == "diagonal":
        return np.concatenate([loc, np.log(np.diag(tril))])
    t = tril.copy()
    t[np.diag_indices(d)] = np.log(np.diag(t))
    return np.concatenate([loc, t[np.tril_indices(d)]])


def scipy_fit(target, divergence, alpha, family, bounds, num_points, loc0, tril0):
    """The reference: the same grid objective in NumPy, minimised by scipy's L-BFGS-B."""
    grid = make_grid(bounds, num_points)
    d = len(bounds)
    pts = grid.points.reshape(-1, d).numpy()
    log_w = grid.log_weights().numpy()
    log_p = evaluate_on_grid(target, grid).double().numpy().reshape(-1)
    mass = np.exp(log_p + log_w)

    def log_q(theta):
        loc, tril = _unpack(theta, d, family)
        white = np.linalg.solve(tril, (pts - loc).T).T
        return (-0.5 * (white**2).sum(-1) - np.log(np.diag(tril)).sum()
                - 0.5 * d * math.log(2 * math.pi))

    def objective(theta):
        lq = log_q(theta)
        if divergence == "reverse":
            return float((np.exp(lq + log_w) * (lq - log_p)).sum())
        if divergence == "forward":
            return float((mass * (log_p - lq)).sum())
        return float(-logsumexp(alpha * log_p + (1 - alpha) * lq + log_w) / (alpha * (1 - alpha)))

    res = minimize(objective, _pack(np.asarray(loc0, float), np.asarray(tril0, float), family),
                   method="L-BFGS-B", options={"maxiter": 500, "ftol": 1e-15, "gtol": 1e-10})
    loc, tril = _unpack(res.x, d, family)
    return loc, tril @ tril.T, res.nfev


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.process_time()
        out = fn()
        times.append(time.process_time() - t0)
    return statistics.median(times), out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the scipy reference is single-threaded too
    fit_gaussian(bimodal_1d(4.0), "reverse")  # warm-up (torch's first-call costs)

    rows = []
    cases = [
        ("1-D bimodal s=6, reverse", bimodal_1d(6.0), "reverse", None, "full"),
        ("1-D bimodal s=6, forward", bimodal_1d(6.0), "forward", None, "full"),
        ("1-D bimodal s=6, alpha=0.5", bimodal_1d(6.0), "alpha", 0.5, "full"),
        ("2-D rho=0.9 mean-field, reverse", correlated_gaussian(0.9), "reverse", None, "diagonal"),
        ("2-D rho=0.9 mean-field, forward", correlated_gaussian(0.9), "forward", None, "diagonal"),
        ("2-D 3 modes, alpha=0.5", mixture_2d(3), "alpha", 0.5, "full"),
        ("2-D ring, reverse", Ring(), "reverse", None, "full"),
    ]
    for name, target, div, alpha, family in cases:
        dim = 1 if tuple(target.event_shape) == () else target.event_shape[0]
        loc0 = np.full(dim, 2.5 if dim == 1 else 1.0)
        init = {"loc": torch.tensor(loc0) if dim > 1 else float(loc0[0]), "scale": 1.0}
        kwargs = dict(alpha=alpha, family=family, init=init, value_samples=0)
        if div == "forward":
            kwargs["method"] = "quadrature"
        t_vt, fit = timed(lambda t=target, d=div, k=kwargs: fit_gaussian(t, d, **k), args.repeats)
        bounds = [(float(a), float(b)) for a, b in _bounds(target)]
        npts = 801 if dim == 1 else 101
        t_sp, (loc, cov, nfev) = timed(
            lambda t=target, d=div, a=alpha, f=family, b=bounds, n=npts, lo=loc0:
            scipy_fit(t, d, a, f, b, n, lo, np.eye(len(lo))), args.repeats)
        fit_cov = fit.covariance.reshape(dim, dim).numpy()
        diff = max(np.abs(fit.loc.reshape(-1).numpy() - loc).max(), np.abs(fit_cov - cov).max())
        ref = _as_distribution(loc, cov, dim)
        d_div = abs(_divergence(target, fit.distribution, div, alpha, bounds)
                    - _divergence(target, ref, div, alpha, bounds))
        rows.append((name, fit.method, t_vt, fit.n_evals, t_sp, nfev, diff, d_div))

    print("CPU seconds (time.process_time), median of", args.repeats, "runs")
    print(f"{'case':<34}{'method':>11}{'vitoolkit s':>12}{'evals':>7}{'scipy s':>10}"
          f"{'evals':>7}{'ratio':>8}{'max|dparam|':>12}{'|d div|':>10}")
    for name, method, t_vt, ev, t_sp, nfev, diff, d_div in rows:
        print(f"{name:<34}{method:>11}{t_vt:>12.4f}{ev:>7d}{t_sp:>10.4f}{nfev:>7d}"
              f"{t_vt / t_sp:>8.2f}{diff:>12.2e}{d_div:>10.1e}")
    print("(ratio = vitoolkit time / scipy time; |d div| = difference of the two optima's "
          "divergence, by fine quadrature. The ring's optima form a circle: the two fits sit at "
          "different angles with the same divergence.)")

    # the alpha sweep: >= 9 alphas on three 2-D targets
    alphas = [-1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0]
    sweep = [("correlated (mean-field)", correlated_gaussian(0.9), "diagonal"),
             ("two modes", mixture_2d(2, radius=2.5, scale=0.7, weights=[0.4, 0.6]), "full"),
             ("ring", Ring(), "full")]
    print(f"\nalpha sweep, {len(alphas)} alphas x {len(sweep)} 2-D targets")
    print(f"{'target':<26}{'warm s':>9}{'evals':>7}{'cold s':>9}{'evals':>7}{'warm/cold':>11}")
    total_warm = total_cold = 0.0
    for name, target, family in sweep:
        # one start per fit on both sides (n_init=1), so warm/cold compares like with like
        t_w, fw = timed(lambda t=target, f=family: fit_alpha_sweep(t, alphas, family=f, n_init=1,
                                                                   value_samples=0), 1)
        t_c, fc = timed(lambda t=target, f=family: [fit_gaussian(t, "alpha", alpha=a, family=f,
                                                                 n_init=1, value_samples=0)
                                                    for a in alphas], 1)
        ew, ec = sum(f.n_evals for f in fw), sum(f.n_evals for f in fc)
        total_warm += t_w
        total_cold += t_c
        print(f"{name:<26}{t_w:>9.3f}{ew:>7d}{t_c:>9.3f}{ec:>7d}{t_w / t_c:>11.2f}")
    print(f"{'total':<26}{total_warm:>9.3f}{'':>7}{total_cold:>9.3f}")
    print(f"CPU seconds for the whole benchmark so far: {time.process_time():.2f}")

    # closed forms (Bishop PRML 10.1.2)
    p = correlated_gaussian(0.9)
    rev = fit_gaussian(p, "reverse", family="diagonal")
    fwd = fit_gaussian(p, "forward", family="diagonal", method="quadrature")
    print("\nBishop 10.1.2, rho=0.9: |reverse var - 0.19| = "
          f"{abs(float(rev.covariance[0, 0]) - 0.19):.1e}, |forward var - 1| = "
          f"{abs(float(fwd.covariance[0, 0]) - 1):.1e}, |KL - (-1/2 log(1-rho^2))| = "
          f"{abs(rev.value + 0.5 * math.log(1 - 0.81)):.1e}")


def _as_distribution(loc, cov, dim):
    loc, cov = torch.as_tensor(loc), torch.as_tensor(cov)
    if dim == 1:
        return torch.distributions.Normal(loc[0], cov[0, 0].sqrt())
    return torch.distributions.MultivariateNormal(loc, covariance_matrix=cov)


def _divergence(target, q, div, alpha, bounds):
    n = 4001 if len(bounds) == 1 else 401
    if div == "reverse":
        return float(grid_divergence(q, target, "kl", bounds=bounds, num_points=n))
    if div == "forward":
        return float(grid_divergence(target, q, "kl", bounds=bounds, num_points=n))
    return float(grid_divergence(target, q, "alpha", alpha=alpha, bounds=bounds, num_points=n))


def _bounds(target):
    if hasattr(target, "quadrature_bounds"):
        return target.quadrature_bounds
    from vitoolkit.fitting import target_moments

    mean, cov = target_moments(target)
    sd = torch.diagonal(cov).sqrt()
    return [(float(m - 7 * s), float(m + 7 * s)) for m, s in zip(mean, sd, strict=True)]


if __name__ == "__main__":
    main()
