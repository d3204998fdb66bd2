# %% [markdown]
# # Mean-field CAVI on Gaussian mixtures
#
# Question: What does mean-field CAVI do on a Gaussian mixture, and how close is its ELBO to log p(x)?
#
# Sources: Blei, Kucukelbir & McAuliffe (2017), "Variational inference: a review for
# statisticians", JASA, sections 2.3-2.4 and 3 (mean-field, CAVI and the unit-variance
# mixture); Bishop (2006), PRML section 10.2 (the full Bayesian mixture, eq.
# 10.37-10.82); Hoffman, Blei, Wang & Paisley (2013), "Stochastic variational
# inference", JMLR (sections 2.3-2.4).

# %% [markdown]
# ## What "mean-field" assumes
#
# The posterior $p(\mu, c \mid x)$ of a mixture couples every mean $\mu_k$ with every
# assignment $c_i$. The mean-field family drops all of that coupling
# (Blei et al. 2017, section 2.3):
#
# $$q(\mu, c) = \prod_k q(\mu_k) \prod_i q(c_i) .$$
#
# Each factor is then optimised holding the others fixed, against the *average* effect
# of all the others (derived below). That is the "mean field" of statistical physics,
# where one particle feels the averaged field of its neighbours. Coordinate ascent
# (CAVI) cycles through the factors; every update is a closed form and can only raise
# the ELBO.
#
# ## The optimal factor: $q_j^*(z_j) \propto \exp \mathbb E_{-j}[\log p(z, x)]$
#
# Write the latent variables as $z = (z_1, \dots, z_m)$ and $q(z) = \prod_j q_j(z_j)$.
# Hold every factor but $q_j$ fixed and write $\mathbb E_{-j}$ for the expectation over
# $\prod_{l \ne j} q_l$. Because $q$ factorises, the ELBO splits into the part that
# depends on $q_j$ and a constant:
#
# $$\mathrm{ELBO}(q_j) = \mathbb E_{j}\big[\mathbb E_{-j}[\log p(z_j, z_{-j}, x)]\big]
#   - \mathbb E_{j}[\log q_j(z_j)] + \text{const}.$$
#
# Define the density $\tilde p_j(z_j) = \exp \mathbb E_{-j}[\log p(z_j, z_{-j}, x)] / C_j$,
# with $C_j$ its normaliser (it does not depend on $q_j$). Then
#
# $$\mathrm{ELBO}(q_j) = \mathbb E_j[\log \tilde p_j(z_j) - \log q_j(z_j)] + \text{const}
#   = -\mathrm{KL}(q_j \,\|\, \tilde p_j) + \text{const},$$
#
# and a KL is smallest, zero, when its two arguments agree. So the best $q_j$, over *all*
# densities, is
#
# $$q_j^*(z_j) \propto \exp \mathbb E_{-j}[\log p(z_j, z_{-j}, x)]
#   \propto \exp \mathbb E_{-j}[\log p(z_j \mid z_{-j}, x)]$$
#
# (Blei, Kucukelbir & McAuliffe 2017, eq. 17-18; the two forms differ by
# $\log p(z_{-j}, x)$, which does not involve $z_j$). Nothing about the family of $q_j$ was
# assumed: the form of $q_j^*$ (Gaussian, categorical) comes out of the model. Each update
# maximises the ELBO exactly over one factor, so a sweep can never lower it.

# %%
import math

import numpy as np
from sklearn.mixture import GaussianMixture

from vitoolkit.cavi import (
    BayesianGMM,
    StochasticBayesianGMM,
    UnitVarianceGMM,
    exact_log_evidence,
)
from vitoolkit.course import Tutorial
from vitoolkit.plotting import subplots
from vitoolkit.plotting.cavi import (
    plot_elbo_steps,
    plot_evidence_gap,
    plot_gaussian_ellipses,
    plot_mean_intervals,
    plot_mean_paths_2d,
    plot_restart_elbos,
    plot_svi_trace,
    plot_weights,
)

tut = Tutorial("02_cavi_gmm")
rng = tut.rng()

# %% [markdown]
# ## CAVI on a 1-D mixture (Blei et al. 2017, section 3)
#
# Model: $\mu_k \sim \mathcal N(0, \sigma^2)$, $c_i \sim \mathrm{Cat}(1/K)$ (a one-hot
# vector), $x_i \mid c_i, \mu \sim \mathcal N(c_i^\top \mu, 1)$. The log joint is
#
# $$\log p(\mu, c, x) = \sum_k \log \mathcal N(\mu_k; 0, \sigma^2)
#   + \sum_i \Big[\log \tfrac1K + \sum_k c_{ik} \log \mathcal N(x_i; \mu_k, 1)\Big].$$
#
# The mean-field family is $q(\mu_k) = \mathcal N(m_k, s_k^2)$ and
# $q(c_i) = \mathrm{Cat}(\varphi_i)$. Apply $q_j^* \propto \exp \mathbb E_{-j}[\log p]$ to each.
#
# ### The assignment update $q^*(c_i)$
#
# Keep the terms of $\log p$ that involve $c_i$ and take the expectation over
# $q(\mu)$: with $\log \mathcal N(x_i; \mu_k, 1) = -\tfrac12 (x_i - \mu_k)^2 + \text{const}$ and
# $\mathbb E[\mu_k] = m_k$, $\mathbb E[\mu_k^2] = s_k^2 + m_k^2$,
#
# $$\log q^*(c_i) = \sum_k c_{ik}\, \mathbb E\big[-\tfrac12 (x_i - \mu_k)^2\big] + \text{const}
#   = \sum_k c_{ik} \big[x_i m_k - \tfrac12 (s_k^2 + m_k^2)\big] + \text{const},$$
#
# where $-x_i^2/2$ and $\log \frac1K$ went into the constant (they are the same for every
# $k$). A one-hot $c_i$ with these log weights is a categorical distribution:
#
# $$\varphi_{ik} \propto \exp\{x_i m_k - (s_k^2 + m_k^2)/2\}$$
#
# (Blei et al. 2017, section 3.1), normalised over $k$.
#
# ### The mean-component update $q^*(\mu_k)$
#
# The terms that involve $\mu_k$ are its prior and the likelihood terms of the points,
# each weighted by $\mathbb E[c_{ik}] = \varphi_{ik}$:
#
# $$\log q^*(\mu_k) = -\frac{\mu_k^2}{2\sigma^2}
#   + \sum_i \varphi_{ik} \big(x_i \mu_k - \tfrac12 \mu_k^2\big) + \text{const}
#   = \Big(\sum_i \varphi_{ik} x_i\Big) \mu_k
#   - \tfrac12 \Big(\frac{1}{\sigma^2} + \sum_i \varphi_{ik}\Big) \mu_k^2 + \text{const}.$$
#
# A quadratic in $\mu_k$ is the log of a Gaussian; completing the square reads off its
# precision and mean,
#
# $$s_k^2 = \frac{1}{1/\sigma^2 + \sum_i \varphi_{ik}}, \qquad
#   m_k = s_k^2 \sum_i \varphi_{ik} x_i$$
#
# (section 3.2; Algorithm 2): the posterior of a Gaussian mean from points weighted by how
# much they belong to component $k$. CAVI alternates the two updates.
#
# We record the full ELBO (every constant kept) after *each* coordinate update, and
# $q(\mu_k)$ after each iteration.

# %%
n_1d = tut.choose(150, 600)
true_means = np.array([-6.0, -1.0, 4.0])
x_1d = np.concatenate([rng.normal(m, 1.0, n_1d // 3) for m in true_means])
cavi_1d = UnitVarianceGMM(3, prior_std=10.0, record_steps=True, random_state=1,
                          init_means=[[-1.5], [-0.5], [0.5]]).fit(x_1d)
step_values = np.array([v for _, name, v in cavi_1d.step_elbo_ if name != "init"])
smallest_step = float(np.diff(step_values).min())  # the smallest change of one update
fitted_1d = np.sort(cavi_1d.means_[:, 0])
print(f"fitted means {fitted_1d.round(3)}, true {true_means}; {cavi_1d.n_iter_} iterations")

fig, axes = subplots(1, 2, size=4.2)
plot_mean_intervals(cavi_1d.means_history_, cavi_1d.mean_variances_history_, ax=axes[0],
                    reference=true_means)
axes[0].set_title("q(mu_k) moves to the three clusters")
plot_elbo_steps(cavi_1d.step_elbo_, ax=axes[1])
axes[1].set_title(f"The ELBO never falls in {len(step_values)} updates")
tut.savefig(fig, "cavi_1d")

# %% tags=["hide-input"]
# a fitted mean is within 4 standard errors (1/sqrt(points per cluster)) of its cluster's mean
tol_1d = 4 / math.sqrt(n_1d // 3)
tut.record("cavi_1d_iterations", cavi_1d.n_iter_)
tut.record("cavi_1d_final_elbo", cavi_1d.lower_bound_, ".4f")
tut.record("cavi_1d_smallest_step_change", smallest_step, ".3e")
tut.record("cavi_1d_fitted_means", fitted_1d)
tut.claim("q(mu_k) moves to the three clusters: each fitted mean m_k is within 4 standard "
          "errors of its cluster's true mean",
          bool(np.all(np.abs(fitted_1d - true_means) < tol_1d)),
          fitted=fitted_1d, true=true_means, tolerance=tol_1d)
tut.claim(f"The ELBO never falls in the {len(step_values)} coordinate updates (every change "
          "is >= 0 up to round-off, 1e-9 of the ELBO). This holds by construction, since each "
          "update maximises the ELBO over its factor; the check tests the implementation.",
          smallest_step >= -1e-9 * abs(cavi_1d.lower_bound_),
          smallest_change=smallest_step, final_elbo=cavi_1d.lower_bound_)

# %% [markdown]
# Every marker on the right is one closed-form update, $q(c)$ for all points at once
# (they are conditionally independent) or one $q(\mu_k)$. The smallest change is printed
# with the claim above: CAVI is coordinate *ascent*, as the derivation promised. (The dotted
# "true means" on the left: the means the data were drawn from.)
#
# ## CAVI in 2-D
# The same updates with $x_i \cdot m_k$ and $d\, s_k^2$ in place of the 1-D products.
# Circles are radius $2 s_k$, dashed at the start and after the first two iterations,
# solid at the end. With every point assigned to its cluster,
# $s_k^2 = 1/(1/\sigma^2 + N_k) \approx 1/N_k$: the posterior uncertainty of a mean
# shrinks like $1/\sqrt{N_k}$, so the final circles are small (their $s_k$ are printed).

# %%
n_2d = tut.choose(300, 1200)
n_per_cluster = n_2d // 3
centres_2d = np.array([[-5.0, 0.0], [5.0, 1.0], [0.0, 6.0]])
x_2d = np.concatenate([c + rng.normal(size=(n_per_cluster, 2)) for c in centres_2d])
cavi_2d = UnitVarianceGMM(3, prior_std=10.0, random_state=2,
                          init_means=[[-1.0, -1.0], [0.0, -1.0], [1.0, -1.0]]).fit(x_2d)
sd_2d = np.sqrt(cavi_2d.mean_variances_)
# distance from each true centre to the nearest fitted mean, and which mean that is
dist_2d = np.linalg.norm(centres_2d[:, None, :] - cavi_2d.means_[None, :, :], axis=-1)
nearest_2d = dist_2d.argmin(axis=1)
miss_2d = dist_2d.min(axis=1)
print(f"posterior sd of each mean: {sd_2d.round(4)}; 1/sqrt(N_k) = {1 / math.sqrt(n_per_cluster):.4f}")

fig, ax = subplots(1, 1, size=5)
plot_mean_paths_2d(x_2d, cavi_2d.means_history_, cavi_2d.mean_variances_history_,
                   ax=ax, width=2.0)
ax.set_title(f"2-D CAVI: means reach the clusters in {cavi_2d.n_iter_} iterations")
tut.savefig(fig, "cavi_2d")

# %% tags=["hide-input"]
tol_2d = 4 / math.sqrt(n_per_cluster)
tut.record("cavi_2d_iterations", cavi_2d.n_iter_)
tut.record("cavi_2d_final_sd_of_means", sd_2d, ".4f")
tut.record("cavi_2d_distance_to_centres", miss_2d, ".4f")
tut.claim(f"2-D CAVI: after {cavi_2d.n_iter_} iterations each of the three means sits on its own "
          "cluster, within 4 standard errors of the true centre",
          bool(len(set(nearest_2d.tolist())) == 3 and np.all(miss_2d < tol_2d)),
          distances=miss_2d, tolerance=tol_2d, iterations=cavi_2d.n_iter_)
tut.claim("The posterior sd of each mean is 1/sqrt(N_k) to 2%, with N_k the points in its "
          "cluster",
          bool(np.all(np.abs(sd_2d * math.sqrt(n_per_cluster) - 1) < 0.02)),
          sd=sd_2d, one_over_sqrt_n=1 / math.sqrt(n_per_cluster))

# %% [markdown]
# ## Restarts: different optima, and label switching
#
# The ELBO of a mixture is not concave: restarts from random data points can end in
# different local optima, where two means share one cluster and some other cluster is
# left without a mean of its own. Restarts reaching the *same* optimum may name the clusters
# differently (label switching: the posterior has $K!$ symmetric modes and each $q$
# picks one). Five clusters, $K = 5$, restarts from $K$ random data points each.

# %%
n_restarts = tut.choose(12, 30)
centres_restart = np.array([-12.0, -7.0, -2.0, 3.0, 8.0])
x_restart = np.concatenate([rng.normal(m, 1.0, n_1d // 3) for m in centres_restart])
finals, orders, covered, spacing = [], [], [], []
for seed in range(n_restarts):
    fit = UnitVarianceGMM(5, prior_std=10.0, random_state=seed, max_iter=3000).fit(x_restart)
    finals.append(fit.lower_bound_)
    orders.append(tuple(np.argsort(fit.means_[:, 0])))
    m = np.sort(fit.means_[:, 0])
    # clusters with a fitted mean within 1 (their sd) of the centre; closest pair of means
    covered.append(int(np.sum(np.abs(m[None, :] - centres_restart[:, None]).min(1) < 1.0)))
    spacing.append(float(np.diff(m).min()))
finals, covered, spacing = np.array(finals), np.array(covered), np.array(spacing)
levels = np.unique(np.round(finals, 2))[::-1]
groups = np.array([int(np.flatnonzero(levels == np.round(f, 2))[0]) for f in finals])
best_group = [o for o, g in zip(orders, groups, strict=True) if g == 0]
worse = groups > 0
print(f"final ELBOs of the distinct optima: {levels}")

fig, ax = subplots(1, 1, size=4.5)
plot_restart_elbos(finals, groups, ax=ax)
ax.set_title(f"{n_restarts} restarts land in {len(levels)} optima;\nthe best one "
             f"appears under {len(set(best_group))} labelings")
tut.savefig(fig, "restarts")

# %% tags=["hide-input"]
tut.record("restart_distinct_optima", len(levels))
tut.record("restart_elbo_spread", float(finals.max() - finals.min()), ".3f")
tut.record("restart_label_orders_at_best_optimum", len(set(best_group)))
tut.record("restart_clusters_covered", covered)
tut.claim(f"{n_restarts} restarts land in {len(levels)} different optima (at least two)",
          len(levels) >= 2, final_elbos=np.round(levels, 2))
tut.claim("Only the best optimum puts a mean on every cluster; every worse one has two means "
          "sharing a cluster (closer than half the cluster spacing) and a cluster without a mean",
          bool(np.all(covered[~worse] == 5) and np.all(covered[worse] < 5)
               and np.all(spacing[worse] < 2.5)),
          clusters_covered=covered, closest_pair=np.round(spacing, 2), optimum=groups + 1)
tut.claim(f"The best optimum appears under {len(set(best_group))} different labelings "
          "(label switching: at least two)", len(set(best_group)) >= 2,
          restarts_at_best=len(best_group), labelings=len(set(best_group)))

# %% [markdown]
# ## How far is the ELBO from the exact evidence?
#
# With $n = 8$ points we can enumerate all $K^n$ assignments; each $p(x \mid c)$ is a
# Gaussian integral in closed form,
# $\log \mathcal N(x_{S_k}; 0, I + \sigma^2 \mathbf 1 \mathbf 1^\top)$. The gap
#
# $$\log p(x) - \mathrm{ELBO} = \mathrm{KL}(q \,\|\, p(\mu, c \mid x)) \ge 0 .$$
#
# With $K = 1$ the family contains the
# exact posterior and the gap is 0 to round-off. With $K = 2$ and two separated clusters
# the posterior has $2!$ mirror-image modes (swap the labels); a factorised $q$ sits in
# one, so the gap is $\log 2!$ plus what mean-field loses inside the mode, which is
# small here. With $K = 3$ on the same two clusters, $q$ must also commit to how the
# spare component is used, and the gap grows beyond $\log 3!$.

# %%
x_tiny = np.concatenate([rng.normal(-4.0, 1.0, 4), rng.normal(4.0, 1.0, 4)])
labels, evidences, elbos, log_fact = [], [], [], []
for K in (1, 2, 3):
    best = UnitVarianceGMM(K, prior_std=5.0, n_init=10, random_state=0, max_iter=500)
    best.fit(x_tiny)  # the best of 10 restarts
    labels.append(f"K = {K}")
    evidences.append(exact_log_evidence(x_tiny, K, 5.0))  # enumerates all K^n assignments
    elbos.append(best.lower_bound_)
    log_fact.append(math.lgamma(K + 1))  # log K!
gaps = np.array(evidences) - np.array(elbos)
for label, e, g, lf in zip(labels, evidences, gaps, log_fact, strict=True):
    print(f"{label}: log p(x) = {e:.4f}, gap = {g:.4f} nats, log K! = {lf:.4f}")

fig, ax = subplots(1, 1, size=4.5)
plot_evidence_gap(labels, evidences, elbos, ax=ax, reference=log_fact)
ax.set_title("ELBO <= log p(x): gap 0 at K = 1, log 2! at K = 2")
tut.savefig(fig, "evidence_gap")

# %% tags=["hide-input"]
for K, e, el, lf in zip((1, 2, 3), evidences, elbos, log_fact, strict=True):
    tut.record(f"tiny_K{K}_log_evidence", e, ".6f")
    tut.record(f"tiny_K{K}_elbo", el, ".6f")
    tut.record(f"tiny_K{K}_gap", e - el, ".6f")
    tut.record(f"tiny_K{K}_log_K_factorial", lf, ".4f")
tut.claim("ELBO <= log p(x) for K = 1, 2, 3 (every gap >= 0 up to round-off)",
          bool(np.all(gaps > -1e-9)), gaps=gaps)
tut.claim("With K = 1 the gap is 0 to round-off (below 1e-9 nats)", abs(gaps[0]) < 1e-9,
          gap=gaps[0])
tut.claim("With K = 2 the gap is log 2! plus a small mean-field loss (between log 2 and "
          "log 2 + 0.01)", bool(log_fact[1] - 1e-9 < gaps[1] < log_fact[1] + 0.01),
          gap=gaps[1], log_2_factorial=log_fact[1])
tut.claim("With K = 3 the gap grows beyond log 3!", bool(gaps[2] > log_fact[2]),
          gap=gaps[2], log_3_factorial=log_fact[2])

# %% [markdown]
# ## EM (point estimates) vs variational Bayes (distributions), too many components
#
# Maximum likelihood by EM (scikit-learn's ``GaussianMixture``) has no penalty for extra
# components: it spreads its 10 components over 3 clusters. The variational Bayesian
# mixture (PRML 10.2, :class:`vitoolkit.cavi.BayesianGMM`) puts a Dirichlet prior on the
# weights; with a small concentration $\alpha_0$ the expected log weight
# $\psi(\alpha_0 + N_k) - \psi(\sum_j \alpha_j)$ of a weakly used component falls, its
# points move away, and it is switched off (PRML section 10.2, Fig. 10.6).

# %%
n_em = tut.choose(450, 1500)
x_em = np.concatenate([c + rng.normal(size=(n_em // 3, 2)) @ np.array([[1.0, 0.3], [0.0, 0.6]])
                       for c in centres_2d])
em = GaussianMixture(10, random_state=0, max_iter=500).fit(x_em)
vb = BayesianGMM(10, weight_concentration_prior=1e-3, random_state=0, max_iter=500,
                 n_init=tut.choose(1, 3)).fit(x_em)
em_used = int(np.sum(em.weights_ >= 0.01))  # components with at least 1% of the weight
vb_used = vb.effective_n_components()
vb_off = np.sort(vb.weights_)[: 10 - len(centres_2d)]  # the 7 smallest VB weights

fig, axes = subplots(1, 3, size=4.2)
plot_gaussian_ellipses(x_em, em.means_, em.covariances_, em.weights_, ax=axes[0])
axes[0].set_title(f"EM keeps {em_used} components")
plot_gaussian_ellipses(x_em, vb.means_, vb.covariances_, vb.weights_, ax=axes[1])
axes[1].set_title(f"Variational Bayes keeps {vb_used}")
plot_weights({"EM": np.sort(em.weights_)[::-1], "VB": np.sort(vb.weights_)[::-1]},
             ax=axes[2])
axes[2].set_title("The Dirichlet prior switches\nunused weights off")
tut.savefig(fig, "em_vs_vb")

# %% tags=["hide-input"]
tut.record("em_components_with_weight_over_1pct", em_used)
tut.record("vb_components_with_weight_over_1pct", vb_used)
tut.record("em_smallest_weight", float(em.weights_.min()), ".4f")
tut.record("vb_weight_of_the_7_unused_components", float(vb_off.sum()), ".2e")
tut.record("vb_elbo", vb.lower_bound_, ".3f")
tut.claim("EM spreads its 10 components over the 3 clusters: all 10 keep a weight of at least 1%",
          em_used == 10, em_weights=np.sort(em.weights_)[::-1])
tut.claim("Variational Bayes keeps exactly the 3 components the data need",
          vb_used == len(centres_2d), vb_components=vb_used)
tut.claim("The Dirichlet prior switches unused weights off: the 7 smallest VB weights sum to "
          "less than 1e-3, below EM's smallest single weight",
          bool(vb_off.sum() < 1e-3 and vb_off.sum() < em.weights_.min()),
          vb_unused_total=float(vb_off.sum()), em_smallest=float(em.weights_.min()))

# %% [markdown]
# ## When the data does not fit in memory: stochastic VI
#
# Batch CAVI touches every point in every iteration. Stochastic VI (Hoffman et al. 2013)
# takes a mini-batch, computes its local factors $q(c_i)$, forms the global update *as if*
# the batch were the whole data set (statistics scaled by $N/b$, $b$ the batch size), and
# moves the global natural parameters a step $\rho_t = (t + \tau)^{-\kappa}$ towards it.
# That is a natural-gradient step on the ELBO; memory is bounded by the batch. Here $N$
# points are drawn batch by batch from a generator and never held at once by the SVI fit;
# the batch fit, for comparison, holds them all. Both fits start from the same priors and
# are scored by the same exact ELBO over all $N$ points.

# %%
n_stream = tut.choose(20_000, 1_000_000)
batch = tut.choose(200, 2_000)
centres_svi = np.array([[-6.0, -2.0], [0.0, 5.0], [6.0, -1.0], [1.0, -6.0]])


def stream(seed):
    """Mini-batches of the same N points every time it is called (seeded per batch)."""
    for b in range(n_stream // batch):
        r = np.random.default_rng([tut.seed, seed, b])
        z = r.integers(0, 4, size=batch)
        yield centres_svi[z] + r.normal(size=(batch, 2))


svi = StochasticBayesianGMM(4, total_samples=n_stream, random_state=0,
                            mean_prior=np.zeros(2), covariance_prior=10.0 * np.eye(2))
checkpoints, exact_points, exact_values = {1, 3, 10, 30, 100, 300, 1000}, [], []
for step, xb in enumerate(stream(0), start=1):
    svi.partial_fit(xb)
    if step in checkpoints:
        value, n_eval = svi.elbo_from_batches(stream(0))
        exact_points.append(step * batch)
        exact_values.append(value / n_eval)
svi_value, n_eval = svi.elbo_from_batches(stream(0))
x_all = np.concatenate(list(stream(0)))
batch_fit = BayesianGMM(4, random_state=0, mean_prior=np.zeros(2),
                        covariance_prior=10.0 * np.eye(2), tol=1e-6 * n_stream,
                        max_iter=300).fit(x_all)
svi_pp, batch_pp = svi_value / n_eval, batch_fit.lower_bound_ / n_stream  # ELBO per point
svi_gap = abs(batch_pp - svi_pp)
svi_mb, data_mb = batch * 2 * 8 / 2**20, x_all.nbytes / 2**20  # float64, 2 columns

fig, ax = subplots(1, 1, figsize=(8.0, 4.5))  # room for the legend on the right
plot_svi_trace(np.arange(1, svi.n_steps_ + 1) * batch,
               np.array(svi.elbo_history_) / n_stream, batch_pp, ax=ax,
               exact=(np.array(exact_points), np.array(exact_values)))
ax.set_title(f"SVI ends {svi_gap:.1e} nats/point from the batch ELBO")
tut.savefig(fig, "svi_vs_batch")

# %% tags=["hide-input"]
tut.record("svi_steps", svi.n_steps_)
tut.record("svi_elbo_per_point", svi_pp, ".5f")
tut.record("batch_elbo_per_point", batch_pp, ".5f")
tut.record("svi_relative_gap", (batch_pp - svi_pp) / abs(batch_pp), ".2e")
tut.record("svi_batch_megabytes", svi_mb, ".3f")
tut.record("batch_data_megabytes", data_mb, ".3f")
tut.claim(f"After one pass over the data ({svi.n_steps_} mini-batches) SVI's exact ELBO is within "
          "0.1% of the batch CAVI fit's",
          svi_gap < 1e-3 * abs(batch_pp), svi_per_point=svi_pp, batch_per_point=batch_pp,
          gap=svi_gap)
tut.claim("SVI's exact ELBO gets closer to the batch fit's along the stream: the gap at the "
          "last checkpoint is smaller than at the first",
          abs(batch_pp - exact_values[-1]) < abs(batch_pp - exact_values[0]),
          first_gap=abs(batch_pp - exact_values[0]), last_gap=abs(batch_pp - exact_values[-1]))

# %% [markdown]
# ## CAVI is a sum over data
#
# Batch CAVI needs every point in every iteration, but only through *sums over points*: the
# expected counts $N_k = \sum_n r_{nk}$, the weighted moments $\sum_n r_{nk} x_n$ and
# $\sum_n r_{nk} x_n x_n^\top$ (PRML eq. 10.51-10.53), and the entropy of $q(Z)$ for the ELBO.
# A sum splits over chunks of rows. So the data can live in chunks on other machines: each
# worker computes its chunks' statistics, with the very function the in-memory fit runs on
# the whole array, and the client adds them up (in chunk order) and makes the global update
# (eq. 10.57-10.63), a few dozen numbers per chunk and per iteration. Unlike SVI, this is the
# *exact* batch fit. ``BayesianGMM.fit`` (and ``UnitVarianceGMM.fit``) accept a Dask array,
# chunked along the rows (the optional extra ``pip install vitoolkit[dask]``). Below, the same
# fit in memory and on chunks of the previous section's points, from the same start (on up to
# $2^{18}$ rows the start is the in-memory one; beyond, k-means runs on a sample of rows). The
# quick run uses Dask's threaded scheduler; the full run a ``dask.distributed`` local cluster of
# two workers (threads of this process: a script cannot spawn worker processes without a
# ``__main__`` guard; ``benchmarks/bench_cavi_dask.py`` runs worker processes on data read
# from disk).

# %%
try:
    import dask
    import dask.array as da
except ImportError:  # the optional extra is not installed: nothing to compare
    da = None
    print("Section skipped: dask is not installed (pip install vitoolkit[dask]), so this run "
          "makes no claim about chunked fits.")
if da is not None:
    import contextlib

    x_sum = x_all[: tut.choose(20_000, 200_000)]
    # started at 4 random data points (not k-means): a few dozen iterations to compare
    sum_kw = dict(n_components=4, random_state=0, mean_prior=np.zeros(2), max_iter=300,
                  covariance_prior=10.0 * np.eye(2), tol=1e-9 * len(x_sum),
                  init_params="random_from_data")
    in_memory = BayesianGMM(**sum_kw).fit(x_sum)
    if tut.quick:
        scheduler = dask.config.set(scheduler="threads")
    else:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            print("distributed is not installed: the threaded scheduler instead of a cluster")
            scheduler = dask.config.set(scheduler="threads")
        else:
            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                   dashboard_address=None)
            scheduler = contextlib.ExitStack()
            scheduler.enter_context(cluster)
            scheduler.enter_context(Client(cluster))
    chunkings = [len(x_sum) // 5 + 1, len(x_sum) // 8 + 1]  # 5 and 8 chunks
    with scheduler:
        on_chunks = [BayesianGMM(**sum_kw).fit(da.from_array(x_sum, chunks=(rows, 2)))
                     for rows in chunkings]
        chunk_labels = on_chunks[0].labels_.compute()  # labels_ is a lazy Dask array

    def rel_diff(a, b):
        """The largest |difference| of the fitted factors, relative to each one's size."""
        return max(float(np.max(np.abs(getattr(a, k) - getattr(b, k)))
                         / np.max(np.abs(getattr(a, k))))
                   for k in ("weights_", "means_", "covariances_", "weight_concentration_",
                             "mean_precision_", "degrees_of_freedom_"))

    diff_memory, diff_chunking = rel_diff(in_memory, on_chunks[0]), rel_diff(*on_chunks)
    elbo_diff = abs(in_memory.lower_bound_ - on_chunks[0].lower_bound_) / abs(in_memory.lower_bound_)
    print(f"{len(x_sum)} rows: chunked vs in memory, largest relative difference of a fitted "
          f"factor {diff_memory:.1e}; 8 vs 5 chunks {diff_chunking:.1e}")

# %% tags=["hide-input"]
if da is not None:
    tut.record("dask_rows", len(x_sum))
    tut.record("dask_max_rel_param_diff_vs_memory", diff_memory, ".2e")
    tut.record("dask_max_rel_param_diff_two_chunkings", diff_chunking, ".2e")
    tut.claim(f"After {on_chunks[0].n_iter_} iterations over 5 chunks the fit equals the "
              "in-memory fit: every fitted factor within 1e-10 of its size, the same number of "
              "iterations and the ELBO to 1e-10",
              diff_memory < 1e-10 and elbo_diff < 1e-10
              and on_chunks[0].n_iter_ == in_memory.n_iter_,
              max_rel_param_diff=diff_memory, rel_elbo_diff=elbo_diff,
              iterations=[in_memory.n_iter_, on_chunks[0].n_iter_])
    tut.claim("Cutting the rows into 8 chunks instead of 5 changes the fitted factors by less "
              "than 1e-10 of their size (round-off of the sums)",
              diff_chunking < 1e-10, max_rel_param_diff=diff_chunking)
    tut.claim("Every point gets the same label on chunks as in memory",
              bool(np.array_equal(chunk_labels, in_memory.labels_)),
              differing=int(np.sum(chunk_labels != in_memory.labels_)))

# %% [markdown]
# ## What to take away
# - Mean-field CAVI: closed-form updates; the ELBO did not fall at any coordinate step
#   (section 1's claim).
# - Local optima are real; restarts (``n_init``) keep the best ELBO; label switching is
#   harmless for the fit but makes "component 1" meaningless across runs.
# - The ELBO is a *bound*: exact for $K = 1$, and for two separated clusters and $K = 2$
#   short of $\log p(x)$ by $\log 2!$, because a factorised $q$ covers one of the $K!$
#   symmetric modes (the claims of the evidence-gap section).
# - Variational Bayes with a sparse Dirichlet prior switched off the components EM kept.
# - Stochastic VI trades exact steps for mini-batch natural-gradient steps with memory
#   bounded by the batch, and after one pass landed at the batch fit's ELBO (to the
#   printed gap).

# %%
tut.finish()

# %% [markdown]
# ## Exercises
# - **cavi_blei_step**: write one full CAVI sweep of section 1's model (all $\varphi_i$,
#   then every $m_k$ and $s_k^2$), the function ``cavi_blei_step(x, m, s2, prior_var)``
#   returning ``(phi, m, s2)``. Start with `vitoolkit exercise start cavi_blei_step`
#   (it writes ``cavi_blei_step.py``), then grade it with
#   `vitoolkit exercise check cavi_blei_step cavi_blei_step.py`
#   (generally `vitoolkit exercise check NAME FILE`).
