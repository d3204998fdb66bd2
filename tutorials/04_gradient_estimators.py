# %% [markdown]
# # Gradient estimators: score function, reparameterisation and what their variance costs
#
# Question: How do we differentiate an expectation we can only sample, and which estimator wins when?
#
# Every estimator below is measured against the exact gradient (closed form,
# quadrature or enumeration), so each claim is a number: its bias in standard
# errors and its variance. Sources: Mohamed, Rosca, Figurnov & Mnih, "Monte Carlo
# Gradient Estimation in Machine Learning" (JMLR 2020); Roeder, Wu & Duvenaud,
# "Sticking the Landing" (NeurIPS 2017); Jang, Gu & Poole (ICLR 2017) and
# Maddison, Mnih & Teh (ICLR 2017) for the Gumbel-softmax / Concrete relaxation;
# Ranganath, Gerrish & Blei (AISTATS 2014) for black-box VI.

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

from vitoolkit.course import Tutorial, evidence
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
    gradient_statistics,
    gumbel_softmax_sweep,
    mohamed_sweep,
    variance_vs_dimension,
    variance_vs_num_samples,
)
from vitoolkit.plotting import gradients as gplot
from vitoolkit.plotting import subplots

tut = Tutorial("04_gradient_estimators")
N = tut.choose(20_000, 100_000)
Z = 4.0  # Monte Carlo comparisons below allow Z standard errors of sampling noise


def clearly_below(a, se_a, b, se_b, z=Z):
    """a < b by more than z combined standard errors (elementwise, then all)."""
    a, se_a, b, se_b = (np.asarray(v, dtype=float) for v in (a, se_a, b, se_b))
    return bool(np.all(a + z * np.hypot(se_a, se_b) < b))


def within(a, b, se, z=Z):
    """|a - b| <= z se everywhere: a Monte Carlo value agrees with an exact one."""
    return bool(np.all(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
                       <= z * np.asarray(se, dtype=float)))


def crossover(k, worse):
    """Smallest k from which ``worse`` holds at every larger k (nan if it never does)."""
    worse = np.asarray(worse, dtype=bool)
    if not worse[-1]:
        return float("nan")
    first = len(worse) - int(np.argmin(worse[::-1])) if not worse.all() else 0
    return float(np.asarray(k)[first])


mu = torch.tensor([1.0], dtype=torch.float64)
sigma = torch.tensor([1.0], dtype=torch.float64)
x = torch.distributions.Normal(mu.requires_grad_(), sigma).sample()
print("x.requires_grad:", x.requires_grad)  # False: autograd cannot see how x moves with mu
mu = mu.detach()

# %% tags=["hide-input"]
tut.record("sample_requires_grad", bool(x.requires_grad))
tut.claim("torch.distributions.Normal(mu, sigma).sample() carries no gradient",
          not x.requires_grad, requires_grad=x.requires_grad)

# %% [markdown]
# One cost, $f(x) = (x - k)^2$ with $k = 2$ at $\mu = \sigma = 1$: the exact gradient
# is $\partial_\mu = 2(\mu - k)$. Each estimator returns one estimate per draw;
# their mean must match the exact value within a few standard errors and their
# spread is the estimator's variance. Mohamed et al. (section 3) give the variances
# in closed form, with $a = \mu - k$: score function
# $a^4/\sigma^2 + 14 a^2 + 15 \sigma^2$, pathwise $4 \sigma^2$ (both printed below,
# next to the measured ones). The score function's is several times larger.

# %%
cost = Quadratic(2.0)
exact_loc, exact_scale = exact_gaussian_gradient(cost, mu, sigma)
hist, stats = {}, {}
for est in ("score", "pathwise", "measure_valued_coupled"):
    g = gaussian_gradients(cost, mu, sigma, estimator=est, num_samples=N,
                           generator=tut.generator(1)).loc[:, 0]  # one estimate per draw
    hist[est] = g.numpy()
    stats[est] = gradient_statistics(g, exact_loc[0])  # mean, bias in s.e., variance (and its s.e.)
closed_score, _ = cost.estimator_variance("score", mu, sigma)
closed_path, _ = cost.estimator_variance("pathwise", mu, sigma)
var = {est: float(st["variance"]) for est, st in stats.items()}
spread = var["score"] / var["pathwise"]

fig, ax = subplots(1, 1, size=4.5)
gplot.plot_gradient_histograms(
    hist, exact_loc.item(), ax=ax,
    title=f"Same mean, different spread: score-function\nvariance {spread:.1f}x the pathwise one")
tut.savefig(fig, "per_sample_estimates")

# %% tags=["hide-input"]
tut.record("quadratic_exact_dmu", exact_loc.item())
for est in hist:
    tut.record(f"quadratic_dmu_{est}_mean", float(hist[est].mean()), ".4f")
    tut.record(f"quadratic_dmu_{est}_variance", float(hist[est].var(ddof=1)), ".3f")
tut.record("quadratic_dmu_score_variance_closed_form", closed_score.item())
tut.record("quadratic_dmu_pathwise_variance_closed_form", closed_path.item())
bias_z = {est: float(st["bias_z"]) for est, st in stats.items()}
tut.claim("Each estimator's mean matches the exact gradient within 4 standard errors",
          max(abs(z) for z in bias_z.values()) < Z, bias_z=bias_z)
var_se = {est: float(st["variance_stderr"]) for est, st in stats.items()}
tut.claim("The measured variances match the closed forms (score function and pathwise, within 4 "
          "standard errors)",
          within(var["score"], closed_score.item(), var_se["score"])
          and within(var["pathwise"], closed_path.item(), var_se["pathwise"]),
          score=var["score"], score_closed=closed_score.item(), score_se=var_se["score"],
          pathwise=var["pathwise"], pathwise_closed=closed_path.item(),
          pathwise_se=var_se["pathwise"])
tut.claim("The score function's variance is several times (> 3x) the pathwise one (by more than "
          "4 standard errors)",
          clearly_below(3 * var["pathwise"], 3 * var_se["pathwise"], var["score"], var_se["score"]),
          ratio=spread, closed_form_ratio=(closed_score / closed_path).item(), score_se=var_se["score"],
          pathwise_se=var_se["pathwise"])
tut.claim("The coupled measure-valued estimates are narrower still than the pathwise ones (by more "
          "than 4 standard errors)",
          clearly_below(var["measure_valued_coupled"], var_se["measure_valued_coupled"],
                        var["pathwise"], var_se["pathwise"]),
          measure_valued_coupled=var["measure_valued_coupled"], pathwise=var["pathwise"],
          measure_valued_coupled_se=var_se["measure_valued_coupled"], pathwise_se=var_se["pathwise"])

# %% [markdown]
# ## 2. Which has lower variance, and when does that reverse? (Mohamed et al. section 3)
#
# The paper's figures 2-3 sweep $k$ for three costs at $\mu = \sigma = 1$. The
# pathwise estimator's variance is that of $f'(x)$ (times $\epsilon$ for $\sigma$):
# for $(x - k)^2$ it is the constant $4 \sigma^2$ for $\partial_\mu$ and stays below the
# score function's at every $k$. For $\cos(kx)$ and $\exp(-k x^2)$, $f'$ grows with $k$,
# and from some $k$ on (computed below, in each panel's title) pathwise loses to the
# score function, whose per-sample value $f(x) (x - \mu)/\sigma^2$ uses only values of
# $f$, bounded by 1 for these two costs. Dashed lines are the closed forms where they
# exist; the whole sweep (3 costs x 4 estimators x 2 parameters x all $k$) is one
# batched call per cost and estimator.

# %%
ks = np.geomspace(0.1, 10.0, tut.choose(9, 25))
sweep = mohamed_sweep(ks, num_samples=N, generator=tut.generator(2))
V = {c: sweep[c]["variance"] for c in sweep}  # V[cost][estimator][parameter]: one value per k
SE = {c: sweep[c]["variance_stderr"] for c in sweep}
quad = sweep["quadratic"]
four_sigma2 = quad["closed_form"]["pathwise"]["loc"]
cross, sym = {}, {"loc": "mu", "scale": "sigma"}
for name in ("gaussian", "cosine"):
    for p in ("loc", "scale"):
        v, se = V[name], SE[name]
        # "Worse" only where the gap beats its noise (Z combined standard errors).
        worse = v["pathwise"][p] - v["score"][p] > Z * np.hypot(se["pathwise"][p], se["score"][p])
        cross[name, p] = crossover(ks, worse)  # from here on pathwise is clearly worse

fig, axes = subplots(2, 3, size=4.6)
for j, name in enumerate(("quadratic", "gaussian", "cosine")):
    for i, param in enumerate(("loc", "scale")):
        gplot.plot_variance_vs_k(sweep[name], param, ax=axes[i, j], legend=False)
axes[0, 0].set_title(f"(x-k)^2, d/dmu: pathwise flat\nat 4 sigma^2 = {four_sigma2[0]:g}; "
                     "score on closed form")
axes[1, 0].set_title("(x-k)^2, d/dsigma: pathwise below\nthe score function at every k")
for j, name in ((1, "gaussian"), (2, "cosine")):
    for i, p in enumerate(("loc", "scale")):
        axes[i, j].set_title(f"{sweep[name]['formula']}, d/d{sym[p]}:\n"
                             f"pathwise worse from k = {cross[name, p]:.2g}")
fig.suptitle("Variance of one gradient estimate against k (Mohamed et al. 2020, fig. 2-3)")
gplot.figure_legend(fig, axes, ncols=3)
tut.savefig(fig, "variance_vs_k")

# %% tags=["hide-input"]
tut.claim("(x - k)^2: the pathwise variance of d/dmu is the constant 4 sigma^2 at every k (within 4 "
          "standard errors)",
          within(V["quadratic"]["pathwise"]["loc"], four_sigma2, SE["quadratic"]["pathwise"]["loc"]),
          measured_min=V["quadratic"]["pathwise"]["loc"].min(),
          measured_max=V["quadratic"]["pathwise"]["loc"].max(), closed_form=four_sigma2[0])
tut.claim("(x - k)^2: the measured score-function variances follow the closed forms (dashed; "
          "within 4 standard errors at every k)",
          all(within(V["quadratic"]["score"][p], quad["closed_form"]["score"][p],
                     SE["quadratic"]["score"][p]) for p in ("loc", "scale")),
          max_rel_error=max(float(np.max(np.abs(V["quadratic"]["score"][p]
                                                / quad["closed_form"]["score"][p] - 1)))
                            for p in ("loc", "scale")))
tut.record("quadratic_score_variance_max_rel_error_vs_closed_form",
           float(np.max(np.abs(V["quadratic"]["score"]["loc"] / quad["closed_form"]["score"]["loc"]
                               - 1))), ".3f")
tut.claim("(x - k)^2: pathwise stays below the score function at every k, for d/dmu and d/dsigma "
          "(by more than 4 standard errors)",
          all(clearly_below(V["quadratic"]["pathwise"][p], SE["quadratic"]["pathwise"][p],
                            V["quadratic"]["score"][p], SE["quadratic"]["score"][p])
              for p in ("loc", "scale")),
          pathwise=V["quadratic"]["pathwise"], score=V["quadratic"]["score"])
for name in ("gaussian", "cosine"):
    for p in ("loc", "scale"):
        v, se = V[name], SE[name]
        c = cross[name, p]
        tut.record(f"{name}_d{p}_pathwise_worse_than_score_from_k", c, ".2f")
        gap = Z * np.hypot(se["pathwise"][p], se["score"][p])
        better = v["score"][p] - v["pathwise"][p] > gap
        below = ks < c / 2
        # The crossover c is defined as the first k from which pathwise is clearly worse, so
        # "from c on" holds by construction; the test is the other side: clearly better at
        # every k below c / 2 (between c / 2 and c the two may be within noise).
        tut.claim(f"{sweep[name]['formula']}, d/d{sym[p]}: pathwise is clearly worse (4 standard "
                  f"errors) than the score function at every k from {c:.2g} on, and clearly better "
                  "at every k below half that",
                  bool(np.isfinite(c) and below.any() and np.all(better[below])),
                  crossover=c, pathwise=v["pathwise"][p], score=v["score"][p],
                  clearly_better_below_half=int(better[below].sum()), points_below_half=int(below.sum()))
large = {name: V[name]["pathwise"]["loc"][-1] / V[name]["score"]["loc"][-1]
         for name in ("gaussian", "cosine")}
tut.record("cosine_k10_variance_ratio_pathwise_over_score", large["cosine"], ".1f")
tut.claim("At the largest k pathwise loses by a wide margin (> 5x) for exp(-k x^2) and cos(k x) "
          "(by more than 4 standard errors)",
          all(clearly_below(5 * V[n]["score"]["loc"][-1], 5 * SE[n]["score"]["loc"][-1],
                            V[n]["pathwise"]["loc"][-1], SE[n]["pathwise"]["loc"][-1])
              for n in large), ratio_pathwise_over_score=large)

# %% [markdown]
# The measure-valued estimators (green, purple) need only values of $f$, like the score
# function, and beat it in most of the sweep (count printed below). Coupling their two
# halves with common random numbers usually lowers the variance further, but not
# always: for $(x - k)^2$ with large $k$ the two halves are anti-correlated and coupling
# roughly doubles the $\partial_\mu$ variance.

# %%
points = [(c, p) for c in sweep for p in ("loc", "scale")]  # (cost, parameter) pairs
mv10 = V["quadratic"]["measure_valued"]["loc"][-1]  # (x - k)^2 at the largest k, d/dmu
mvc10 = V["quadratic"]["measure_valued_coupled"]["loc"][-1]
print(f"(x - k)^2 at k = {ks[-1]:g}: d/dmu variance {mv10:.1f} uncoupled, {mvc10:.1f} coupled")

# %% tags=["hide-input"]
mv_beats_score = np.concatenate([
    V[c]["measure_valued_coupled"][p] + Z * np.hypot(SE[c]["measure_valued_coupled"][p],
                                                     SE[c]["score"][p]) < V[c]["score"][p]
    for c, p in points])
# Coupling "lowers" the variance only where the drop beats its noise (Z combined s.e.).
coupled_helps = np.concatenate([
    V[c]["measure_valued_coupled"][p] + Z * np.hypot(SE[c]["measure_valued_coupled"][p],
                                                     SE[c]["measure_valued"][p])
    < V[c]["measure_valued"][p] for c, p in points])
tut.record("fraction_measure_valued_coupled_below_score", mv_beats_score.mean(), ".2f")
tut.record("fraction_coupling_lowers_variance", coupled_helps.mean(), ".2f")
tut.claim("The coupled measure-valued estimator beats the score function in most of the sweep "
          "(by more than 4 standard errors in more than three quarters of the (cost, parameter, "
          "k) settings)",
          mv_beats_score.mean() > 0.75, fraction=mv_beats_score.mean(), settings=len(mv_beats_score))
tut.claim("Coupling lowers the measure-valued variance in most settings (by more than 4 standard "
          "errors in more than half of them)",
          coupled_helps.mean() > 0.5, fraction=coupled_helps.mean(), settings=len(coupled_helps))
mv10_se = SE["quadratic"]["measure_valued"]["loc"][-1]
mvc10_se = SE["quadratic"]["measure_valued_coupled"]["loc"][-1]
ratio10 = mvc10 / mv10
ratio10_se = ratio10 * np.hypot(mv10_se / mv10, mvc10_se / mvc10)  # delta method
tut.record("quadratic_k10_dmu_variance_measure_valued", mv10, ".1f")
tut.record("quadratic_k10_dmu_variance_measure_valued_coupled", mvc10, ".1f")
tut.claim("(x - k)^2 at the largest k: coupling roughly doubles the d/dmu variance "
          "(ratio between 1.5 and 2.5, both ends by more than 2 standard errors)",
          1.5 < ratio10 - 2 * ratio10_se and ratio10 + 2 * ratio10_se < 2.5,
          ratio=ratio10, stderr=ratio10_se, coupled=mvc10, uncoupled=mv10)

# %% [markdown]
# ## 3. Variance against dimension
#
# $q = N(\mu \mathbf{1}, \sigma^2 I_D)$, $f(x) = \sum_d x_d$. Each coordinate's
# score-function estimate multiplies the *whole* $f$ by that coordinate's score, so
# it carries the noise of all $D$ coordinates:
# $\mathrm{Var} = (D \mu)^2 / \sigma^2 + D + 1$ (Mohamed et al. section 3). A
# leave-one-out baseline removes the level of $f$, the $(D\mu)^2/\sigma^2$ part, but what
# remains, $D + 1$, still grows with $D$. The pathwise estimate of $\partial_{\mu_i}$ is
# $\partial f / \partial x_i = 1$ exactly, whatever $D$; for $f = \sum_d (x_d - k)^2$ it has
# variance $4\sigma^2$, whatever $D$. The coupled measure-valued estimator changes only
# coordinate $i$ between its two evaluations, so the other coordinates cancel and its
# variance does not grow with $D$ either.

# %%
dims = [1, 2, 4, 8, 16, 32, 64] if not tut.quick else [1, 2, 4, 8, 16, 32]
dim_num = tut.choose(5_000, 20_000)
dim_linear = variance_vs_dimension(dims, num_samples=dim_num, generator=tut.generator(3))
dim_quad = variance_vs_dimension(dims, cost="quadratic", k=2.0, num_samples=dim_num,
                                 generator=tut.generator(4))
d_max = dims[-1]
D = np.asarray(dims, dtype=float)
lin_v, lin_se = dim_linear["variance"], dim_linear["variance_stderr"]
quad_v, quad_se = dim_quad["variance"], dim_quad["variance_stderr"]
growth = lin_v["score"]["loc"][-1] / lin_v["score"]["loc"][0]

fig, axes = subplots(1, 2, size=4.5)
gplot.plot_variance_vs_dimension(
    dim_linear, ax=axes[0], legend=False,
    title=f"f = sum x_d: score variance x{growth:.0f}\nfrom D=1 to {d_max}; pathwise exactly 0")
gplot.plot_variance_vs_dimension(
    dim_quad, ax=axes[1], legend=False,
    title="f = sum (x_d - 2)^2: pathwise flat at\n4 sigma^2, score grows with D")
gplot.figure_legend(fig, axes, ncols=3)
tut.savefig(fig, "variance_vs_dimension")

# %% tags=["hide-input"]
tut.record(f"score_variance_D{d_max}", lin_v["score"]["loc"][-1], ".1f")
tut.record(f"score_variance_D{d_max}_closed_form", dim_linear["closed_form"]["score"]["loc"][-1], ".1f")
tut.record(f"pathwise_variance_D{d_max}", lin_v["pathwise"]["loc"][-1])
tut.record(f"quadratic_pathwise_variance_D{d_max}", quad_v["pathwise"]["loc"][-1], ".3f")
tut.claim("f = sum x_d: the score-function variance follows (D mu)^2/sigma^2 + D + 1 at every D "
          "(within 4 standard errors)",
          within(lin_v["score"]["loc"], (D * mu.item()) ** 2 / sigma.item() ** 2 + D + 1,
                 lin_se["score"]["loc"]),
          measured=lin_v["score"]["loc"], closed_form=(D * mu.item()) ** 2 / sigma.item() ** 2 + D + 1,
          stderr=lin_se["score"]["loc"])
tut.claim("f = sum x_d: with a leave-one-out baseline what remains is D + 1 (within 4 standard "
          "errors at every D)",
          within(lin_v["score_loo"]["loc"], D + 1, lin_se["score_loo"]["loc"]),
          measured=lin_v["score_loo"]["loc"], d_plus_1=D + 1, stderr=lin_se["score_loo"]["loc"])
tut.claim("f = sum x_d: the pathwise estimate is exactly 1, variance exactly 0, at every D",
          bool(np.all(lin_v["pathwise"]["loc"] == 0)), variance=lin_v["pathwise"]["loc"])
tut.claim("f = sum (x_d - 2)^2: the pathwise variance is 4 sigma^2 at every D (within 4 standard "
          "errors)",
          within(quad_v["pathwise"]["loc"], 4 * sigma.item() ** 2, quad_se["pathwise"]["loc"]),
          measured=quad_v["pathwise"]["loc"], stderr=quad_se["pathwise"]["loc"])
tut.claim("f = sum (x_d - 2)^2: the score-function variance follows its closed form, which grows "
          "with D, and is far larger at the largest D than at D = 1 (> 10x, by more than 4 "
          "standard errors)",
          bool(np.all(np.diff(dim_quad["closed_form"]["score"]["loc"]) > 0))
          and within(quad_v["score"]["loc"], dim_quad["closed_form"]["score"]["loc"],
                     quad_se["score"]["loc"])
          and clearly_below(10 * quad_v["score"]["loc"][0], 10 * quad_se["score"]["loc"][0],
                            quad_v["score"]["loc"][-1], quad_se["score"]["loc"][-1]),
          measured=quad_v["score"]["loc"], closed_form=dim_quad["closed_form"]["score"]["loc"],
          stderr=quad_se["score"]["loc"])
mvc = {"sum x_d": lin_v["measure_valued_coupled"]["loc"],
       "sum (x_d - 2)^2": quad_v["measure_valued_coupled"]["loc"]}
mvc_se = {"sum x_d": lin_se["measure_valued_coupled"]["loc"],
          "sum (x_d - 2)^2": quad_se["measure_valued_coupled"]["loc"]}
tut.claim("The coupled measure-valued variance does not grow with D (every D within 4 standard "
          "errors of D = 1)",
          all(within(v, v[0], np.hypot(mvc_se[n], mvc_se[n][0])) for n, v in mvc.items()),
          **{n.replace(" ", ""): v for n, v in mvc.items()},
          **{n.replace(" ", "") + "_stderr": v for n, v in mvc_se.items()})
tut.record("score_variance_growth_D1_to_Dmax", growth, ".0f")

# %% [markdown]
# ## 4. Baselines and control variates
#
# Since $\mathbb{E}[\nabla_\theta \log q_\theta] = 0$, subtracting any $b$ that does not
# depend on the draw keeps the score function unbiased (Mohamed et al. section 7). A
# constant baseline (an independent estimate of $\mathbb{E} f$, like a moving average),
# the leave-one-out mean of the other draws, and the variance-optimal coefficient
# $c^* = \mathbb{E}[f s^2] / \mathbb{E}[s^2]$ for score $s$ (eq. 62) each remove part of
# the variance due to the *level* of $f$; $c^*$ by construction the most (the factor is
# in the left title). The figure also shows every estimator's bias in standard errors:
# all are unbiased.
#
# The step $f = 1[x > 0]$ has no useful derivative ($f' = 0$ almost everywhere), yet
# $\mathbb{E}[f] = \Phi(\mu / \sigma)$ is smooth: the score-function and
# measure-valued estimators work, and the pathwise estimator refuses instead of
# returning 0.

# %%
table = estimator_table("quadratic", k=2.0, num_samples=N, generator=tut.generator(4))
step_table = estimator_table("step", k=0.0, num_samples=N, generator=tut.generator(5))
try:
    gaussian_gradients(Step(0.0), mu, sigma, estimator="pathwise", num_samples=10)
    refused = False
except ValueError as err:
    refused = True
    print("pathwise on a step:", err)
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

# %% tags=["hide-input"]
for est in ("score", "score_baseline", "score_loo", "score_optimal_cv"):
    tut.record(f"quadratic_k2_dmu_variance_{est}", rows[est]["loc"]["variance"], ".2f")
    tut.record(f"quadratic_k2_dmu_bias_z_{est}", rows[est]["loc"]["bias_z"], ".2f")
tut.record("step_exact_dmu", step_table["exact"]["loc"], ".4f")
tut.record("step_dmu_score_mean", step_table["estimators"]["score"]["loc"]["mean"], ".4f")
tut.record("step_dmu_measure_valued_mean", step_table["estimators"]["measure_valued"]["loc"]["mean"], ".4f")
tut.record("pathwise_refuses_step", refused)
for base in ("score_baseline", "score_loo", "score_optimal_cv"):
    tut.claim(f"(x - 2)^2: {base} has a lower d/dmu variance than the plain score function (by "
              "more than 4 standard errors)",
              clearly_below(rows[base]["loc"]["variance"], rows[base]["loc"]["variance_stderr"],
                            rows["score"]["loc"]["variance"], rows["score"]["loc"]["variance_stderr"]),
              baseline=rows[base]["loc"]["variance"], score=rows["score"]["loc"]["variance"],
              baseline_se=rows[base]["loc"]["variance_stderr"],
              score_se=rows["score"]["loc"]["variance_stderr"])
others = [rows[b]["loc"] for b in ("score_baseline", "score_loo")]
tut.claim("c* removes the most: no other baseline is clearly (4 standard errors) below the optimal "
          "control variate (c* minimises the variance by construction, eq. 62: a sanity check)",
          not any(clearly_below(o["variance"], o["variance_stderr"],
                                rows["score_optimal_cv"]["loc"]["variance"],
                                rows["score_optimal_cv"]["loc"]["variance_stderr"]) for o in others),
          optimal_cv=rows["score_optimal_cv"]["loc"]["variance"],
          others=[o["variance"] for o in others])
all_z = {f"{t['cost']}:{est}:{p}": r[p]["bias_z"] for t in (table, step_table)
         for est, r in t["estimators"].items() for p in ("loc", "scale")}
tut.claim("Every estimator in both tables is unbiased: |bias| < 4 standard errors",
          max(abs(z) for z in all_z.values()) < Z, max_abs_bias_z=max(abs(z) for z in all_z.values()))
tut.claim("The pathwise estimator refuses the step instead of returning 0", refused,
          refused=refused)
tut.record("quadratic_k2_optimal_cv_variance_reduction", ratio, ".2f")

# %% [markdown]
# ## 5. Variance and signal-to-noise against the number of samples
#
# Averaging $n$ independent draws divides the variance by $n$ and multiplies the
# signal-to-noise ratio $|\mathbb{E} g| / \mathrm{sd}(g)$ by $\sqrt{n}$ (dashed), for every
# estimator alike: dividing the per-sample variance by $r$ is worth $r$ times more draws,
# and the estimator with the lower per-sample variance has the higher SNR at every $n$.

# %%
n_grid = [1, 2, 5, 10, 20, 50, 100]
replicates = tut.choose(1000, 2000)
n_result = variance_vs_num_samples("quadratic", n_grid, k=2.0,
                                   replicates=replicates, generator=tut.generator(6))
log_n = np.log(n_grid)
slopes = {est: (float(np.polyfit(log_n, np.log(r["variance"]), 1)[0]),  # variance vs n
                float(np.polyfit(log_n, np.log(r["snr"]), 1)[0]))  # SNR vs n
          for est, r in n_result["results"].items()}

fig, axes = subplots(1, 2, size=4.0)
gplot.plot_variance_vs_num_samples(n_result, "variance", ax=axes[0], legend=False,
                                   title="Variance of the average\nfalls as 1/n for every estimator")
gplot.plot_variance_vs_num_samples(n_result, "snr", ax=axes[1], legend=False,
                                   title="SNR grows as sqrt(n);\nlower variance = higher SNR at every n")
gplot.figure_legend(fig, axes, ncols=4)
tut.savefig(fig, "variance_vs_num_samples")

# %% tags=["hide-input"]
for est, r in n_result["results"].items():
    tut.record(f"snr_n100_{est}", r["snr"][-1], ".2f")
tut.claim("The variance of the average falls as 1/n for every estimator (log-log slope -1 +/- 0.15)",
          all(abs(v + 1) < 0.15 for v, _ in slopes.values()),
          slopes={e: round(v, 3) for e, (v, _) in slopes.items()})
tut.claim("The SNR grows as sqrt(n) for every estimator (log-log slope 0.5 +/- 0.1)",
          all(abs(s - 0.5) < 0.1 for _, s in slopes.values()),
          slopes={e: round(s, 3) for e, (_, s) in slopes.items()})
per_sample = {e: r["theory_variance"][0] for e, r in n_result["results"].items()}
order = sorted(per_sample, key=per_sample.get)
snr_sorted = np.stack([n_result["results"][e]["snr"] for e in order])
# Standard error of an SNR |mean| / sd estimated from R replicates of a roughly normal average:
# sqrt((1 + SNR^2 / 2) / R) (delta method).
snr_se = np.sqrt((1 + snr_sorted ** 2 / 2) / replicates)
steps = snr_sorted[:-1] - snr_sorted[1:]  # each estimator minus the next noisier one
tut.claim("Lower per-sample variance = higher SNR at every n (each step down the variance order "
          "raises the SNR by more than 2 standard errors)",
          bool(np.all(steps > 2 * np.hypot(snr_se[:-1], snr_se[1:]))), by_variance=order,
          per_sample_variance=per_sample,
          smallest_step_in_stderr=float(np.min(steps / np.hypot(snr_se[:-1], snr_se[1:]))))

# %% [markdown]
# ## 6. Discrete latents: REINFORCE vs the Gumbel-softmax relaxation
#
# A categorical sample has no reparameterisation: moving the logits moves no sample
# until it jumps. REINFORCE still applies (unbiased, noisy). The Gumbel-softmax /
# Concrete relaxation replaces the one-hot sample by
# $\mathrm{softmax}((\text{logits} + G) / \tau)$ with Gumbel noise $G$ and
# backpropagates through it; it differentiates a *different* objective, so it is
# biased. As $\tau \to 0$ the bias shrinks and the variance grows (Jang et al. 2017;
# Maddison et al. 2017). At high temperature its variance is far below REINFORCE's,
# even with a leave-one-out baseline; at the lowest temperatures it is above even plain
# REINFORCE's, so the relaxation only pays where its bias is still visible. The exact
# gradient comes from enumerating the $K$ classes. REINFORCE is unbiased, so on the
# bias panel its dashed lines are its 2 standard-error noise floor: the smallest bias
# the same number of draws could detect.

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
gsb, gsv = gs["gumbel_softmax"]["bias_norm"], gs["gumbel_softmax"]["variance"]
gse, gsv_se = gs["gumbel_softmax"]["bias_stderr"], gs["gumbel_softmax"]["variance_stderr"]

fig, axes = subplots(1, 2, size=4.0)
gplot.plot_gumbel_softmax(gs, "bias", ax=axes[0], legend=False,
                          title="Gumbel-softmax bias shrinks\nas the temperature falls...")
gplot.plot_gumbel_softmax(gs, "variance", ax=axes[1], legend=False,
                          title="...while its variance grows past\nREINFORCE's (unbiased, fixed variance)")
gplot.figure_legend(fig, axes, ncols=2)
tut.savefig(fig, "gumbel_softmax")

# %% tags=["hide-input"]
tut.record("gumbel_bias_at_tau_max", gsb[-1], ".4f")
tut.record("gumbel_bias_at_tau_min", gsb[0], ".4f")
tut.record("gumbel_variance_at_tau_min", gsv[0], ".3f")
tut.record("reinforce_variance", gs["score"]["variance"], ".3f")
tut.record("reinforce_loo_variance", gs["score_loo"]["variance"], ".3f")
rf, rf_loo = gs["score"], gs["score_loo"]
tut.claim("Gumbel-softmax is biased at high temperature (bias > 4 s.e. at the largest tau)",
          gsb[-1] > Z * gse[-1], bias=gsb[-1], stderr=gse[-1])
tut.claim("Its bias shrinks as tau falls: more than 5x smaller at the smallest tau "
          "(the top of its 2 s.e. band)",
          gsb[0] + 2 * gse[0] < gsb[-1] / 5, bias_at_tau_min=gsb[0], bias_at_tau_max=gsb[-1],
          stderr_at_tau_min=gse[0])
# temps ascend, so variance must fall from each grid step to the next by more than its noise.
var_steps = (gsv[:-1] - gsv[1:]) / np.hypot(gsv_se[:-1], gsv_se[1:])
tut.claim("Its variance grows as tau falls (at every step of the grid, by more than 4 standard "
          "errors)", bool(np.all(var_steps > Z)), variance=gsv, stderr=gsv_se,
          smallest_step_in_stderr=float(var_steps.min()))
tut.claim("At the largest tau its variance is far below REINFORCE's with a leave-one-out "
          "baseline (> 10x, by more than 4 standard errors)",
          clearly_below(10 * gsv[-1], 10 * gsv_se[-1], rf_loo["variance"], rf_loo["variance_stderr"]),
          gumbel=gsv[-1], reinforce_loo=rf_loo["variance"], gumbel_se=gsv_se[-1],
          reinforce_loo_se=rf_loo["variance_stderr"])
tut.claim("At the smallest tau its variance is above even plain REINFORCE's (by more than 4 "
          "standard errors)",
          clearly_below(rf["variance"], rf["variance_stderr"], gsv[0], gsv_se[0]),
          gumbel=gsv[0], reinforce=rf["variance"], gumbel_se=gsv_se[0],
          reinforce_se=rf["variance_stderr"])
pays = gsv + Z * np.hypot(gsv_se, rf_loo["variance_stderr"]) < rf_loo["variance"]
tut.claim("The relaxation only pays where its bias is still visible: at every temperature where its "
          "variance is clearly (4 s.e.) below REINFORCE + leave-one-out's, its bias exceeds 4 s.e.",
          bool(pays.any() and np.all(gsb[pays] > Z * gse[pays])), temperatures=temps[pays],
          bias_over_stderr=gsb[pays] / gse[pays])
tut.claim("REINFORCE is unbiased: its measured bias is noise (within 5 s.e.; the norm of K noisy "
          "coordinates)", all(gs[e]["bias_norm"] < 5 * gs[e]["bias_stderr"] for e in ("score", "score_loo")),
          **{e: gs[e]["bias_norm"] / gs[e]["bias_stderr"] for e in ("score", "score_loo")})
gs_cross = crossover(temps[::-1], (gsv > gs["score_loo"]["variance"])[::-1])
tut.record("gumbel_variance_above_reinforce_loo_below_tau", gs_cross, ".3g")

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
model = ConjugateGaussianModel(data, prior_std=2.0)
post_loc, post_scale = model.posterior_loc, model.posterior_scale
stl = elbo_gradients(model.log_joint, post_loc, post_scale, estimator="stl", num_samples=1000,
                     generator=tut.generator(9))
total = elbo_gradients(model.log_joint, post_loc, post_scale, estimator="pathwise",
                       num_samples=1000, generator=tut.generator(9))
stl_max = float(torch.cat([stl.loc, stl.scale]).abs().max())
total_var = float(total.loc.var(0).sum() + total.scale.var(0).sum())
print(f"at the posterior: largest |STL estimate| {stl_max:.1e}, "
      f"total reparameterised gradient variance {total_var:.2f}")

# %% tags=["hide-input"]
tut.record("stl_max_abs_at_posterior", stl_max)
tut.record("total_reparam_variance_at_posterior", total_var, ".2f")
tut.claim("At the posterior every STL estimate is zero (to rounding)", stl_max < 1e-10,
          max_abs=stl_max)
tut.claim("...while the total reparameterised gradient still fluctuates (variance > 1)",
          total_var > 1.0, variance=total_var)

# %% [markdown]
# ## 8. Black-box VI with each estimator
#
# The same ELBO, optimised by Adam with the same seed, step size and number of
# draws per step (both printed below); only the gradient estimator differs (Ranganath
# et al. 2014). On the conjugate model the distance is $\mathrm{KL}(q \| \text{posterior})$
# in closed form; on Bayesian logistic regression the reference posterior mean comes from
# importance sampling around the Laplace approximation (its effective sample size is
# printed), and the distance is the error of q's mean in posterior standard deviations.
#
# On the conjugate model, every estimator but the plain score function brings the ELBO
# to $\log p(x)$. Near the optimum the total reparameterised gradient keeps its score
# term's noise, so its KL stalls, while STL's gradient variance vanishes and its KL keeps
# falling. The score function with a baseline vanishes at the optimum too (there
# $\log p - \log q$ is the constant $\log p(x)$, which the baseline learns), so given
# enough iterations it also passes the total reparameterised gradient. On logistic
# regression the posterior is not Gaussian, so no estimator's variance vanishes (STL's
# levels off); the
# plain score function's gradients are orders of magnitude noisier than pathwise ones,
# and it lags in ELBO and in the error of q's mean.

# %%
# The conjugate model is cheap: its quick run is long enough to reach the optimum's neighbourhood.
iters, iters_lr = tut.choose(300, 600), tut.choose(150, 600)
LEARNING_RATE, DRAWS = 0.05, 8
print(f"Adam, learning rate {LEARNING_RATE}, {DRAWS} draws per step")
runs = bbvi_comparison(model, num_iterations=iters, num_samples=DRAWS, learning_rate=LEARNING_RATE,
                       seed=tut.derived_seed(10))
logreg = BayesianLogisticRegression.synthetic(100, 3, generator=tut.generator(11),
                                              reference_samples=tut.choose(20_000, 200_000),
                                              seed=tut.derived_seed(12))
runs_lr = bbvi_comparison(logreg, num_iterations=iters_lr, num_samples=DRAWS,
                          learning_rate=LEARNING_RATE, seed=tut.derived_seed(13))
half = slice(iters_lr // 2, None)
noise_ratio = (np.median(runs_lr["score"].grad_variance[half])
               / np.median(runs_lr["pathwise"].grad_variance[half]))

fig, axes = subplots(2, 3, size=4.6)
gplot.plot_bbvi(runs, "elbo", ax=axes[0, 0], reference=model.log_evidence(), legend=False,
                title="Conjugate: ELBO reaches log p(x)\n(not with the plain score function)")
axes[0, 0].set_ylim(model.log_evidence() - 15, model.log_evidence() + 2)
gplot.plot_bbvi(runs, "distance", ax=axes[0, 1], legend=False,
                title="Conjugate: KL(q || posterior);\nSTL keeps falling, total reparam stalls")
gplot.plot_bbvi(runs, "grad_variance", ax=axes[0, 2], legend=False,
                title="Conjugate: STL's gradient variance\nvanishes as q -> posterior")
gplot.plot_bbvi(runs_lr, "elbo", ax=axes[1, 0], legend=False,
                title="Logistic regression: ELBO;\nplain score function lags")
best = max(r.elbo.max() for r in runs_lr.values())
axes[1, 0].set_ylim(best - 20, best + 2)
gplot.plot_bbvi(runs_lr, "distance", ax=axes[1, 1], legend=False,
                title="Logistic regression: error of q's mean\n(posterior s.d.); score function furthest")
gplot.plot_bbvi(runs_lr, "grad_variance", ax=axes[1, 2], legend=False,
                title=f"Logistic regression: score-function\n"
                      f"gradients ~{noise_ratio:.0f}x noisier than pathwise")
gplot.figure_legend(fig, axes, ncols=5)
tut.savefig(fig, "bbvi")

# %% tags=["hide-input"]
tut.record("bbvi_learning_rate", LEARNING_RATE)
tut.record("bbvi_draws_per_step", DRAWS)
ess = logreg.effective_sample_size
tut.record("logreg_reference_ess", ess, ".0f")
tut.claim("The importance-sampled reference is reliable: effective sample size above 1000",
          ess > 1000, ess=ess)
for est in runs:
    tut.record(f"conjugate_final_kl_{est}", runs[est].distance[-1], ".2e")
    tut.record(f"logreg_final_distance_{est}", runs_lr[est].distance[-1], ".3f")
tut.record("conjugate_log_evidence", model.log_evidence(), ".4f")
tut.record("conjugate_final_elbo_stl", runs["stl"].elbo[-1], ".4f")
q3, q4 = slice(iters // 2, 3 * iters // 4), slice(3 * iters // 4, None)
q3_lr, q4_lr = slice(iters_lr // 2, 3 * iters_lr // 4), slice(3 * iters_lr // 4, None)


def window(values, part):
    """Median of a run's curve over a window of iterations (curves are noisy)."""
    return float(np.median(np.asarray(values)[part]))


final_kl = {e: r.distance[-1] for e, r in runs.items()}
good = ("pathwise", "stl", "score_baseline")
tut.claim("Conjugate: every estimator but the plain score function ends within 0.1 nats of "
          "log p(x) (final KL), the score function more than 10x further",
          max(final_kl[e] for e in good) < 0.1 and final_kl["score"] > 10 * max(final_kl[e] for e in good),
          final_kl=final_kl)
fall = {e: window(r.distance, q3) / window(r.distance, q4) for e, r in runs.items()}
tut.claim("Conjugate: STL's KL keeps falling (> 5x from the third to the last quarter of the run), "
          "the total reparameterised gradient's stalls (< 3x)",
          fall["stl"] > 5 and fall["pathwise"] < 3, fall_factor=fall)
tut.claim("Conjugate: STL ends far closer to the posterior than the total reparameterised gradient "
          "(> 10x smaller KL over the last quarter)",
          window(runs["stl"].distance, q4) * 10 < window(runs["pathwise"].distance, q4),
          stl=window(runs["stl"].distance, q4), pathwise=window(runs["pathwise"].distance, q4))
gv = {e: (float(r.grad_variance[0]), window(r.grad_variance, q4)) for e, r in runs.items()}
tut.claim("Conjugate: STL's gradient variance vanishes as q -> posterior (last quarter > 1000x "
          "below its start, and > 100x below the total reparameterised gradient's)",
          gv["stl"][1] * 1000 < gv["stl"][0] and gv["stl"][1] * 100 < gv["pathwise"][1],
          start_and_last_quarter=gv)
tut.claim("Conjugate: with a baseline the score function's gradient variance also falls "
          "(> 100x from the start to the last quarter)",
          gv["score_baseline"][1] * 100 < gv["score_baseline"][0], start_and_last_quarter=gv)
tut.claim("Conjugate: given enough iterations, score + baseline passes the total reparameterised "
          "gradient (smaller KL over the last quarter)",
          window(runs["score_baseline"].distance, q4) < window(runs["pathwise"].distance, q4),
          full_only=True, score_baseline=window(runs["score_baseline"].distance, q4),
          pathwise=window(runs["pathwise"].distance, q4))
elbo_end = {e: float(np.mean(r.elbo[q4_lr])) for e, r in runs_lr.items()}
# Each iteration's ELBO is a Monte Carlo estimate: compare last-quarter means with Welch's error.
lag = {e: evidence.independent_difference(np.asarray(r.elbo[q4_lr]),
                                          np.asarray(runs_lr["score"].elbo[q4_lr]))
       for e, r in runs_lr.items() if e != "score"}
tut.claim("Logistic regression: the plain score function lags in ELBO (last-quarter mean more than "
          "1 nat below every other estimator's, and by more than 4 standard errors)",
          all(d.mean > max(1.0, Z * d.stderr) for d in lag.values()),
          elbo_last_quarter=elbo_end, **{f"{e} minus score": d.evidence(Z) for e, d in lag.items()})
dist_end = {e: window(r.distance, q4_lr) for e, r in runs_lr.items()}
tut.claim("Logistic regression: the plain score function ends furthest from the posterior mean "
          "(> 3x every other estimator's error over the last quarter)",
          dist_end["score"] > 3 * max(v for e, v in dist_end.items() if e != "score"),
          error_last_quarter=dist_end)
floor = {e: window(r.grad_variance, q4_lr) for e, r in runs_lr.items()}
tut.claim("Logistic regression: no estimator's gradient variance vanishes (every last-quarter median "
          "above 0.1, while STL's on the conjugate model ends below 0.01)",
          min(floor.values()) > 0.1 and gv["stl"][1] < 0.01, last_quarter=floor,
          conjugate_stl=gv["stl"][1])
stl_lr_level = (window(runs_lr["stl"].grad_variance, q3_lr)
                / window(runs_lr["stl"].grad_variance, q4_lr))
tut.claim("Logistic regression: STL's gradient variance levels off (medians over the third and last "
          "quarter of the run within 3x)", 1 / 3 < stl_lr_level < 3, ratio=stl_lr_level)
tut.record("logreg_score_over_pathwise_gradient_variance", noise_ratio, ".0f")
tut.claim("Logistic regression: score-function gradients are orders of magnitude (> 100x) noisier "
          "than pathwise ones", noise_ratio > 100, ratio=noise_ratio)

# %% [markdown]
# ## What to take away
#
# - The score function needs only values of $f$, works for steps and discrete
#   variables, and is unbiased; its variance scales with the size of $f$ and with
#   the dimension. Baselines and control variates remove the part due to the level of
#   $f$ (sections 3 and 4), not the growth with $D$.
# - The pathwise estimator needs $f'$ and $q$ reparameterisable; it beats the score
#   function wherever $f'$ is small, but not when $f'$ is large ($\cos(kx)$ and
#   $\exp(-kx^2)$ for large $k$).
# - Measure-valued estimators need only $f$ values and beat the score function in most
#   settings, at the cost of $4 D$ evaluations of $f$ per sample; coupling (common random
#   numbers) usually helps further, but not always: for $(x - k)^2$ with large $k$ it
#   roughly doubles the $d/d\mu$ variance (section 2).
# - Relaxations (Gumbel-softmax) trade bias for variance through the temperature.
# - Sticking the landing removes a zero-mean term, and with it all variance at
#   the optimum.
#
# Each of these sentences is checked by a claim on this run's numbers (here and above).

# %% tags=["hide-input"]
k1 = int(np.argmin(np.abs(ks - 1.0)))
qs, qs_se = V["quadratic"]["score"]["loc"], SE["quadratic"]["score"]["loc"]
tut.claim("The score function's variance scales with the size of f: for (x - k)^2 it is more than "
          "100x larger at the largest k than at k = 1 (by more than 4 standard errors)",
          clearly_below(100 * qs[k1], 100 * qs_se[k1], qs[-1], qs_se[-1]),
          at_k1=qs[k1], at_k_max=qs[-1], stderr_k1=qs_se[k1], stderr_k_max=qs_se[-1])
loo_v, loo_se = lin_v["score_loo"]["loc"], lin_se["score_loo"]["loc"]
tut.claim("Baselines remove the part due to the level of f (leave-one-out > 10x below the plain "
          "score function at the largest D), not the growth with D (> 5x from D = 1 to the largest "
          "D), each by more than 4 standard errors",
          clearly_below(10 * loo_v[-1], 10 * loo_se[-1], lin_v["score"]["loc"][-1],
                        lin_se["score"]["loc"][-1])
          and clearly_below(5 * loo_v[0], 5 * loo_se[0], loo_v[-1], loo_se[-1]),
          score=lin_v["score"]["loc"][-1], leave_one_out=loo_v, leave_one_out_stderr=loo_se)
tut.claim("Pathwise beats the score function where f' is small (smallest k, every cost and parameter) "
          "but not where it is large (largest k of exp(-k x^2) and cos(k x)), each by more than 4 "
          "standard errors",
          all(clearly_below(V[c]["pathwise"][p][0], SE[c]["pathwise"][p][0],
                            V[c]["score"][p][0], SE[c]["score"][p][0]) for c, p in points)
          and all(clearly_below(V[c]["score"][p][-1], SE[c]["score"][p][-1],
                                V[c]["pathwise"][p][-1], SE[c]["pathwise"][p][-1])
                  for c in ("gaussian", "cosine") for p in ("loc", "scale")),
          smallest_k={f"{c}:{p}": (V[c]["pathwise"][p][0], V[c]["score"][p][0]) for c, p in points},
          largest_k={f"{c}:{p}": (V[c]["pathwise"][p][-1], V[c]["score"][p][-1])
                     for c in ("gaussian", "cosine") for p in ("loc", "scale")})

# %% [markdown]
# ## Exercises
#
# - `score_function_gradient(cost, loc, scale, eps) -> (g_loc, g_scale)`: the
#   per-sample score-function estimates of section 1, from given standard-normal draws `eps`.
# - `pathwise_gradient(cost, loc, scale, eps) -> (g_loc, g_scale)`: the per-sample
#   pathwise (reparameterisation) estimates, by autograd through $x = \mu + \sigma \epsilon$.
#
# Start one with `vitoolkit exercise start score_function_gradient` (or
# `pathwise_gradient`), which writes a stub file, and check your solution with
# `vitoolkit exercise check score_function_gradient FILE`.

# %%
tut.finish()
