r"""A flow encoder: planar layers on top of the VAE's Gaussian q(z|x), and its amortisation gap.

:math:`q(z \mid x)` is the density of
:math:`z = T_K \circ \dots \circ T_1(\mu(x) + \sigma(x) \odot \varepsilon)`,
:math:`\varepsilon \sim \mathcal N(0, I)`, each :math:`T_k` a planar layer
:math:`u' = u + \hat u \tanh(w^\top u + b)` (Rezende & Mohamed 2015, eq. 10-12;
Pyro's ``ConditionedPlanar``), whose parameters (b, u, w) a small network computes from
x (an amortised flow, their section 4). By the change of variables,

.. math::

    \log q(z\mid x) = \log\mathcal N(\varepsilon; 0, I) - \sum_i \log\sigma_i(x)
      - \sum_k \log\lvert 1 + \hat u_k^\top \psi_k(u_{k-1})\rvert .

:func:`train_flow_vae` fits decoder, encoder and flow together by the ELBO;
``num_layers=0`` is the plain Gaussian VAE, trained by the same loop.
:func:`flow_amortisation_gap` splits :math:`\log p(x) - \mathcal L[q]` as Cremer, Li &
Duvenaud (ICML 2018, section 3) do, with :math:`q^*` the best flow of the same family
for each x alone: its local :math:`(\mu, \log\sigma, b, u, w)` start from the encoder's
output and follow the ELBO's gradient, as :func:`vitoolkit.vae.diagnostics.amortisation_gap`
does for the Gaussian family, with the same evaluation (common draws, :math:`\log p(x)` by
importance sampling with :math:`q^*`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..distributions import reparameterise
from ..divergences.estimate import warn_if_unreliable
from ..divergences.importance import importance_estimate_unchecked
from ..exceptions import DivergedError
from ..validation import check_int, check_positive
from .bounds import AmortisationGap
from .model import VAE

__all__ = ["PlanarFlowPosterior", "train_flow_vae", "flow_amortisation_gap", "flow_elbo"]


class PlanarFlowPosterior(nn.Module):
    """K amortised planar layers for a :class:`VAE`'s encoder (see the module docstring).

    Parameters
    ----------
    vae : VAE (unconditional, MLP encoder)
    num_layers : int >= 0 (0: the Gaussian encoder itself)
    hidden : int, width of the network computing the layers' parameters from x
    seed : int
    """

    def __init__(self, vae: VAE, num_layers: int = 2, hidden: int = 64, seed: int = 0):
        super().__init__()
        if not isinstance(vae, VAE):
            raise TypeError(f"vae must be a vitoolkit.vae.VAE, got {type(vae).__name__}")
        self.num_layers = check_int(num_layers, "num_layers", minimum=0, maximum=64)
        hidden = check_int(hidden, "hidden", minimum=1, maximum=4096)
        self.latent_dim = vae.latent_dim
        self.data_dim = vae.data_dim
        out = self.num_layers * (2 * self.latent_dim + 1)
        g = torch.Generator().manual_seed(int(seed))
        self.net = nn.Sequential(nn.Linear(self.data_dim, hidden), nn.Tanh(), nn.Linear(hidden, out)) \
            if out else None
        if self.net is not None:
            with torch.no_grad():
                for p in self.net.parameters():
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))

    def forward(self, x: torch.Tensor) -> list:
        """``flow(x)``: :meth:`layer_params`, the planar layers' parameters for ``x``."""
        return self.layer_params(x)

    def layer_params(self, x: torch.Tensor) -> list:
        """[(b (n, 1), u (n, L), w (n, L))] per layer, from x of shape (n, data_dim)."""
        if self.net is None:
            return []
        h = self.net(x)
        d = self.latent_dim
        return [(c[:, :1], c[:, 1:1 + d], c[:, 1 + d:]) for c in h.chunk(self.num_layers, dim=-1)]


def _planar_push(params: list, u: torch.Tensor):
    """Push u (S, n, L) through planar layers with per-example params; (z, sum log|det J|)."""
    from pyro.distributions.transforms.planar import ConditionedPlanar

    log_det = torch.zeros(u.shape[:-1], dtype=u.dtype)
    for b, uu, w in params:
        t = ConditionedPlanar((b, uu, w))
        y = t(u)
        log_det = log_det + t.log_abs_det_jacobian(u, y)
        u = y
    return u, log_det


def _log_weights(vae, x, loc, log_scale, params, eps):
    """log p(x, z) - log q(z|x) at z = T(loc + sigma eps), eps of shape (S, n, L) -> (S, n)."""
    u = reparameterise(loc, log_scale.exp(), eps)
    z, log_det = _planar_push(params, u)
    log_base = torch.distributions.Normal(0.0, 1.0).log_prob(eps).sum(-1)
    log_q = log_base - log_scale.sum(-1) - log_det
    log_joint = vae._decoder_distribution(z, None).log_prob(x) + vae.prior.log_prob(z)
    return log_joint - log_q


def _encoder_output(vae, flow, x):
    loc, scale = vae._encode_params(x, None)
    return loc, scale.log(), flow.layer_params(x)


def flow_elbo(vae: VAE, flow: PlanarFlowPosterior, x, num_samples: int = 1, generator=None):
    r"""The ELBO of a flow encoder per example (n,), by ``num_samples`` draws.

    :math:`\mathcal L[q] = E_{q(z \mid x)}[\log p(x, z) - \log q(z \mid x)]`, with
    :math:`\log q` from the module docstring's change of variables.
    """
    num_samples = check_int(num_samples, "num_samples", minimum=1)
    x = vae._check_x(x)
    loc, log_scale, params = _encoder_output(vae, flow, x)
    eps = torch.randn((num_samples, *loc.shape), generator=generator, dtype=loc.dtype)
    return _log_weights(vae, x, loc, log_scale, params, eps).mean(0)


def train_flow_vae(vae: VAE, flow: PlanarFlowPosterior, data, *, epochs: int, batch_size: int,
                   lr: float = 1e-3, seed: int = 0) -> list:
    """Fit decoder, encoder and flow by mini-batch Adam on the ELBO; returns the epoch means.

    One reparameterised draw per example and step (Kingma & Welling 2013, Algorithm 1);
    the KL term is inside the Monte Carlo average (q is not Gaussian).
    """
    epochs = check_int(epochs, "epochs", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    lr = check_positive(lr, "lr")
    x_all = vae._check_x(data).detach()
    g = torch.Generator().manual_seed(int(seed))
    params = list(vae.parameters()) + list(flow.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    history = []
    vae.train()
    for _ in range(epochs):
        order = torch.randperm(x_all.shape[0], generator=g)
        total = 0.0
        for start in range(0, x_all.shape[0], batch_size):
            xb = x_all[order[start:start + batch_size]]
            loss = -flow_elbo(vae, flow, xb, generator=g).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * xb.shape[0]
        history.append(-total / x_all.shape[0])
    vae.eval()
    return history


def flow_amortisation_gap(vae: VAE, flow: PlanarFlowPosterior, x, *, steps: int = 300,
                          num_samples: int = 8, lr: float = 0.02, eval_samples: int = 1000,
                          generator: torch.Generator | None = None) -> AmortisationGap:
    r"""Approximation and amortisation gaps of a flow encoder (Cremer et al. 2018, eq. 3-4).

    .. math::

        \log p(x) - \mathcal L[q] = \underbrace{\log p(x) - \mathcal L[q^*]}_{\text{approximation}}
            + \underbrace{\mathcal L[q^*] - \mathcal L[q]}_{\text{amortisation}},

    :math:`q^*` the best member of the flow family for each x alone (local
    :math:`\mu`, :math:`\log\sigma` and planar parameters, Adam from the encoder's output,
    ``num_samples`` draws per step, learning rate decayed linearly to 5 %).
    :math:`\mathcal L[q]`, :math:`\mathcal L[q^*]` and
    :math:`\log p(x) = \log \frac1S \sum_s w_s(q^*)` come from the same
    ``eval_samples`` base draws; :math:`q^*` falls back to q where it did not raise the ELBO
    estimate, so both gaps are >= 0, as in
    :func:`~vitoolkit.vae.diagnostics.amortisation_gap`.

    Parameters
    ----------
    vae, flow : the trained model and its flow encoder
    x : Tensor of shape (n, data_dim)
    steps, num_samples, lr, eval_samples, generator : as in
        :func:`~vitoolkit.vae.diagnostics.amortisation_gap`

    Returns
    -------
    AmortisationGap (``loc``/``scale`` are q*'s Gaussian base, before the flow)
    """
    steps = check_int(steps, "steps", minimum=0)
    num_samples = check_int(num_samples, "num_samples", minimum=1)
    eval_samples = check_int(eval_samples, "eval_samples", minimum=2, maximum=100_000)
    lr = check_positive(lr, "lr")
    x = vae._check_x(x)
    was = vae.training
    vae.eval()
    try:
        with torch.no_grad():
            loc0, log_scale0, params0 = _encoder_output(vae, flow, x)
        local = [loc0.clone(), log_scale0.clone()] + [p.clone() for ps in params0 for p in ps]
        for p in local:
            p.requires_grad_(True)
        opt = torch.optim.Adam(local, lr=lr)

        def unpack(ts):
            return ts[0], ts[1], [tuple(ts[2 + 3 * k: 5 + 3 * k]) for k in range(flow.num_layers)]

        for step in range(steps):
            for group in opt.param_groups:
                group["lr"] = lr * (1.0 - 0.95 * step / max(1, steps))
            eps = torch.randn((num_samples, *loc0.shape), generator=generator, dtype=loc0.dtype)
            loss = -_log_weights(vae, x, *unpack(local), eps).mean(0).sum()
            grads = torch.autograd.grad(loss, local)  # the model's own gradients stay untouched
            for p, gr in zip(local, grads, strict=True):
                p.grad = gr
            opt.step()
            if not all(bool(torch.isfinite(p).all()) for p in local):
                raise DivergedError(f"the optimisation of q* diverged at step {step + 1} with lr={lr!r}")
        with torch.no_grad():
            eps = torch.randn((eval_samples, *loc0.shape), generator=generator, dtype=loc0.dtype)
            w_q = _log_weights(vae, x, loc0, log_scale0, params0, eps)
            loc1, log_scale1, params1 = unpack([p.detach() for p in local])
            w_opt = _log_weights(vae, x, loc1, log_scale1, params1, eps)
            worse = w_opt.mean(0) < w_q.mean(0)
            w_opt = torch.where(worse, w_q, w_opt)
            loc1 = torch.where(worse[:, None], loc0, loc1)
            log_scale1 = torch.where(worse[:, None], log_scale0, log_scale1)
            est = importance_estimate_unchecked(w_opt)
            warn_if_unreliable(est, "flow_amortisation_gap: log p(x) with q* as proposal",
                               stacklevel=3, importance=True)
            elbo_q, elbo_opt, log_px = w_q.mean(0), w_opt.mean(0), est.value
    finally:
        vae.train(was)
    root = math.sqrt(eval_samples)
    return AmortisationGap(
        log_likelihood=log_px, elbo_amortised=elbo_q, elbo_optimised=elbo_opt,
        inference_gap=log_px - elbo_q, approximation_gap=log_px - elbo_opt,
        amortisation_gap=elbo_opt - elbo_q, elbo_amortised_stderr=w_q.std(0) / root,
        elbo_optimised_stderr=w_opt.std(0) / root, loc=loc1, scale=log_scale1.exp(),
        log_likelihood_khat=est.khat)
