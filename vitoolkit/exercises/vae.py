"""Exercises ``bernoulli_vae_elbo`` (lesson 05) and ``iwae_bound`` (lesson 06).

The ELBO is graded against the terms :meth:`vitoolkit.vae.VAE.elbo` adds up: the
Bernoulli likelihood of :mod:`vitoolkit.vae.likelihoods` and the analytic
KL(N(mu, sigma^2) || N(0, 1)) that :mod:`vitoolkit.vae.model` registers for
:class:`vitoolkit.vae.StandardNormal` (Kingma & Welling 2013, Appendix B). The
IWAE bound is graded against the log-mean-exp of :meth:`vitoolkit.vae.VAE.iwae_bound`
(Burda et al. 2015, eq. 8), applied to given log-weights.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Normal

from ..divergences import kl_divergence
from ..vae import StandardNormal
from ..vae.likelihoods import make_likelihood
from .grading import Failed, Grader, precision_tolerance
from .registry import register

__all__ = ["bernoulli_vae_elbo", "iwae_bound"]


def bernoulli_vae_elbo(x, mu, log_var, decoder, eps):
    r"""The single-sample ELBO per example of a VAE with a Bernoulli likelihood.

    Kingma & Welling (2013), eq. (10), with the analytic KL of Appendix B:
    encoder outputs q(z | x) = N(mu, diag exp(log_var)), prior p(z) = N(0, I),
    one reparameterised sample z = mu + sigma * eps (section 2.4) decoded to
    Bernoulli logits l = decoder(z), and::

        ELBO(x) = log p(x | z) - KL(q(z | x) || p(z))
        log p(x | z) = sum_d [ x_d log sigmoid(l_d) + (1 - x_d) log(1 - sigmoid(l_d)) ]
        KL = 1/2 sum_j [ mu_j^2 + sigma_j^2 - 1 - log sigma_j^2 ]

    Parameters
    ----------
    x : Tensor of shape (B, D)
        Binary data (0 or 1).
    mu, log_var : Tensor of shape (B, Z)
        Encoder outputs: the mean and the log-variance log sigma^2 of q(z | x).
    decoder : callable
        Maps z of shape (B, Z) to logits of shape (B, D).
    eps : Tensor of shape (B, Z)
        Standard-normal noise for the reparameterised sample.

    Returns
    -------
    Tensor of shape (B,)
        The ELBO of each example, in nats. Logits as large as +/-1e3 must not
        give an infinite or NaN log-likelihood.
    """
    sigma = torch.exp(0.5 * log_var)
    logits = decoder(mu + sigma * eps)
    # log sigmoid(l) = l - softplus(l) and log(1 - sigmoid(l)) = -softplus(l): no exp overflow.
    log_lik = (x * logits - torch.nn.functional.softplus(logits)).sum(-1)
    kl = 0.5 * (mu**2 + sigma**2 - 1 - log_var).sum(-1)
    return log_lik - kl


def iwae_bound(log_weights):
    r"""The importance-weighted bound per example, from K log-weights per example.

    Burda, Grosse & Salakhutdinov (2015), eq. (8): with w_k = p(x, z_k) / q(z_k | x)
    and z_1..z_K ~ q(z | x)::

        L_K(x) = log (1/K) sum_k w_k.

    L_1 is the ELBO, and L_K >= the average of the log w_k (Jensen).

    Parameters
    ----------
    log_weights : Tensor of shape (K, B)
        log w_k for each of the B examples (samples along the first axis).

    Returns
    -------
    Tensor of shape (B,)
        L_K per example. Must be accurate for log-weights around -1e4 (and
        around +1e3), where exp underflows (overflows) in float64.
    """
    k = log_weights.shape[0]
    return torch.logsumexp(log_weights, dim=0) - math.log(k)


# ------------------------------------------------------------------------------ the ELBO
_BERNOULLI = make_likelihood("bernoulli")


def _elbo_terms(x, mu, log_var, logits):
    """(log p(x | z), KL) per example, from the toolkit's likelihood and KL registry."""
    recon = _BERNOULLI.distribution(logits).log_prob(x)
    scale = torch.exp(0.5 * log_var)
    prior = StandardNormal(torch.zeros_like(mu), torch.ones_like(mu), validate_args=False)
    kl = kl_divergence(Normal(mu, scale, validate_args=False), prior).sum(-1)
    return recon, kl


class _LinearDecoder:
    """A fixed random affine decoder z -> logits that records the z it is given.

    ``records_calls``: when the student's function runs in a grading child, the
    child sends back the recorded z (:mod:`vitoolkit.exercises._worker`).
    """

    records_calls = True

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        self.weight, self.bias = weight, bias
        self.calls: list[torch.Tensor] = []

    def __call__(self, z):
        if not isinstance(z, torch.Tensor):
            z = torch.as_tensor(z, dtype=torch.float64)
        if z.shape[-1] != self.weight.shape[0]:
            raise ValueError(f"the decoder expects z of shape (..., {self.weight.shape[0]}), "
                             f"got {tuple(z.shape)}")
        self.calls.append(z.detach().clone())
        return z.to(torch.float64) @ self.weight + self.bias

    def __repr__(self) -> str:
        return f"decoder(z: (..., {self.weight.shape[0]}) -> logits (..., {self.weight.shape[1]}))"


def _decoder(g: Grader, z_dim: int, d: int, gain: float = 1.0) -> _LinearDecoder:
    return _LinearDecoder(gain * g.randn(z_dim, d) / math.sqrt(z_dim), gain * 0.5 * g.randn(d))


def _elbo_mistakes(x, mu, log_var, decoder, eps):
    sigma = torch.exp(0.5 * log_var)
    logits = decoder.weight, decoder.bias

    def dec(z):
        return z @ logits[0] + logits[1]

    recon, kl = _elbo_terms(x, mu, log_var, dec(mu + sigma * eps))
    d = x.shape[-1]
    return [
        ("the KL term is off by a factor 2: its 1/2 is missing", lambda: recon - 2 * kl),
        ("the KL term is added; the ELBO subtracts it", lambda: recon + kl),
        ("the KL term is missing", lambda: recon),
        ("the reconstruction term has the wrong sign: the binary cross-entropy is -log p(x | z)",
         lambda: -recon - kl),
        ("the Bernoulli log-likelihood is averaged over the D data dimensions instead of summed",
         lambda: recon / d - kl),
        ("the KL used sigma where the variance sigma^2 = exp(log_var) belongs",
         lambda: recon - 0.5 * (mu**2 + sigma - 1 - log_var).sum(-1)),
        ("the KL is missing its constant -1 per latent dimension (KL(p || p) must be 0)",
         lambda: recon - kl - 0.5 * mu.shape[-1]),
        ("the KL treats log_var as log sigma (it is log sigma^2)",
         lambda: recon - 0.5 * (mu**2 + torch.exp(2 * log_var) - 1 - 2 * log_var).sum(-1)),
        ("the mean mu was decoded instead of a sample z = mu + sigma * eps",
         lambda: _elbo_terms(x, mu, log_var, dec(mu))[0] - kl),
        ("exp(log_var), the variance, was used as the standard deviation in z (a missing 1/2)",
         lambda: _elbo_terms(x, mu, log_var, dec(mu + torch.exp(log_var) * eps))[0] - kl),
    ]


def _check_decoder_input(case, decoder: _LinearDecoder, mu, log_var, eps) -> None:
    """The sample the student decoded, against z = mu + sigma * eps and known wrong samples."""
    want = mu + torch.exp(0.5 * log_var) * eps
    shaped = [z for z in decoder.calls if tuple(z.shape) == tuple(want.shape)]
    if not decoder.calls:
        raise Failed("the decoder was never called: the likelihood needs logits = decoder(z) of a sample z")
    if not shaped:
        raise Failed(f"the decoder was called with z of shape {tuple(decoder.calls[0].shape)}, "
                     f"expected {tuple(want.shape)}")
    size = float((mu.abs() + (torch.exp(0.5 * log_var) * eps).abs()).max())

    def close(z, target) -> bool:
        # A float32 z carries rounding relative to the terms mu and sigma * eps, not to z itself.
        slack = precision_tolerance(z.dtype) * size if z.dtype in (torch.float32, torch.float16,
                                                                   torch.bfloat16) else 0.0
        return torch.allclose(z.to(torch.float64), target, rtol=1e-6, atol=1e-9 + slack)

    if any(close(z, want) for z in shaped):
        return
    wrong = {
        "the decoder got mu: decode a sample z = mu + sigma * eps, not the mean": mu,
        "z used exp(log_var), the variance, as the standard deviation: a missing 1/2 in "
        "sigma = exp(log_var / 2)": mu + torch.exp(log_var) * eps,
        "z used log_var itself as the standard deviation; log_var is log sigma^2": mu + log_var * eps,
        "z = sigma * eps forgets the mean mu": torch.exp(0.5 * log_var) * eps,
        "z = mu + eps ignores sigma": mu + eps,
    }
    for message, z_wrong in wrong.items():
        if any(close(z, z_wrong) for z in shaped):
            raise Failed(message)
    raise Failed("the z given to the decoder is not the reparameterised sample of q(z | x) "
                 "built from mu, log_var and eps")


_RTOL, _ATOL = 1e-6, 1e-9
_UNSTABLE = ("the log-likelihood is not finite: log(sigmoid(l)) underflows to log 0 = -inf for logits "
             "near -1e3 (and log(1 - sigmoid(l)) for logits near +1e3); use a numerically stable form "
             "(softplus, logsigmoid or binary_cross_entropy_with_logits)")


def _elbo_hints(b: int, d: int, z: int) -> dict:
    return {(): "a single number was returned (the batch sum or mean?): one ELBO per example, shape (B,)",
            (b, d): "the log-likelihood is not summed over the D data dimensions",
            (b, z): "the KL is not summed over the latent dimensions",
            (d,): "summed over the batch instead of the data dimensions"}


def _elbo_case(g: Grader, fn, name, x, mu, log_var, decoder, eps, *, hint="", check_z=True):
    b, z = mu.shape
    recon, kl = _elbo_terms(x, mu, log_var, decoder(mu + torch.exp(0.5 * log_var) * eps))
    decoder.calls.clear()
    with g.case(name) as case:
        out = case.call(fn, x, mu, log_var, decoder, eps)
        got = case.tensor(out, "the ELBO", (b,), _elbo_hints(b, x.shape[1], z))
        if check_z:
            _check_decoder_input(case, decoder, mu, log_var, eps)
        logits = decoder.weight, decoder.bias
        l_ = (mu + torch.exp(0.5 * log_var) * eps) @ logits[0] + logits[1]
        terms = ((x * l_).abs() + torch.nn.functional.softplus(l_)).sum(-1) + 0.5 * (
            mu**2 + log_var.exp() + 1 + log_var.abs()).sum(-1)
        case.compare(got, recon - kl, "the ELBO", rtol=_RTOL, atol=_ATOL, scale=terms,
                     mistakes=_elbo_mistakes(x, mu, log_var, decoder, eps), nonfinite_hint=hint)


@register(reference=bernoulli_vae_elbo, lesson="05_vae",
          title="the single-sample ELBO per example of a Bernoulli VAE, analytic KL")
def grade_bernoulli_vae_elbo(fn, g: Grader) -> None:
    b, z, d = 6, 3, 10
    x = g.bernoulli(0.4, b, d)
    mu, log_var, eps = g.randn(b, z), 0.7 * g.randn(b, z), g.randn(b, z)
    with g.case("the decoder receives the sample z = mu + sigma * eps (B = 6, Z = 3)") as case:
        decoder = _decoder(g, z, d)
        out = case.call(fn, x, mu, log_var, decoder, eps)
        case.tensor(out, "the ELBO", (b,), _elbo_hints(b, d, z))
        _check_decoder_input(case, decoder, mu, log_var, eps)
        case.note = "z correct"
    _elbo_case(g, fn, "ELBO per example, random case (B = 6, Z = 3, D = 10)", x, mu, log_var,
               _decoder(g, z, d), eps)
    zeros = torch.zeros(b, z, dtype=torch.float64)
    _elbo_case(g, fn, "likelihood term alone: mu = 0 and log_var = 0, so the KL is 0", x, zeros, zeros,
               _decoder(g, z, d), eps)
    flat = _LinearDecoder(torch.zeros(z, d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64))
    _elbo_case(g, fn, "KL term alone: logits 0, so log p(x | z) = -D log 2", x, 2 * g.randn(b, z),
               g.randn(b, z), flat, eps, check_z=False)
    _elbo_case(g, fn, "large logits (|logit| ~ 1e3): a stable Bernoulli log-likelihood", x, mu, log_var,
               _decoder(g, z, d, gain=1e3), eps, hint=_UNSTABLE)
    x1 = g.bernoulli(0.5, 1, 7)
    _elbo_case(g, fn, "a batch of one (B = 1, Z = 2, D = 7) keeps its batch axis", x1, g.randn(1, 2),
               g.randn(1, 2), _decoder(g, 2, 7), g.randn(1, 2))


# -------------------------------------------------------------------------------- IWAE
def _iwae_reference(log_weights: torch.Tensor) -> torch.Tensor:
    # The log-mean-exp of vitoolkit.vae.VAE.iwae_bound (Burda et al. 2015, eq. 8).
    return torch.logsumexp(log_weights, dim=0) - math.log(log_weights.shape[0])


_WRONG_AXIS = "reduced over the wrong axis: log_weights is (K, B), the K samples are the first axis"


def _iwae_mistakes(lw: torch.Tensor):
    k, b = lw.shape
    out = [
        ("log B was subtracted where log K belongs: K = log_weights.shape[0] is the number of samples, "
         "B = shape[1] the batch size", lambda: torch.logsumexp(lw, 0) - math.log(b)),
        ("a mean of the log-weights where a log-mean-exp belongs (that is the average ELBO, "
         "not the importance-weighted bound)", lambda: lw.mean(0)),
        ("the -log K is missing: a log-sum-exp, not a log-mean-exp", lambda: torch.logsumexp(lw, 0)),
        ("K was subtracted where log K belongs", lambda: torch.logsumexp(lw, 0) - k),
        ("log K was added instead of subtracted", lambda: torch.logsumexp(lw, 0) + math.log(k)),
        ("that is the largest log-weight, not the log of the mean weight", lambda: lw.max(0).values),
        ("that is the mean of the weights, not its log", lambda: torch.exp(lw).mean(0)),
    ]
    if lw.shape[0] == lw.shape[1]:
        out.insert(0, (_WRONG_AXIS, lambda: torch.logsumexp(lw, 1) - math.log(lw.shape[1])))
    return out


_IWAE_UNSTABLE = ("not finite: exp of log-weights near -1e4 underflows to 0 (and near +1e3 overflows to inf) "
                  "in float64; subtract the largest log-weight before exponentiating (log-sum-exp)")


#: Relative to the terms |logsumexp| + log K: a float32 constant such as torch.log(torch.tensor(K))
#: is accurate to 6e-8 relative, every known mistake is off by far more than 1e-6.
_IWAE_RTOL, _IWAE_ATOL = 1e-6, 1e-12


def _iwae_hints(k: int, b: int) -> dict:
    hints = {(): "a single number: one bound per example, shape (B,)",
             (k, b): "nothing was reduced: average the weights over the K samples (the first axis)"}
    if k != b:
        hints[(k,)] = _WRONG_AXIS
    return hints


def _iwae_case(g: Grader, fn, name, lw, hint=""):
    k, b = lw.shape
    with g.case(name) as case:
        out = case.call(fn, lw)
        got = case.tensor(out, "the bound", (b,), _iwae_hints(k, b))
        want = _iwae_reference(lw)
        case.compare(got, want, "the bound", rtol=_IWAE_RTOL, atol=_IWAE_ATOL,
                     scale=want.abs() + 2 * math.log(k), mistakes=_iwae_mistakes(lw), nonfinite_hint=hint)


@register(reference=iwae_bound, lesson="06_vae_beyond",
          title="the importance-weighted bound per example from log-weights of shape (K, B)",
          imports="import math\n\nimport torch\n")
def grade_iwae_bound(fn, g: Grader) -> None:
    _iwae_case(g, fn, "random log-weights, K = 16, B = 5", 3 * g.randn(16, 5) - 100)
    _iwae_case(g, fn, "K = B = 6: a wrong axis cannot hide behind the shape", 2 * g.randn(6, 6))
    _iwae_case(g, fn, "K = 1: the bound is the single log-weight (the ELBO)", g.randn(1, 4))
    with g.case("never below the mean of the log-weights (Jensen), K = 50, B = 8") as case:
        lw = 4 * g.randn(50, 8)
        got = case.tensor(case.call(fn, lw), "the bound", (8,), _iwae_hints(50, 8))
        case.finite(got, "the bound")
        below = got < lw.mean(0) - 1e-9 - case.slack * lw.abs().max(0).values
        case.require(not bool(below.any()),
                     f"the bound is below the mean of the log-weights for {int(below.sum())} of 8 examples; "
                     "log of a mean weight is never below the mean log-weight")
        case.note = f"margin over the mean log-weight at least {float((got - lw.mean(0)).min()):.3g}"
    _iwae_case(g, fn, "stable for log-weights around -1e4", g.randn(20, 4) - 1e4, hint=_IWAE_UNSTABLE)
    _iwae_case(g, fn, "stable for log-weights around +1e3", g.randn(20, 4) + 1e3, hint=_IWAE_UNSTABLE)
    _iwae_case(g, fn, "many samples (K = 5000, B = 3)", 2 * g.randn(5000, 3) - 50)
