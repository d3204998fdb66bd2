"""Anatomy of the ELBO: log p(x) = ELBO(q) + KL(q || p(z|x)), checked to many digits.

Question: Why is p(x) intractable once a latent z appears, and how does an approximate q(z) still bound it?

We use a model whose evidence and posterior are known exactly, the conjugate
Normal-Normal model (Bishop, PRML section 2.3.3), so every claim below is a
number you can check: the identity of Blei, Kucukelbir & McAuliffe (2017,
eq. 13), the ELBO surface, and what Monte Carlo estimates of the KL term cost.
"""

# %% [markdown]
# ## 1. The model and its evidence
#
# $z \sim \mathcal N(m_0, s_0^2)$ and $x_i \mid z \sim \mathcal N(z, s^2)$ for
# $i = 1..n$. The **evidence** is the probability the model gives to the data
# once the latent is integrated out,
#
# $$p(x) = \int p(x \mid z)\, p(z)\, dz .$$
#
# For this model the integral is a Gaussian one, $\log p(x) = \log \mathcal
# N(x; m_0 \mathbf 1, s^2 I + s_0^2 \mathbf 1 \mathbf 1^\top)$. For almost any
# other model (a neural decoder, a mixture with $K^n$ assignments) it has no closed
# form and quadrature costs grow exponentially with the dimension of $z$: that is
# why $p(x)$ is called intractable. Here we can still check the closed form
# against quadrature over the one-dimensional $z$.

# %%
import numpy as np
import torch
from torch.distributions import Normal

from vitoolkit.conjugate import ConjugateGaussian
from vitoolkit.divergences import kl_divergence, make_grid, monte_carlo_kl
from vitoolkit.plotting import subplots
from vitoolkit.plotting.core import (
    plot_bound_curves,
    plot_elbo_decomposition,
    plot_estimates_vs_samples,
    plot_surface,
)
from vitoolkit.tutorial import Tutorial

tut = Tutorial("01_elbo_anatomy")
model = ConjugateGaussian(prior_loc=0.0, prior_scale=2.0, noise_scale=1.0)
z_true, x = model.sample_data(20, generator=tut.generator())
log_evidence = model.log_evidence(x)

grid = make_grid([(-15.0, 15.0)], 20001)
z_grid = grid.points[..., 0]
log_evidence_quadrature = torch.log(grid.integrate(torch.exp(model.log_joint(x, z_grid))))
tut.record("log_evidence", log_evidence, ".10f")
tut.record("log_evidence_quadrature", log_evidence_quadrature, ".10f")

# %% [markdown]
# ## 2. The identity, for q's of every quality
#
# For any density $q(z)$,
#
# $$\log p(x) = \underbrace{\mathbb E_q[\log p(x, z) - \log q(z)]}_{\mathrm{ELBO}(q)}
#   + \mathrm{KL}(q(z) \,\|\, p(z \mid x)).$$
#
# Because the KL is never negative the ELBO is a lower bound, and the gap is
# exactly how far $q$ is from the posterior. We evaluate both terms in closed
# form (the KL through `vitoolkit.divergences.kl_divergence`) for six $q$'s.

# %%
posterior = model.posterior(x)
m_n, s_n = float(posterior.loc), float(posterior.scale)
candidates = [
    ("exact posterior", m_n, s_n),
    ("mean off by 1 sd", m_n + s_n, s_n),
    ("too narrow (x0.3)", m_n, 0.3 * s_n),
    ("too wide (x3)", m_n, 3 * s_n),
    ("the prior", 0.0, 2.0),
    ("far away", m_n + 3.0, 0.5),
]
labels = [c[0] for c in candidates]
q_family = Normal(torch.tensor([c[1] for c in candidates], dtype=torch.float64),
                  torch.tensor([c[2] for c in candidates], dtype=torch.float64))
elbos = model.elbo(x, q_family)
kls = kl_divergence(q_family, posterior)
residual = (elbos + kls - log_evidence).abs()
print(f"{'q':<20}{'ELBO':>14}{'KL(q||post)':>14}{'ELBO + KL':>16}")
for label, e, k in zip(labels, elbos.tolist(), kls.tolist(), strict=True):
    print(f"{label:<20}{e:>14.6f}{k:>14.6f}{e + k:>16.10f}")
tut.record("identity_max_abs_error", residual.max(), ".2e")
tut.record("elbo_at_posterior", elbos[0], ".10f")
tut.record("kl_at_posterior", kls[0], ".2e")

fig, ax = subplots(1, 1, size=5)
plot_elbo_decomposition(labels, elbos, kls, log_evidence, ax=ax)
ax.set_title(f"ELBO + KL = log p(x) for every q (max error {float(residual.max()):.1e})")
tut.savefig(fig, "elbo_plus_kl")

# %% [markdown]
# ## 3. The ELBO surface over q's mean and log-scale
#
# Maximising the ELBO over $q = \mathcal N(m, \sigma^2)$ is the same as
# minimising $\mathrm{KL}(q \| p(z \mid x))$, because their sum does not depend
# on $q$. The surface below peaks exactly at the posterior's mean and scale, where
# the ELBO equals $\log p(x)$.

# %%
n_grid = tut.choose(61, 201)
means = torch.linspace(m_n - 4 * s_n, m_n + 4 * s_n, n_grid, dtype=torch.float64)
log_scales = torch.linspace(np.log(s_n) - 2.5, np.log(s_n) + 2.0, n_grid, dtype=torch.float64)
M, L = torch.meshgrid(means, log_scales, indexing="xy")
surface = model.elbo(x, Normal(M, L.exp()))
best = torch.argmax(surface)
best_m, best_log_s = float(M.reshape(-1)[best]), float(L.reshape(-1)[best])
tut.record("surface_argmax_mean", best_m, ".4f")
tut.record("surface_argmax_log_scale", best_log_s, ".4f")
tut.record("posterior_mean", m_n, ".4f")
tut.record("posterior_log_scale", np.log(s_n), ".4f")
tut.record("surface_max_minus_log_evidence", surface.max() - log_evidence, ".2e")

fig, ax = subplots(1, 1, size=5)
plot_surface(means, log_scales, surface, optimum=(m_n, np.log(s_n)),
             marker=(best_m, best_log_s), ax=ax, xlabel="mean m of q",
             ylabel="log-scale log sigma of q",
             title="The ELBO peaks at the exact posterior",
             optimum_label="exact posterior", marker_label="grid maximum")
tut.savefig(fig, "elbo_surface")

# %% [markdown]
# ## 4. Why raising the bound raises the evidence
#
# Let the prior mean $\theta = m_0$ be a model parameter. For a fixed $q$,
# $\mathrm{ELBO}(q; \theta) \le \log p(x; \theta)$ for every $\theta$, with
# equality where $q$ is that $\theta$'s posterior. Each dashed curve is a lower
# bound that touches the evidence once; maximising over $q$ and $\theta$ in
# turn (variational EM) climbs the solid curve.

# %%
thetas = torch.linspace(-3.0, 5.0, tut.choose(41, 161), dtype=torch.float64)
evidence_curve = torch.stack([
    ConjugateGaussian(t, 2.0, 1.0).log_evidence(x) for t in thetas
])
bounds = {}
touch_gaps = []
for theta0 in (-2.0, 0.0, 3.0):
    q_fixed = ConjugateGaussian(theta0, 2.0, 1.0).posterior(x)
    curve = torch.stack([ConjugateGaussian(t, 2.0, 1.0).elbo(x, q_fixed) for t in thetas])
    bounds[f"ELBO(q*_theta={theta0:g}; theta)"] = curve
    touch_gaps.append(float((ConjugateGaussian(theta0, 2.0, 1.0).log_evidence(x)
                             - ConjugateGaussian(theta0, 2.0, 1.0).elbo(x, q_fixed)).abs()))
    assert bool((curve <= evidence_curve + 1e-9).all())
tut.record("bound_touch_max_gap", max(touch_gaps), ".2e")
fig, ax = subplots(1, 1, size=5)
plot_bound_curves(thetas, evidence_curve, bounds, ax=ax, xlabel="prior mean theta",
                  title="Each ELBO touches log p(x) where q is that posterior")
ax.set_ylim(float(evidence_curve.max()) - 25, float(evidence_curve.max()) + 3)
tut.savefig(fig, "bound_curves")

# %% [markdown]
# ## 5. The KL term by Monte Carlo, and what it costs
#
# A VAE needs $\mathrm{KL}(q(z \mid x) \| p(z))$ for every data point. For
# Gaussians it has a closed form (Kingma & Welling 2013, Appendix B), but any
# pair we can sample from and evaluate admits an unbiased Monte Carlo estimate.
# Two estimators, from $z \sim q$ and $r = p(z)/q(z)$:
# `log_ratio`, $-\log r$, and `k3`, $(r - 1) - \log r$ (never negative;
# Schulman 2020). Which is cheaper depends on the pair:
#
# - when $q$ is close to $p$, `k3` cancels most of the noise of `log_ratio`;
# - when $q$ is much narrower than $p$ (a posterior against its prior), the
#   ratio $r$ has **infinite variance** under $q$ ($\int p^2/q = \infty$), so
#   `k3`'s error bars never settle while `log_ratio` stays well behaved.
#
# The error bars are $\pm 2$ standard errors; for a finite-variance estimator
# they shrink as $1/\sqrt{N}$.

# %%
sizes = tut.choose([10, 100, 1000, 10000], [10, 30, 100, 300, 1000, 3000, 10000, 30000, 100000])
pairs = {
    "close": (Normal(torch.tensor(0.2, dtype=torch.float64), torch.tensor(1.1, dtype=torch.float64)),
              Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))),
    "posterior_vs_prior": (posterior, model.prior),
}
fig, axes = subplots(1, 2, size=4.5)
for col, (case, (q, p)) in enumerate(pairs.items()):
    exact_kl = kl_divergence(q, p)
    estimates = {}
    for name in ("log_ratio", "k3"):
        vals, errs = [], []
        for i, n in enumerate(sizes):
            est = monte_carlo_kl(q, p, n, estimator=name, generator=tut.generator(100 + i))
            vals.append(float(est.value))
            errs.append(float(est.stderr))
        estimates[name] = (np.array(vals), np.array(errs))
    tut.record(f"{case}_kl_closed_form", exact_kl, ".6f")
    for name, (vals, errs) in estimates.items():
        tut.record(f"{case}_kl_{name}", vals[-1], ".6f")
        tut.record(f"{case}_kl_{name}_stderr", errs[-1], ".2e")
    ratio = (estimates["log_ratio"][1][-1] / estimates["k3"][1][-1]) ** 2
    tut.record(f"{case}_variance_ratio_log_ratio_over_k3", ratio, ".3g")
    winner = "k3" if ratio > 1 else "log-ratio"
    plot_estimates_vs_samples(sizes, estimates, exact_kl, ax=axes[col],
                              ylabel="KL(q || p) in nats",
                              title=f"{case.replace('_', ' ')}: {winner} has lower variance")
tut.savefig(fig, "kl_monte_carlo")

# The ELBO itself by Monte Carlo: at the exact posterior log p(x, z) - log q(z)
# is the same constant for every z, so the estimator has zero variance.
mc_elbo = model.elbo_monte_carlo(x, posterior, sizes[-1], generator=tut.generator(7))
tut.record("elbo_monte_carlo_at_posterior", mc_elbo.value, ".10f")
tut.record("elbo_monte_carlo_stderr_at_posterior", mc_elbo.stderr, ".2e")

# %% [markdown]
# ## What to see
#
# - The closed-form evidence and the quadrature agree to about ten digits; only
#   because $z$ is one-dimensional could we integrate at all.
# - ELBO + KL equals $\log p(x)$ to round-off for every $q$, good or bad; the
#   exact posterior makes the KL zero and the bound tight.
# - The ELBO surface peaks at the posterior; the bound curves show why raising
#   the ELBO over model parameters pushes $\log p(x)$ up.
# - Monte Carlo KL is unbiased but noisy. `k3` wins when $q$ is close to $p$;
#   against a wide prior its variance is infinite and the plain log-ratio wins.
# - At the exact posterior even the Monte Carlo ELBO has zero variance.

# %%
tut.finish()
