"""Exercise ``cavi_blei_step`` (lesson 02): one CAVI sweep of Blei et al.'s 1-D Gaussian mixture.

Graded against :func:`vitoolkit.cavi.assignment_update` and
:func:`vitoolkit.cavi.mean_update`, the updates :class:`vitoolkit.cavi.UnitVarianceGMM`
iterates. ``m`` and ``s2`` are checked against the update applied to the
student's own ``phi`` when that ``phi`` is a valid one, so a mistake in ``phi``
is not blamed on ``m`` and ``s2`` as well.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..cavi import assignment_update, mean_update
from .grading import Failed, Grader, as_tensor
from .registry import register

__all__ = ["cavi_blei_step"]


def cavi_blei_step(x, m, s2, prior_var):
    r"""One full CAVI sweep for the unit-variance Gaussian mixture of Blei, Kucukelbir & McAuliffe (2017).

    Model (section 3): mu_k ~ N(0, sigma^2), c_i ~ Cat(1/K), x_i | c_i, mu ~ N(mu_{c_i}, 1),
    with sigma^2 = ``prior_var``. Mean-field family:
    q(mu, c) = prod_k N(mu_k; m_k, s2_k) prod_i Cat(c_i; phi_i).
    The sweep updates every phi_i first (section 3.1), then every (m_k, s2_k)
    (section 3.2) using the new phi::

        phi_ik  proportional to  exp{ E[mu_k] x_i - E[mu_k^2] / 2 },   sum_k phi_ik = 1
        s2_k = 1 / (1 / sigma^2 + sum_i phi_ik)
        m_k  = s2_k sum_i phi_ik x_i

    with E[mu_k] = m_k and E[mu_k^2] = m_k^2 + s2_k under q.

    Parameters
    ----------
    x : Tensor of shape (n,)
        The data.
    m : Tensor of shape (K,)
        Current variational means m_k.
    s2 : Tensor of shape (K,)
        Current variational variances s2_k (> 0).
    prior_var : float
        sigma^2, the prior variance of each mu_k.

    Returns
    -------
    phi : Tensor of shape (n, K)
        The new assignment probabilities (each row sums to one).
    m : Tensor of shape (K,)
        The new means.
    s2 : Tensor of shape (K,)
        The new variances.

    Notes
    -----
    Well-separated data (``|x|`` in the hundreds, so x_i m_k near 1e5) must not overflow.
    """
    scores = x[:, None] * m[None, :] - 0.5 * (m**2 + s2)[None, :]
    phi = torch.softmax(scores, dim=1)  # normalised over k; the max is subtracted inside
    s2_new = 1.0 / (1.0 / prior_var + phi.sum(0))
    m_new = s2_new * (phi * x[:, None]).sum(0)
    return phi, m_new, s2_new


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64)).reshape(np.shape(a))


def _reference_phi(x, m, s2) -> torch.Tensor:
    return _t(assignment_update(x.numpy(), m.numpy()[:, None], s2.numpy()))


def _reference_means(x, phi, prior_var):
    means, variances = mean_update(x.numpy(), phi.numpy(), math.sqrt(prior_var))
    return _t(means[:, 0]), _t(variances)


def _softmax_rows(scores):
    return torch.softmax(scores, dim=1)


def _phi_mistakes(x, m, s2):
    xm = x[:, None] * m[None, :]
    return [
        ("the term (m_k^2 + s2_k) is missing its factor 1/2",
         lambda: _softmax_rows(xm - (m**2 + s2)[None, :])),
        ("phi ignores s2_k: under q, E[mu_k^2] = m_k^2 + s2_k, not m_k^2",
         lambda: _softmax_rows(xm - 0.5 * (m**2)[None, :])),
        ("phi used the standard deviation sqrt(s2_k) where the variance s2_k belongs",
         lambda: _softmax_rows(xm - 0.5 * (m**2 + s2.sqrt())[None, :])),
        ("phi ignores E[mu_k^2] altogether (only x_i m_k is left)", lambda: _softmax_rows(xm)),
    ]


def _s2_mistakes(phi, prior_var, s2_old):
    nk = phi.sum(0)
    return [
        ("s2_k is missing the prior precision 1/sigma^2 (= 1/prior_var)", lambda: 1.0 / nk),
        ("prior_var is already the variance sigma^2: it was squared again",
         lambda: 1.0 / (1 / prior_var**2 + nk)),
        ("prior_var is the variance sigma^2, but its square root was used",
         lambda: 1.0 / (1 / math.sqrt(prior_var) + nk)),
        ("s2_k is the reciprocal of the precision 1/sigma^2 + sum_i phi_ik, not the precision itself",
         lambda: 1 / prior_var + nk),
        ("s2 was returned unchanged", lambda: s2_old),
    ]


def _m_mistakes(x, phi, s2_new, s2_old, prior_var):
    weighted = (phi * x[:, None]).sum(0)
    nk = phi.sum(0)
    return [
        ("m_k used the old s2_k: compute the new s2_k first, then m_k with it",
         lambda: s2_old * weighted),
        ("m_k is missing the factor s2_k", lambda: weighted),
        ("m_k ignores the prior: that is the EM (maximum-likelihood) mean sum_i phi_ik x_i / sum_i phi_ik",
         lambda: weighted / nk),
        ("m_k used the prior variance twice (1/prior_var^2)",
         lambda: weighted / (1 / prior_var**2 + nk)),
    ]


_OVERFLOW = ("exp overflowed: the scores x_i m_k reach about 1e5 here, and exp(1e5) is inf in float64; "
             "normalise in log space (subtract each row's maximum before exponentiating)")
_RTOL, _ATOL = 1e-6, 1e-9


def _valid_phi(phi: torch.Tensor) -> bool:
    return (bool(torch.isfinite(phi).all()) and bool((phi >= 0).all())
            and bool(torch.allclose(phi.sum(1), torch.ones(phi.shape[0], dtype=phi.dtype), atol=1e-8)))


def _check_phi(case, phi, want_phi, x, m, s2, phi_hint):
    k = phi.shape[1]
    case.finite(phi, "phi", phi_hint)
    rows = phi.sum(1)
    if not bool(torch.allclose(rows, torch.ones_like(rows), atol=1e-8)):
        if k > 1 and bool(torch.allclose(phi.sum(0), torch.ones(k, dtype=phi.dtype), atol=1e-8)):
            raise Failed("phi is normalised over the data points (its columns sum to one); "
                         "normalise each row, over the K components")
        ratio = phi / want_phi
        if bool(torch.allclose(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-6)):
            raise Failed("phi is not normalised: each row must sum to one over the K components "
                         "(the unnormalised values are right)")
        raise Failed(f"the rows of phi must sum to one; they sum to values in "
                     f"[{float(rows.min()):.3g}, {float(rows.max()):.3g}]")
    # A perturbation d of the scores changes phi by a relative d: rounding scores of size |x m| to float32
    # moves phi by |x m| eps relative, so that is the condition factor of a float32 answer.
    scores = x[:, None] * m[None, :] - 0.5 * (m**2 + s2)[None, :]
    case.compare(phi, want_phi, "phi", rtol=_RTOL, atol=_ATOL, condition=float(scores.abs().max()),
                 mistakes=_phi_mistakes(x, m, s2))


def _check_s2(case, new_s2, x, phi, prior_var, s2_old, hint):
    want_m, want_s2 = _reference_means(x, phi, prior_var)
    case.finite(new_s2, "s2", hint)
    case.compare(new_s2, want_s2, "s2", rtol=_RTOL, atol=_ATOL, mistakes=_s2_mistakes(phi, prior_var, s2_old))


def _check_m(case, new_m, x, phi, prior_var, s2_old, hint):
    want_m, want_s2 = _reference_means(x, phi, prior_var)
    case.finite(new_m, "m", hint)
    case.compare(new_m, want_m, "m", rtol=_RTOL, atol=_ATOL, scale=want_s2 * (phi * x[:, None]).abs().sum(0),
                 mistakes=_m_mistakes(x, phi, want_s2, s2_old, prior_var))


def _vector_hints(name: str, k: int) -> dict:
    return {(k, 1): f"{name} has an extra axis; return shape (K,)",
            (1, k): f"{name} has an extra axis; return shape (K,)"}


def _sweep_case(g: Grader, fn, name, x, m, s2, prior_var, *, hint="", split=False):
    """One call of the student's sweep: one check, or (``split``) one each for phi, s2 and m.

    s2 and m are held to the update applied to the student's phi when it is a valid
    one (finite, rows summing to one), else to the reference phi.
    """
    n, k = x.shape[0], m.shape[0]
    want_phi = _reference_phi(x, m, s2)
    outputs = []
    with g.case(name + (": phi (section 3.1)" if split else "")) as case:
        out = case.unpack(case.call(fn, x, m, s2, prior_var), ("phi", "m", "s2"))
        hints = {(k, n): "phi is transposed: one row per data point, one column per component, "
                         "shape (n, K)"}
        if k == 1:
            hints[(n,)] = "phi lost its component axis (a squeeze?); keep shape (n, K) even when K = 1"
        phi = case.tensor(out[0], "phi", (n, k), hints)
        outputs.append(out)
        _check_phi(case, phi, want_phi, x, m, s2, hint)
        if not split:
            new_s2 = case.tensor(out[2], "s2", (k,), _vector_hints("s2", k))
            new_m = case.tensor(out[1], "m", (k,), _vector_hints("m", k))
            _check_s2(case, new_s2, x, phi, prior_var, s2, hint)
            _check_m(case, new_m, x, phi, prior_var, s2, hint)
            case.note = "phi, m and s2 correct"
    if not split or not outputs:
        return
    out = outputs[0]
    try:
        phi = as_tensor(out[0], "phi")
    except Failed:  # pragma: no cover - already converted above
        return
    usable = tuple(phi.shape) == (n, k) and _valid_phi(phi)
    given = "given your phi" if usable else "given the correct phi (yours is not a valid one)"
    phi_used = phi if usable else want_phi
    with g.case(f"{name}: s2 (section 3.2), {given}") as case:
        new_s2 = case.tensor(out[2], "s2", (k,), _vector_hints("s2", k))
        _check_s2(case, new_s2, x, phi_used, prior_var, s2, hint)
    with g.case(f"{name}: m (section 3.2), {given}") as case:
        new_m = case.tensor(out[1], "m", (k,), _vector_hints("m", k))
        _check_m(case, new_m, x, phi_used, prior_var, s2, hint)


def _mixture(g: Grader, centres, n):
    k = len(centres)
    labels = torch.randint(0, k, (n,), generator=g.generator)
    return torch.as_tensor(centres, dtype=torch.float64)[labels] + g.randn(n)


@register(reference=cavi_blei_step, lesson="02_cavi_gmm",
          title="one CAVI sweep (phi, then every m_k and s2_k) of Blei et al.'s 1-D mixture")
def grade_cavi_blei_step(fn, g: Grader) -> None:
    centres = sorted((4 * g.randn(3)).tolist())
    x = _mixture(g, centres, 40)
    _sweep_case(g, fn, "random data, n = 40, K = 3", x, 3 * g.randn(3), g.uniform(0.2, 2.0, 3),
                float(g.uniform(2.0, 30.0, 1)), split=True)
    x = _mixture(g, [-2.0, 0.5, 3.0, 6.0], 25)
    _sweep_case(g, fn, "another start, n = 25, K = 4, narrow prior (prior_var = 0.5)", x,
                2 * g.randn(4), g.uniform(0.05, 3.0, 4), 0.5)
    x = _mixture(g, [-300.0, 0.0, 300.0], 30)
    _sweep_case(g, fn, "well-separated data: clusters at -300, 0, 300 (exp would overflow)", x,
                torch.tensor([-300.0, 1.0, 300.0], dtype=torch.float64) + g.randn(3),
                g.uniform(0.5, 2.0, 3), 1e4, hint=_OVERFLOW)
    x = g.randn(12) + 1.0
    _sweep_case(g, fn, "one component (K = 1): phi is all ones", x, g.randn(1), g.uniform(0.5, 2.0, 1),
                float(g.uniform(1.0, 10.0, 1)))
    x = g.randn(1) * 2
    _sweep_case(g, fn, "a single data point (n = 1), K = 2", x, g.randn(2), g.uniform(0.5, 2.0, 2), 4.0)
