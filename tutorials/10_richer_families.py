# %% [markdown]
# # Richer variational families and "did it work?": full covariance, normalizing flows, Pareto k-hat
#
# Question: What does a richer family than mean-field buy, and how do I know a fitted q is good enough?
#
# Every q so far was a Gaussian. Here the same reverse-KL fit runs over three nested
# families, mean-field, full-rank (through the Cholesky factor) and a normalizing flow,
# on targets whose answers are known exactly, and the Pareto k-hat of p/q judges each
# fit without the answer. Then the flow goes inside a VAE's encoder. Sources: Kucukelbir,
# Tran, Ranganath, Gelman & Blei, "Automatic differentiation variational inference", JMLR
# 18 (2017), section 2.4; Rezende & Mohamed, "Variational inference with normalizing
# flows", ICML 2015; Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling, "Improved
# variational inference with inverse autoregressive flow", NeurIPS 2016; Papamakarios,
# Nalisnick, Rezende, Mohamed & Lakshminarayanan, "Normalizing flows for probabilistic
# modeling and inference", JMLR 22 (2021); Yao, Vehtari, Simpson & Gelman, "Yes, but did
# it work?: Evaluating variational inference", ICML 2018; Vehtari, Simpson, Gelman, Yao &
# Gabry, "Pareto smoothed importance sampling", JMLR 25 (2024); Cremer, Li & Duvenaud,
# "Inference suboptimality in variational autoencoders", ICML 2018.

# %% [markdown]
# ## 1. Full covariance through the Cholesky factor
#
# A Gaussian $q = \mathcal N(m, \Sigma)$ is sampled by reparameterisation as
#
# $$z = m + L\varepsilon, \qquad \varepsilon \sim \mathcal N(0, I), \qquad \Sigma = L L^\top,$$
#
# with $L$ lower triangular and a positive diagonal (stored as $\log L_{ii}$, so every
# real parameter vector is a valid $q$). Why $L$ and not $\Sigma$:
#
# * **A draw costs a triangular matrix-vector product**, $O(D^2)$, and no factorisation:
#   parameterising $\Sigma$ would need its Cholesky factor at every step ($O(D^3)$) and
#   a constraint to keep it positive definite.
# * **The entropy is a sum**: $\log\lvert\det\Sigma\rvert = 2\sum_i \log L_{ii}$, so
#   $\mathrm H[q] = \tfrac D2 (1 + \log 2\pi) + \sum_i \log L_{ii}$ and its gradient with
#   respect to $\log L_{ii}$ is exactly 1.
# * **Gradients flow through $L$** like through any weight: $\partial z / \partial L_{ij} = \varepsilon_j$.
#
# Mean-field is the diagonal special case, $L = \mathrm{diag}(\sigma)$: $2D$ parameters
# against $D + D(D+1)/2 = D(D+3)/2$ for full rank (ADVI, Kucukelbir et al. 2017, section
# 2.4). `fit_gaussian(..., family="diagonal" | "full")` fits both through this
# parameterisation (`vitoolkit.fitting.family.GaussianParams`).

# %%
import time
import warnings

import numpy as np
import torch
from torch.distributions import Independent, Normal

from vitoolkit.course import Tutorial
from vitoolkit.course.evidence import difference_of_estimates, paired_difference
from vitoolkit.datasets import load_digits
from vitoolkit.divergences import KHAT_THRESHOLD, grid_divergence
from vitoolkit.fitting import (
    Banana,
    ConvergenceWarning,
    Funnel,
    fit_gaussian,
    mixture_2d,
    nuts_reference,
    target_moments,
)
from vitoolkit.fitting.diagnose import check_fit, draws_with_log_prob
from vitoolkit.fitting.eight_schools import EightSchools, eight_schools_reference, to_centred
from vitoolkit.fitting.family import GaussianParams
from vitoolkit.fitting.flow_fit import fit_flow
from vitoolkit.fitting.objectives import ReverseKLReparam, Target
from vitoolkit.plotting import families as fam_plot
from vitoolkit.plotting import subplots
from vitoolkit.plotting.vae_beyond import plot_gaps
from vitoolkit.vae import VAE, amortisation_gap
from vitoolkit.vae.flow_posterior import (
    PlanarFlowPosterior,
    flow_amortisation_gap,
    flow_elbo,
    train_flow_vae,
)

tut = Tutorial("10_richer_families")
F64 = torch.float64
warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed budget: every fit gets the same

# %% [markdown]
# What that costs, measured: one step of the reverse-KL fit (`ReverseKLReparam`, the
# objective `fit_gaussian` minimises: 128 draws, the loss and its gradient) for both
# families on a $D$-dimensional target with independent coordinates (so the target's own
# cost is the same for both). Interleaved repeats, the median of each.

# %%
def step_seconds(family, dim, repeats):
    target = Independent(Normal(torch.zeros(dim, dtype=F64), torch.ones(dim, dtype=F64)), 1)
    objective = ReverseKLReparam(Target(target), 128, tut.generator(50))
    q = GaussianParams(torch.zeros(dim, dtype=F64), torch.eye(dim, dtype=F64), family)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        objective.loss(q).backward()
        times.append(time.perf_counter() - t0)
    return times


cost = {}
for dim in (10, 100, 800):
    runs = {"diagonal": [], "full": []}
    for _ in range(5):  # interleaved, so a change in the machine's load hits both
        for fam in runs:
            runs[fam] += step_seconds(fam, dim, 4)
    cost[dim] = {fam: float(np.median(v)) for fam, v in runs.items()}

# %% tags=["hide-input"]
tut.record("step_milliseconds_by_dimension",
           {d: {f: 1000 * v for f, v in c.items()} for d, c in cost.items()}, ".3f")
tut.record("parameters_mean_field_vs_full_rank", {d: (2 * d, d * (d + 3) // 2) for d in cost})
ratio_800 = cost[800]["full"] / cost[800]["diagonal"]
# A timing claim holds on any machine only with room to spare: medians of interleaved
# repeats measured ratios from 4 to about 70 on a shared 2-core machine, so the sentence
# says "more than twice".
tut.claim("At D = 800 a full-rank step costs more than twice a mean-field step (the product "
          "L eps is O(D^2) per draw, the diagonal one O(D))", ratio_800 > 2,
          full_over_mean_field=ratio_800, milliseconds={f: 1000 * v for f, v in cost[800].items()})


# %% [markdown]
# ## 2. Normalizing flows: a change of variables
#
# Push the Gaussian's noise through invertible maps, $z = m + L\,T(\varepsilon)$,
# $T = T_K \circ \dots \circ T_1$. The density follows from the change of variables
# (Rezende & Mohamed 2015, eq. 5-6; Papamakarios et al. 2021, eq. 2-3):
#
# $$\log q(z) = \log \mathcal N(\varepsilon; 0, I) - \sum_k \log\lvert\det J_{T_k}\rvert
#   - \sum_i \log L_{ii}.$$
#
# A flow is useful only if that determinant is cheap, and the families used in practice
# are built so that it is:
#
# * **planar/radial** layers, $u' = u + \hat u \tanh(w^\top u + b)$: a rank-one update, so
#   $\det J = 1 + \hat u^\top \psi(u)$ by the matrix determinant lemma (Rezende & Mohamed 2015, eq. 10-12);
# * **affine coupling / autoregressive** layers, $u'_i = u_i e^{s_i(u_{<i})} + t_i(u_{<i})$:
#   a triangular Jacobian, $\log\lvert\det J\rvert = \sum_i s_i$ (inverse autoregressive
#   flow, Kingma et al. 2016, eq. 10-11);
# * **splines** (monotone rational-quadratic per coordinate, inside a coupling or
#   autoregressive layer): still triangular, a product of 1-D slopes.
#
# The reverse-KL objective needs only draws and their $\log q$, both from the forward
# pass: $\mathrm{KL}(q\|p) = \mathbb E_\varepsilon[\log q(z(\varepsilon)) - \log p(z(\varepsilon))]$.
# `fit_flow` runs the very objective and optimiser loop of `fit_gaussian`, with
# the family replaced (`vitoolkit.fitting.flows.FlowParams`, layers from Pyro's
# `pyro.distributions.transforms`). Pyro rather than zuko, by a small measurement
# (2-D banana, 4 layers, 256 draws, Adam, one thread, a shared 2-core machine): 7.1 ms
# per step for Pyro's affine autoregressive flow against 8.8 ms for zuko's MAF, and
# Pyro is already a dependency. Here: three autoregressive layers with the coordinates
# reversed between them, started at the identity, so each flow fit starts at the same
# Gaussian as the Gaussian fits.


# %% [markdown]
# ## 3. Four targets whose answers are known
#
# * a **banana**, $x_2 \mid x_1 \sim \mathcal N(b(x_1^2 - s_1^2), s_2^2)$: curved mass (moments in
#   closed form);
# * **Neal's funnel** (Neal 2003, section 8), $v \sim \mathcal N(0, 3^2)$,
#   $x \mid v \sim \mathcal N(0, e^{v})$: a scale that changes by $e^3$ per standard deviation of $v$;
# * a **bimodal** mixture, two Gaussians of std 0.6 at $(\pm 1.5, 0)$;
# * **eight schools**, centred (BDA3 section 5.5, the example of Yao et al. 2018), ten
#   parameters $(\mu, \log\tau, \theta_{1..8})$. Its exact posterior moments and $\log p(y)$
#   come from integrating $\theta$ out in closed form and $(\mu, \log\tau)$ on a grid
#   (`eight_schools_reference`; BDA3 eq. 5.17-5.20).
#
# Every family gets the same budget: Adam with fresh draws each step, the same maximum number
# of steps (a fit stops earlier once its objective settles), the same draws per step and
# learning rate, and the same starting Gaussian.

# %%
steps = tut.choose(250, 1500)
draws_per_step = tut.choose(128, 256)
check_draws = tut.choose(4000, 20000)
flow_layers, flow_hidden = 3, (16, 16)
budget = dict(optimizer="adam", steps=steps, lr=0.01, num_samples=draws_per_step,
              value_samples=check_draws)
targets = {
    "banana": Banana(),
    "funnel": Funnel(2, 3.0),
    "bimodal": mixture_2d(2, radius=1.5, scale=0.6),
    "eight schools": EightSchools(centred=True),
}
schools_ref = eight_schools_reference(tut.choose(201, 301))
references = {name: target_moments(t) for name, t in targets.items() if name != "eight schools"}
references["eight schools"] = (schools_ref.mean, schools_ref.covariance)
starts = {name: {"loc": torch.zeros(2, dtype=F64), "scale": 1.0} for name in references}
starts["bimodal"] = {"loc": torch.tensor([0.3, 0.2], dtype=F64), "scale": 1.0}
starts["eight schools"] = {"loc": torch.tensor([4.0, 1.0] + [4.0] * 8, dtype=F64), "scale": 1.0}
FAMILIES = ("mean-field", "full-rank", "flow")

fit_gaussian(targets["banana"], "reverse", family="full", method="stochastic",  # warm-up: imports
             init=starts["banana"], optimizer="adam", steps=2, value_samples=0)
fits, checks, seconds = {}, {}, {}
for i, (name, target) in enumerate(targets.items()):
    for fam in FAMILIES:
        t0 = time.perf_counter()
        if fam == "flow":
            fit = fit_flow(target, num_layers=flow_layers, hidden_dims=flow_hidden,
                           init=starts[name], seed=tut.derived_seed(i), **budget)
        else:
            fit = fit_gaussian(target, "reverse", family="diagonal" if fam == "mean-field" else "full",
                               method="stochastic", init=starts[name], seed=tut.derived_seed(i),
                               **budget)
        seconds[name, fam] = time.perf_counter() - t0
        fits[name, fam] = fit
        checks[name, fam] = check_fit(fit.distribution, target, num_samples=check_draws,
                                      generator=tut.generator(100 + i))

# %% [markdown]
# The table: the ELBO $\mathbb E_q[\log p - \log q]$ (with its Monte Carlo standard
# error), the errors of the posterior means and standard deviations against the exact
# ones (largest over the coordinates, in units of the exact std, and as a ratio), the
# Pareto $\hat k$ of section 4, and the wall time of the fit. The 2-D targets are
# normalised, so $-\mathrm{ELBO} = \mathrm{KL}(q\|p)$; eight schools' ELBO is below
# $\log p(y)$ by its KL.

# %%
def moment_errors(c, ref):
    mean, cov = ref
    std = cov.diagonal().sqrt()
    return (float(((c.mean - mean) / std).abs().max()),
            (c.std / std).tolist(), (c.psis_std / std).tolist())


print(f"\n{'target':<14}{'family':<11}{'ELBO':>10}{'+/-':>7}{'mean err':>9}{'min sd ratio':>13}"
      f"{'k-hat':>7}{'seconds':>8}")
for (name, fam), c in checks.items():
    err, ratio, _ = moment_errors(c, references[name])
    print(f"{name:<14}{fam:<11}{c.elbo:10.3f}{c.elbo_stderr:7.3f}{err:9.2f}{min(ratio):13.2f}"
          f"{c.khat:7.2f}{seconds[name, fam]:8.2f}")

# %% tags=["hide-input"]
for (name, fam), c in checks.items():
    err, ratio, _ = moment_errors(c, references[name])
    key = f"{name.replace(' ', '_')}_{fam.replace('-', '_')}"
    tut.record(f"elbo_{key}", c.elbo, ".4f")
    tut.record(f"khat_{key}", c.khat, ".3f")
    tut.record(f"seconds_{key}", seconds[name, fam], ".2f")
    tut.record(f"mean_error_in_stds_{key}", err, ".3f")
    tut.record(f"std_ratio_{key}", ratio, ".3f")
    tut.record(f"psis_std_ratio_{key}", moment_errors(c, references[name])[2], ".3f")
tut.record("eight_schools_log_evidence", schools_ref.log_evidence, ".4f")
tut.record("parameters_eight_schools", {"mean-field": 2 * 10, "full-rank": 10 * 13 // 2,
                                        "flow": fits["eight schools", "flow"].num_parameters})

# %% tags=["hide-input"]
def elbo_gap(name, better, worse):
    """ELBO(better) - ELBO(worse) on one target, with the standard error of the difference."""
    a, b = checks[name, better], checks[name, worse]
    return difference_of_estimates(a.elbo, a.elbo_stderr, b.elbo, b.elbo_stderr)


flow_vs_fr = {name: elbo_gap(name, "flow", "full-rank") for name in targets}
tut.claim("On every one of the four targets the flow's ELBO is higher than the full-rank "
          "Gaussian's by more than 4 standard errors of the difference",
          all(d.exceeds(4) for d in flow_vs_fr.values()),
          **{f"flow_minus_full_rank[{n}]": d.evidence(4) for n, d in flow_vs_fr.items()})
fr_vs_mf = elbo_gap("eight schools", "full-rank", "mean-field")
tut.claim("On eight schools the full-rank Gaussian's ELBO is higher than mean-field's by more "
          "than 4 standard errors: the posterior is correlated", fr_vs_mf.exceeds(4),
          **fr_vs_mf.evidence(4))
kl_schools = {fam: schools_ref.log_evidence - checks["eight schools", fam].elbo for fam in FAMILIES}
kl_se = {fam: checks["eight schools", fam].elbo_stderr for fam in FAMILIES}
tut.record("eight_schools_kl_to_posterior", kl_schools, ".3f")
# with the noise: the flow's KL plus 2 s.e. below a third of full-rank's KL minus 2 s.e.
tut.claim("On eight schools the flow is within a third of the full-rank Gaussian's distance to "
          "the posterior: KL(q||p) = log p(y) - ELBO below 1/3 of full-rank's (each taken 2 "
          "standard errors towards the other)",
          kl_schools["flow"] + 2 * kl_se["flow"] < (kl_schools["full-rank"] - 2 * kl_se["full-rank"]) / 3,
          kl=kl_schools, stderr=kl_se, factor=2)
tau_ratio = {fam: checks["eight schools", fam].std[1] / schools_ref.std[1] for fam in FAMILIES}
tut.record("eight_schools_log_tau_std_ratio", tau_ratio, ".3f")
tut.claim("Both Gaussians shrink the funnel of eight schools: their std of log tau is below "
          "half the exact one; the flow's is above half and more than twice theirs",
          max(tau_ratio["mean-field"], tau_ratio["full-rank"]) < 0.5 and tau_ratio["flow"] > 0.5
          and tau_ratio["flow"] > 2 * max(tau_ratio["mean-field"], tau_ratio["full-rank"]),
          **{k: float(v) for k, v in tau_ratio.items()})

# %% [markdown]
# On the 2-D targets $\mathrm{KL}(q\|p)$ can also be computed without Monte Carlo, by the
# trapezoidal rule on a grid over the region where $q$ has its mass
# (`grid_divergence`; the flow's density there comes from inverting its layers). It is an
# independent check of the ELBO column on the banana and the bimodal target. On the funnel
# both routes struggle: the flow puts mass into a neck narrower than the grid's spacing, and
# under every $q$ the terms $\log q - \log p$ are heavy-tailed there, so the Monte Carlo
# standard error is itself shaky; the funnel's grid values are only printed.

# %%
grid_kl, grid_z = {}, {}
for i, name in enumerate(("banana", "funnel", "bimodal")):
    for fam in FAMILIES:
        q = fits[name, fam].distribution
        draws = draws_with_log_prob(q, 4000, generator=tut.generator(300 + i))[0]
        lo, hi = draws.min(0).values, draws.max(0).values
        pad = 0.25 * (hi - lo)
        bounds = [(float(lo[d] - pad[d]), float(hi[d] + pad[d])) for d in range(2)]
        grid_kl[name, fam] = float(grid_divergence(q, targets[name], "kl", bounds=bounds,
                                                   num_points=241))

# %% tags=["hide-input"]
for (name, fam), kl in grid_kl.items():
    c = checks[name, fam]
    if name != "funnel":
        grid_z[f"{name} {fam}"] = (kl + c.elbo) / c.elbo_stderr
tut.record("grid_kl", {f"{n} {f}": v for (n, f), v in grid_kl.items()}, ".4f")
tut.claim("The grid's KL(q||p) agrees with the Monte Carlo -ELBO within 4 standard errors for "
          "all six fits of the banana and the bimodal target", max(abs(v) for v in grid_z.values()) < 4,
          difference_in_standard_errors=grid_z)

same = {n: abs(grid_kl[n, "full-rank"] - grid_kl[n, "mean-field"]) for n in ("banana", "funnel")}
tut.claim("On the banana and the funnel, whose covariances are diagonal, full rank gains nothing: "
          "its grid KL is within 0.01 nats of mean-field's", max(same.values()) < 0.01, **same)
flow_share = {n: checks[n, "flow"].elbo / checks[n, "full-rank"].elbo
              for n in ("banana", "funnel", "bimodal")}
# with the noise: the flow's -ELBO plus 2 s.e. below a quarter of full-rank's -ELBO minus 2 s.e.
# (the funnel's flow fit varies most: its ratio was 0.02 to 0.17 over the runs we made)
shares_hold = {n: -checks[n, "flow"].elbo + 2 * checks[n, "flow"].elbo_stderr
               < (-checks[n, "full-rank"].elbo - 2 * checks[n, "full-rank"].elbo_stderr) / 4
               for n in flow_share}
tut.claim("On all three 2-D targets the flow's KL(q||p) = -ELBO is below a quarter of the full-rank "
          "Gaussian's (each taken 2 standard errors towards the other)", all(shares_hold.values()),
          flow_over_full_rank=flow_share, factor=2,
          stderr={f"{n} {f}": checks[n, f].elbo_stderr for n in flow_share for f in ("flow", "full-rank")})

# %%
fig, axes = subplots(3, 4, size=2.6)
for row, name in enumerate(("banana", "funnel", "bimodal")):
    c = checks[name, "flow"]
    lo = torch.tensor({"banana": (-4.5, -2.5), "funnel": (-7.0, -6.0), "bimodal": (-3.5, -2.5)}[name])
    hi = torch.tensor({"banana": (4.5, 8.0), "funnel": (7.0, 6.0), "bimodal": (3.5, 2.5)}[name])
    n_plot = tut.choose(81, 121)
    g1, g2 = torch.meshgrid(torch.linspace(float(lo[0]), float(hi[0]), n_plot, dtype=F64),
                            torch.linspace(float(lo[1]), float(hi[1]), n_plot, dtype=F64), indexing="xy")
    pts = torch.stack([g1, g2], -1)
    dens = {"exact": targets[name].log_prob(pts)}
    for fam in FAMILIES:
        with torch.no_grad():
            dens[fam] = fits[name, fam].distribution.log_prob(pts)
    for col, (label, lp) in enumerate(dens.items()):
        title = label if col == 0 else f"{label}: KL {-checks[name, label].elbo:.2f}"
        fam_plot.plot_density(g1, g2, lp.exp(), ax=axes[row, col], reference=col == 0,
                              title=f"{name}, {title}",
                              xlabel="$v$" if name == "funnel" else "$x_1$",
                              ylabel="$x$" if name == "funnel" else "$x_2$")
fig.suptitle("Exact density (left) and each family's fitted q; panel titles give KL(q||p)",
             fontsize="medium")
tut.savefig(fig, "densities_2d")

# %% [markdown]
# What to see: the Gaussians, mean-field or full-rank, can only be ellipses; on these three
# targets the banana and the funnel are uncorrelated (their covariance is diagonal), so the
# full-rank fit gains nothing over mean-field there. The flow bends. On the funnel it
# follows the funnel's mouth and neck much better than the Gaussians: its KL is below a quarter
# of theirs (in most runs far below: see the table).
#
# ## 4. Yes, but did it work? The Pareto k-hat as a verdict
#
# In practice the exact answer is unknown. Yao et al. (2018, section 3) judge a fitted
# $q$ by how heavy the tail of the importance ratios $r_s = p(z_s, y) / q(z_s)$,
# $z_s \sim q$, is: fit a generalised Pareto to the largest ones
# (`vitoolkit.divergences.pareto_smooth`); its shape $\hat k$ says
#
# * $\hat k < 0.5$: $q$ covers $p$; importance sampling with $q$ works;
# * $0.5 \le \hat k < 0.7$: usable, and Pareto-smoothed importance sampling (PSIS)
#   corrects $q$'s moments;
# * $\hat k \ge 0.7$: $q$ misses mass of $p$ that matters; neither $q$'s moments nor the
#   PSIS-corrected ones can be trusted.
#
# `check_fit(q, p)` returns $\hat k$, the ELBO, $q$'s moments and the PSIS-corrected ones,
# $\sum_s \tilde w_s f(z_s)$ with the smoothed weights $\tilde w$.

# %%
fig, ax = subplots(1, 1, size=6.0)
fam_plot.plot_khat_bars({f: {n: checks[n, f].khat for n in targets} for f in FAMILIES},
                        threshold=KHAT_THRESHOLD, ax=ax,
                        title="Pareto k-hat of the ratios p/q of each fit")
tut.savefig(fig, "khat_verdicts")

# %% tags=["hide-input"]
tut.claim("The verdict flags both Gaussian fits of eight schools as unusable: k-hat above 0.7",
          min(checks["eight schools", "mean-field"].khat,
              checks["eight schools", "full-rank"].khat) > KHAT_THRESHOLD,
          mean_field=checks["eight schools", "mean-field"].khat,
          full_rank=checks["eight schools", "full-rank"].khat)
tut.claim("On the banana the flow's k-hat is below 0.7 and lower than both Gaussians' by more "
          "than 0.1",
          checks["banana", "flow"].khat < KHAT_THRESHOLD and checks["banana", "flow"].khat + 0.1
          < min(checks["banana", "mean-field"].khat, checks["banana", "full-rank"].khat),
          **{f: checks["banana", f].khat for f in FAMILIES})

bi = checks["bimodal", "full-rank"]
bi_true_sd = references["bimodal"][1].diagonal().sqrt()
bi_sd_err = {"q": float((bi.std / bi_true_sd - 1).abs().max()),
             "psis": float((bi.psis_std / bi_true_sd - 1).abs().max())}
tut.claim("Where k-hat is small, PSIS repairs the moments: on the bimodal target the full-rank "
          "Gaussian has k-hat below 0.5, its own stds are off by more than 5%, the PSIS-corrected "
          "ones by less than 5%",
          bi.khat < 0.5 and bi_sd_err["q"] > 0.05 and bi_sd_err["psis"] < 0.05,
          khat=bi.khat, **bi_sd_err)

# %% [markdown]
# **Where the verdict and the truth disagree.** $\hat k$ is computed from $q$'s own
# draws, so it can only see mass of $p$ near $q$. Move the two modes far apart
# ($\pm 4$, std 0.6): the reverse-KL Gaussian locks onto one mode (tutorial 03), the
# ratios $p/q$ near that mode are well behaved, and the verdict says "fine", while half of
# $p$'s mass is missing and the PSIS-corrected mean is as wrong as $q$'s.

# %%
far = mixture_2d(2, radius=4.0, scale=0.6)
far_fit = fit_gaussian(far, "reverse", family="full", init={"loc": torch.tensor([3.0, 0.5], dtype=F64),
                                                            "scale": 1.0})
far_check = check_fit(far_fit.distribution, far, num_samples=check_draws, generator=tut.generator(400))

# %% tags=["hide-input"]
tut.record("far_modes_khat", far_check.khat, ".3f")
tut.record("far_modes_psis_mean", far_check.psis_mean, ".3f")
tut.claim("With far-apart modes the verdict and the truth disagree: k-hat is below 0.5 "
          "('reliable') but the PSIS-corrected mean of x1 is more than 3 away from the true 0",
          far_check.khat < 0.5 and abs(float(far_check.psis_mean[0])) > 3,
          khat=far_check.khat, psis_mean_x1=float(far_check.psis_mean[0]))

# %% [markdown]
# $\hat k$ answers "can I use $q$ as it is, or with PSIS?", not "which $q$ is best?": for
# that, compare ELBOs, which need no reference either.

# %% [markdown]
# The reference of eight schools can be checked a second way: the No-U-Turn Sampler
# (`nuts_reference`, Pyro's NUTS) on the non-centred form $\theta_j = \mu + \tau\eta_j$,
# which has no funnel (the same posterior after a change of variables). NUTS costs many
# times the fits, so only the full run does it.

# %%
if not tut.quick:
    nuts = nuts_reference(EightSchools(centred=False), num_samples=500, warmup_steps=200,
                          num_chains=2, seed=tut.seed)
    nuts_draws = to_centred(nuts.samples)  # back to (mu, log tau, theta_1..8)
    nuts_se = nuts_draws.std(0) / nuts.ess.sqrt()  # Monte Carlo error of each mean
    nuts_z = ((nuts_draws.mean(0) - schools_ref.mean) / nuts_se).abs()

# %% tags=["hide-input"]
if not tut.quick:
    tut.record("nuts_seconds", nuts.seconds, ".1f")
    tut.record("nuts_max_rhat", nuts.rhat.max(), ".4f")
    tut.claim("NUTS agrees with the exact reference: all ten posterior means within 4 Monte Carlo "
              "standard errors, split R-hat below 1.05", float(nuts_z.max()) < 4
              and float(nuts.rhat.max()) < 1.05, full_only=True, max_z=nuts_z.max(),
              max_rhat=nuts.rhat.max(), nuts_seconds=nuts.seconds,
              slowest_fit_seconds=max(v for (n, f), v in seconds.items() if n == "eight schools"))

# %% [markdown]
# Wall time is in the table (a shared machine: the seconds vary from run to run). The
# optimiser stopped each fit when its objective settled, so the seconds mix the cost of a
# step with the number of steps; both are recorded.

# %% tags=["hide-input"]
tut.record("optimiser_steps", {f"{n} {f}": fits[n, f].n_iter for (n, f) in fits})
tut.record("milliseconds_per_step", {f"{n} {f}": 1000 * seconds[n, f] / max(1, fits[n, f].n_iter)
                                     for (n, f) in fits}, ".2f")

# %%
fig, ax = subplots(1, 1, size=5.0)
fam_plot.plot_std_ratios(
    {f: (checks["eight schools", f].std / schools_ref.std,
         checks["eight schools", f].psis_std / schools_ref.std) for f in FAMILIES},
    ["mu", "log tau"] + [f"theta{j}" for j in range(1, 9)], ax=ax,
    title="Eight schools: each fit's posterior std / the exact std")
tut.savefig(fig, "eight_schools_stds")

# %% [markdown]
# ## 5. A flow in the VAE's encoder: approximation and amortisation gaps
#
# Cremer, Li & Duvenaud (2018) split a VAE's inference gap
#
# $$\log p(x) - \mathcal L[q] = \underbrace{\log p(x) - \mathcal L[q^*]}_{\text{approximation gap}}
#   + \underbrace{\mathcal L[q^*] - \mathcal L[q]}_{\text{amortisation gap}},$$
#
# $q^*$ the best member of the family for this one $x$ (tutorial 06). Their Table 2
# compares a Gaussian encoder with a flow encoder: the amortisation gap was the larger
# part, and the flow's more expressive family shrank the approximation gap. We train two
# VAEs on the binarised digits with the same loop and budget: a Gaussian encoder, and the
# same encoder with four planar layers on top, whose parameters a small network computes
# from $x$ (`PlanarFlowPosterior`). The gaps use the library's `amortisation_gap`
# (Gaussian) and `flow_amortisation_gap` (flow): $q^*$ optimised per test digit from the
# encoder's output, and $\log p(x)$ by importance sampling with $q^*$.

# %%
X, _ = load_digits(binarize=True)
perm = torch.randperm(len(X), generator=tut.generator(500))
X_train, X_test = X[perm[:1500]], X[perm[1500:]]
vae_epochs = tut.choose(8, 60)
n_gap, gap_steps, gap_eval = tut.choose(120, 200), tut.choose(100, 400), tut.choose(800, 2000)
gaps, test_elbo = {}, {}
for k, (label, layers) in enumerate((("Gaussian", 0), ("flow", 4))):
    vae = VAE(64, 4, (64,), seed=tut.seed)
    flow = PlanarFlowPosterior(vae, layers, seed=tut.seed)
    train_flow_vae(vae, flow, X_train, epochs=vae_epochs, batch_size=64, lr=2e-3, seed=tut.seed)
    with torch.no_grad():
        test_elbo[label] = float(flow_elbo(vae, flow, X_test, num_samples=50,
                                           generator=tut.generator(600 + k)).mean())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the k-hat is recorded below
        if layers == 0:
            gaps[label] = amortisation_gap(vae, X_test[:n_gap], steps=gap_steps, num_samples=8,
                                           eval_samples=gap_eval, generator=tut.generator(700))
        else:
            gaps[label] = flow_amortisation_gap(vae, flow, X_test[:n_gap], steps=gap_steps,
                                                num_samples=8, eval_samples=gap_eval,
                                                generator=tut.generator(700))

# %% tags=["hide-input"]
for label, g in gaps.items():
    for field in ("inference_gap", "approximation_gap", "amortisation_gap"):
        tut.record(f"vae_{label}_{field}", getattr(g, field).mean(), ".3f")
    tut.record(f"vae_{label}_khat_above_0.7", float((g.log_likelihood_khat > 0.7).double().mean()), ".3f")
tut.record("vae_test_elbo", test_elbo, ".3f")


amort_vs_approx = {label: paired_difference(g.amortisation_gap, g.approximation_gap)
                   for label, g in gaps.items()}
tut.claim("For both encoders the amortisation gap is larger than the approximation gap (paired over "
          "the test digits, by more than 3 standard errors), as in Cremer et al.'s Table 2",
          all(d.exceeds(3) for d in amort_vs_approx.values()),
          **{f"{k}_amortisation_minus_approximation": d.evidence(3) for k, d in amort_vs_approx.items()})
approx_diff = paired_difference(gaps["Gaussian"].approximation_gap, gaps["flow"].approximation_gap)
tut.claim("The flow family has the smaller approximation gap: its q* comes closer to the "
          "posterior (Gaussian minus flow, paired over the digits, more than 3 standard errors)",
          approx_diff.exceeds(3), **approx_diff.evidence(3))
amort_diff = paired_difference(gaps["flow"].amortisation_gap, gaps["Gaussian"].amortisation_gap)
tut.claim("Not reproduced here: the flow encoder's amortisation gap is not smaller than the "
          "Gaussian's (flow minus Gaussian, paired over the digits, above -2 standard errors)",
          not amort_diff.falls_short(2), **amort_diff.evidence(2))

# %%
fig, ax = subplots(1, 1, size=5.0)
plot_gaps({f"{k} encoder": (g.approximation_gap.mean(), g.amortisation_gap.mean())
           for k, g in gaps.items()}, ax=ax, xlabel="", legend_loc="below",
          title="Approximation and amortisation gaps of each encoder\n(mean over the test digits)")
tut.savefig(fig, "vae_gaps")

# %% [markdown]
# What reproduced and what did not: the two qualitative findings of Cremer et al. above
# hold on this small model (each is a claim checked on the run). Their numbers do not
# transfer: their models were trained on MNIST for thousands of epochs and their $\log p(x)$
# came from annealed importance sampling; ours is an 8x8-digit model trained for a few
# epochs, with $\log p(x)$ by importance sampling (see the printed k-hat share). The
# flow encoder's amortisation gap is not smaller than the Gaussian's here (the printed
# numbers and the last claim): a richer family is also harder for one encoder to hit
# for every $x$.
#
# ## What to see
#
# * The full-rank Gaussian is $z = m + L\varepsilon$: $D(D+3)/2$ parameters, a triangular
#   product per draw, the entropy a sum of $\log L_{ii}$. It helps when the posterior is
#   correlated (eight schools), not on curved or multimodal mass.
# * A flow is the same reparameterisation with invertible layers in between; the same
#   objective and optimiser fit it, and it beat both Gaussians on every target here.
# * The Pareto $\hat k$ of $p/q$ tells without the answer whether $q$ can be used:
#   it failed both Gaussians on eight schools, and it was lower for the flow on the banana;
#   with small $\hat k$, PSIS repairs $q$'s moments. It cannot see mass far from $q$
#   (the far-apart modes).
#
# ## Exercises
#
# * `flow_log_density`: push a base sample through one planar layer and return $z$ and
#   $\log q(z)$ by the change of variables. Start with
#   `vitoolkit exercise start flow_log_density`, check with
#   `vitoolkit exercise check flow_log_density FILE`.
# * Without a new file: refit eight schools in the non-centred form (`EightSchools(centred=False)`,
#   no funnel) and compare the Gaussians' $\hat k$ with the centred fits above.

# %%
tut.finish()
