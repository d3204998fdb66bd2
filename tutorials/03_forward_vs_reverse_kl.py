# %% [markdown]
# # Forward vs reverse KL: mode-seeking, mass-covering, and the alpha dial between them
#
# Question: Why does VI minimise KL(q||p), and what does that direction do to the fitted q?
#
# We fit one Gaussian q to the same targets under KL(q||p), KL(p||q) and Minka's
# alpha-divergences with ``vitoolkit.fitting.fit_gaussian``, and compare. Sources:
# Bishop, *Pattern Recognition and Machine Learning* (PRML), section 10.1.2 and
# figures 10.2-10.3; Minka, "Divergence measures and message passing",
# MSR-TR-2005-173 (2005), eq. 2.

# %% [markdown]
# ## Two directions of the same divergence
#
# $$\mathrm{KL}(q \,\|\, p) = \mathbb E_q[\log q(z) - \log p(z)] \quad\text{and}\quad
#   \mathrm{KL}(p \,\|\, q) = \mathbb E_p[\log p(z) - \log q(z)].$$
#
# * **Variational inference minimises the reverse KL**, $\mathrm{KL}(q \| p)$. The
#   expectation is under $q$, which we choose and can sample, and $\log p$ only needs
#   to be known up to its normaliser, which adds a constant:
#   $\log p(z \mid x) = \log p(x, z) - \log p(x)$.
#   The posterior can neither be sampled nor normalised, so this direction is a
#   *computational constraint*, not a preference (PRML 10.1, eq. 10.2-10.4).
# * **Maximum likelihood minimises the forward KL**, $\mathrm{KL}(p \| q)$. With data
#   $x_n \sim p$,
#   $\mathrm{KL}(p_{\text{data}} \| q) = \text{const} - \frac1N \sum_n \log q(x_n)$;
#   again the direction is forced, by having samples of $p$ and nothing else.
# * What each direction does to the fit is the *modelling* consequence. Reverse KL
#   pays $\log q/p$ wherever $q$ has mass, so $q$ must avoid regions where $p$ is small
#   ("zero-forcing", mode-seeking). Forward KL pays $\log p/q$ wherever $p$ has mass,
#   so $q$ must cover all of it ("zero-avoiding", mass-covering) (PRML 10.1.2, fig. 10.3).
#   If the direction matters for your problem, the alpha family (section 5) and
#   expectation propagation let you choose.

# %%
import math
import time
import warnings

import torch

from vitoolkit.course import Tutorial
from vitoolkit.course.evidence import difference_of_estimates, mean_and_stderr
from vitoolkit.distributions import sample
from vitoolkit.divergences import KHAT_THRESHOLD, grid_divergence
from vitoolkit.fitting import (
    LocalOptimumWarning,
    LogProbOnly,
    Ring,
    UnreliableEstimateWarning,
    bimodal_1d,
    correlated_gaussian,
    fit_alpha_sweep,
    fit_gaussian,
    mixture_2d,
    target_moments,
)
from vitoolkit.plotting import fitting as fplot
from vitoolkit.plotting import subplots
from vitoolkit.plotting.interactive import alpha_dial

tut = Tutorial("03_forward_vs_reverse_kl")
F64 = torch.float64

# %% [markdown]
# ## 1. One bimodal target, two fits
#
# $$p(x) = \tfrac12 \mathcal N(x; -3, 1) + \tfrac12 \mathcal N(x; 3, 1).$$
#
# The forward fit has a closed form: for a Gaussian family,
# $\arg\min_q \mathrm{KL}(p \| q)$ matches the mean and variance of $p$
# (PRML 10.7, eq. 10.187; eq. 10.17 for the factorised case), so
# $q = \mathcal N(0, 1 + 3^2) = \mathcal N(0, 10)$. The reverse fit is found by optimisation
# (deterministic quadrature on a grid that moves with q, minimised by L-BFGS). Reverse KL
# can have several optima, so `fit_gaussian` starts it from five points spread over the
# target (its default `n_init` for reverse KL) and keeps the start with the lowest KL;
# section 6 shows why.

# %%
separation = 6.0
bimodal = bimodal_1d(separation)
t0 = time.perf_counter()
reverse = fit_gaussian(bimodal, "reverse", seed=tut.seed)  # 5 starts, the best KL kept
forward = fit_gaussian(bimodal, "forward")  # moment matching: one optimum, one start
both_fits_seconds = time.perf_counter() - t0
forward_std_exact = math.sqrt(1 + (separation / 2) ** 2)  # sqrt(1 + 3^2): the mixture's sd

fig, ax = subplots(1, 1, size=4.5)
fplot.plot_fits_1d(bimodal, [reverse, forward],
                   [f"reverse KL(q||p): std {float(reverse.scale):.2f}",
                    f"forward KL(p||q): std {float(forward.scale):.2f}"], (-9, 9), ax=ax)
ax.set_title("Reverse KL locks onto one mode; forward KL spans both")
tut.savefig(fig, "bimodal_fits")

# %% tags=["hide-input"]
tut.record("bimodal_reverse_mean", float(reverse.loc), ".4f")
tut.record("bimodal_reverse_std", float(reverse.scale), ".4f")
tut.record("bimodal_reverse_kl", reverse.value, ".4f")
tut.record("bimodal_forward_mean", float(forward.loc), ".4f")
tut.record("bimodal_forward_std", float(forward.scale), ".4f")
tut.record("bimodal_forward_std_closed_form", forward_std_exact, ".4f")
tut.record("bimodal_forward_kl", forward.value, ".4f")
tut.record("bimodal_both_fits_seconds_incl_first_call", both_fits_seconds, ".3f")
tut.record("bimodal_reverse_fit_seconds", reverse.seconds, ".3f")  # 5 starts
tut.record("bimodal_reverse_start_objectives", reverse.start_objectives, ".6f")
tut.record("bimodal_reverse_objective_evaluations", sum(c.n_evals for c in reverse.candidates))
density_peak = float(bimodal.log_prob(torch.tensor(separation / 2, dtype=F64)).exp())
density_at_forward_mean = float(bimodal.log_prob(forward.loc).exp())

tut.claim("Reverse KL locks onto one mode: its mean is within 0.1 of a mode at +/-3 and its "
          "std within 5% of that mode's std of 1",
          abs(abs(float(reverse.loc)) - separation / 2) < 0.1 and abs(float(reverse.scale) - 1) < 0.05,
          mean=float(reverse.loc), std=float(reverse.scale))
tut.claim("The reverse fit pays about log 2 for ignoring the other half of the mass, a little "
          "less (by under 0.01 nats)", math.log(2) - 0.01 < reverse.value < math.log(2),
          kl=reverse.value, log_2=math.log(2))
tut.claim("Forward KL spans both: its std is the closed form sqrt(1 + 3^2) = sqrt(10) and "
          "both modes lie within one std of its mean",
          abs(float(forward.scale) - forward_std_exact) < 1e-9
          and separation / 2 < float(forward.scale) - abs(float(forward.loc)),
          std=float(forward.scale), closed_form=forward_std_exact, mean=float(forward.loc))
tut.claim("The forward fit puts its mean in the valley between the modes, where p's density "
          "is below 5% of its peak", density_at_forward_mean < 0.05 * density_peak,
          density_at_mean=density_at_forward_mean, peak_density=density_peak)

# %% [markdown]
# The reverse fit sits on one component with a std close to that component's std of 1,
# and pays about $\log 2$ nats for ignoring the other half of the mass (a little less:
# its tail reaches into the valley). The forward fit puts its mean in the valley
# between the modes, where p has almost no mass. (The printed times include, for the
# first fit in a process, a one-time import inside `torch.optim`; the sweeps below
# print the cost of the fits themselves.)
#
# ## 2. Four ways to compute the forward fit, one answer
#
# Forward KL needs expectations under p. `fit_gaussian` offers four routes: the
# closed-form moments, exact samples of p (maximum likelihood), quadrature on a
# grid, and self-normalised importance sampling (SNIS, Owen 2013, ch. 9) when p
# only has a log density, here hidden behind `LogProbOnly`, with draws from a wide
# proposal $r = \mathcal N(0, 5^2)$.

# %%
n_draws = tut.choose(5_000, 50_000)
wide_proposal = torch.distributions.Normal(torch.tensor(0.0, dtype=F64), 5.0)
routes = {
    "moments": fit_gaussian(bimodal, "forward", method="moments"),
    "quadrature": fit_gaussian(bimodal, "forward", method="quadrature"),
    "samples": fit_gaussian(bimodal, "forward", method="samples", num_samples=n_draws,
                            seed=tut.seed),
    "snis": fit_gaussian(LogProbOnly(bimodal), "forward", proposal=wide_proposal,
                         num_samples=n_draws, seed=tut.seed),
}
for name, fit in routes.items():
    err = f" +/- {fit.stderr:.4f}" if fit.stderr is not None else ""
    print(f"  {name:>10}: mean {float(fit.loc):+.4f}, std {float(fit.scale):.4f}, "
          f"KL(p||q) = {fit.value:.4f}{err}  ({fit.value_method})")
snis = routes["snis"]

# %% tags=["hide-input"]
for name, fit in routes.items():
    tut.record(f"forward_{name}_mean", float(fit.loc), ".4f")
    tut.record(f"forward_{name}_std", float(fit.scale), ".4f")
tut.record("forward_snis_ess", snis.ess, ".0f")
tut.record("forward_snis_khat", snis.khat, ".2f")
# Monte Carlo standard errors of the fitted mean: sd / sqrt(draws that count)
count = {"samples": n_draws, "snis": snis.ess}
mean_err = {k: abs(float(routes[k].loc)) / (forward_std_exact / math.sqrt(n)) for k, n in count.items()}
std_err = {k: abs(float(f.scale) / forward_std_exact - 1) for k, f in routes.items()}
value_err = {k: abs(routes[k].value - forward.value) / routes[k].stderr for k in count}
tut.claim("All four routes agree: the closed-form routes exactly, the Monte Carlo means within "
          "3 standard errors of 0, and every std within 2% of sqrt(10)",
          abs(float(routes["quadrature"].loc)) < 1e-6 and max(mean_err.values()) < 3
          and max(std_err.values()) < 0.02,
          mean_in_standard_errors=mean_err, relative_std_error=std_err)
tut.claim("The Monte Carlo KL values agree with the exact minimum within 3 of their standard "
          "errors", max(value_err.values()) < 3, errors_in_standard_errors=value_err,
          exact=forward.value)
tut.claim("SNIS's error is set by its effective sample size: here fewer than 60% of the draws "
          "count (ESS < 0.6 N)", snis.ess < 0.6 * n_draws, ess=snis.ess, draws=n_draws)

# %% [markdown]
# All four agree: the Monte Carlo routes within their standard errors
# (the SNIS error is set by its effective sample size, ESS, not by the number of draws).
#
# **When is an SNIS answer trustworthy?** Only when the proposal covers the target.
# The Pareto $\hat k$ diagnostic (Vehtari, Simpson, Gelman, Yao & Gabry, "Pareto
# smoothed importance sampling", JMLR 2024) fits a generalised Pareto distribution to
# the largest importance ratios $p/r$: $\hat k < 0.5$ means their variance is finite;
# above 0.7 the estimate and its standard error cannot be trusted.
# `fit_gaussian` records it as `GaussianFit.khat` and warns
# (`UnreliableEstimateWarning`) above 0.7. Compare the wide proposal with a narrow one,
# $r = \mathcal N(0, 1)$, which sits in the valley and rarely visits the modes.

# %%
narrow_proposal = torch.distributions.Normal(torch.tensor(0.0, dtype=F64), 1.0)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", UnreliableEstimateWarning)
    narrow = fit_gaussian(LogProbOnly(bimodal), "forward", proposal=narrow_proposal,
                          num_samples=n_draws, seed=tut.seed)
warned = any(issubclass(w.category, UnreliableEstimateWarning) for w in caught)
for w in caught:
    print(f"  warning: {w.message}")
# the exact KL(p || q) of each SNIS fit, by quadrature, against the optimum
excess = {name: float(grid_divergence(bimodal, f.distribution, "kl", bounds=[(-20.0, 20.0)]))
          - forward.value for name, f in (("wide", snis), ("narrow", narrow))}
print(f"  narrow SNIS: KL(p||q) estimate {narrow.value:.4f} +/- {narrow.stderr:.4f}, "
      f"exact {forward.value + excess['narrow']:.4f}")

# %% tags=["hide-input"]
tut.record("forward_narrow_snis_mean", float(narrow.loc), ".4f")
tut.record("forward_narrow_snis_std", float(narrow.scale), ".4f")
tut.record("forward_narrow_snis_ess", narrow.ess, ".0f")
tut.record("forward_narrow_snis_khat", narrow.khat, ".2f")
tut.record("forward_snis_excess_kl", excess, ".2e")
tut.claim("With the wide proposal the ratios have a finite variance: k-hat < 0.5",
          snis.khat < 0.5, khat=snis.khat)
tut.claim("With the narrow proposal k-hat exceeds 0.7 and fit_gaussian warns; fewer than 2% of "
          "the draws count (ESS < 0.02 N)",
          narrow.khat > KHAT_THRESHOLD and warned and narrow.ess < 0.02 * n_draws,
          khat=narrow.khat, warned=warned, ess=narrow.ess, draws=n_draws)
tut.claim("The flagged fit is indeed worse: its exact excess KL(p||q) over the optimum is more "
          "than 10 times the wide proposal's", excess["narrow"] > 10 * excess["wide"],
          excess_narrow=excess["narrow"], excess_wide=excess["wide"])

# %% [markdown]
# The narrow proposal's ESS counts only the few draws that reached the modes, and
# its fitted q is off by far more than the wide one's; $\hat k$ says so before we
# know the answer, which in real problems we never do.
#
# ## 3. When does the reverse fit snap to one mode?
#
# Sweep the separation $s$ of two unit-variance modes. For each $s$ we start the
# reverse fit twice, once on a mode and once wide in the middle, and keep both
# local optima (`GaussianFit.candidates`). The forward std is $\sqrt{1 + s^2 / 4}$ for
# every $s$.

# %%
separations = torch.linspace(0.0, 8.0, tut.choose(9, 33)).tolist()
mode_std, wide_std, best_std, forward_std, mode_kl, wide_kl = [], [], [], [], [], []
t0 = time.perf_counter()
for s in separations:
    target = bimodal_1d(s)
    starts = [{"loc": s / 2 + 0.3, "scale": 1.0},
              {"loc": 0.0, "scale": math.sqrt(1 + s**2 / 4)}]
    with warnings.catch_warnings():
        # we keep both optima on purpose, so the warning that they differ is expected
        warnings.simplefilter("ignore", LocalOptimumWarning)
        fit = fit_gaussian(target, "reverse", init=starts, value_samples=0)
    on_mode, wide = fit.candidates
    mode_std.append(float(on_mode.scale))
    wide_std.append(float(wide.scale))
    best_std.append(float(fit.scale))
    mode_kl.append(on_mode.objective)
    wide_kl.append(wide.objective)
    forward_std.append(float(fit_gaussian(target, "forward").scale))
sweep_seconds = time.perf_counter() - t0
n_sep = len(separations)
i_snap = next(i for i in range(n_sep) if mode_kl[i] < wide_kl[i] - 1e-9)
snap = separations[i_snap]
# where the two starts first end in different optima (a one-mode optimum exists)
i_appear = next(i for i in range(n_sep) if abs(mode_std[i] - wide_std[i]) > 1e-3)
appear = separations[i_appear]

fig, axes = subplots(1, 2, size=4.2)
fplot.plot_separation_sweep(separations, {"reverse (global optimum)": best_std,
                                          "forward (moment matching)": forward_std,
                                          "reverse, started on a mode": mode_std},
                            ax=axes[0])
axes[0].axvline(snap, color="0.5", linestyle=":")
axes[0].set_title(f"Reverse fit snaps to one mode at s = {snap:.2f}")
fplot.plot_separation_sweep(separations, {"reverse KL, wide optimum": wide_kl,
                                          "reverse KL, one-mode optimum": mode_kl},
                            ax=axes[1], ylabel="KL(q || p) at the optimum (nats)")
axes[1].axhline(math.log(2), color="0.5", linestyle=":")
axes[1].set_title("The one-mode optimum wins once s is large")
tut.savefig(fig, "separation_sweep")

# %% tags=["hide-input"]
forward_closed = [math.sqrt(1 + s**2 / 4) for s in separations]
tut.record("snap_separation", snap, ".2f")
tut.record("one_mode_optimum_first_seen_at", appear, ".2f")
tut.record("separation_sweep_seconds", sweep_seconds, ".3f")
tut.record("separation_sweep_seconds_per_fit", sweep_seconds / (2 * n_sep), ".4f")

tut.claim("The forward std is sqrt(1 + s^2/4) at every separation",
          max(abs(a - b) for a, b in zip(forward_std, forward_closed, strict=True)) < 1e-9,
          fitted=forward_std, closed_form=forward_closed)
tut.claim(f"Below s = {appear:.2f} both starts end at the same single wide Gaussian, never wider "
          "than the forward fit and at least 85% of its std",
          all(abs(mode_std[i] - wide_std[i]) < 1e-3
              and 0.85 * forward_std[i] <= best_std[i] <= forward_std[i] + 1e-9
              for i in range(i_appear)),
          best_std=best_std[:i_appear], forward_std=forward_std[:i_appear])
tut.claim(f"A one-mode optimum is first seen (on this grid of s) at s = {appear:.2f}, no later "
          f"than it wins (s = {snap:.2f})", appear <= snap, appears=appear, wins=snap)
tut.claim(f"The reverse fit snaps to one mode at s = {snap:.2f}: its std drops by more than 0.5 "
          "there, to within 5% of a mode's std of 1 from then on",
          best_std[i_snap - 1] - best_std[i_snap] > 0.5
          and all(abs(v - 1) < 0.05 for v in best_std[i_snap:]),
          std_before=best_std[i_snap - 1], std_after=best_std[i_snap:])
tut.claim("The one-mode optimum wins at every separation from the snap on",
          all(m < w for m, w in zip(mode_kl[i_snap:], wide_kl[i_snap:], strict=True)),
          one_mode_kl=mode_kl[i_snap:], wide_kl=wide_kl[i_snap:])
tut.claim("Its KL approaches log 2 from below: it rises with s, stays below log 2 and ends "
          "within 0.005 of it",
          all(b >= a - 1e-9 for a, b in zip(mode_kl[i_snap:], mode_kl[i_snap + 1:], strict=False))
          and max(mode_kl[i_snap:]) < math.log(2) and math.log(2) - mode_kl[-1] < 0.005,
          one_mode_kl=mode_kl[i_snap:], log_2=math.log(2))

# %% [markdown]
# Below the printed `one_mode_optimum_first_seen_at` the only optimum is a single wide
# Gaussian, slightly narrower than the forward fit. From there a second, one-mode
# optimum exists, and at the printed `snap_separation` it becomes the global one, with
# KL approaching $\log 2$ (dotted) from below. The forward std grows like
# $\sqrt{1 + s^2/4}$ throughout: close to 1 for small $s$, then almost linearly, like $s/2$.
#
# ## 4. Mean-field variance underestimation (PRML 10.1.2, exact numbers)
#
# For $p = \mathcal N(\mu, \Sigma)$ with precision $\Lambda = \Sigma^{-1}$ and a
# factorised $q$:
#
# * $\arg\min \mathrm{KL}(q \| p)$ has $q_i = \mathcal N(\mu_i, 1 / \Lambda_{ii})$
#   (PRML eq. 10.12-10.13), with minimum
#   $\frac12 \log\big(\prod_i \Lambda_{ii}\, |\Sigma|\big)$;
# * $\arg\min \mathrm{KL}(p \| q)$ has $q_i = \mathcal N(\mu_i, \Sigma_{ii})$, the
#   marginals (PRML eq. 10.17), with minimum
#   $\frac12 \log\big(\prod_i \Sigma_{ii} / |\Sigma|\big)$;
# * in 2-D both minima equal $-\frac12 \log(1 - \rho^2)$, and for unit marginal variances
#   the reverse variances are $1/\Lambda_{ii} = 1 - \rho^2$.

# %%
rho = 0.9
gauss = correlated_gaussian(rho)
sigma = gauss.covariance_matrix
lam = torch.linalg.inv(sigma)  # the precision matrix Lambda
mf_reverse = fit_gaussian(gauss, "reverse", family="diagonal")
mf_forward = fit_gaussian(gauss, "forward", family="diagonal", method="quadrature")
rev_var = torch.diagonal(mf_reverse.covariance)
fwd_var = torch.diagonal(mf_forward.covariance)
print("reverse variances", [round(v, 4) for v in rev_var.tolist()],
      " (1 / Lambda_ii =", [round(v, 4) for v in (1 / torch.diagonal(lam)).tolist()], ")")
print("forward variances", [round(v, 4) for v in fwd_var.tolist()],
      " (Sigma_ii =", [round(v, 4) for v in torch.diagonal(sigma).tolist()], ")")
kl_closed = -0.5 * math.log(1 - rho**2)

fig, ax = subplots(1, 1, figsize=(7.0, 4.5))  # room for the legend on the right
fplot.plot_fits_2d(gauss, [mf_reverse, mf_forward],
                   ["mean-field reverse KL", "mean-field forward KL"], [(-3, 3), (-3, 3)],
                   ax=ax, legend_outside=True, show_means=False)  # both means are p's mean
ax.set_title(f"rho = {rho}: mean-field variances\nreverse {float(rev_var[0]):.2f}, "
             f"forward {float(fwd_var[0]):.2f}")
tut.savefig(fig, "bishop_mean_field")

# %% tags=["hide-input"]
for i in (0, 1):
    tut.record(f"bishop_reverse_var_x{i + 1}", float(rev_var[i]), ".6f")
    tut.record(f"bishop_closed_form_reverse_var_x{i + 1}", float(1 / lam[i, i]), ".6f")
    tut.record(f"bishop_forward_var_x{i + 1}", float(fwd_var[i]), ".6f")
    tut.record(f"bishop_closed_form_forward_var_x{i + 1}", float(sigma[i, i]), ".6f")
tut.record("bishop_reverse_kl", mf_reverse.value, ".6f")
tut.record("bishop_forward_kl", mf_forward.value, ".6f")
tut.record("bishop_closed_form_kl", kl_closed, ".6f")
tut.claim("The mean-field reverse fit's variances are Bishop's 1/Lambda_ii = 1 - rho^2 "
          "(to 1e-6)", bool(torch.allclose(rev_var, 1 / torch.diagonal(lam), rtol=0, atol=1e-6))
          and abs(float(rev_var[0]) - (1 - rho**2)) < 1e-6,
          fitted=rev_var, closed_form=1 / torch.diagonal(lam))
tut.claim("The mean-field forward fit's variances are the marginals Sigma_ii (to 1e-6)",
          bool(torch.allclose(fwd_var, torch.diagonal(sigma), rtol=0, atol=1e-6)),
          fitted=fwd_var, closed_form=torch.diagonal(sigma))
tut.claim("Both fits pay the same -1/2 log(1 - rho^2) nats (to 1e-6)",
          abs(mf_reverse.value - kl_closed) < 1e-6 and abs(mf_forward.value - kl_closed) < 1e-6,
          reverse=mf_reverse.value, forward=mf_forward.value, closed_form=kl_closed)
# the share of mass in the off-diagonal quadrants x1 * x2 < 0, under q and under p, from
# independent draws (exact: 1/2 - arcsin(rho)/pi under p, 1/2 under a factorised q)
draws = {name: sample(d, (20_000,), generator=tut.generator(2 + i))
         for i, (name, d) in enumerate((("p", gauss), ("forward q", mf_forward.distribution)))}
off_diag = {name: mean_and_stderr((x[:, 0] * x[:, 1] < 0).double()) for name, x in draws.items()}
share_exact = {"p": 0.5 - math.asin(rho) / math.pi, "forward q": 0.5}
tut.record("bishop_off_diagonal_mass", {k: v[0] for k, v in off_diag.items()}, ".3f")
# "more than twice p's share": q's share minus 2 x p's share, beyond 4 standard errors
excess_share = difference_of_estimates(off_diag["forward q"][0], off_diag["forward q"][1],
                                       2 * off_diag["p"][0], 2 * off_diag["p"][1])
tut.claim("The forward fit puts mass off the diagonal where p has little: more than twice p's "
          "share of draws in the quadrants x1 x2 < 0 (by more than 4 standard errors)",
          excess_share.exceeds(4), shares={k: v[0] for k, v in off_diag.items()},
          stderrs={k: v[1] for k, v in off_diag.items()}, exact_shares=share_exact,
          **excess_share.evidence(4))

# %% [markdown]
# The reverse fit's variance is $1 - \rho^2$ of the true marginal variance (printed
# above): mean-field VI is over-confident exactly when the variables are correlated.
# The forward fit has the right marginals but puts mass off the diagonal where $p$
# has little (the printed `bishop_off_diagonal_mass`). Both pay the same
# $-\frac12 \log(1 - \rho^2)$ nats (`bishop_closed_form_kl`).
#
# ## 5. The alpha family: a dial from mode-seeking to mass-covering
#
# Minka's alpha-divergence (MSR-TR-2005-173, eq. 2):
#
# $$D_\alpha(p \,\|\, q) = \frac{1}{\alpha (1 - \alpha)}
#   \int \big[\alpha p + (1 - \alpha) q - p^\alpha q^{1-\alpha}\big]\, dx .$$
#
# $\alpha \to 0$ is $\mathrm{KL}(q \| p)$, $\alpha \to 1$ is $\mathrm{KL}(p \| q)$;
# $\alpha \le 0$ is zero-forcing, $\alpha \ge 1$ zero-avoiding. We fit three 2-D
# targets for each $\alpha$, each fit starting from the previous one
# (`fit_alpha_sweep`). On the two-mode target we deliberately pass the first start,
# on the lighter (right) mode, so that the sweep follows that local optimum and shows
# when it stops being one.

# %%
alphas = tut.choose([-1.0, 0.0, 0.5, 1.0, 2.0], [-1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0])
two_modes = mixture_2d(2, radius=2.5, scale=0.7, weights=[0.4, 0.6])
sweep_targets = [  # (row label, target, family, plotting box, first start)
    ("correlated,\nmean-field", correlated_gaussian(0.9), "diagonal", [(-3, 3)] * 2, None),
    ("two modes", two_modes, "full", [(-5, 5), (-3, 3)],
     {"loc": two_modes.component_distribution.loc[0], "scale": 0.5}),
    ("ring", Ring(2.5, 0.4), "full", [(-4, 4)] * 2, None),
]
fig, axes = subplots(len(sweep_targets), len(alphas), size=1.8)
t0 = time.perf_counter()
n_evals, sweeps = 0, []
for row, (name, target, family, box, init) in enumerate(sweep_targets):
    with warnings.catch_warnings():
        # without init the first fit takes the best of five starts; on the ring some of
        # them stop at worse optima, which fit_gaussian would report: the best is kept
        warnings.simplefilter("ignore", LocalOptimumWarning)
        fits = fit_alpha_sweep(target, alphas, family=family, value_samples=0, seed=tut.seed,
                               init=init)
    n_evals += sum(f.n_evals for f in fits)
    fplot.plot_alpha_row(target, fits, box, axes[row], ylabel=name)
    spread = [float(torch.linalg.det(f.covariance).sqrt()) for f in fits]  # sqrt det Cov q
    sweeps.append((fits, spread))
alpha_sweep_seconds = time.perf_counter() - t0
fig.suptitle("Raising alpha turns q from hugging one mode into covering all the mass "
             "(2-sd ellipses)", fontweight="bold")
tut.savefig(fig, "alpha_sweep")

# %% tags=["hide-input"]
for row, (_, spread) in enumerate(sweeps):
    tut.record(f"alpha_sweep_spread_{row}", spread)
tut.record("alpha_sweep_fits", len(alphas) * len(sweep_targets))
tut.record("alpha_sweep_seconds", alpha_sweep_seconds, ".3f")
tut.record("alpha_sweep_objective_evaluations", n_evals)
a = torch.tensor(alphas)
(corr_fits, corr_spread), (two_fits, two_spread), (ring_fits, ring_spread) = sweeps
i0, i1 = alphas.index(0.0), alphas.index(1.0)
tut.claim("Raising alpha spreads q in every row: sqrt(det Cov q) never shrinks as alpha rises, "
          "and is more than twice as large at the largest alpha as at the smallest",
          all(all(b >= a_ * (1 - 1e-6) for a_, b in zip(sp, sp[1:], strict=False)) and sp[-1] > 2 * sp[0]
              for _, sp in sweeps),
          spreads=[[round(v, 3) for v in sp] for _, sp in sweeps])
tut.claim("Correlated Gaussian: for alpha < 0 the mean-field q is narrower than the reverse-KL "
          "fit (alpha = 0), for alpha > 1 wider than the marginals (alpha = 1)",
          all(v < corr_spread[i0] for v in corr_spread[:i0])
          and all(v > corr_spread[i1] for v in corr_spread[i1 + 1:]),
          spreads=corr_spread, alphas=alphas)
mode_centres = two_modes.component_distribution.loc
two_locs = torch.stack([f.loc for f in two_fits])
on_start_mode = (two_locs - mode_centres[0]).norm(dim=-1) < 0.3
covers_both = torch.tensor([float(f.scale[0]) > 2.5 and abs(float(f.loc[0])) < 2.5 for f in two_fits])
ratios = [b / a_ for a_, b in zip(two_spread, two_spread[1:], strict=False)]
tut.claim("Two modes: q stays on the (lighter) mode it started on for every alpha <= 0, and "
          "covers both for every alpha >= 1",
          bool(on_start_mode[a <= 0].all() and covers_both[a >= 1].all()),
          mean_x1=two_locs[:, 0], on_start_mode=on_start_mode, covers_both=covers_both)
tut.claim("It jumps: one step in alpha multiplies its spread by more than 2, every other step "
          "by less than 1.1", max(ratios) > 2 and sorted(ratios)[-2] < 1.1,
          step_ratios=[round(r, 3) for r in ratios])
ring_radius = torch.stack([f.loc for f in ring_fits]).norm(dim=-1)
tut.claim("Ring: for alpha <= 0 q sits on an arc (its mean more than half the radius from the "
          "centre); for alpha >= 1 it is centred on the hole (mean within 0.1 of it)",
          bool((ring_radius[a <= 0] > 1.25).all() and (ring_radius[a >= 1] < 0.1).all()),
          distance_of_mean_from_centre=ring_radius)

# %% [markdown]
# Read each row left to right. On the correlated Gaussian the mean-field q grows
# smoothly from narrower than the reverse-KL fit ($\alpha < 0$) to wider than the
# marginals ($\alpha > 1$). On the two-mode target (the left mode is the heavier one,
# weight 0.6) $q$ stays on the lighter mode it started on until $\alpha$ is large
# enough, then jumps to cover both: the objective is continuous in $\alpha$ but its
# optimum need not be. On the ring, small $\alpha$ sits on an arc and large $\alpha$
# centres $q$ on the hole. `alpha_sweep_spread_*` prints $\sqrt{\det \mathrm{Cov}\, q}$
# per $\alpha$. (Ellipses are orange for $\alpha < 1/2$, the mode-seeking side of the
# symmetric $\alpha = 1/2$, and blue from $1/2$ on.)
#
# ### The alpha dial, interactive
#
# Back to the one-dimensional target of section 1. Move the slider: each step is the
# Gaussian fitted at that $\alpha$, every fit starting from the reverse-KL fit on a
# mode. (The script also saves the dial as a self-contained `alpha_dial.html`.)

# %%
dial_alphas = tut.choose([-1.0, 0.0, 0.25, 0.5, 1.0, 2.0],
                         [-1.0, -0.5, 0.0, 0.25, 0.4, 0.5, 0.6, 0.75, 1.0, 1.5, 2.0])
dial_fits = fit_alpha_sweep(bimodal, dial_alphas, value_samples=0, seed=tut.seed,
                            init={"loc": reverse.loc.reshape(1),
                                  "covariance": reverse.scale.reshape(1, 1) ** 2})
x_dial = torch.linspace(-9, 9, 361, dtype=F64)
dial_std = torch.tensor([float(f.scale) for f in dial_fits], dtype=F64)
dial = alpha_dial(x_dial, bimodal.log_prob(x_dial).exp(), dial_alphas,
                  torch.stack([f.distribution.log_prob(x_dial).exp() for f in dial_fits]),
                  locs=[float(f.loc) for f in dial_fits], scales=dial_std,
                  title="The alpha dial on the two-mode target")
tut.save_interactive(dial, "alpha_dial")

# %% tags=["hide-input"]
tut.record("alpha_dial_std", dial_std, ".3f")
da = torch.tensor(dial_alphas)
tut.claim("On the dial, every alpha <= 0 keeps q on one mode (std within 5% of 1) and every "
          "alpha >= 1 spans both (std at least the forward fit's sqrt(10))",
          bool((abs(dial_std[da <= 0] - 1) < 0.05).all()
               and (dial_std[da >= 1] >= forward_std_exact - 1e-6).all()),
          alphas=dial_alphas, std=dial_std)

# %% [markdown]
# ## 6. Reverse KL has local optima: where you start is where you end
#
# Five isolated modes and three kinds of start: one on each mode; one at the centre,
# between all of them; and starts drawn uniformly over the square $[-4, 4]^2$, each
# with std 1.

# %%
modes = mixture_2d(5, radius=3.5, scale=0.6)
centres = modes.component_distribution.loc
# one start on each mode: the five optima tie (equal weights), so fit_gaussian does not warn
on_each = fit_gaussian(modes, "reverse", init=[{"loc": c, "scale": 0.6} for c in centres])
each_obj = [c.objective for c in on_each.candidates]

n_random = tut.choose(6, 12)
start_locs = torch.cat([torch.zeros(1, 2, dtype=F64),  # the centre, then random starts
                        8 * torch.rand(n_random, 2, generator=tut.generator(1), dtype=F64) - 4])
n_starts = len(start_locs)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", LocalOptimumWarning)
    multi = fit_gaussian(modes, "reverse", init=[{"loc": m, "scale": 1.0} for m in start_locs])
for w in caught:  # fit_gaussian says when its starts ended at different optima
    print(f"  {w.category.__name__}: {str(w.message)[:160]} ...")


def spread(fit):
    """sqrt(det Cov q): the area of q's ellipse, up to a constant."""
    return float(torch.linalg.det(fit.covariance).sqrt())


# a fit on a single mode has the lowest objective (about log 5); the others straddle modes
single_value = min(each_obj)
single_spread = max(spread(c) for c in on_each.candidates)
single = [c for c in multi.candidates if c.objective < single_value + 1e-3]
wider = [c for c in multi.candidates if c.objective >= single_value + 1e-3]
landed = {int(torch.cdist(c.loc.unsqueeze(0), centres).argmin()) for c in single}
centre_fit = multi.candidates[0]

fig, ax = subplots(1, 1, figsize=(7.5, 4.8))
box = [(-5.5, 5.5), (-5.5, 5.5)]
fplot.plot_fits_2d(modes, list(multi.candidates),
                   ["reverse-KL fits (2 sd)"] + [""] * (n_starts - 1),
                   box, ax=ax, show_means=False, legend_outside=True)
for c in multi.candidates:
    start, end = c.init_loc.tolist(), c.loc.tolist()
    ax.annotate("", xy=end, xytext=start,
                arrowprops=dict(arrowstyle="->", color="0.2", linewidth=1.2))
ax.plot(*start_locs.T.tolist(), "k.", label="starts (arrows: start to fit)")
ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
ax.set_title(f"{n_starts} starts of reverse KL: {len(landed)} different modes,\n"
             f"{len(wider)} wider local optima")
tut.savefig(fig, "reverse_restarts")

# %% tags=["hide-input"]
each_moved = [float((c.loc - m).norm()) for c, m in zip(on_each.candidates, centres, strict=True)]
tut.record("each_mode_objectives", each_obj)
tut.claim("Every mode is a local optimum of KL(q || p): a start on each of the 5 modes stays "
          "there (moves less than 0.05), and all 5 values are within 0.01 of log 5",
          max(each_moved) < 0.05 and max(abs(v - math.log(5)) for v in each_obj) < 0.01,
          moved=each_moved, objectives=each_obj, log_5=math.log(5))
tut.record("restarts_modes_found", len(landed))
tut.record("restarts_straddling", len(wider))
tut.record("restarts_objectives", [round(c.objective, 4) for c in multi.candidates])
tut.claim(f"The {n_random} random starts reach {len(landed)} different modes (at least two)",
          len(landed) >= 2, modes_found=len(landed))
diff = centres - centre_fit.loc
centre_mahalanobis = (diff @ torch.linalg.inv(centre_fit.covariance) * diff).sum(-1).sqrt()
tut.claim("The start at the centre stops at a wide Gaussian over all five modes (all inside its "
          "2-sd ellipse): more than twice as wide (sqrt det Cov) as a one-mode fit and worse by "
          "more than 0.1 nats",
          bool((centre_mahalanobis < 2).all()) and spread(centre_fit) > 2 * single_spread
          and centre_fit.objective > single_value + 0.1,
          centre_value=centre_fit.objective, single_mode_value=single_value,
          centre_spread=spread(centre_fit), single_mode_spread=single_spread,
          mahalanobis_of_modes=centre_mahalanobis)
tut.claim(f"Every fit that stops off a single mode ({len(wider)} of {n_starts}) is a wider local "
          "optimum: wider than a one-mode fit and worse by more than 0.1 nats",
          all(c.objective > single_value + 0.1 and spread(c) > single_spread for c in wider),
          objectives=[round(c.objective, 4) for c in wider], spreads=[spread(c) for c in wider])
warned_multi = [w for w in caught if issubclass(w.category, LocalOptimumWarning)]
tut.claim("fit_gaussian warns (LocalOptimumWarning) that these starts ended at different optima, "
          "and returns the best of them",
          len(warned_multi) == 1 and bool(wider)
          and multi.objective == min(c.objective for c in multi.candidates),
          warnings=len(warned_multi), kept_objective=multi.objective,
          worst_objective=max(c.objective for c in multi.candidates))

# %% [markdown]
# Every mode is a local optimum of $\mathrm{KL}(q \| p)$ with almost the same value
# ($\log 5$ nats for equal, well-separated modes), and a start between modes
# can also stop at a wider Gaussian straddling several of them, with a worse value
# (`restarts_objectives`). Which optimum VI returns depends on its initialisation:
# restart it, and compare the ELBOs. `fit_gaussian` does this itself when given several
# starts: it returns the lowest KL and warns (`LocalOptimumWarning`, printed above) when
# the starts ended at clearly different optima, listing each start's final KL.
#
# ### Which optimum does a default fit return?
#
# On an uneven mixture, $p = 0.3\,\mathcal N(-2, 0.5^2) + 0.7\,\mathcal N(2, 1)$, each mode
# is a local optimum of $\mathrm{KL}(q \| p)$, and the converged KLs say which is global
# (roughly $-\log$ of the mode's weight, so the heavier mode wins). One start drawn from
# $p$ ends in the lighter mode whenever the draw falls there. So by default
# (`n_init=None`) `fit_gaussian` starts reverse KL from five points spread over the
# target, the k-means centres of draws from $p$ (as scikit-learn's `GaussianMixture` starts
# its `n_init` runs from k-means), keeps the lowest KL, and warns when the starts
# disagree. `n_init=1` is the single start.

# %%
uneven = torch.distributions.MixtureSameFamily(
    torch.distributions.Categorical(torch.tensor([0.3, 0.7], dtype=F64)),
    torch.distributions.Normal(torch.tensor([-2.0, 2.0], dtype=F64),
                               torch.tensor([0.5, 1.0], dtype=F64)))
# the two optima, each from a start on its mode
with warnings.catch_warnings():
    warnings.simplefilter("ignore", LocalOptimumWarning)  # we ask for both on purpose
    light, heavy = fit_gaussian(uneven, "reverse", init=[{"loc": -2.0, "scale": 0.3},
                                                         {"loc": 2.0, "scale": 0.3}]).candidates
print(f"lighter mode: mean {float(light.loc):+.3f}, KL {light.value:.4f} nats; "
      f"heavier mode: mean {float(heavy.loc):+.3f}, KL {heavy.value:.4f} nats")

seeds = [tut.derived_seed(k) for k in range(tut.choose(6, 20))]
one_start = [fit_gaussian(uneven, "reverse", n_init=1, seed=sd) for sd in seeds]
with warnings.catch_warnings(record=True) as caught_uneven:
    warnings.simplefilter("always", LocalOptimumWarning)
    default = [fit_gaussian(uneven, "reverse", seed=sd) for sd in seeds]  # n_init=None: 5 starts
on_light = {name: sum(float(f.loc) < 0 for f in fits)
            for name, fits in (("one start", one_start), ("default", default))}
print(f"fits on the lighter mode over {len(seeds)} seeds: {on_light}; "
      f"{len(caught_uneven)} LocalOptimumWarnings from the default fits")

# %% tags=["hide-input"]
tut.record("uneven_optima_kl", {"lighter": light.value, "heavier": heavy.value}, ".4f")
tut.record("uneven_fits_on_lighter_mode", on_light)
tut.claim("Both modes of the uneven mixture are reverse-KL optima (each start converges on its "
          "mode), and the heavier mode's KL is lower by more than 0.5 nats: it is the global one",
          light.converged and heavy.converged and abs(float(light.loc) + 2) < 0.2
          and abs(float(heavy.loc) - 2) < 0.2 and light.value - heavy.value > 0.5,
          lighter_kl=light.value, heavier_kl=heavy.value, lighter_mean=float(light.loc),
          heavier_mean=float(heavy.loc))
disagreed = [any(o > f.objective + 1e-3 for o in f.start_objectives) for f in default]
tut.claim(f"The default fit (five spread starts) lands on the heavier mode's optimum at every one "
          f"of the {len(seeds)} seeds (mean within 0.01 of it)",
          all(abs(float(f.loc) - float(heavy.loc)) < 0.01 for f in default),
          means=[float(f.loc) for f in default], heavier_mean=float(heavy.loc))
tut.claim("It warns exactly at the seeds where some start ended at the lighter mode",
          len(caught_uneven) == sum(disagreed)
          and all(any(float(c.loc) < 0 for c in f.candidates) == d
                  for f, d in zip(default, disagreed, strict=True)),
          warnings=len(caught_uneven), seeds_with_disagreeing_starts=sum(disagreed))

# %% [markdown]
# Forward KL has a single optimum for a Gaussian family (the moments), which is why
# section 2 never needed a starting point (and why `fit_gaussian` starts it once by
# default). Check of the moments for the five-mode target: each coordinate's variance is
# $\text{scale}^2 + \text{radius}^2 / 2$, and the forward fit's 2-sd ellipse holds all
# five centres.

# %%
mean, cov = target_moments(modes)
five_std = float(cov[0, 0].sqrt())
five_std_closed = math.sqrt(0.6**2 + 3.5**2 / 2)
# distance of each mode centre from the mean, in the forward fit's standard deviations
mahalanobis = torch.sqrt(((centres - mean) @ torch.linalg.inv(cov) * (centres - mean)).sum(-1))
print(f"forward std {five_std:.4f} per coordinate; centres at {mahalanobis.max():.2f} sd")

# %% tags=["hide-input"]
tut.record("five_modes_forward_std", five_std, ".4f")
tut.claim("The forward fit is the moments: std sqrt(scale^2 + radius^2/2) per coordinate, and "
          "every mode centre lies inside its 2-sd ellipse",
          abs(five_std - five_std_closed) < 1e-9 and bool((mahalanobis < 2).all()),
          std=five_std, closed_form=five_std_closed, mahalanobis=mahalanobis)

# %%
tut.finish()

# %% [markdown]
# ## Exercises
# - **mean_field_variances**: write ``mean_field_variances(cov, direction)``, the variances
#   of the factorised Gaussian closest to $\mathcal N(\mu, \Sigma)$ in reverse
#   (``"reverse"``: $1/\Lambda_{ii}$) or forward (``"forward"``: $\Sigma_{ii}$) KL, as in
#   section 4. Start with `vitoolkit exercise start mean_field_variances` (it writes
#   ``mean_field_variances.py``), then grade it with
#   `vitoolkit exercise check mean_field_variances mean_field_variances.py`
#   (generally `vitoolkit exercise check NAME FILE`).
