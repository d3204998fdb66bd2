r"""A VAE with categorical latents, trained by Gumbel-softmax, REINFORCE or VIMCO.

The model has L independent categorical latents with C classes each, a uniform
prior p(z) = prod_l Cat(z_l; 1/C), an encoder q_phi(z | x) = prod_l Cat(z_l;
softmax(logits_l(x))) and a decoder p_theta(x | z) fed the one-hot codes
(flattened, L * C inputs). The ELBO is

    ELBO(x) = E_q[log p(x | z)] - sum_l KL(q(z_l | x) || Cat(1/C)),
    KL(q(z_l | x) || Cat(1/C)) = sum_c q_lc log q_lc + log C,

with the KL in closed form. Sampling z is not reparameterisable, so the
encoder's gradient of the first term needs an estimator (``estimator``):

- ``"gumbel_softmax"`` (Jang, Gu & Poole 2017; Maddison, Mnih & Teh 2017):
  the decoder is fed the relaxed sample y = softmax((logits + G) / tau),
  G ~ Gumbel(0, 1), and the gradient flows through y. Low variance, biased: it
  is the gradient of E[log p(x | y)], not of E[log p(x | z)]; the bias shrinks as
  tau -> 0 while the variance grows.
- ``"reinforce"`` (Williams 1992; with a baseline as in Mnih & Gregor 2014,
  "NVIL", section 3): (f(z) - b) grad log q(z | x) with f = log p(x | z).
  Unbiased for any b that does not depend on z. ``baseline="running"``: b is an
  exponential moving average of f over training batches; ``"learned"``: that
  average plus an input-dependent correction b_psi(x), a small network fitted to
  f by squared error (NVIL's "input-dependent baseline"); ``"none"``: b = 0.
- ``"vimco"`` (Mnih & Rezende 2016): trains the K-sample bound
  L_K = log 1/K sum_k w_k, w_k = p(x, z_k) / q(z_k | x); the learning signal of
  sample j is L_K - L_K^{-j}, where L_K^{-j} replaces log w_j by the mean of the
  other log-weights (their eq. (10)), a baseline that does not depend on z_j.
  Needs ``train(..., objective="iwae", num_samples=K)`` with K >= 2.

Every estimator's decoder gradient is the ordinary one (at the sample, relaxed
for Gumbel-softmax). With few states (C^L up to 65,536) the ELBO, its exact
gradient and log p(x) are computed by enumeration (:meth:`CategoricalVAE.exact_elbo`,
:meth:`~CategoricalVAE.exact_log_likelihood`), which is how the estimators'
bias and variance are measured against the truth.

Shapes: ``x`` (n, data_dim); codes ``z`` are one-hot (..., L, C) (or flattened
(..., L * C)); samples of K draws lead with K.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn
from torch.distributions import Independent, OneHotCategorical

from ..distributions import check_temperature, gumbel_max_sample, gumbel_softmax_sample
from ..divergences.importance import StreamingImportanceEstimate, log_mean_exp_unchecked
from ..validation import (
    check_bool,
    check_choice,
    check_int,
    check_memory,
    check_positive,
    check_real,
    check_seed,
    memory_limit,
)
from . import importance as _sampling
from .base import _LatentVariableModel, check_network_size
from .importance import check_draws, check_num_samples
from .likelihoods import make_likelihood
from .networks import MLP, check_hidden_dims

__all__ = ["CategoricalVAE", "CATEGORICAL_ESTIMATORS", "ESTIMATORS", "BASELINES", "MAX_ENUMERATED_STATES",
           "BiasVariance", "bias_and_variance"]

#: The encoder-gradient estimators of :class:`CategoricalVAE`.
#: The gradient estimators of :class:`CategoricalVAE` (not :mod:`vitoolkit.gradients`' sets).
CATEGORICAL_ESTIMATORS = ("gumbel_softmax", "reinforce", "vimco")
#: The former name of :data:`CATEGORICAL_ESTIMATORS` (``vitoolkit.vae.ESTIMATORS``).
ESTIMATORS = CATEGORICAL_ESTIMATORS
#: The REINFORCE baselines.
BASELINES = ("running", "learned", "none")
#: Largest number of joint states C^L that the exact (enumerated) methods accept.
MAX_ENUMERATED_STATES = 2**16
# Elements of decoder output held at once when enumerating or importance sampling.
_CHUNK_ELEMENTS = 2**22


class BiasVariance(NamedTuple):
    """Bias and variance of a vector-valued gradient estimator against the exact gradient.

    ``bias``: ||E[g] - g_exact||, with the Monte Carlo noise of the mean removed
    (the square is estimated without bias, then floored at 0); ``variance``:
    tr Cov(g), the summed variance of the coordinates; ``norm``: ||g_exact||.
    """

    bias: float
    variance: float
    norm: float


def bias_and_variance(draws: torch.Tensor, exact: torch.Tensor) -> BiasVariance:
    """Bias and total variance of gradient estimates ``draws`` (m, P) against ``exact`` (P,).

    E||mean - exact||^2 = ||bias||^2 + tr Cov / m, so ||mean - exact||^2 - tr(S) / m
    (S the sample covariance) estimates the squared bias without the noise of the
    Monte Carlo mean.
    """
    draws = torch.as_tensor(draws, dtype=torch.float64)
    exact = torch.as_tensor(exact, dtype=torch.float64)
    if draws.ndim != 2 or exact.shape != draws.shape[1:] or draws.shape[0] < 2:
        raise ValueError(f"draws must have shape (m >= 2, P) and exact (P,), got "
                         f"{tuple(draws.shape)} and {tuple(exact.shape)}")
    m = draws.shape[0]
    variance = float(draws.var(0).sum())
    bias_sq = float((draws.mean(0) - exact).pow(2).sum()) - variance / m
    return BiasVariance(math.sqrt(max(bias_sq, 0.0)), variance, float(exact.norm()))


class CategoricalVAE(_LatentVariableModel):
    r"""VAE with ``num_latents`` categorical latents of ``num_categories`` classes each.

    Parameters
    ----------
    data_dim : int
        Observed values per example (pixels, flattened).
    num_latents : int >= 1
        L, the number of independent categorical latents.
    num_categories : int >= 2
        C, the classes of each latent (prior Cat(1/C)).
    hidden_dims : sequence of int
        Encoder hidden widths (MLP); the decoder mirrors them.
    likelihood : str
        The observation model, as for :class:`~vitoolkit.vae.VAE`.
    estimator : {"gumbel_softmax", "reinforce", "vimco"}
        How the encoder's gradient is estimated in training (module docstring).
    temperature : float > 0
        tau of the Gumbel-softmax relaxation (used by ``"gumbel_softmax"``).
    baseline : {"running", "learned", "none"}
        REINFORCE's baseline (used by ``"reinforce"``).
    baseline_decay : float in [0, 1)
        Decay of the running average of f = log p(x | z).
    activation, observation_scale, min_scale, seed
        As for :class:`~vitoolkit.vae.VAE`.
    """

    _reports_elbo = True

    def __init__(self, data_dim: int, num_latents: int, num_categories: int,
                 hidden_dims=(256, 128), likelihood: str = "bernoulli", *,
                 estimator: str = "gumbel_softmax", temperature: float = 1.0,
                 baseline: str = "running", baseline_decay: float = 0.9,
                 activation: str = "relu", observation_scale: float = 0.1,
                 min_scale: float = 0.01, seed: int = 0):
        super().__init__()
        seed = check_seed(seed)
        self.data_dim = check_int(data_dim, "data_dim", minimum=1)
        self.num_latents = check_int(num_latents, "num_latents", minimum=1)
        self.num_categories = check_int(num_categories, "num_categories", minimum=2)
        self.latent_dim = self.num_latents * self.num_categories
        hidden_dims = check_hidden_dims(hidden_dims)
        self.estimator = check_choice(estimator, CATEGORICAL_ESTIMATORS, "estimator")
        self.temperature = check_temperature(check_positive(temperature, "temperature"))
        self.baseline = check_choice(baseline, BASELINES, "baseline")
        self.baseline_decay = check_real(baseline_decay, "baseline_decay", minimum=0.0,
                                         maximum=1.0, strict_maximum=True)
        self.likelihood = make_likelihood(likelihood, observation_scale=observation_scale,
                                          min_scale=min_scale)
        check_network_size({"data_dim": self.data_dim, "num_latents": self.num_latents,
                            "num_categories": self.num_categories, "hidden_dims": hidden_dims},
                           [self.data_dim, *hidden_dims, self.latent_dim],
                           [self.latent_dim, *hidden_dims[::-1],
                            self.likelihood.params_per_pixel * self.data_dim])
        self.config = {
            "data_dim": self.data_dim, "num_latents": self.num_latents,
            "num_categories": self.num_categories, "hidden_dims": list(hidden_dims),
            "likelihood": self.likelihood.name, "estimator": self.estimator,
            "temperature": self.temperature, "baseline": self.baseline,
            "baseline_decay": self.baseline_decay, "activation": activation,
            "observation_scale": float(observation_scale), "min_scale": float(min_scale),
            "seed": seed,
        }

        def build():
            self._build_mlp_pair(hidden_dims, activation)
            if self.baseline == "learned":
                width = hidden_dims[-1] if hidden_dims else 32
                self.baseline_net = MLP(self.data_dim, (width,), 1, activation)

        self._init_seeded(seed, build)
        # The running average of f = log p(x | z) (REINFORCE's baseline); count = updates so far.
        self.register_buffer("running_baseline", torch.zeros(()))
        self.register_buffer("baseline_count", torch.zeros((), dtype=torch.long))

    def extra_repr(self) -> str:
        return (f"data_dim={self.data_dim}, num_latents={self.num_latents}, "
                f"num_categories={self.num_categories}, estimator={self.estimator!r}")

    def forward(self, x, *, num_samples: int = 1, generator=None) -> torch.Tensor:
        """``model(x)``: the per-example ELBO, :meth:`elbo` (``x`` of shape (n, data_dim),
        returns (n,) nats)."""
        return self.elbo(x, num_samples=num_samples, generator=generator)

    @property
    def num_states(self) -> int:
        """C^L, the number of joint latent states."""
        return self.num_categories ** self.num_latents

    @property
    def log_prior(self) -> float:
        """log p(z) = -L log C for every z (the uniform prior)."""
        return -self.num_latents * math.log(self.num_categories)

    # -- the distributions ----------------------------------------------------
    def _log_probs(self, x) -> torch.Tensor:
        """Normalised log q(z_l = c | x), shape (n, L, C)."""
        h = self.encoder(x).reshape(x.shape[0], self.num_latents, self.num_categories)
        return torch.log_softmax(h, dim=-1)

    def _decode_params(self, z) -> torch.Tensor:
        return self.decoder(z.reshape(*z.shape[:-2], self.latent_dim))

    def _log_px(self, z, x) -> torch.Tensor:
        """log p(x | z) for codes (..., n, L, C): shape (..., n)."""
        return self.likelihood.distribution(self._decode_params(z)).log_prob(x)

    @staticmethod
    def _log_q(z, log_probs) -> torch.Tensor:
        """log q(z | x) of one-hot codes (..., n, L, C): shape (..., n)."""
        return (z * log_probs).sum((-1, -2))

    def _kl_dims(self, log_probs) -> torch.Tensor:
        """KL(q(z_l | x) || Cat(1/C)) = sum_c q log q + log C, per latent: (n, L)."""
        return (log_probs.exp() * log_probs).sum(-1) + math.log(self.num_categories)

    def encode(self, x) -> Independent:
        """q(z | x): ``Independent(OneHotCategorical(logits), 1)``, batch (n,), event (L, C)."""
        x = self._check_x(x)
        return Independent(OneHotCategorical(logits=self._log_probs(x), validate_args=False), 1,
                           validate_args=False)

    def _as_codes(self, z, name: str = "z") -> torch.Tensor:
        z = self._as_tensor(z, name)
        if z.ndim >= 1 and z.shape[-1] == self.latent_dim:
            z = z.reshape(*z.shape[:-1], self.num_latents, self.num_categories)
        if z.ndim < 2 or tuple(z.shape[-2:]) != (self.num_latents, self.num_categories):
            raise ValueError(f"{name} must have shape (..., {self.num_latents}, "
                             f"{self.num_categories}) or (..., {self.latent_dim}), "
                             f"got {tuple(z.shape)}")
        if not bool(torch.isfinite(z).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
        # A code is a point of the simplex per latent: one-hot, or relaxed (Gumbel-softmax).
        if z.numel() and (float(z.min()) < 0 or float(z.max()) > 1
                          or not bool(torch.allclose(z.sum(-1), torch.ones((), dtype=z.dtype),
                                                     rtol=0, atol=1e-4))):
            raise ValueError(f"{name} must hold codes: entries in [0, 1] summing to 1 over the "
                             f"{self.num_categories} categories of each latent (one-hot or "
                             "relaxed), got values in "
                             f"[{float(z.min()):.3g}, {float(z.max()):.3g}]")
        return z

    def decode(self, z):
        """p(x | z) for codes z of shape (..., L, C) or (..., L * C) (one-hot or relaxed).

        Returns a distribution with batch shape ``z.shape[:-2]`` and event (data_dim,).
        """
        z = self._as_codes(z)
        return self.likelihood.distribution(self._decode_params(z))

    def _draw(self, log_probs, num_samples: int, generator=None) -> torch.Tensor:
        """K exact draws of q, one-hot (K, n, L, C) (Gumbel-max), no gradient."""
        return gumbel_max_sample(log_probs.detach(), (num_samples,), generator=generator)

    # -- bounds -----------------------------------------------------------------
    def elbo(self, x, *, num_samples: int = 1, generator=None) -> torch.Tensor:
        """Monte Carlo ELBO with exact one-hot draws and the closed-form KL, shape (n,).

        E_q[log p(x|z)] is averaged over ``num_samples`` draws; unbiased for the ELBO.
        Differentiable in the decoder only (the draws are discrete); to train,
        use :func:`vitoolkit.vae.train`, which applies the model's ``estimator``.
        """
        k = check_num_samples(num_samples)
        x = self._check_x(x)
        self._check_draws(k, x.shape[0], chunked=False)
        log_probs = self._log_probs(x)
        z = self._draw(log_probs, k, generator)
        return self._log_px(z, x).mean(0) - self._kl_dims(log_probs).sum(-1)

    def _log_weight_chunks(self, x, num_samples: int, generator=None):
        """Yield log p(x, z_k) - log q(z_k | x) chunk by chunk, (K_c, n) each."""
        log_probs = self._log_probs(x)
        chunk = self._chunk(x.shape[0])
        for start in range(0, num_samples, chunk):
            z = self._draw(log_probs, min(chunk, num_samples - start), generator)
            yield self._log_px(z, x) + self.log_prior - self._log_q(z, log_probs)

    def _log_weights(self, x, num_samples: int, generator=None) -> torch.Tensor:
        """log p(x, z_k) - log q(z_k | x), shape (K, n), decoded in chunks."""
        return torch.cat(list(self._log_weight_chunks(x, num_samples, generator)))

    def _chunk(self, n: int) -> int:
        """Draws decoded at once for n examples: ~_CHUNK_ELEMENTS decoder outputs, fewer when
        a quarter of the memory limit cannot hold them (:meth:`_draw_bytes` each)."""
        return max(1, min(_CHUNK_ELEMENTS // (n * self._widest()),
                          memory_limit() // (4 * n * self._draw_bytes())))

    def _draw_bytes(self) -> int:
        """Bytes one draw of z for one example may hold while it is drawn, decoded and weighed.

        Measured (resident memory, ``/proc/self/status``) and rounded up: the Gumbel noise,
        its perturbed logits and the one-hot code (about 8 arrays of L * C), every decoder
        layer's output and activation (3 per width, 6 for the output, through the likelihood's
        temporaries), and the float64 copies the streaming accumulator makes (32 bytes).
        """
        itemsize = self._ref.element_size()
        widths = [m.out_features for m in self.decoder.modules() if isinstance(m, nn.Linear)]
        return itemsize * (8 * self.latent_dim + 3 * sum(widths[:-1]) + 6 * widths[-1]) + 32

    def _check_draws(self, k: int, n: int, *, chunked: bool) -> None:
        """Refuse k draws for n examples that cannot fit (or would run for hours): all k at
        once (``chunked=False``: a gradient keeps every draw's activations) or one chunk of
        draws plus the (k, n) log weights (twice: the chunks and their concatenation)."""
        check_draws(k, n)
        if chunked:
            need = (min(k, self._chunk(n)) * n * self._draw_bytes()
                    + 2 * k * n * self._ref.element_size())
        else:
            need = k * n * self._draw_bytes()
        check_memory(need, "num_samples", k,
                     f"{'the log weights' if chunked else 'the draws'} of {n} examples")

    def _widest(self) -> int:
        return max(self.likelihood.params_per_pixel * self.data_dim,
                   *(m.out_features for m in self.decoder.modules() if isinstance(m, nn.Linear)))

    def iwae_bound(self, x, num_samples: int, *, generator=None) -> torch.Tensor:
        """L_K = log 1/K sum_k p(x, z_k) / q(z_k | x) (Burda et al. 2015, eq. 8), shape (n,).

        With a gradient every draw's activations are kept (a K that cannot fit raises
        :class:`~vitoolkit.exceptions.ResourceLimitError` naming ``num_samples``); under
        ``torch.no_grad()`` a K * n beyond 2**24 log weights is streamed, as
        :meth:`log_likelihood` (and the Gaussian VAE) do.
        """
        k = check_num_samples(num_samples)
        x = self._check_x(x)
        if not torch.is_grad_enabled():
            return self._estimate(x, k, generator, x.shape[0], "iwae_bound")
        self._check_draws(k, x.shape[0], chunked=False)
        return log_mean_exp_unchecked(self._log_weights(x, k, generator), 0)

    @torch.no_grad()
    def log_likelihood(self, x, num_samples: int = 5000, *, generator=None,
                       batch_size: int = 512) -> torch.Tensor:
        """Importance-sampled log p(x) with q(z | x) as proposal (L_K, large K), shape (n,).

        Beyond 2**24 log weights per pass the draws are streamed, chunk by chunk, into the
        core's :class:`~vitoolkit.divergences.StreamingImportanceEstimate` (running
        log-sum-exp), as :meth:`vitoolkit.vae.VAE.log_likelihood` does, so memory does not
        grow with K; a K whose chunk and Pareto tails cannot fit raises
        :class:`~vitoolkit.exceptions.ResourceLimitError` naming ``num_samples``.
        """
        k = check_num_samples(num_samples)
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        x = self._check_x(x)
        return self._estimate(x, k, generator, batch_size, "log_likelihood")

    @torch.no_grad()
    def _estimate(self, x, k: int, generator, batch_size: int, what: str) -> torch.Tensor:
        """log 1/K sum_k w_k per example, ``batch_size`` examples per pass; streamed (the
        core's running log-sum-exp) when a pass holds more than 2**24 log weights."""
        check_draws(k, x.shape[0])
        limit = _sampling._STREAM_ELEMENTS  # read at call time (tests patch it)
        stream = k * min(batch_size, x.shape[0]) > limit
        if stream:  # each example keeps its Pareto tail: fewer examples per pass
            tail = StreamingImportanceEstimate.tail_size(k)
            batch_size = max(1, min(batch_size, limit // tail))
        nb = min(batch_size, x.shape[0])
        if not stream:
            self._check_draws(k, nb, chunked=True)
        else:
            check_draws(k, nb)
            check_memory(min(k, self._chunk(nb)) * nb * self._draw_bytes()
                         + StreamingImportanceEstimate.memory_bytes(k, nb, self._ref.element_size()),
                         "num_samples", k, f"{what} over {nb} examples (one chunk of draws and "
                         "each example's Pareto tail)")
        out = []
        for s in range(0, x.shape[0], batch_size):
            xb = x[s:s + batch_size]
            if not stream:
                out.append(log_mean_exp_unchecked(self._log_weights(xb, k, generator), 0))
                continue
            acc = StreamingImportanceEstimate(k)
            for lw in self._log_weight_chunks(xb, k, generator):
                acc.update(lw)
            out.append(acc.result(x.dtype).value)
        return torch.cat(out)

    def all_states(self) -> torch.Tensor:
        """Every joint code, one-hot, shape (C^L, L, C) (C^L <= :data:`MAX_ENUMERATED_STATES`)."""
        if self.num_states > MAX_ENUMERATED_STATES:
            raise ValueError(
                f"enumeration needs C^L = {self.num_categories}^{self.num_latents} = "
                f"{self.num_states} states, more than {MAX_ENUMERATED_STATES}; use the Monte "
                "Carlo methods (elbo, iwae_bound, log_likelihood)")
        ref = self._ref
        c, lat = self.num_categories, self.num_latents
        index = torch.arange(self.num_states, device=ref.device)
        digits = torch.stack([(index // c**i) % c for i in range(lat)], dim=-1)
        return torch.nn.functional.one_hot(digits, c).to(ref.dtype)

    def _enumerated_log_px(self, x) -> torch.Tensor:
        """log p(x | s) for every state s, shape (S, n), in chunks of states."""
        states = self.all_states()
        chunk = max(1, _CHUNK_ELEMENTS // (x.shape[0] * self.data_dim))
        out = []
        for start in range(0, states.shape[0], chunk):
            params = self._decode_params(states[start:start + chunk])  # (s, P*D)
            dist = self.likelihood.distribution(params.unsqueeze(1))  # batch (s, 1)
            out.append(dist.log_prob(x))  # (s, n)
        return torch.cat(out)

    def exact_elbo(self, x) -> torch.Tensor:
        """The ELBO by enumerating every joint state, shape (n,) (differentiable).

        sum_z q(z | x) log p(x | z) - KL(q(z | x) || p(z)); its gradient in the
        encoder's weights is the exact gradient the estimators estimate.
        """
        x = self._check_x(x)
        log_probs = self._log_probs(x)
        states = self.all_states()
        log_q = torch.einsum("slc,nlc->sn", states, log_probs)
        return (log_q.exp() * self._enumerated_log_px(x)).sum(0) - self._kl_dims(log_probs).sum(-1)

    def exact_log_likelihood(self, x) -> torch.Tensor:
        """log p(x) = log sum_z p(z) p(x | z) by enumeration, shape (n,)."""
        x = self._check_x(x)
        return torch.logsumexp(self._enumerated_log_px(x), 0) + self.log_prior

    # -- generation -----------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, *, mean: bool = True, generator=None) -> torch.Tensor:
        """Decode codes drawn from the uniform prior: decoder means (or draws), (n, data_dim)."""
        from ..distributions import sample as _sample

        n = check_int(n, "n", minimum=1)
        mean = check_bool(mean, "mean")
        check_memory(n * (self.latent_dim + 2 * self._widest()) * 4, "n", n,
                     "the codes and decoded samples")
        ref = self._ref
        flat = torch.zeros((n, self.num_latents, self.num_categories), device=ref.device,
                           dtype=ref.dtype)
        z = gumbel_max_sample(flat, generator=generator)
        dist = self.likelihood.distribution(self._decode_params(z))
        return dist.mean if mean else _sample(dist, generator=generator)

    @torch.no_grad()
    def reconstruct(self, x) -> torch.Tensor:
        """Decoder mean at the most probable code argmax q(z | x), shape (n, data_dim)."""
        x = self._check_x(x)
        log_probs = self._log_probs(x)
        z = torch.nn.functional.one_hot(log_probs.argmax(-1), self.num_categories).to(x.dtype)
        return self.likelihood.distribution(self._decode_params(z)).mean

    # -- the estimators -------------------------------------------------------
    def _baseline_value(self, x, baseline):
        """REINFORCE's b: (n,) or a scalar; also returns the learned part (or None)."""
        if baseline is None:
            baseline = self.baseline
        if not isinstance(baseline, str):
            # A constant b: a finite real number the model's dtype holds (NaN or an overflow
            # to inf would turn every gradient into NaN).
            big = float(torch.finfo(x.dtype).max)
            b = check_real(baseline, "baseline", minimum=-big, maximum=big)
            return torch.as_tensor(b, dtype=x.dtype, device=x.device), None
        check_choice(baseline, BASELINES, "baseline")
        if baseline == "none":
            return torch.zeros((), dtype=x.dtype, device=x.device), None
        running = self.running_baseline.to(x.dtype)
        if baseline == "running":
            return running, None
        if not hasattr(self, "baseline_net"):
            raise ValueError("baseline='learned' needs a model built with baseline='learned' "
                             "(it owns the baseline network)")
        learned = self.baseline_net(x).squeeze(-1)
        return running + learned, learned

    def _surrogate(self, x, *, estimator: str, num_samples: int, generator=None,
                   temperature: float | None = None, baseline=None, beta: float = 1.0,
                   update: bool = False):
        """The loss whose gradient is the estimator's (batch mean), and ELBO statistics.

        Returns ``(loss, stats)`` with ``stats`` as :func:`vitoolkit.vae.train` expects.
        """
        k = num_samples
        log_probs = self._log_probs(x)
        kl_dims = self._kl_dims(log_probs)
        extra = 0.0
        if estimator == "gumbel_softmax":
            tau = self.temperature if temperature is None else check_temperature(temperature)
            draw = gumbel_softmax_sample(log_probs, tau, (k,), generator=generator)
            recon_relaxed = self._log_px(draw.soft, x)  # (K, n), gradient through y
            loss = -(recon_relaxed.mean(0) - beta * kl_dims.sum(-1)).mean()
            with torch.no_grad():
                recon = self._log_px(draw.hard, x).mean(0)
        elif estimator == "reinforce":
            z = self._draw(log_probs, k, generator)
            f = self._log_px(z, x)  # (K, n)
            log_q = self._log_q(z, log_probs)
            b, learned = self._baseline_value(x, baseline)
            signal = (f.detach() - b.detach())
            # Score-function surrogate (Williams 1992): grad = (f - b) grad log q + grad f.
            surrogate = f + signal * log_q
            loss = -(surrogate.mean(0) - beta * kl_dims.sum(-1)).mean()
            if learned is not None:
                # Fit b_psi(x) to f - running by squared error (NVIL, Mnih & Gregor 2014).
                target = (f.detach() - self.running_baseline.to(x.dtype)).mean(0)
                extra = (target - learned).pow(2).mean()
            recon = f.detach().mean(0)
            if update:
                with torch.no_grad():
                    batch_mean = f.detach().mean()
                    if int(self.baseline_count) == 0:
                        self.running_baseline.copy_(batch_mean)
                    else:
                        d = self.baseline_decay
                        self.running_baseline.mul_(d).add_((1 - d) * batch_mean)
                    self.baseline_count.add_(1)
        else:  # vimco
            if k < 2:
                raise ValueError(f"num_samples must be >= 2 for estimator='vimco' (the "
                                 f"leave-one-out baseline needs another sample), got {k}")
            z = self._draw(log_probs, k, generator)
            f = self._log_px(z, x)
            log_q = self._log_q(z, log_probs)
            log_w = f + self.log_prior - log_q  # (K, n), gradient to both networks
            bound = log_mean_exp_unchecked(log_w, 0)
            with torch.no_grad():
                lw = log_w.detach()
                # Mnih & Rezende (2016), eq. (10): replace log w_j by the mean of the others.
                others = (lw.sum(0, keepdim=True) - lw) / (k - 1)  # (K, n)
                eye = torch.eye(k, dtype=torch.bool, device=x.device).unsqueeze(-1)  # (K, K, 1)
                swapped = torch.where(eye, others.unsqueeze(1), lw.unsqueeze(0))  # (j, i, n)
                loo = log_mean_exp_unchecked(swapped, 1)  # (K, n)
                signal = bound.detach().unsqueeze(0) - loo
            loss = -(bound + (signal * log_q).sum(0)).mean()
            recon = f.detach().mean(0)
        total = loss + extra
        stats = {"loss": loss.detach(), "recon": recon.sum(), "kl_dims": kl_dims.detach(),
                 "loc": log_probs.detach().exp().reshape(x.shape[0], -1)}
        return total, stats

    def _loss(self, x, y, *, beta: float, free_bits: float, objective: str, num_samples: int,
              generator=None):
        """Training loss of :func:`vitoolkit.vae.train` (see :meth:`_surrogate`)."""
        if y is not None:
            raise ValueError("CategoricalVAE is unconditional: labels are not supported")
        if free_bits > 0:
            raise ValueError("free_bits is not supported by CategoricalVAE")
        if self.estimator == "vimco":
            if objective != "iwae":
                raise ValueError("estimator='vimco' trains the multi-sample bound: use "
                                 f"objective='iwae' with num_samples >= 2 (got {objective!r})")
            if beta != 1.0:
                raise ValueError("beta applies to the ELBO objective only")
        elif objective != "elbo":
            raise ValueError(f"estimator={self.estimator!r} trains the ELBO (objective='elbo'); "
                             "for the multi-sample bound use estimator='vimco' with "
                             f"objective='iwae' (got objective={objective!r})")
        return self._surrogate(x, estimator=self.estimator, num_samples=num_samples,
                               generator=generator, beta=beta, update=self.training)

    @torch.no_grad()
    def calibrate_baseline(self, x, num_samples: int = 20, *, generator=None) -> float:
        """Set the running baseline to the mean of log p(x | z), z ~ q(z | x), over ``x``.

        That mean is what the running average tracks during REINFORCE training; this
        sets it at once, e.g. to measure REINFORCE's variance at a checkpoint of a model
        trained another way. Returns the value.
        """
        k = check_num_samples(num_samples)
        x = self._check_x(x)
        self._check_draws(k, x.shape[0], chunked=False)
        log_probs = self._log_probs(x)
        value = self._log_px(self._draw(log_probs, k, generator), x).mean()
        self.running_baseline.copy_(value)
        self.baseline_count.clamp_(min=1)
        return float(value)

    def encoder_parameters(self) -> list:
        """The encoder's parameters (the ones the estimators' gradients are about)."""
        return list(self.encoder.parameters())

    def encoder_gradients(self, x, num_draws: int, *, estimator: str | None = None,
                          num_samples: int = 1, temperature: float | None = None,
                          baseline=None, generator=None) -> torch.Tensor:
        """Independent estimates of the encoder's gradient of the objective on a batch.

        Each draw is one training step's estimate: the gradient, in the encoder's
        weights, of the batch mean of the objective (the ELBO, or L_K for
        ``"vimco"``), i.e. minus the gradient of the training loss. The
        parameters are not changed, and the running baseline is not updated.

        Parameters
        ----------
        x : Tensor of shape (n, data_dim)
        num_draws : int >= 1
        estimator : str, optional
            Default: the model's own.
        num_samples : int
            Draws of z per example per estimate (K of VIMCO, >= 2).
        temperature : float > 0, optional
            Gumbel-softmax tau (default: the model's); given with another estimator it
            would be ignored, so it is refused (``ValueError``).
        baseline : {"running", "learned", "none"} or float, optional
            REINFORCE's baseline (default: the model's); a finite float is a constant b.
            Refused with another estimator than ``"reinforce"``.
        generator : torch.Generator, optional

        Returns
        -------
        Tensor of shape (num_draws, P), P = number of encoder weights (float64).
        """
        x = self._check_x(x)
        num_draws = check_int(num_draws, "num_draws", minimum=1)
        k = check_num_samples(num_samples)
        estimator = self.estimator if estimator is None else \
            check_choice(estimator, CATEGORICAL_ESTIMATORS, "estimator")
        # An option the chosen estimator does not use is refused, not ignored.
        if temperature is not None:
            if estimator != "gumbel_softmax":
                raise ValueError(f"temperature applies to estimator='gumbel_softmax' only, got "
                                 f"temperature={temperature!r} with estimator={estimator!r}")
            temperature = check_temperature(temperature)
        if baseline is not None:
            if estimator != "reinforce":
                raise ValueError(f"baseline applies to estimator='reinforce' only, got "
                                 f"baseline={baseline!r} with estimator={estimator!r}")
            self._baseline_value(x[:1], baseline)  # checked before any draw
        if estimator == "vimco" and k < 2:
            raise ValueError(f"num_samples must be >= 2 for estimator='vimco' (the "
                             f"leave-one-out baseline needs another sample), got {k}")
        self._check_draws(k, x.shape[0], chunked=False)
        check_draws(num_draws * k, x.shape[0], "num_draws")  # decoder passes, each with a backward
        check_memory(num_draws * sum(p.numel() for p in self.encoder_parameters()) * 8,
                     "num_draws", num_draws, "the gradient estimates (float64)")
        params = self.encoder_parameters()
        out = []
        for _ in range(num_draws):
            loss, _ = self._surrogate(x, estimator=estimator, num_samples=k, generator=generator,
                                      temperature=temperature, baseline=baseline)
            grads = torch.autograd.grad(loss, params)
            out.append(-torch.cat([g.reshape(-1) for g in grads]).double())
        return torch.stack(out)

    def exact_encoder_gradient(self, x) -> torch.Tensor:
        """The exact gradient of the batch-mean ELBO in the encoder's weights (enumeration).

        Returns a float64 tensor of shape (P,), comparable with :meth:`encoder_gradients`.
        """
        x = self._check_x(x)
        grads = torch.autograd.grad(self.exact_elbo(x).mean(), self.encoder_parameters())
        return torch.cat([g.reshape(-1) for g in grads]).double()
