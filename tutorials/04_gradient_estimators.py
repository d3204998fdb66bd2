"""Gradient estimators: score function, reparameterisation and what their variance costs

Question: How do we differentiate an expectation we can only sample, and which estimator wins when?

Every estimator below is measured against the exact gradient (closed form,
quadrature or enumeration), so each claim is a number: its bias in standard
errors and its variance. Sources: Mohamed, Rosca, Figurnov & Mnih, "Monte Carlo
Gradient Estimation in Machine Learning" (JMLR 2020); Roeder, Wu & Duvenaud,
"Sticking the Landing" (NeurIPS 2017); Jang, Gu & Poole (ICLR 2017) and
Maddison, Mnih & Teh (ICLR 2017) for the Gumbel-softmax / Concrete relaxation;
Ranganath, Gerrish & Blei (AISTATS 2014) for black-box VI.
"""

# %% [markdown]
# ## 1. Why we cannot backpropagate through a sample
#
# A VAE, black-box VI or a policy gradient needs $\nabla_\theta \mathbb{E}_{q_\theta}[f(x)]$.
# A sample $x \sim q_\theta$ is the output of a random number generator: nudging
# $\theta$ does not tell autograd how $x$ moves, so
# `torch.distributions.Normal(mu, sigma).sample()` carries no gradient. Two rewrites
# make the gradient an expectation we *can* sample (Mohamed et al. 2020, sections 4-5):
#
# - **score function (REINFORCE)**, eq. 13:
#   $\nabla_\theta \mathbb{E}[f] = \mathbb{E}[f(x) \nabla_\theta \log q_\theta(x)]$;
#   only values of $f$ are needed;
# - **pathwise (reparameterisation)**, eq. 34: write $x = \mu + \sigma \epsilon$ with
#   $\epsilon \sim N(0, 1)$, then
#   $\nabla_\theta \mathbb{E}[f] = \mathbb{E}[f'(x) \, \partial x / \partial \theta]$;
#   $f$ must be differentiable.
#
# A third, the **measure-valued** estimator (section 6), differentiates the density
# itself: $\partial_\mu N(x \mid \mu, \sigma^2)$ is a difference of two densities (a
# Rayleigh pair), so the gradient is a difference of two expectations of $f$.

# %%
import numpy as np
import torch

from vitoolkit.gradients import (
    Quadratic,
    Step,
    exact_gaussian_gradient,
    gaussian_gradients,
)
from vitoolkit.gradients.bbvi import BayesianLogisticRegression, ConjugateGaussianModel
from vitoolkit.gradients.elbo import elbo_gradients
from vitoolkit.gradients.experiments import (
    bbvi_comparison,
    estimator_table,
    gumbel_softmax_sweep,
    mohamed_sweep,
    variance_vs_dimension,
    variance_vs_num_samples,
)
from vitoolkit.plotting import gradients as gplot
from vitoolkit.plotting import subplots
from vitoolkit.tutorial import Tutorial

tut = Tutorial("04_gradient_estimators")
N = tut.choose(20_000, 100_000)

mu = torch.tensor([1.0], dtype=torch.float64)
sigma = torch.tensor([1.0], dtype=torch.float64)
x = torch.distributions.Normal(mu.requires_grad_(), sigma).sample()
tut.record("sample_requires_grad", bool(x.requires_grad))
mu = mu.detach()

# %% [markdown]
# One cost, $f(x) = (x - k)^2$ with $k = 2$ at $\mu = \sigma = 1$: the exact gradient
# is $\partial_\mu = 2(\mu - k) = -2$. Each estimator returns one estimate per draw;
# their mean must match the exact value within a few standard errors and their
# spread is the estimator's variance. Mohamed et al. (section 3) give the variances
# in closed form, with $a = \mu - k = -1$: score function
# $a^4/\sigma^2 + 14 a^2 + 15 \sigma^2 = 30$, pathwise $4 \sigma^2 = 4$.

# %%
cost = Quadratic(2.0)
exact_loc, exact_scale = exact_gaussian_gradient(cost, mu, sigma)
tut.record("quadratic_exact_dmu", exact_loc.item())
hist = {}
for est in ("score", "pathwise", "measure_valued_coupled"):
    g = gaussian_gradients(cost, mu, sigma, estimator=est, num_samples=N,
                           generator=tut.generator(1)).loc[:, 0]
    hist[est] = g.numpy()
    tut.record(f"quadratic_dmu_{est}_mean", g.mean().item(), ".4f")
    tut.record(f"quadratic_dmu_{est}_variance", g.var().item(), ".3f")
closed_score, _ = cost.estimator_variance("score", mu, sigma)
closed_path, _ = cost.estimator_variance("pathwise", mu, sigma)
tut.record("quadratic_dmu_score_variance_closed_form", closed_score.item())
tut.record("quadratic_dmu_pathwise_variance_closed_form", closed_path.item())

spread = hist["score"].var() / hist["pathwise"].var()
fig, ax = subplots(1, 1, size=4.5)
gplot.plot_gradient_histograms(
    hist, exact_loc.item(), ax=ax,
    title=f"Same mean, different spread: score-function\nvariance {spread:.1f}x the pathwise one")
tut.savefig(fig, "per_sample_estimates")

# %% [markdown]
# ## 2. Which has lower variance, and when does that reverse? (Mohamed et al. section 3)
#
# The paper's figures 2-3 sweep $k$ for three costs at $\mu = \sigma = 1$. The
# pathwise estimator's variance is that of $f'(x)$: for $(x - k)^2$ it is a constant
# $4 \sigma^2$, but for $\cos(kx)$ and $\exp(-k x^2)$, $f'$ grows with $k$ and
# pathwise loses to the score function, whose per-sample value
# $f(x) (x - \mu)/\sigma^2$ uses only values of $f$, bounded by 1 for these two costs.
# Dashed lines are the closed forms where they exist; the whole sweep
# (3 costs x 4 estimators x 2 parameters x all $k$) is one batched call per cost
# and estimator.

# %%
ks = np.geomspace(0.1, 10.0, tut.choose(9, 25))
sweep = mohamed_sweep(ks, num_samples=N, generator=tut.generator(2))
fig, axes = subplots(2, 3, size=4.6)
for j, name in enumerate(("quadratic", "gaussian", "cosine")):
    for i, param in enumerate(("loc", "scale")):
        gplot.plot_variance_vs_k(sweep[name], param, ax=axes[i, j])
cos = sweep["cosine"]
worse = cos["k"][cos["variance"]["pathwise"]["loc"] > cos["variance"]["score"]["loc"]]
crossover = float(worse.min()) if len(worse) else float("nan")
tut.record("cosine_pathwise_worse_than_score_from_k", crossover, ".2f")
tut.record("cosine_k10_variance_ratio_pathwise_over_score",
           cos["variance"]["pathwise"]["loc"][-1] / cos["variance"]["score"]["loc"][-1], ".1f")
quad = sweep["quadratic"]
tut.record("quadratic_k10_dmu_variance_measure_valued", quad["variance"]["measure_valued"]["loc"][-1],
           ".1f")
tut.record("quadratic_k10_dmu_variance_measure_valued_coupled",
           quad["variance"]["measure_valued_coupled"]["loc"][-1], ".1f")
tut.record("quadratic_score_variance_max_rel_error_vs_closed_form",
           float(np.max(np.abs(quad["variance"]["score"]["loc"] / quad["closed_form"]["score"]["loc"]
                               - 1))), ".3f")
axes[0, 2].set_title(f"cos(kx), d/dmu: pathwise worse from k = {crossover:.1f}")
axes[0, 0].set_title("(x-k)^2, d/dmu: pathwise flat at 4")
fig.suptitle("Variance of one gradient estimate against k (Mohamed et al. 2020, fig. 2-3)")
tut.savefig(fig, "variance_vs_k")

# %% [markdown]
# ## 3. Variance against dimension
#
# $q = N(\mu \mathbf{1}, \sigma^2 I_D)$, $f(x) = \sum_d x_d$. Each coordinate's
# score-function estimate multiplies the *whole* $f$ by that coordinate's score, so
# it carries the noise of all $D$ coordinates:
# $\mathrm{Var} = (D \mu)^2 / \sigma^2 + D + 1$ (Mohamed et al. section 3). The
# pathwise estimate of $\partial_{\mu_i}$ is $\partial f / \partial x_i = 1$ exactly,
# whatever $D$; for $f = \sum_d (x_d - k)^2$ it has variance $4\sigma^2$, whatever $D$.

# %%
dims = [1, 2, 4, 8, 16, 32, 64] if not tut.quick else [1, 2, 4, 8, 16, 32]
dim_num = tut.choose(5_000, 20_000)
dim_linear = variance_vs_dimension(dims, num_samples=dim_num, generator=tut.generator(3))
dim_quad = variance_vs_dimension(dims, cost="quadratic", k=2.0, num_samples=dim_num,
                                 generator=tut.generator(4))
d_max = dims[-1]
tut.record(f"score_variance_D{d_max}", dim_linear["variance"]["score"]["loc"][-1], ".1f")
tut.record(f"score_variance_D{d_max}_closed_form",
           dim_linear["closed_form"]["score"]["loc"][-1], ".1f")
tut.record(f"pathwise_variance_D{d_max}", dim_linear["variance"]["pathwise"]["loc"][-1])
tut.record(f"quadratic_pathwise_variance_D{d_max}", dim_quad["variance"]["pathwise"]["loc"][-1],
           ".3f")
growth = dim_linear["closed_form"]["score"]["loc"][-1] / dim_linear["closed_form"]["score"]["loc"][0]
fig, axes = subplots(1, 2, size=4.5)
gplot.plot_variance_vs_dimension(
    dim_linear, ax=axes[0],
    title=f"f = sum x_d: score variance x{growth:.0f}\nfrom D=1 to {d_max}; pathwise exactly 0")
gplot.plot_variance_vs_dimension(
    dim_quad, ax=axes[1],
    title="f = sum (x_d - 2)^2: pathwise flat at\n4 sigma^2, score grows with D")
tut.savefig(fig, "variance_vs_dimension")

# %% [markdown]
# ## 4. Baselines and control variates
#
# Since $\mathbb{E}[\nabla_\theta \log q_\theta] = 0$, subtracting any $b$ that does not
# depend on the draw keeps the score function unbiased (Mohamed et al. section 7). A
# constant baseline (an independent estimate of $\mathbb{E} f$, like a moving average),
# the leave-one-out mean of the other draws, and the variance-optimal coefficient
# $c^* = \mathbb{E}[f s^2] / \mathbb{E}[s^2]$ for score $s$ (eq. 62) remove the part of
# the variance due to the *level* of $f$. The figure also shows every estimator's
# bias in standard errors: all are unbiased.
#
# The step $f = 1[x > 0]$ has no useful derivative ($f' = 0$ almost everywhere), yet
# $\mathbb{E}[f] = \Phi(\mu / \sigma)$ is smooth: the score-function and
# measure-valued estimators work, and the pathwise estimator refuses instead of
# returning 0.

# %%
table = estimator_table("quadratic", k=2.0, num_samples=N, generator=tut.generator(4))
for est in ("score", "score_baseline", "score_loo", "score_optimal_cv"):
    tut.record(f"quadratic_k2_dmu_variance_{est}", table["estimators"][est]["loc"]["variance"], ".2f")
    tut.record(f"quadratic_k2_dmu_bias_z_{est}", table["estimators"][est]["loc"]["bias_z"], ".2f")
step_table = estimator_table("step", k=0.0, num_samples=N, generator=tut.generator(5))
tut.record("step_exact_dmu", step_table["exact"]["loc"], ".4f")
tut.record("step_dmu_score_mean", step_table["estimators"]["score"]["loc"]["mean"], ".4f")
tut.record("step_dmu_measure_valued_mean", step_table["estimators"]["measure_valued"]["loc"]["mean"], ".4f")
try:
    gaussian_gradients(Step(0.0), mu, sigma, estimator="pathwise", num_samples=10)
    refused = False
except ValueError as err:
    refused = True
    print("pathwise on a step:", err)
tut.record("pathwise_refuses_step", refused)
rows = table["estimators"]
ratio = rows["score"]["loc"]["variance"] / rows["score_optimal_cv"]["loc"]["variance"]
fig, axes = subplots(1, 2, size=4.5)
gplot.plot_estimator_variances(
    table, "loc", ax=axes[0],
    title=f"(x-2)^2: the optimal control variate\ncuts score variance {ratio:.1f}x")
gplot.plot_estimator_variances(
    step_table, "loc", ax=axes[1],
    title="Step 1[x>0]: no pathwise estimator;\nscore and measure-valued unbiased")
tut.savefig(fig, "baselines")

# %% [markdown]
# ## 5. Variance and signal-to-noise against the number of samples
#
# Averaging $n$ independent draws divides the variance by $n$ and multiplies the
# signal-to-noise ratio $|\mathbb{E} g| / \mathrm{sd}(g)$ by $\sqrt{n}$ (dashed): a
# 10x lower-variance estimator is worth 10x more samples.

# %%
n_result = variance_vs_num_samples("quadratic", [1, 2, 5, 10, 20, 50, 100], k=2.0,
                                   replicates=tut.choose(200, 1000), generator=tut.generator(6))
for est, r in n_result["results"].items():
    tut.record(f"snr_n100_{est}", r["snr"][-1], ".2f")
fig, axes = subplots(1, 2, size=4.0)
gplot.plot_variance_vs_num_samples(n_result, "variance", ax=axes[0],
                                   title="Variance of the average\nfalls as 1/n for every estimator")
gplot.plot_variance_vs_num_samples(n_result, "snr", ax=axes[1],
                                   title="SNR grows as sqrt(n);\nlower variance = higher SNR at every n")
tut.savefig(fig, "variance_vs_num_samples")

# %% [markdown]
# ## 6. Discrete latents: REINFORCE vs the Gumbel-softmax relaxation
#
# A categorical sample has no reparameterisation: moving the logits moves no sample
# until it jumps. REINFORCE still applies (unbiased, noisy). The Gumbel-softmax /
# Concrete relaxation replaces the one-hot sample by
# $\mathrm{softmax}((\text{logits} + G) / \tau)$ with Gumbel noise $G$ and
# backpropagates through it: lower variance, but it differentiates a *different*
# objective, so it is biased. As $\tau \to 0$ the bias shrinks and the variance
# grows (Jang et al. 2017; Maddison et al. 2017). The exact gradient comes from
# enumerating the $K$ classes.

# %%
target = torch.tensor([0.1, 0.6, 0.3, 0.9], dtype=torch.float64)


def cat_cost(b):
    """Squared distance of the (one-hot or relaxed) sample to a fixed target vector."""
    return ((b - target) ** 2).sum(-1)


logits = torch.tensor([0.5, -0.3, 1.0, 0.0], dtype=torch.float64)
temps = np.geomspace(0.05, 5.0, tut.choose(6, 12))
gs = gumbel_softmax_sweep(cat_cost, logits, temps, family="categorical",
                          num_samples=tut.choose(20_000, 100_000), generator=tut.generator(7),
                          reference=("score", "score_loo"))
tut.record("gumbel_bias_at_tau_max", gs["gumbel_softmax"]["bias_norm"][-1], ".4f")
tut.record("gumbel_bias_at_tau_min", gs["gumbel_softmax"]["bias_norm"][0], ".4f")
tut.record("gumbel_variance_at_tau_min", gs["gumbel_softmax"]["variance"][0], ".3f")
tut.record("reinforce_loo_variance", gs["score_loo"]["variance"], ".3f")
fig, axes = subplots(1, 2, size=4.0)
gplot.plot_gumbel_softmax(gs, "bias", ax=axes[0],
                          title="Gumbel-softmax bias shrinks\nas the temperature falls...")
gplot.plot_gumbel_softmax(gs, "variance", ax=axes[1],
                          title="...while its variance grows\n(REINFORCE: unbiased, fixed variance)")
tut.savefig(fig, "gumbel_softmax")

# %% [markdown]
# ## 7. Sticking the landing: zero variance at the optimum
#
# The reparameterised ELBO gradient
# $\nabla_\lambda [\log p(x, z) - \log q(z \mid \lambda)]$ with
# $z = \mu + \sigma \epsilon$ contains a score term $-\nabla_\lambda \log q$ at fixed
# $z$, whose mean is zero but whose variance is not. Roeder et al. (2017, eq. 8) drop
# it (stop the gradient through $\lambda$ inside $\log q$). When $q$ is the exact
# posterior, $\log p(x, z) - \log q(z) = \log p(x)$ for every $z$, so every STL
# estimate is zero, while the total gradient still fluctuates. A conjugate Gaussian
# model ($z \sim N(0, 2^2)$, $x_i \sim N(z, 1)$) has its posterior in the family.

# %%
gen = tut.generator(8)
data = 1.5 + torch.randn((20, 2), generator=gen, dtype=torch.float64)
model = ConjugateGaussianModel(data, prior_scale=2.0)
post_loc, post_scale = model.posterior_loc, model.posterior_scale
stl = elbo_gradients(model.log_joint, post_loc, post_scale, estimator="stl", num_samples=1000,
                     generator=tut.generator(9))
total = elbo_gradients(model.log_joint, post_loc, post_scale, estimator="pathwise",
                       num_samples=1000, generator=tut.generator(9))
tut.record("stl_max_abs_at_posterior", float(torch.cat([stl.loc, stl.scale]).abs().max()))
tut.record("total_reparam_variance_at_posterior",
           float(total.loc.var(0).sum() + total.scale.var(0).sum()), ".2f")

# %% [markdown]
# ## 8. Black-box VI with each estimator
#
# The same ELBO, optimised by Adam with the same seed, step size (0.05) and 8
# draws per step; only the gradient estimator differs (Ranganath et al. 2014).
# On the conjugate model the distance is $\mathrm{KL}(q \| \text{posterior})$ in closed form; on
# Bayesian logistic regression the reference posterior mean comes from importance
# sampling around the Laplace approximation, and the distance is the error of q's
# mean in posterior standard deviations.

# %%
iters = tut.choose(150, 600)
runs = bbvi_comparison(model, num_iterations=iters, num_samples=8, learning_rate=0.05,
                       seed=tut.seed + 10)
logreg = BayesianLogisticRegression.synthetic(100, 3, generator=tut.generator(11),
                                              reference_samples=tut.choose(20_000, 200_000),
                                              seed=tut.seed + 12)
tut.record("logreg_reference_ess", logreg.effective_sample_size, ".0f")
runs_lr = bbvi_comparison(logreg, num_iterations=iters, num_samples=8, learning_rate=0.05,
                          seed=tut.seed + 13)
for est in runs:
    tut.record(f"conjugate_final_kl_{est}", runs[est].distance[-1], ".2e")
    tut.record(f"logreg_final_distance_{est}", runs_lr[est].distance[-1], ".3f")
tut.record("conjugate_log_evidence", model.log_evidence(), ".4f")
tut.record("conjugate_final_elbo_stl", runs["stl"].elbo[-1], ".4f")
fig, axes = subplots(2, 3, size=4.6)
gplot.plot_bbvi(runs, "elbo", ax=axes[0, 0], reference=model.log_evidence(),
                title="Conjugate: ELBO reaches log p(x)\n(not with the plain score function)")
axes[0, 0].set_ylim(model.log_evidence() - 15, model.log_evidence() + 2)
gplot.plot_bbvi(runs, "distance", ax=axes[0, 1],
                title="Conjugate: KL(q || posterior);\nSTL keeps falling, total reparam stalls")
gplot.plot_bbvi(runs, "grad_variance", ax=axes[0, 2],
                title="Conjugate: STL's gradient variance\nvanishes as q -> posterior")
gplot.plot_bbvi(runs_lr, "elbo", ax=axes[1, 0],
                title="Logistic regression: ELBO;\nplain score function lags")
best = max(r.elbo.max() for r in runs_lr.values())
axes[1, 0].set_ylim(best - 20, best + 2)
gplot.plot_bbvi(runs_lr, "distance", ax=axes[1, 1],
                title="Logistic regression: error of q's mean\n(posterior s.d. units)")
half = iters // 2
noise_ratio = (np.median(runs_lr["score"].grad_variance[half:])
               / np.median(runs_lr["pathwise"].grad_variance[half:]))
tut.record("logreg_score_over_pathwise_gradient_variance", noise_ratio, ".0f")
gplot.plot_bbvi(runs_lr, "grad_variance", ax=axes[1, 2],
                title=f"Logistic regression: score-function gradients\n"
                      f"~{noise_ratio:.0f}x noisier than pathwise")
tut.savefig(fig, "bbvi")

# %% [markdown]
# ## What to take away
#
# - The score function needs only values of $f$, works for steps and discrete
#   variables, and is unbiased; its variance scales with the size of $f$ and with
#   the dimension. Baselines and control variates remove much of it.
# - The pathwise estimator needs $f'$ and $q$ reparameterisable; it is usually the
#   lowest-variance choice, but not when $f'$ is large ($\cos(kx)$ for large $k$).
# - Measure-valued estimators need only $f$ values and are low-variance, at the
#   cost of $4 D$ evaluations per sample; coupling (common random numbers) often
#   helps further, but not always: for $(x - k)^2$ with large $k$ the two halves are
#   anti-correlated and coupling doubles the $d/d\mu$ variance (section 2's figure).
# - Relaxations (Gumbel-softmax) trade bias for variance through the temperature.
# - Sticking the landing removes a zero-mean term, and with it all variance at
#   the optimum.

# %%
tut.finish()
