r"""The variational autoencoder: encoder q(z|x), decoder p(x|z), prior, bounds.

The VAE (Kingma & Welling 2013) pairs a decoder p_theta(x | z) with a standard
normal prior p(z) = N(0, I) and an encoder q_phi(z | x) = N(mu(x), diag sigma^2(x)).
It maximises the evidence lower bound, eq. (3) of the paper,

    ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z))  <=  log p(x),

estimated with the reparameterisation z = mu + sigma * eps, eps ~ N(0, I)
(section 2.4; the Gaussian estimator with analytic KL is eq. (10), the KL itself
Appendix B). Tighter bounds use k importance samples (Burda, Grosse &
Salakhutdinov 2015, eq. (8)):

    L_k(x) = E[log 1/k sum_j p(x, z_j) / q(z_j | x)],   L_1 = ELBO <= L_k <= L_{k+1} <= log p(x),

and log p(x) itself is estimated by L_k with a large k (k = 5000 in Burda et
al., section 5; importance sampling as in Kingma & Welling, Appendix D).

Importance sampling can fail silently: when q(z|x) is much narrower than the
posterior in some direction the weights p(x, z)/q(z|x) are heavy-tailed, the
estimate sits far below log p(x) and its sample standard error is meaningless.
``iwae_bound`` and ``log_likelihood`` therefore fit the Pareto k-hat of the weights
(Vehtari, Simpson, Gelman, Yao & Gabry, "Pareto smoothed importance sampling",
JMLR 2024) for every example, return it with ``return_diagnostics=True``, and issue
an :class:`~vitoolkit.divergences.UnreliableEstimateWarning` when any example's
k-hat exceeds 0.7.

Shapes: data travel flattened, ``x`` of shape (n, data_dim); codes ``z`` of
shape (..., latent_dim); a conditional VAE's label ``y`` is one-hot (n,
conditional_dim) (integer labels (n,) are accepted and one-hot encoded).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.distributions import Independent, Normal

from ..distributions import StandardNormal, reparameterise
from ..distributions import sample as _sample
from ..divergences import StreamingImportanceEstimate, kl_divergence
from ..divergences.estimate import Estimate, warn_if_unreliable
from ..divergences.importance import (
    ImportanceEstimate,
    importance_estimate,
    importance_estimate_unchecked,
    log_mean_exp_unchecked,
)
from ..validation import (
    check_bool,
    check_choice,
    check_int,
    check_memory,
    check_positive,
    check_real,
    check_seed,
)
from . import importance as _sampling
from .base import _LatentVariableModel, check_network_size
from .importance import (  # re-exported: importable from here, as before the split
    MAX_DRAWS,
    check_draws,
    check_num_samples,
    log_importance_weights,
    posterior_importance,
    posterior_log_weights,
    posterior_params,
)
from .likelihoods import make_likelihood
from .networks import (
    ARCHITECTURES,
    build_encoder_decoder,
    check_hidden_dims,
    check_image_shape,
)

__all__ = [
    "VAE",
    "KL_METHODS",
    "OBJECTIVES",
    "ImportanceEstimate",
    "StandardNormal",
    "MAX_DRAWS",
    "check_draws",
    "check_network_size",
    "check_num_samples",
    "importance_estimate",
    "log_importance_weights",
    "posterior_importance",
    "posterior_log_weights",
    "posterior_params",
]

#: How the KL term of the ELBO is computed.
KL_METHODS = ("analytic", "monte_carlo")
#: Training objectives.
OBJECTIVES = ("elbo", "iwae")


def _deprecated_diagnostics(method: str, replacement: str) -> None:
    """The one DeprecationWarning of ``return_diagnostics=True`` (it changed the return type)."""
    warnings.warn(f"{method}(..., return_diagnostics=True) is deprecated: it changes the return type; "
                  f"call {replacement}(...), which returns the Estimate (value, stderr, khat)",
                  DeprecationWarning, stacklevel=3)


class VAE(_LatentVariableModel):
    r"""Variational autoencoder with a diagonal Gaussian encoder and N(0, I) prior.

    Parameters
    ----------
    data_dim : int
        Number of observed values per example (pixels, flattened).
    latent_dim : int >= 1
    hidden_dims : sequence of int
        Encoder hidden widths (MLP) or convolution channels (conv); the decoder
        mirrors them.
    likelihood : {"bernoulli", "gaussian", "gaussian_learned", "continuous_bernoulli"}
        The observation model p(x | z); see :mod:`vitoolkit.vae.likelihoods`.
    conditional_dim : int
        Number of classes of a conditional VAE (the one-hot label is fed to
        encoder and decoder); 0 for an unconditional model.
    architecture : {"mlp", "conv"}
    image_shape : (C, H, W) or (H, W), optional
        Required for ``architecture="conv"``.
    kl : {"analytic", "monte_carlo"}
        ``"analytic"``: KL(q(z|x) || p(z)) in closed form through
        :func:`vitoolkit.divergences.kl_divergence` (Kingma & Welling,
        Appendix B). ``"monte_carlo"``: log q(z|x) - log p(z) at the
        reparameterised sample (their estimator A, eq. (6)): unbiased, noisier.
    activation : str
        Hidden nonlinearity, a key of :data:`vitoolkit.vae.networks.ACTIVATIONS`.
    observation_scale : float
        The fixed standard deviation of ``likelihood="gaussian"``.
    min_scale : float
        Floor on the learned decoder scale of ``likelihood="gaussian_learned"``.
    posterior_scale : float, optional
        ``None`` (default): the encoder learns sigma(x) (it outputs log sigma^2).
        A number fixes every posterior standard deviation at that value (the
        encoder then learns only the mean), for comparison.
    seed : int
        Seed of the weight initialisation (the global random state is untouched).
    """

    def __init__(self, data_dim: int, latent_dim: int, hidden_dims=(256, 128),
                 likelihood: str = "bernoulli", *, conditional_dim: int = 0,
                 architecture: str = "mlp", image_shape=None, kl: str = "analytic",
                 activation: str = "relu", observation_scale: float = 0.1,
                 min_scale: float = 0.01, posterior_scale: float | None = None, seed: int = 0):
        super().__init__()
        seed = check_seed(seed)
        self.data_dim = check_int(data_dim, "data_dim", minimum=1)
        self.latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
        self.conditional_dim = check_int(conditional_dim, "conditional_dim", minimum=0)
        hidden_dims = check_hidden_dims(hidden_dims)
        architecture = check_choice(architecture, ARCHITECTURES, "architecture")
        kl = check_choice(kl, KL_METHODS, "kl")
        if posterior_scale is not None:
            posterior_scale = check_positive(posterior_scale, "posterior_scale")
        self.likelihood = make_likelihood(likelihood, observation_scale=observation_scale,
                                          min_scale=min_scale)
        if architecture == "conv":
            self.image_shape = check_image_shape(image_shape, self.data_dim, len(hidden_dims))
        elif image_shape is not None:
            raise ValueError("image_shape applies to architecture='conv' only; the MLP reads "
                             f"flattened data (got image_shape={image_shape!r})")
        else:
            self.image_shape = None
        enc_out = self.latent_dim * (1 if posterior_scale is not None else 2)
        cond = self.conditional_dim
        check_network_size({"data_dim": self.data_dim, "latent_dim": self.latent_dim,
                            "conditional_dim": cond, "hidden_dims": hidden_dims},
                           [self.data_dim + cond, *hidden_dims, enc_out],
                           [self.latent_dim + cond, *hidden_dims[::-1],
                            self.likelihood.params_per_pixel * self.data_dim])
        self.kl = kl
        self.posterior_scale = None if posterior_scale is None else float(posterior_scale)
        #: Constructor arguments, so a checkpoint can rebuild (and check) the model.
        self.config = {
            "data_dim": self.data_dim, "latent_dim": self.latent_dim,
            "hidden_dims": list(hidden_dims), "likelihood": self.likelihood.name,
            "conditional_dim": self.conditional_dim, "architecture": architecture,
            "image_shape": None if image_shape is None else list(image_shape), "kl": kl,
            "activation": activation, "observation_scale": float(observation_scale),
            "min_scale": float(min_scale), "posterior_scale": self.posterior_scale,
            "seed": seed,
        }
        mlp = architecture == "mlp"

        def build():
            self.encoder, self.decoder = build_encoder_decoder(
                architecture, data_dim=self.data_dim, encoder_out=enc_out, latent_dim=self.latent_dim,
                hidden_dims=hidden_dims, activation=activation,
                params_per_pixel=self.likelihood.params_per_pixel, image_shape=self.image_shape,
                conditional_dim=cond)

        self._init_seeded(seed, build)
        self._mlp = mlp
        #: Widest decoder activation per sample, to size the importance-sampling chunks.
        self._decoder_width = max(
            self.likelihood.params_per_pixel * self.data_dim,
            *(m.out_features for m in self.decoder.modules() if isinstance(m, nn.Linear)))
        self.register_buffer("_prior_loc", torch.zeros(self.latent_dim), persistent=False)
        self.register_buffer("_prior_scale", torch.ones(self.latent_dim), persistent=False)

    def extra_repr(self) -> str:
        return (f"data_dim={self.data_dim}, latent_dim={self.latent_dim}, "
                f"likelihood={self.likelihood.name!r}, kl={self.kl!r}")

    def forward(self, x, beta: float = 1.0, y=None, *, generator=None) -> torch.Tensor:
        """``model(x)``: the per-example ELBO, :meth:`elbo` with the same arguments (``x`` of
        shape (n, data_dim); returns (n,) nats, differentiable), so the VAE is called like any
        ``nn.Module``."""
        return self.elbo(x, beta, y, generator=generator)

    # -- the distributions ----------------------------------------------------
    @property
    def prior(self) -> Independent:
        """p(z) = N(0, I): batch shape (), event shape (latent_dim,)."""
        # Built once per device/dtype of the buffers (``.to()`` replaces them), because
        # every training step asks for it.
        loc = self._buffers["_prior_loc"]
        cached = self.__dict__.get("_prior_cache")
        if cached is None or cached[0] is not loc:
            base = StandardNormal(loc, self._buffers["_prior_scale"], validate_args=False)
            cached = (loc, Independent(base, 1, validate_args=False))
            self.__dict__["_prior_cache"] = cached
        return cached[1]

    def _encode_params(self, x, y):
        if not self._mlp:
            h = self.encoder(x, y)
        elif y is None:
            h = self.encoder(x)
        else:
            h = self.encoder(self._with_label(x, y))
        if self.posterior_scale is not None:
            return h, torch.full_like(h, self.posterior_scale)
        # The encoder outputs log sigma^2, as in Kingma & Welling (2013), Appendix C.2.
        loc, log_var = h.chunk(2, dim=-1)
        return loc, torch.exp(0.5 * log_var)

    def _decode_params(self, z, y):
        return self.decoder(z if y is None else self._with_label(z, y))

    def encode(self, x, y=None) -> Independent:
        """q(z | x) = N(mu(x), diag sigma(x)^2).

        Parameters
        ----------
        x : Tensor of shape (n, data_dim)
        y : Tensor of shape (n, conditional_dim), optional (conditional VAE only)

        Returns
        -------
        Independent(Normal(loc, scale), 1): batch shape (n,), event (latent_dim,).
        """
        x = self._check_x(x)
        loc, scale = self._encode_params(x, self._check_y(y, x.shape[0]))
        return Independent(Normal(loc, scale, validate_args=False), 1, validate_args=False)

    def decode(self, z, y=None):
        """p(x | z): batch shape z.shape[:-1], event shape (data_dim,); ``.mean`` is the mean.

        Parameters
        ----------
        z : Tensor of shape (..., latent_dim)
        y : Tensor of shape (n, conditional_dim), optional; broadcast against z's
            leading dims (so z may be (k, n, latent_dim)).
        """
        z = self._check_z(z)
        n = z.shape[-2] if z.ndim >= 2 else 1
        y = self._check_y(y, n)
        return self.likelihood.distribution(self._decode_params(z, y))

    # -- bounds -----------------------------------------------------------------
    def _terms(self, x, y, generator=None):
        """One reparameterised sample: log p(x|z) (n,), per-dim KL (n, L), encoder means."""
        loc, scale = self._encode_params(x, y)
        eps = torch.randn(loc.shape, generator=generator, device=loc.device, dtype=loc.dtype)
        z = reparameterise(loc, scale, eps)  # the reparameterisation trick, Kingma & Welling sec. 2.4
        recon = self.likelihood.distribution(self._decode_params(z, y)).log_prob(x)
        return recon, self._kl_dims(loc, scale, z), loc

    def _decoder_distribution(self, z, y):
        """p(x | z) without the input checks of :meth:`decode` (inner loops)."""
        return self.likelihood.distribution(self._decode_params(z, y))

    def _log_weights(self, x, y, num_samples: int, generator=None) -> torch.Tensor:
        """log p(x, z_j) - log q(z_j | x) for j = 1..k, z_j ~ q(z | x), shape (k, n)."""
        return posterior_log_weights(self, x, y, num_samples, generator)

    def _importance(self, x, y, k: int, generator, what: str, *, warn: bool, stacklevel: int):
        """The :class:`ImportanceEstimate` of L_k per example (streamed when k * n is large).

        ``stacklevel`` as for :func:`warnings.warn` from here (3: the caller's caller).
        """
        log_w, est = posterior_importance(self, x, y, k, generator, what=what)
        if est is None:
            est = importance_estimate_unchecked(log_w)
        if warn:
            warn_if_unreliable(est, what, stacklevel=stacklevel + 1, importance=True)
        return est

    def elbo(self, x, beta: float = 1.0, y=None, *, generator=None) -> torch.Tensor:
        r"""ELBO(x) = E_q[log p(x|z)] - beta KL(q(z|x) || p(z)), one-sample estimate.

        Kingma & Welling (2013), eq. (10) (with ``kl="analytic"``); beta != 1 is
        the beta-VAE objective (Higgins et al. 2017, eq. (4)).

        Parameters
        ----------
        x : Tensor of shape (n, data_dim)
        beta : float >= 0
        y : Tensor of shape (n, conditional_dim), optional
        generator : torch.Generator, optional
            Source of the reparameterisation noise.

        Returns
        -------
        Tensor of shape (n,): nats per example (differentiable).
        """
        x = self._check_x(x)
        y = self._check_y(y, x.shape[0])
        beta = _check_beta(beta)
        recon, kl_dims, _ = self._terms(x, y, generator)
        kl = kl_dims.sum(-1)
        out = recon - beta * kl
        if beta > 1 and not bool(torch.isfinite(out).all()) and bool(torch.isfinite(kl).all()):
            raise ValueError(f"beta={beta!r} makes beta * KL overflow {out.dtype} (KL up to "
                             f"{float(kl.detach().max()):.3g} nats); use a smaller beta")
        return out

    def iwae_estimate(self, x, num_samples: int, y=None, *, generator=None) -> Estimate:
        r"""The importance-weighted bound L_k(x), Burda et al. (2015), eq. (8).

        L_k = log 1/k sum_j p(x, z_j) / q(z_j | x),  z_j ~ q(z | x) i.i.d.;
        L_1 is the ELBO (with the Monte Carlo KL) and L_k increases with k.

        Parameters
        ----------
        x : Tensor of shape (n, data_dim)
        num_samples : int >= 1 (k)
            Under ``torch.no_grad()`` (or with nothing requiring grad) a k * n beyond
            2**24 log weights is streamed in chunks (running log-sum-exp), so memory
            does not grow with k; with a gradient every draw's activations are
            needed at once, and a k that would not fit in memory raises
            :class:`~vitoolkit.exceptions.ResourceLimitError` naming ``num_samples``;
            so does k * n beyond :data:`MAX_DRAWS` (2**34) draws, hours of computing.
        y : Tensor of shape (n, conditional_dim), optional
        generator : torch.Generator, optional

        Returns
        -------
        Estimate
            ``(value, stderr, khat)``, each of shape (n,): L_k in nats per example
            (``value`` differentiable), its delta-method standard error and the Pareto
            k-hat of the weights (:class:`vitoolkit.divergences.Estimate`).

        Warns
        -----
        UnreliableEstimateWarning
            When some example's k-hat exceeds 0.7 (only possible for k >= 21: fewer draws fit no tail).
        """
        return self._iwae(x, num_samples, y, generator)

    def _iwae(self, x, num_samples, y, generator) -> Estimate:
        """:meth:`iwae_estimate`, called by it and by :meth:`iwae_bound` (the warning points
        at their caller)."""
        k = check_num_samples(num_samples)
        x = self._check_x(x)
        y = self._check_y(y, x.shape[0])
        check_draws(k, x.shape[0])
        return self._importance(x, y, k, generator, f"iwae_bound(num_samples={k})", warn=True,
                                stacklevel=4)

    def iwae_bound(self, x, num_samples: int, y=None, *, generator=None,
                   return_diagnostics: bool = False) -> torch.Tensor:
        r"""The importance-weighted bound L_k(x), Burda et al. (2015), eq. (8): ``value`` of
        :meth:`iwae_estimate` (the same arguments), a Tensor of shape (n,), nats per example,
        differentiable.

        ``return_diagnostics=True`` (deprecated: it changed the return type) returns
        :meth:`iwae_estimate`'s :class:`~vitoolkit.divergences.Estimate` with a
        ``DeprecationWarning``; call :meth:`iwae_estimate` instead.
        """
        if check_bool(return_diagnostics, "return_diagnostics"):
            _deprecated_diagnostics("iwae_bound", "iwae_estimate")
            return self._iwae(x, num_samples, y, generator)
        return self._iwae(x, num_samples, y, generator).value


    def log_likelihood_estimate(self, x, num_samples: int = 5000, y=None, *, generator=None,
                                batch_size: int = 512) -> Estimate:
        r"""Importance-sampled estimate of log p(x) = L_k with a large k.

        Kingma & Welling (2013), Appendix D; Burda et al. (2015), section 5
        (k = 5000). The estimate is a lower bound in expectation that tightens
        as k grows. Its delta-method standard error is sd(w) / (sqrt(k) mean(w))
        for the weights w = p(x, z)/q(z|x); it is meaningful only when the
        weights' variance is finite, which the Pareto k-hat of the weights checks
        (Vehtari et al. 2024: above 0.7 neither the estimate nor its standard
        error can be trusted).

        Parameters
        ----------
        x : Tensor of shape (n, data_dim)
        num_samples : int >= 1
            Any size whose Pareto tail (3 sqrt(k) log weights per example) fits in
            memory: beyond 2**24 log weights per pass the draws are streamed
            (running log-sum-exp); a larger k, or k * n beyond :data:`MAX_DRAWS`
            draws, raises :class:`~vitoolkit.exceptions.ResourceLimitError` naming
            ``num_samples``.
        y : Tensor of shape (n, conditional_dim), optional
        generator : torch.Generator, optional
        batch_size : int
            Examples per pass (samples are further chunked to bound memory; fewer
            examples per pass when a streamed k makes the tails long).

        Returns
        -------
        Estimate
            ``(value, stderr, khat)``, each of shape (n,): nats per example (no gradient),
            the delta-method standard error and the Pareto k-hat of the weights.

        Warns
        -----
        UnreliableEstimateWarning
            When some example's k-hat exceeds 0.7: the message says how many.
        """
        return self._log_likelihood(x, num_samples, y, generator, batch_size)

    @torch.no_grad()
    def _log_likelihood(self, x, num_samples, y, generator, batch_size) -> Estimate:
        """:meth:`log_likelihood_estimate`, called by it and by :meth:`log_likelihood` (the
        warning points at their caller)."""
        k = check_num_samples(num_samples)
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        x = self._check_x(x)
        y = self._check_y(y, x.shape[0])
        check_draws(k, x.shape[0])
        was_training = self.training
        self.eval()
        try:
            parts = []
            # Streaming keeps each example's Pareto tail, 3 sqrt(k) log weights: fewer
            # examples per pass when that tail is long.
            tail = StreamingImportanceEstimate.tail_size(k)
            stream = _sampling._STREAM_ELEMENTS  # read at call time (tests patch it)
            if k * min(batch_size, x.shape[0]) > stream:
                batch_size = max(1, min(batch_size, stream // tail))
            what = f"log_likelihood(num_samples={k})"
            for s in range(0, x.shape[0], batch_size):
                yb = None if y is None else y[s:s + batch_size]
                parts.append(self._importance(x[s:s + batch_size], yb, k, generator, what,
                                              warn=False, stacklevel=2))
        finally:
            self.train(was_training)
        est = Estimate.concatenate(parts)
        # One warning for the whole call (not one per batch), pointing at the caller.
        warn_if_unreliable(est, f"log_likelihood(num_samples={k})", stacklevel=5, importance=True)
        return est

    def log_likelihood(self, x, num_samples: int = 5000, y=None, *, generator=None,
                       batch_size: int = 512, return_diagnostics: bool = False) -> torch.Tensor:
        r"""Importance-sampled estimate of log p(x) = L_k with a large k: ``value`` of
        :meth:`log_likelihood_estimate` (the same arguments), a Tensor of shape (n,), nats
        per example, no gradient.

        ``return_diagnostics=True`` (deprecated: it changed the return type) returns
        :meth:`log_likelihood_estimate`'s :class:`~vitoolkit.divergences.Estimate` with a
        ``DeprecationWarning``; call :meth:`log_likelihood_estimate` instead.
        """
        if check_bool(return_diagnostics, "return_diagnostics"):
            _deprecated_diagnostics("log_likelihood", "log_likelihood_estimate")
            return self._log_likelihood(x, num_samples, y, generator, batch_size)
        return self._log_likelihood(x, num_samples, y, generator, batch_size).value


    # -- generation -----------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, y=None, *, mean: bool = True, generator=None) -> torch.Tensor:
        """Draw z ~ p(z) and decode: the decoder mean (``mean=True``) or a draw of p(x|z).

        Returns a tensor of shape (n, data_dim).
        """
        n = check_int(n, "n", minimum=1)
        mean = check_bool(mean, "mean")
        check_memory(n * (self.latent_dim + 2 * self._decoder_width) * 4, "n", n,
                     "the codes and decoded samples")
        y = self._check_y(y, n)
        ref = self._ref
        z = torch.randn((n, self.latent_dim), generator=generator, device=ref.device,
                        dtype=ref.dtype)
        dist = self.likelihood.distribution(self._decode_params(z, y))
        return dist.mean if mean else _sample(dist, generator=generator)

    @torch.no_grad()
    def reconstruct(self, x, y=None, *, mean: bool = True, generator=None) -> torch.Tensor:
        """Decode the encoder mean mu(x): decoder mean, or a draw of p(x | mu(x)). (n, data_dim).

        ``generator`` is used by ``mean=False`` only (the decoder mean draws nothing): given
        with ``mean=True`` it is refused rather than ignored.
        """
        mean = check_bool(mean, "mean")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got "
                            f"{type(generator).__name__}")
        if mean and generator is not None:
            raise ValueError("generator would be ignored with mean=True (the decoder mean draws "
                             "nothing); pass mean=False to draw from p(x | mu(x))")
        x = self._check_x(x)
        y = self._check_y(y, x.shape[0])
        loc, _ = self._encode_params(x, y)
        dist = self.likelihood.distribution(self._decode_params(loc, y))
        return dist.mean if mean else _sample(dist, generator=generator)

    # -- used by vitoolkit.vae.train ------------------------------------------
    def _loss(self, x, y, *, beta: float, free_bits: float, objective: str, num_samples: int,
              generator=None):
        """Mini-batch loss (batch mean of the negative objective) and per-batch statistics.

        The ELBO path builds the smallest autograd graph that computes the same
        objective as :meth:`elbo` (summed reconstruction term, per-dimension KL
        from the shared core), because the training step is where time goes.
        Returns ``(loss, stats)``; ``stats`` holds detached tensors: ``loss``
        (batch mean), ``recon`` (batch sum of log p(x|z)), ``kl_dims`` (n, L)
        and ``loc`` (n, L) encoder means.
        """
        n = x.shape[0]
        if objective == "elbo":
            loc, scale = self._encode_params(x, y)
            eps = torch.randn(loc.shape, generator=generator, device=loc.device, dtype=loc.dtype)
            z = reparameterise(loc, scale, eps)
            nll = self.likelihood.nll_sum(self._decode_params(z, y), x)
            kl_dims = self._kl_dims(loc, scale, z)
            if free_bits > 0:
                # Free bits (Kingma et al. 2016, Appendix C.8): per-dimension KL, averaged
                # over the mini-batch, is not penalised below the threshold.
                loss = nll / n + beta * torch.clamp(kl_dims.mean(0), min=free_bits).sum()
            elif beta == 1.0:
                loss = (nll + kl_dims.sum()) / n
            else:
                loss = (nll + beta * kl_dims.sum()) / n
            recon = nll.detach().neg_()
        else:
            log_w = self._log_weights(x, y, num_samples, generator)
            loss = -log_mean_exp_unchecked(log_w, 0).mean()
            with torch.no_grad():
                loc, scale = self._encode_params(x, y)
                kl_dims = kl_divergence(Normal(loc, scale, validate_args=False),
                                        self.prior.base_dist)
                recon = log_w.mean(0).sum() + kl_dims.sum()
        return loss, {"loss": loss.detach(), "recon": recon, "kl_dims": kl_dims.detach(),
                      "loc": loc.detach()}

    def _kl_dims(self, loc, scale, z):
        """Per-dimension KL(q(z|x) || p(z)), (n, L): closed form, or sampled at z."""
        q = Normal(loc, scale, validate_args=False)
        prior = self.prior.base_dist
        if self.kl == "analytic":
            return kl_divergence(q, prior)  # Kingma & Welling, Appendix B, per dimension
        return q.log_prob(z) - prior.log_prob(z)


def _check_beta(beta) -> float:
    return check_real(beta, "beta", minimum=0.0)
