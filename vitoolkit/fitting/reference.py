r"""Reference posteriors by routes independent of the Gaussian approximations.

An approximation is judged against the posterior itself, found a different way:

- :func:`grid_reference`: numerically exact moments of a 1-D or 2-D unnormalised
  density by the trapezoidal rule on a regular grid (errors far below any Monte Carlo
  error once the grid covers the mass and resolves it).
- :func:`nuts_reference`: draws from any dimension's unnormalised density by the
  No-U-Turn Sampler (Hoffman & Gelman 2014, JMLR 15, algorithm 6, with the
  multinomial trajectory sampling of Betancourt 2017, arXiv:1701.02434) as implemented
  in Pyro (``pyro.infer.NUTS``; Bingham et al. 2019, JMLR 20; pip package
  ``pyro-ppl``, the ``bench`` extra of vitoolkit), with step-size adaptation by dual
  averaging and a diagonal mass matrix adapted during warm-up. Several chains run one
  after the other; the split R-hat and the effective sample size of each coordinate
  come from ``pyro.ops.stats`` (Gelman et al., BDA3, section 11.4-11.5).

NUTS and preconditioning: the sampler may run in whitened coordinates z with
:math:`w = m + L z`, for a (loc m, covariance :math:`L L^\top`) the caller supplies (e.g. a Laplace fit).
An affine change of variables has a constant Jacobian, so the chain targets exactly the
same posterior whatever (m, L) is; a good choice only makes the target nearly isotropic,
so trajectories are short and the warm-up brief (the role of a dense mass matrix,
Neal 2011, "MCMC using Hamiltonian dynamics", section 4.1).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from ..divergences import make_grid
from ..validation import as_float_tensor, check_int, check_seed
from ._checks import as_vector, check_bounds, check_draws_memory, check_grid_memory, check_target
from .objectives import NonFiniteTargetError

__all__ = ["Reference", "GridReference", "nuts_reference", "grid_reference"]

_F64 = torch.float64


@dataclass(frozen=True)
class Reference:
    """Posterior draws and what they say about the posterior.

    Attributes
    ----------
    samples : Tensor of shape (num_chains * num_samples, D), float64
    mean : Tensor of shape (D,)
    covariance : Tensor of shape (D, D)
    ess : Tensor of shape (D,), effective sample size of each coordinate (all chains)
    rhat : Tensor of shape (D,), split R-hat of each coordinate (1 when mixed)
    num_divergences : int, divergent transitions after warm-up (0 when the sampler is
        trusted to have explored the whole posterior)
    num_chains, num_samples, warmup_steps : int
    seconds : float, wall time (warm-up included)
    method : str, "nuts (pyro <version>)"
    """

    samples: torch.Tensor
    mean: torch.Tensor
    covariance: torch.Tensor
    ess: torch.Tensor
    rhat: torch.Tensor
    num_divergences: int
    num_chains: int
    num_samples: int
    warmup_steps: int
    seconds: float
    method: str

    @property
    def std(self) -> torch.Tensor:
        """Marginal standard deviations, shape (D,)."""
        return torch.diagonal(self.covariance).sqrt()

    @property
    def mean_stderr(self) -> torch.Tensor:
        r"""Monte Carlo standard error of ``mean``: :math:`\mathrm{sd} / \sqrt{\mathrm{ESS}}`, shape (D,)."""
        return self.std / self.ess.sqrt()


@dataclass(frozen=True)
class GridReference:
    r"""Moments of a 1-D/2-D density by quadrature on a grid.

    Attributes
    ----------
    mean : Tensor of shape (D,)
    covariance : Tensor of shape (D, D)
    log_normaliser : float, log integral p~ over the grid (the log evidence for a log joint)
    axes : tuple of D Tensors (the grid's coordinates)
    density : Tensor of the grid's shape, the normalised density p~ / Z at the grid points
    points : Tensor of shape (M, D), the grid points (M = num_points^D)
    weights : Tensor of shape (M,), the normalised quadrature weights of the posterior mass:
        :math:`E[f(w)] \approx \sum_m \text{weights}_m f(\text{points}_m)` (what
        :func:`vitoolkit.fitting.logistic.predictive`
        uses for the exact predictive)
    seconds : float
    """

    mean: torch.Tensor
    covariance: torch.Tensor
    log_normaliser: float
    axes: tuple
    density: torch.Tensor
    points: torch.Tensor
    weights: torch.Tensor
    seconds: float

    @property
    def std(self) -> torch.Tensor:
        return torch.diagonal(self.covariance).sqrt()


def grid_reference(target, bounds, num_points: int = 401) -> GridReference:
    r"""Mean, covariance and log normaliser of a 1-D/2-D unnormalised density on a grid.

    .. math::

        Z = \int \tilde p(w) \, dw, \qquad E[w] = \frac1Z \int w \, \tilde p(w) \, dw, \qquad
        \mathrm{Cov}[w] = \frac1Z \int (w - E w)(w - E w)^\top \tilde p(w) \, dw,

    each by the trapezoidal rule on ``num_points`` points per axis over ``bounds``
    (log-sum-exp of log p~ plus the log weights, so no density under- or overflows).

    Parameters
    ----------
    target : torch.distributions.Distribution, event shape (1,) or (2,)
    bounds : list of (lo, hi), one per dimension; must hold essentially all the mass
    num_points : int >= 3

    Returns
    -------
    GridReference
    """
    start = time.perf_counter()
    d = check_target(target, "target", vector_event=True)
    if d > 2:
        raise ValueError(f"target must have event shape (1,) or (2,): grid_reference integrates "
                         f"1-D and 2-D densities, got D={d}; use nuts_reference")
    bounds = check_bounds(bounds, d)
    num_points = check_int(num_points, "num_points", minimum=3)
    check_grid_memory(num_points, d)
    grid = make_grid(bounds, num_points)
    points = grid.points.reshape(-1, d)
    with torch.no_grad():
        log_p = as_float_tensor(target.log_prob(points), "target.log_prob(points)", dtype=_F64,
                                finite=False)
    if tuple(log_p.shape) != (points.shape[0],):
        raise ValueError(f"target.log_prob must return one value per point, shape "
                         f"({points.shape[0]},), got {tuple(log_p.shape)}")
    bad = torch.isnan(log_p) | (log_p == math.inf)
    if bool(bad.any()):
        raise NonFiniteTargetError(
            f"target ({type(target).__name__}).log_prob returned NaN or +inf at {int(bad.sum())} "
            f"of {bad.numel()} grid points (first at w={points[bad][0].tolist()})")
    if not bool(torch.isfinite(log_p).any()):
        raise NonFiniteTargetError(f"target ({type(target).__name__}).log_prob is -inf at every "
                                   "grid point: the bounds miss the mass")
    log_mass = log_p + grid.log_weights()
    log_z = torch.logsumexp(log_mass, 0)
    w = torch.exp(log_mass - log_z)
    mean = (w[:, None] * points).sum(0)
    diff = points - mean
    cov = (w[:, None, None] * diff[:, :, None] * diff[:, None, :]).sum(0)
    if not bool(torch.isfinite(mean).all() and torch.isfinite(cov).all() and torch.isfinite(log_z)):
        raise ValueError(f"bounds={bounds} are too wide: the grid's moments overflow float64")
    density = torch.exp(log_p - log_z).reshape(grid.shape)
    edge = _edge_mass(w.reshape(grid.shape))
    if edge > 1e-6:
        raise ValueError(f"the grid's boundary carries {edge:.2g} of the mass: widen bounds")
    return GridReference(mean=mean, covariance=cov, log_normaliser=float(log_z), axes=grid.axes,
                         density=density, points=points, weights=w,
                         seconds=time.perf_counter() - start)


def _edge_mass(w: torch.Tensor) -> float:
    """Largest total weight on one face of the grid (the mass the bounds may cut off)."""
    faces = []
    for dim in range(w.dim()):
        faces.append(float(w.select(dim, 0).sum()))
        faces.append(float(w.select(dim, -1).sum()))
    return max(faces)


def _pyro():
    try:
        import pyro
        from pyro.infer import MCMC, NUTS
        from pyro.ops.stats import effective_sample_size, split_gelman_rubin
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("nuts_reference needs Pyro: pip install pyro-ppl (or vitoolkit[bench])") from err
    return pyro, MCMC, NUTS, effective_sample_size, split_gelman_rubin


def nuts_reference(target, *, num_samples: int = 1000, warmup_steps: int = 500, num_chains: int = 2,
                   precondition=None, init=None, max_tree_depth: int = 10, seed: int = 0
                   ) -> Reference:
    r"""Draw from ``target`` with Pyro's NUTS (see the module docstring).

    Parameters
    ----------
    target : torch.distributions.Distribution
        Unbatched, event shape (D,), with a differentiable ``log_prob`` (normalised or not).
    num_samples : int
        Draws kept per chain, after ``warmup_steps`` adaptation steps.
    warmup_steps : int
    num_chains : int
        Chains run one after the other (each from ``init``, its own seed), pooled in
        ``samples``; two or more give a meaningful R-hat.
    precondition : tuple (loc (D,), covariance (D, D)), optional
        Run in the coordinates z = L^-1 (w - loc), L L^T = covariance (exact for any
        choice; see the module docstring). Default: none (z = w).
    init : array-like of shape (D,), optional
        Starting point (default ``loc`` of ``precondition``, else zeros).
    max_tree_depth : int
    seed : int
        Pyro samples from torch's global generator; it is seeded with ``seed + chain``
        inside ``torch.random.fork_rng``, so the caller's random state is left untouched.

    Returns
    -------
    Reference
    """
    d = check_target(target, "target", vector_event=True)
    num_samples = check_int(num_samples, "num_samples", minimum=2)
    warmup_steps = check_int(warmup_steps, "warmup_steps", minimum=0)
    num_chains = check_int(num_chains, "num_chains", minimum=1)
    max_tree_depth = check_int(max_tree_depth, "max_tree_depth", minimum=1, maximum=30)
    seed = check_seed(seed)
    if seed + num_chains - 1 > 2**63 - 1:
        raise ValueError(f"seed + num_chains - 1 must be <= 2**63 - 1 (chain c uses seed + c), "
                         f"got seed={seed}")
    check_draws_memory(num_chains * num_samples, d, "num_samples", "the chains' draws")
    if precondition is None:
        loc, tril = torch.zeros(d, dtype=_F64), torch.eye(d, dtype=_F64)
    else:
        if not isinstance(precondition, (tuple, list)) or len(precondition) != 2:
            raise TypeError(f"precondition must be a pair (loc ({d},), covariance ({d}, {d})), "
                            f"got {type(precondition).__name__}")
        loc = as_float_tensor(precondition[0], "precondition[0]", dtype=_F64)
        cov = as_float_tensor(precondition[1], "precondition[1]", dtype=_F64)
        if tuple(loc.shape) != (d,) or tuple(cov.shape) != (d, d):
            raise ValueError(f"precondition must be (loc ({d},), covariance ({d}, {d})), got shapes "
                             f"{tuple(loc.shape)} and {tuple(cov.shape)}")
        tril, info = torch.linalg.cholesky_ex(0.5 * (cov + cov.mT))
        if int(info) != 0:
            raise ValueError("precondition[1] (the covariance) must be positive definite")
    pyro, MCMC, NUTS, effective_sample_size, split_gelman_rubin = _pyro()
    start = time.perf_counter()
    w0 = loc if init is None else as_vector(init, "init", d)
    log_p0 = float(target.log_prob(w0).detach())
    if not math.isfinite(log_p0):
        raise NonFiniteTargetError(f"target.log_prob is {log_p0} at the starting point "
                                   f"{w0.tolist()}; start where it is finite (init=...)")
    z0 = torch.linalg.solve_triangular(tril, (w0 - loc)[:, None], upper=False)[:, 0]

    def potential(params):
        # -log p~(loc + L z); the Jacobian |L| is a constant and drops out
        return -target.log_prob(loc + params["z"] @ tril.mT)

    chains, divergences = [], 0
    for c in range(num_chains):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + c)
            kernel = NUTS(potential_fn=potential, adapt_step_size=True, adapt_mass_matrix=True,
                          full_mass=False, max_tree_depth=max_tree_depth)
            mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup_steps,
                        initial_params={"z": z0.clone()}, disable_progbar=True)
            mcmc.run()
        z = mcmc.get_samples()["z"].to(_F64)
        chains.append(loc + z @ tril.mT)
        divergences += sum(len(v) for v in mcmc.diagnostics().get("divergences", {}).values())
    stacked = torch.stack(chains)  # (chains, samples, D)
    samples = stacked.reshape(-1, d)
    ess = effective_sample_size(stacked, chain_dim=0, sample_dim=1)
    rhat = split_gelman_rubin(stacked, chain_dim=0, sample_dim=1)
    return Reference(samples=samples, mean=samples.mean(0), covariance=torch.cov(samples.mT).reshape(d, d),
                     ess=ess, rhat=rhat, num_divergences=int(divergences), num_chains=num_chains,
                     num_samples=num_samples, warmup_steps=warmup_steps,
                     seconds=time.perf_counter() - start, method=f"nuts (pyro {pyro.__version__})")
