"""Exercise ``mean_field_variances`` (lesson 03): the factorised Gaussian closest to N(mu, Sigma).

The forward answer is graded against :func:`vitoolkit.fitting.target_moments`
(the moment-matched fit :func:`vitoolkit.fitting.fit_gaussian` uses for forward
KL); the reverse answer against the closed form of Bishop PRML 10.1.2 that
:func:`vitoolkit.fitting.correlated_gaussian` documents, 1 / Lambda_ii, computed
through a Cholesky factor. (The toolkit has no separate function for the
reverse mean-field variances: ``fit_gaussian`` finds them by optimisation, and the
tests check that it agrees with this closed form.)
"""

from __future__ import annotations

import torch
from torch.distributions import MultivariateNormal

from ..fitting import target_moments
from .grading import Grader
from .registry import register

__all__ = ["mean_field_variances"]


def mean_field_variances(cov, direction):
    r"""Variances of the factorised Gaussian q closest to p = N(mu, cov) in reverse or forward KL.

    Bishop PRML section 10.1.2: with Lambda = cov^{-1} the precision matrix and
    q(z) = prod_i N(z_i; m_i, v_i),

    - ``"reverse"``: argmin_q KL(q || p) has v_i = 1 / Lambda_ii, the variance of z_i
      given all the other coordinates (it underestimates the marginal variance);
    - ``"forward"``: argmin_q KL(p || q) has v_i = cov_ii, the marginal variances
      (moment matching).

    Parameters
    ----------
    cov : Tensor of shape (D, D)
        A symmetric positive-definite covariance.
    direction : {"reverse", "forward"}
        Any other value raises ``ValueError``.

    Returns
    -------
    Tensor of shape (D,)
        The variances v_i (not standard deviations). Must stay finite for a
        covariance whose entries are near 1e200 (float64).
    """
    if direction == "forward":
        return torch.diagonal(cov).clone()
    if direction == "reverse":
        # Through a Cholesky factor, not a determinant: det(cov) overflows for large entries.
        precision = torch.cholesky_inverse(torch.linalg.cholesky(cov))
        return 1.0 / torch.diagonal(precision)
    raise ValueError(f"direction must be 'reverse' or 'forward', got {direction!r}")


def _reference(cov: torch.Tensor, direction: str) -> torch.Tensor:
    if direction == "forward":
        _, moments_cov = target_moments(MultivariateNormal(torch.zeros(cov.shape[0], dtype=cov.dtype),
                                                           covariance_matrix=cov, validate_args=False))
        return torch.diagonal(moments_cov).clone()
    return 1.0 / torch.diagonal(torch.cholesky_inverse(torch.linalg.cholesky(cov)))


def _mistakes(cov: torch.Tensor, direction: str):
    marginal = torch.diagonal(cov)
    precision = torch.diagonal(torch.linalg.inv(cov))
    right = _reference(cov, direction)
    common = [
        ("these are standard deviations; the exercise asks for variances", lambda: right.sqrt()),
    ]
    if direction == "reverse":
        return [
            ("that is the forward-KL answer (the marginal variances cov_ii); reverse KL gives the "
             "variance of each coordinate given the others", lambda: marginal),
            ("that is Lambda_ii, the diagonal of the precision matrix: the variance is its reciprocal",
             lambda: precision),
            ("1 / cov_ii is not 1 / Lambda_ii: invert the matrix first, then take its diagonal",
             lambda: 1.0 / marginal),
            *common,
        ]
    return [
        ("that is the reverse-KL answer (1 / Lambda_ii); forward KL matches the marginal variances",
         lambda: 1.0 / precision),
        ("that is Lambda_ii, the diagonal of the precision matrix; forward KL matches the "
         "covariance's own diagonal", lambda: precision),
        ("the reciprocal of the marginal variances was returned", lambda: 1.0 / marginal),
        *common,
    ]


_RTOL, _ATOL = 1e-6, 0.0
_OVERFLOW = ("the result is not finite: with entries near 1e200 a determinant (or a product of entries) "
             "overflows float64; use a factorisation, solve or inverse from torch.linalg instead")


def _spd(g: Grader, d: int, scale: float = 1.0) -> torch.Tensor:
    a = g.randn(d, d)
    cov = a @ a.T + 0.3 * torch.eye(d, dtype=torch.float64)
    return scale * 0.5 * (cov + cov.T)


def _value(g: Grader, fn, name: str, cov: torch.Tensor, direction: str, hint: str = ""):
    d = cov.shape[0]
    with g.case(name) as case:
        out = case.call(fn, cov, direction)
        got = case.tensor(out, f"the {direction}-KL answer", (d,),
                          {(d, d): "return the D variances (a vector), not a matrix", (): "return one "
                           "variance per coordinate, shape (D,)"})
        # Inverting cov amplifies a relative perturbation of its entries by its condition number.
        condition = float(torch.linalg.cond(cov)) if direction == "reverse" else 1.0
        case.compare(got, _reference(cov, direction), f"the {direction}-KL answer", rtol=_RTOL,
                     atol=_ATOL, condition=condition, mistakes=_mistakes(cov, direction), nonfinite_hint=hint)


@register(reference=mean_field_variances, lesson="03_forward_vs_reverse_kl",
          title="variances of the mean-field Gaussian closest to N(mu, cov) in reverse or forward KL")
def grade_mean_field_variances(fn, g: Grader) -> None:
    cov = _spd(g, 4)
    _value(g, fn, "reverse KL, random 4 x 4 covariance", cov, "reverse")
    _value(g, fn, "forward KL, random 4 x 4 covariance", cov, "forward")

    with g.case("reverse <= forward (variance underestimation); equal for a diagonal covariance") as case:
        cov = _spd(g, 5)
        rev = case.tensor(case.call(fn, cov, "reverse"), "the reverse-KL answer", (5,))
        fwd = case.tensor(case.call(fn, cov, "forward"), "the forward-KL answer", (5,))
        case.finite(rev, "the reverse-KL answer")
        case.finite(fwd, "the forward-KL answer")
        slack = 1e-9 + case.slack * float(torch.linalg.cond(cov))
        case.require(bool((rev <= fwd * (1 + slack)).all()),
                     "some reverse-KL variance exceeds the forward-KL (marginal) variance: mean-field "
                     "reverse KL never overestimates a Gaussian's marginal variances (PRML 10.1.2)")
        diag = torch.diag(g.uniform(0.1, 5.0, 3))
        rev = case.tensor(case.call(fn, diag, "reverse"), "the reverse-KL answer", (3,))
        fwd = case.tensor(case.call(fn, diag, "forward"), "the forward-KL answer", (3,))
        case.compare(rev, torch.diagonal(diag), "the reverse-KL answer for a diagonal covariance", rtol=_RTOL,
                     mistakes=_mistakes(diag, "reverse"))
        case.compare(fwd, torch.diagonal(diag), "the forward-KL answer for a diagonal covariance", rtol=_RTOL,
                     mistakes=_mistakes(diag, "forward"))
        case.note = "reverse <= forward on a random covariance; both equal the diagonal of a diagonal one"

    rho = 0.99
    s = g.uniform(0.5, 3.0, 2)
    cov = torch.stack([torch.stack([s[0] ** 2, rho * s[0] * s[1]]),
                       torch.stack([rho * s[0] * s[1], s[1] ** 2])])
    _value(g, fn, "strong correlation (rho = 0.99, D = 2), reverse", cov, "reverse")
    _value(g, fn, "large magnitudes: a 3 x 3 covariance with entries near 1e200, reverse",
           _spd(g, 3, 1e200), "reverse", hint=_OVERFLOW)
    _value(g, fn, "one dimension (D = 1), reverse", g.uniform(0.1, 4.0, 1, 1), "reverse")
    with g.case("an unknown direction raises ValueError") as case:
        case.expect_raises(fn, (_spd(g, 2), "sideways"), ValueError,
                           "only 'reverse' and 'forward' are defined")
