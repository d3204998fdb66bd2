# %% [markdown]
# # VI beyond generative models: Bayesian logistic regression
#
# Question: Can the same idea be used for classification?
#
# Yes: a classifier's weights have a posterior, and it is fitted by the same reverse-KL
# Gaussian fit as in tutorial 03 (``vitoolkit.fitting.fit_gaussian``). We compare
# mean-field and full-rank Gaussian VI with the Laplace approximation and with a
# reference posterior found independently (exact quadrature on a 2-D toy, the No-U-Turn
# Sampler on a real data set), then ask what the approximations change in held-out
# accuracy, log loss, calibration and cost. Sources: Bishop, *Pattern Recognition and
# Machine Learning* (PRML), sections 4.4-4.5 (Laplace, Bayesian logistic regression, the
# probit approximation) and 10.1.2 (mean-field underestimates variance); Kucukelbir,
# Tran, Ranganath, Gelman & Blei, "Automatic differentiation variational inference",
# JMLR 18 (2017), section 2.4 (mean-field and full-rank Gaussians); Hoffman & Gelman,
# "The No-U-Turn Sampler", JMLR 15 (2014); Guo, Pleiss, Sun & Weinberger, "On
# calibration of modern neural networks", ICML 2017 (reliability diagrams, ECE).

# %% [markdown]
# ## The model and its posterior
#
# With inputs $x_n$, labels $y_n \in \{0, 1\}$ and the design vector
# $\phi_n = (1, x_n)$ (a leading 1 for the intercept),
#
# $$w \sim \mathcal N(0, s^2 I), \qquad y_n \mid w \sim \mathrm{Bernoulli}(\sigma(\phi_n^\top w)),$$
#
# $$\log p(y, w) = \sum_n \big[y_n a_n - \log(1 + e^{a_n})\big]
#   - \frac{\lVert w\rVert^2}{2 s^2} + \text{const}, \qquad a_n = \phi_n^\top w
#   \quad\text{(PRML eq. 4.90)}.$$
#
# The posterior $p(w \mid y) = p(y, w) / p(y)$ has no closed form: the sigmoid is not
# conjugate to the Gaussian prior. But reverse-KL VI only ever needs $\log p(y, w)$:
#
# $$\mathrm{KL}(q \,\|\, p(w \mid y)) = \mathbb E_q[\log q(w) - \log p(y, w)] + \log p(y)
#   = -\mathrm{ELBO}(q) + \log p(y),$$
#
# so `fit_gaussian(posterior, "reverse", ...)` fits it exactly as it fitted the targets of
# tutorial 03, through `log_prob` alone. The competitors:
#
# * **Laplace** (PRML 4.4): a Gaussian at the mode $w_{\text{MAP}}$ with the curvature there,
#   $\Sigma^{-1} = \Phi^\top R\, \Phi + I / s^2$, $R = \mathrm{diag}(\pi_n (1 - \pi_n))$ (PRML eq. 4.97).
# * **Mean-field VI**: $q(w) = \prod_i \mathcal N(w_i; m_i, \sigma_i^2)$, the best diagonal Gaussian
#   under $\mathrm{KL}(q\|p)$.
# * **Full-rank VI**: $q(w) = \mathcal N(m, L L^\top)$ (Kucukelbir et al. 2017, section 2.4).
# * **Reference**: the posterior itself, by exact quadrature (2 weights) or by NUTS (31 weights).
# * **Point estimate**: scikit-learn's `LogisticRegression` with the matching L2 penalty. It
#   minimises $\tfrac12\lVert w\rVert^2 + C \sum_n \text{loss}_n$, which is $-\log p(y, w)$ times
#   $C = s^2$: its coefficients are the MAP.

# %%
import time

import numpy as np
import torch
from sklearn.calibration import calibration_curve
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from vitoolkit.calibration import expected_calibration_error, reliability
from vitoolkit.course import Tutorial
from vitoolkit.course.evidence import paired_difference
from vitoolkit.fitting import (
    LogisticPosterior,
    fit_gaussian,
    grid_reference,
    laplace_approximation,
    make_toy_data,
    nuts_reference,
    predictive,
    sklearn_map,
)
from vitoolkit.plotting import classification as cplot
from vitoolkit.plotting import subplots

tut = Tutorial("09_vi_classification")
F64 = torch.float64

# %% [markdown]
# ## 1. A posterior you can see: two weights
#
# A toy without intercept: 40 points with strongly correlated inputs
# ($x \sim \mathcal N(0, [[1, 0.97], [0.97, 1]])$, labels from $w = (1.5, 1.5)$), prior
# $s = 3$. The data pin down $w_1 + w_2$ (the direction the inputs vary along) but hardly
# $w_1 - w_2$, so the posterior is a long, tilted, slightly skewed ridge. With two weights
# its mean and covariance can be computed exactly, by the trapezoidal rule on a grid
# (`grid_reference`; for a smooth density that decays fast the rule converges
# exponentially in the number of points, Trefethen & Weideman, SIAM Review 56, 2014, so
# 81 x 81 points suffice); the data set is drawn afresh for each seed.

# %%
toy_prior_std = 3.0
X_toy, y_toy = make_toy_data(40, weights=(1.5, 1.5), correlation=0.97, generator=tut.generator(0))
toy = LogisticPosterior(X_toy, y_toy, prior_std=toy_prior_std, fit_intercept=False)
toy_laplace = laplace_approximation(toy, hessian=toy.hessian)
toy_bounds = toy.box(toy_laplace.loc, toy_laplace.scale, width=9.0)
exact = grid_reference(toy, toy_bounds, num_points=81)  # the exact posterior, by quadrature
# the fits start at the Laplace Gaussian; the deterministic quadrature route then moves them
# to the reverse-KL optimum, wherever they start (the optimum does not depend on it)
toy_init = {"loc": toy_laplace.loc, "scale": toy_laplace.scale}
toy_fits = {family: fit_gaussian(toy, "reverse", family=family, bounds=toy_bounds, init=toy_init)
            for family in ("diagonal", "full")}
toy_mf, toy_fr = toy_fits["diagonal"], toy_fits["full"]

# %% tags=["hide-input"]
finer = grid_reference(toy, toy_bounds, num_points=161)
grid_change = float(torch.cat([(finer.mean - exact.mean).abs(), (finer.std - exact.std).abs()]).max())
tut.claim("The grid's moments are exact for our purposes: doubling its resolution changes the "
          "posterior means and stds by less than 1e-8", grid_change < 1e-8, largest_change=grid_change)
exact_corr = float(exact.covariance[0, 1] / exact.std.prod())
tut.record("toy_exact_mean", exact.mean, ".3f")
tut.record("toy_exact_std", exact.std, ".3f")
tut.record("toy_exact_correlation", exact_corr, ".3f")
tut.record("toy_exact_log_evidence", exact.log_normaliser, ".4f")
for name, (loc, sd) in {"laplace": (toy_laplace.loc, toy_laplace.scale),
                        "mean_field": (toy_mf.loc, toy_mf.scale),
                        "full_rank": (toy_fr.loc, toy_fr.scale)}.items():
    tut.record(f"toy_{name}_mean", loc, ".3f")
    tut.record(f"toy_{name}_std", sd, ".3f")
mf_ratio = toy_mf.scale / exact.std
fr_ratio = toy_fr.scale / exact.std
# distance of each mean from the exact mean, in the exact posterior's std units
toy_offset = {name: float(((loc - exact.mean) / exact.std).norm())
              for name, loc in (("laplace", toy_laplace.loc), ("mean_field", toy_mf.loc),
                                ("full_rank", toy_fr.loc))}
tut.record("toy_mean_offset_in_stds", toy_offset, ".3f")

tut.claim("The two weights are strongly anti-correlated a posteriori (correlation below -0.5)",
          exact_corr < -0.5, correlation=exact_corr)
cov = exact.covariance
sd_sum = float((cov[0, 0] + cov[1, 1] + 2 * cov[0, 1]).sqrt())
sd_diff = float((cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]).sqrt())
tut.claim("The data pin down w1 + w2 but hardly w1 - w2: the posterior std of the difference is "
          "more than twice that of the sum", sd_diff > 2 * sd_sum, std_sum=sd_sum, std_difference=sd_diff)
tut.claim("Mean-field VI underestimates the posterior's spread: its std is below 80% of the "
          "exact std for both weights (Bishop 10.1.2)", bool((mf_ratio < 0.8).all()),
          std_ratio_mean_field=mf_ratio)
tut.claim("Full-rank VI recovers the exact stds to within 5%", bool(((fr_ratio - 1).abs() < 0.05).all()),
          std_ratio_full_rank=fr_ratio)
lap_ratio = toy_laplace.scale / exact.std
tut.claim("Laplace has the right shape: its stds are within 10% of the exact ones",
          bool(((lap_ratio - 1).abs() < 0.1).all()), std_ratio_laplace=lap_ratio)
tut.claim("Laplace's centre (the mode) lies further from the exact posterior mean than "
          "full-rank VI's mean does, by more than a factor 3: the posterior is skewed, so its mode "
          "is not its mean", toy_offset["laplace"] > 3 * toy_offset["full_rank"],
          offsets_in_stds=toy_offset, factor=3)

# %% [markdown]
# The figure draws the exact posterior (grey) with the two-standard-deviation ellipse of
# each Gaussian. Mean-field VI cannot tilt its ellipse, and under $\mathrm{KL}(q\|p)$ it
# must stay inside the ridge, so it shrinks (tutorial 03, section 3). Full-rank VI tilts
# with the ridge. Laplace has the right shape but sits at the mode, behind the mean on
# the skewed side.
#
# The fitted ELBOs order as the families nest, and both lie below the exact
# $\log p(y)$ (tutorial 01): the gap is $\mathrm{KL}(q\,\|\,p(w \mid y))$. Both hold by
# construction (a diagonal Gaussian is a full-rank one, and KL is never negative), so the
# check below is a sanity check of the fits, not evidence for anything new.

# %%
elbo_mf, elbo_fr = -toy_mf.value, -toy_fr.value

# %% tags=["hide-input"]
tut.record("toy_elbo_mean_field", elbo_mf, ".4f")
tut.record("toy_elbo_full_rank", elbo_fr, ".4f")
tut.record("toy_laplace_log_evidence_estimate", toy_laplace.log_evidence, ".4f")
tut.claim("Sanity check, true by construction (the diagonal family lies inside the full one, and "
          "every ELBO is below log p(y)): ELBO(mean-field) < ELBO(full-rank) < log p(y)",
          elbo_mf < elbo_fr < exact.log_normaliser,
          elbo_mean_field=elbo_mf, elbo_full_rank=elbo_fr, log_evidence=exact.log_normaliser)

# %%
fig, ax = subplots(1, 1, size=5.2)
cplot.plot_posterior_2d(exact.axes, exact.density,
                        {"Laplace": (toy_laplace.loc, toy_laplace.covariance),
                         "mean-field VI": (toy_mf.loc, toy_mf.covariance),
                         "full-rank VI": (toy_fr.loc, toy_fr.covariance)},
                        reference_mean=exact.mean, ax=ax)
half = 4 * float(exact.std.max())  # equal scales on both axes: the tilt is the real tilt
ax.set_xlim(float(exact.mean[0]) - half, float(exact.mean[0]) + half)
ax.set_ylim(float(exact.mean[1]) - half, float(exact.mean[1]) + half)
ax.set_aspect("equal")
ax.set_title("Exact posterior of the two weights (grey)\nand the 2-sd ellipse of each Gaussian")
tut.savefig(fig, "toy_posterior")

# %% [markdown]
# ## 2. Predictions average over the posterior
#
# The predictive probability is the likelihood averaged over the posterior (PRML eq. 4.145),
#
# $$p(y_* = 1 \mid x_*, y) = \int \sigma(\phi_*^\top w)\, p(w \mid y)\, dw,$$
#
# computed here by quadrature for the exact posterior and by Monte Carlo for each Gaussian.
# The MAP plug-in $\sigma(\phi_*^\top w_{\text{MAP}})$ ignores the uncertainty. The standard
# deviation of $\sigma(\phi_*^\top w)$ under the posterior says how unsure the probability
# itself is.

# %%
lim = 3.5
grid_axis = torch.linspace(-lim, lim, tut.choose(61, 91), dtype=F64)
g1, g2 = torch.meshgrid(grid_axis, grid_axis, indexing="xy")
surface_inputs = torch.stack([g1, g2], -1).reshape(-1, 2)
shape = g1.shape
gen = tut.generator(2)
n_pred = tut.choose(2000, 6000)
toy_pred = {
    "exact": predictive(toy, surface_inputs, exact),
    "mean-field VI": predictive(toy, surface_inputs, toy_mf.distribution, num_samples=n_pred,
                                generator=gen),
    "full-rank VI": predictive(toy, surface_inputs, toy_fr.distribution, num_samples=n_pred,
                               generator=gen),
}
plug_in = torch.sigmoid(toy.logits(toy_laplace.loc, surface_inputs))  # ignores the uncertainty

# %% tags=["hide-input"]
# quadrature for the exact predictive, no Monte Carlo: the comparison has no sampling noise
extreme_plug_in = float((plug_in - 0.5).abs().mean())
extreme_bayes = float((toy_pred["exact"].prob - 0.5).abs().mean())
tut.record("toy_mean_abs_p_minus_half_plug_in", extreme_plug_in, ".4f")
tut.record("toy_mean_abs_p_minus_half_exact", extreme_bayes, ".4f")
tut.claim("Averaging over the posterior moderates the probabilities: over the plotted region "
          "the exact predictive is on average closer to 1/2 than the MAP plug-in (its mean "
          "|p - 1/2| below 0.9 of the plug-in's)",
          extreme_bayes < 0.9 * extreme_plug_in, plug_in=extreme_plug_in, exact=extreme_bayes,
          factor=0.9)

spread = {k: float(v.std.mean()) for k, v in toy_pred.items()}
tut.record("toy_mean_predictive_std", spread, ".4f")
tut.claim("Mean-field VI is overconfident about its probabilities: averaged over the region, "
          "the std of sigma(phi^T w) under it is below 80% of the exact one",
          spread["mean-field VI"] < 0.8 * spread["exact"], **spread)
tut.claim("Full-rank VI's predictive std matches the exact one to within 10% on average",
          abs(spread["full-rank VI"] / spread["exact"] - 1) < 0.1, **spread)

# where is the exact predictive least certain? at the largest std: is it on the boundary, off the data?
top = int(toy_pred["exact"].std.argmax())
p_at_top = float(toy_pred["exact"].prob[top])
dist_at_top = float((X_toy - surface_inputs[top]).norm(dim=-1).min())
tut.record("toy_most_uncertain_input", surface_inputs[top], ".2f")
tut.claim("The exact predictive is least certain on the decision boundary away from the data: "
          "where its std peaks, p is within 0.1 of 1/2 and the nearest training point is more than "
          "one unit away", abs(p_at_top - 0.5) < 0.1 and dist_at_top > 1.0,
          p_at_peak_std=p_at_top, distance_to_nearest_point=dist_at_top)

# %%
fig, axes = subplots(1, 3, size=3.6)
prob_levels = np.linspace(0, 1, 11)
cs = cplot.plot_surface(grid_axis, grid_axis, plug_in.reshape(shape), X=X_toy, y=y_toy, ax=axes[0],
                        levels=prob_levels, boundary=plug_in.reshape(shape),
                        title="MAP plug-in p(y=1|x)")
cplot.plot_surface(grid_axis, grid_axis, toy_pred["exact"].prob.reshape(shape), X=X_toy, y=y_toy,
                   ax=axes[1], levels=prob_levels, boundary=toy_pred["exact"].prob.reshape(shape),
                   title="exact Bayesian p(y=1|x)")
fig.colorbar(cs, ax=axes[:2], shrink=0.8, label="probability of class 1")
std_max = max(float(v.std.max()) for v in toy_pred.values())
std_levels = np.linspace(0, np.ceil(std_max * 20) / 20, 11)
cs_std = cplot.plot_surface(grid_axis, grid_axis, toy_pred["exact"].std.reshape(shape), X=X_toy,
                            y=y_toy, ax=axes[2], levels=std_levels, cmap="viridis",
                            title=r"exact: std of $\sigma(\phi^\top w)$")
fig.colorbar(cs_std, ax=axes[2], shrink=0.8, label="std of the probability")
fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize="small",
           title="training points (40) and boundary")
fig.suptitle("Predictive probability of class 1: MAP plug-in and exact posterior average;\n"
             "the exact predictive's std", fontsize="medium")
tut.savefig(fig, "toy_predictive")

fig, axes = subplots(1, 3, size=3.6)
for ax, (label, pred) in zip(axes, toy_pred.items(), strict=True):
    cs_std = cplot.plot_surface(grid_axis, grid_axis, pred.std.reshape(shape), X=X_toy, y=y_toy,
                                ax=ax, levels=std_levels, cmap="viridis",
                                title=f"{label}: mean std {spread[label]:.3f}")
fig.colorbar(cs_std, ax=axes, shrink=0.8, label=r"std of $\sigma(\phi^\top w)$")
fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize="small",
           title="training points (40)")
fig.suptitle(r"Std of $\sigma(\phi^\top w)$ under the exact posterior, mean-field VI and "
             "full-rank VI", fontsize="medium")
tut.savefig(fig, "toy_uncertainty")

# %% [markdown]
# Does the averaging pay on new data? The held-out log loss
# $-\frac1m\sum \log p(y_* \mid x_*)$ (`sklearn.metrics.log_loss`) on two fresh sets of
# 2,000 points with labels from the same true weights: inputs drawn like the training
# inputs (on the ridge), and inputs drawn from $\mathcal N(0, I)$, which spread off the ridge,
# where the model extrapolates.

# %%
def per_example_log_loss(y, p):
    """-log p(y | x) for each example (its mean over the examples is sklearn's log_loss)."""
    eps = torch.finfo(F64).eps  # a probability of exactly 0 or 1 is clipped, as sklearn does
    y, p = torch.as_tensor(y, dtype=F64), torch.as_tensor(p, dtype=F64).clamp(eps, 1 - eps)
    return -(y * torch.log(p) + (1 - y) * torch.log1p(-p))


test_sets = {
    "like the training data": make_toy_data(2000, weights=(1.5, 1.5), correlation=0.97,
                                            generator=tut.generator(1)),
    "off the ridge": make_toy_data(2000, weights=(1.5, 1.5), correlation=0.0,
                                   generator=tut.generator(4)),
}
toy_losses = {}  # per test point, for each method
for set_name, (X_new, y_new) in test_sets.items():
    probs = {
        "MAP plug-in": torch.sigmoid(toy.logits(toy_laplace.loc, X_new)),
        "exact": predictive(toy, X_new, exact).prob,
        "mean-field VI": predictive(toy, X_new, toy_mf.distribution, num_samples=n_pred,
                                    generator=gen).prob,
        "full-rank VI": predictive(toy, X_new, toy_fr.distribution, num_samples=n_pred,
                                   generator=gen).prob,
    }
    toy_losses[set_name] = {k: per_example_log_loss(y_new, p) for k, p in probs.items()}

# %% tags=["hide-input"]
for set_name, losses_here in toy_losses.items():
    tut.record(f"toy_log_loss_{set_name.replace(' ', '_')}",
               {k: float(v.mean()) for k, v in losses_here.items()}, ".4f")
on_ridge, off_ridge = toy_losses["like the training data"], toy_losses["off the ridge"]
# "within 0.01 nats", two-sided and with the noise of the test set: |difference| + 2 s.e. < 0.01
d_on = paired_difference(on_ridge["MAP plug-in"], on_ridge["exact"])
tut.claim("On inputs like the training data, averaging changes little: the plug-in's and the "
          "exact predictive's log losses differ by less than 0.01 nats (paired over the 2,000 "
          "test points, 2 standard errors included)",
          abs(d_on.mean) + 2 * d_on.stderr < 0.01, **d_on.evidence(2), tolerance_nats=0.01)
d_off = paired_difference(off_ridge["full-rank VI"], off_ridge["exact"])
tut.claim("Off the ridge, full-rank VI's log loss is within 0.01 nats of the exact predictive's "
          "(paired over the test points, 2 standard errors included)",
          abs(d_off.mean) + 2 * d_off.stderr < 0.01, **d_off.evidence(2), tolerance_nats=0.01)

# %% [markdown]
# One small data set is one draw of luck: the MAP's direction along the ridge may happen to
# be close to the true one. So we repeat the off-ridge comparison on fresh training sets of
# 40 points (Laplace for the mode, the exact predictive on a coarser grid): each training
# set gives one gain, the plug-in's log loss minus the exact predictive's, and the gains
# of independent training sets give the average gain its standard error.

# %%
n_repeats = tut.choose(30, 40)
X_off, y_off = make_toy_data(1000, weights=(1.5, 1.5), correlation=0.0, generator=tut.generator(5))
gains = []
for r in range(n_repeats):
    X_r, y_r = make_toy_data(40, weights=(1.5, 1.5), correlation=0.97, generator=tut.generator(100 + r))
    post_r = LogisticPosterior(X_r, y_r, prior_std=toy_prior_std, fit_intercept=False)
    lap_r = laplace_approximation(post_r, hessian=post_r.hessian)
    exact_r = grid_reference(post_r, post_r.box(lap_r.loc, lap_r.scale, width=8.0), num_points=61)
    plug_r = torch.sigmoid(post_r.logits(lap_r.loc, X_off))
    bayes_r = predictive(post_r, X_off, exact_r).prob
    gains.append(float(per_example_log_loss(y_off, plug_r).mean()
                       - per_example_log_loss(y_off, bayes_r).mean()))
gains = np.array(gains)

# %% tags=["hide-input"]
tut.record("toy_off_ridge_log_loss_gain_of_averaging", gains, ".4f")
# paired by training set: the plug-in and the exact predictive share each one
gain = paired_difference(gains, np.zeros_like(gains))
tut.claim(f"Averaged over {n_repeats} training sets, the exact predictive has the lower off-ridge "
          "log loss: the mean gain exceeds 2 standard errors (the training sets are the "
          "replicates)", gain.exceeds(2), **gain.evidence(2))
tut.claim("Averaging is a hedge: where it loses to the plug-in it loses less than it gains where it "
          "wins (the largest loss over these training sets is smaller than the largest gain)",
          float(-gains.min()) < float(gains.max()), largest_loss=-gains.min(), largest_gain=gains.max(),
          wins=int((gains > 0).sum()), of=n_repeats)

# %% [markdown]
# Averaging matters where the posterior is wide, which is where test inputs leave the
# training data. It is a hedge, not a guarantee: on some training sets (see the printed
# gains; a negative gain is a loss) the MAP's direction happens to be close to the true
# one and the plug-in does a little better; on others it is far off and the plug-in pays
# much more. Ten training sets were not enough to tell the average gain from noise
# (about 0.06 nats with a standard error of 0.03); with 30 to 40 it is clear.

# %% [markdown]
# ## 3. A real data set: 31 weights
#
# scikit-learn's bundled breast-cancer data (569 tumours, 30 features, nothing
# downloaded): a fixed stratified 70/30 split (`random_state=0`, the same for every seed),
# features standardised with the training set's means and stds, an intercept, and the
# prior $s = 1$, which is scikit-learn's default $C = s^2 = 1$. Many features are nearly
# collinear (radius, perimeter and area of the same tumour), so the posterior is strongly
# correlated: the setting where Bishop 10.1.2 predicts mean-field will shrink.
#
# The reference is NUTS (Pyro's implementation, `nuts_reference`): two chains, run in
# the coordinates whitened by the Laplace fit, $w = w_{\text{MAP}} + L z$. An affine change
# of variables leaves the posterior unchanged, so the chain is exact whatever $L$ is; the
# whitening only shortens its trajectories. Its R-hat and effective sample sizes are the
# check that it has mixed.

# %%
X_all, y_all = load_breast_cancer(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X_all, y_all, test_size=0.3, random_state=0,
                                                    stratify=y_all)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
post = LogisticPosterior(X_train, y_train, prior_std=1.0)

seconds = {}  # CPU seconds of each method (see section 5)


def cpu_seconds(fit, *args, **kwargs):
    """Run ``fit(*args, **kwargs)``; return its result and the CPU seconds this process spent."""
    start = time.process_time()
    result = fit(*args, **kwargs)
    return result, time.process_time() - start


clf, seconds["sklearn MAP"] = cpu_seconds(sklearn_map, post)
laplace, seconds["Laplace"] = cpu_seconds(laplace_approximation, post, hessian=post.hessian)

num_base = tut.choose(256, 1024)
cancer_bounds = post.box(laplace.loc, laplace.scale, width=10.0)
vi = {}
for family, name in (("diagonal", "mean-field VI"), ("full", "full-rank VI")):
    # start from the prior's centre with a narrow q, not from Laplace: the fits are independent
    vi[family], seconds[name] = cpu_seconds(
        fit_gaussian, post, "reverse", family=family, method="stochastic", num_samples=num_base,
        init={"loc": torch.zeros(post.dim), "scale": 0.1}, bounds=cancer_bounds,
        value_samples=tut.choose(2000, 10_000), seed=tut.seed)
mf, fr = vi["diagonal"], vi["full"]
ref, seconds["NUTS"] = cpu_seconds(
    nuts_reference, post, num_samples=tut.choose(150, 600), warmup_steps=tut.choose(75, 200),
    num_chains=2, precondition=(laplace.loc, laplace.covariance), seed=tut.seed)

# %% tags=["hide-input"]
tut.record("cancer_train_test_sizes", [len(y_train), len(y_test)])
tut.record("cancer_dimension", post.dim)
map_gap = float((laplace.loc - torch.as_tensor(clf.coef_[0])).abs().max())
tut.record("cancer_max_abs_difference_map_vs_sklearn", map_gap, ".2e")
tut.claim("The Laplace mode is scikit-learn's LogisticRegression(C=s^2) solution: every "
          "coefficient agrees to 1e-4", map_gap < 1e-4, max_abs_difference=map_gap)
tut.record("nuts_min_ess", ref.ess.min(), ".0f")
tut.record("nuts_max_rhat", ref.rhat.max(), ".4f")
tut.record("nuts_divergences", ref.num_divergences)
tut.claim("The NUTS chains have mixed: split R-hat below 1.05 and at least 100 effective draws "
          "for every weight, no divergent transition",
          float(ref.rhat.max()) < 1.05 and float(ref.ess.min()) >= 100 and ref.num_divergences == 0,
          max_rhat=ref.rhat.max(), min_ess=ref.ess.min(), divergences=ref.num_divergences)

# %% [markdown]
# Each approximation against NUTS, coordinate by coordinate: the ratio of its marginal
# std to NUTS's, and the distance of its mean from NUTS's in units of NUTS's std.

# %%
approx = {"Laplace": (laplace.loc, laplace.scale), "mean-field VI": (mf.loc, mf.scale),
          "full-rank VI": (fr.loc, fr.scale)}
ratio = {k: sd / ref.std for k, (loc, sd) in approx.items()}
offset = {k: (loc - ref.mean) / ref.std for k, (loc, sd) in approx.items()}
rms_offset = {k: float(v.pow(2).mean().sqrt()) for k, v in offset.items()}
median_ratio = {k: float(v.median()) for k, v in ratio.items()}
# NUTS's means are themselves Monte Carlo estimates: their standard error, in NUTS stds
nuts_error = float((ref.mean_stderr / ref.std).pow(2).mean().sqrt())

# %% tags=["hide-input"]
tut.record("cancer_std_ratio_median", median_ratio, ".3f")
tut.record("cancer_std_ratio_range", {k: [float(v.min()), float(v.max())] for k, v in ratio.items()})
tut.record("cancer_mean_offset_rms_in_stds", rms_offset, ".3f")
tut.record("nuts_mean_mc_error_in_stds_max", (ref.mean_stderr / ref.std).max(), ".3f")
tut.record("nuts_mean_mc_error_in_stds_rms", nuts_error, ".3f")

tut.claim("Mean-field VI underestimates the posterior std of every one of the 31 weights "
          "(std ratio to NUTS below 1), by a median factor below 0.8",
          float(ratio["mean-field VI"].max()) < 1 and median_ratio["mean-field VI"] < 0.8,
          max_ratio=ratio["mean-field VI"].max(), median_ratio=median_ratio["mean-field VI"])
tut.claim("Mean-field's variance is below full-rank's for every weight",
          bool((mf.scale < fr.scale).all()), max_ratio=(mf.scale / fr.scale).max())
tut.claim("Full-rank VI and Laplace match NUTS's stds: median ratio within 10% of 1",
          abs(median_ratio["full-rank VI"] - 1) < 0.1 and abs(median_ratio["Laplace"] - 1) < 0.1,
          **median_ratio)
tut.claim("Full-rank VI's means agree with NUTS's to within NUTS's own Monte Carlo error (RMS "
          "offset below twice the RMS standard error of NUTS's means); Laplace's mode is further "
          "off than that error allows (above twice it) and more than twice as far as full-rank's",
          rms_offset["full-rank VI"] < 2 * nuts_error and rms_offset["Laplace"] > 2 * nuts_error
          and rms_offset["Laplace"] > 2 * rms_offset["full-rank VI"],
          **rms_offset, nuts_mc_error=nuts_error, factor=2)

# %% [markdown]
# Bishop 10.1.2 met in the wild. For a Gaussian target $\mathcal N(\mu, \Lambda^{-1})$ the
# mean-field reverse-KL fit has variances $1/\Lambda_{ii}$, the inverse of the *precision's*
# diagonal, not the covariance's diagonal $(\Lambda^{-1})_{ii}$. This posterior is close
# to Gaussian, so that formula, applied to the full-rank fit's precision, should predict
# what mean-field VI found.

# %%
precision_fr = torch.linalg.inv(fr.covariance)
predicted_mf_std = precision_fr.diagonal().rsqrt()
bishop_ratio = mf.scale / predicted_mf_std

# %% tags=["hide-input"]
tut.record("mean_field_std_over_bishop_prediction_range", [float(bishop_ratio.min()),
                                                          float(bishop_ratio.max())])
tut.claim("Mean-field VI's stds equal 1/sqrt(Lambda_ii) of the full-rank fit's precision to "
          "within 15% for every weight (Bishop 10.1.2)", bool(((bishop_ratio - 1).abs() < 0.15).all()),
          min_ratio=bishop_ratio.min(), max_ratio=bishop_ratio.max())

# %%
fig, axes = subplots(1, 2, size=4.2)
cplot.plot_std_vs_reference(ref.std, {k: sd for k, (loc, sd) in approx.items()}, ax=axes[0],
                            xlabel="NUTS posterior std")
axes[0].set_title("Marginal std of each of the 31 weights\nagainst NUTS's")
cplot.plot_mean_offsets(offset, ax=axes[1], xlabel="(mean - NUTS mean) / NUTS std")
axes[1].set_title("Each weight's mean minus NUTS's,\nin NUTS stds")
tut.savefig(fig, "cancer_moments")

# %% [markdown]
# ## 4. Held-out accuracy, log loss and calibration
#
# Predictions on the 171 held-out tumours: the MAP plug-in (scikit-learn's
# `predict_proba`), and the posterior predictive of each approximation (Monte Carlo for the
# Gaussians, the average over the draws for NUTS). The reliability diagram bins the
# predictions (`sklearn.calibration.calibration_curve`, five equal-width bins: 171 cases
# leave ten bins nearly empty) and plots the fraction of class 1 (benign, in scikit-learn's
# coding) against the mean prediction; the expected calibration error (ECE) is the count-weighted mean
# distance from the diagonal (`vitoolkit.calibration.expected_calibration_error`, the same
# bins).

# %%
gen = tut.generator(3)
n_pred = tut.choose(2000, 8000)
design_test = post.design_matrix(X_test).numpy()
cancer_pred = {
    "sklearn MAP": torch.as_tensor(clf.predict_proba(design_test)[:, 1]),
    "Laplace": predictive(post, X_test, laplace.distribution, num_samples=n_pred, generator=gen).prob,
    "mean-field VI": predictive(post, X_test, mf.distribution, num_samples=n_pred, generator=gen).prob,
    "full-rank VI": predictive(post, X_test, fr.distribution, num_samples=n_pred, generator=gen).prob,
    "NUTS": predictive(post, X_test, ref.samples).prob,
}
n_bins = 5
metrics, case_loss = {}, {}
for name, p in cancer_pred.items():
    case_loss[name] = per_example_log_loss(y_test, p)  # one log loss per test tumour
    p = p.numpy()
    metrics[name] = {"accuracy": accuracy_score(y_test, p > 0.5), "log_loss": log_loss(y_test, p),
                     "ece": expected_calibration_error(y_test, p, n_bins=n_bins)}
# MacKay's probit approximation of Laplace's predictive (PRML eq. 4.153), no draws
probit = predictive(post, X_test, laplace.distribution, method="probit").prob

print(f"\n{'method':<15} {'mean off':>9} {'std ratio':>17} {'accuracy':>9} {'log loss':>9} "
      f"{'ECE':>7} {'seconds':>8}")
for name in cancer_pred:
    m = metrics[name]
    if name in approx:
        moments = f"{rms_offset[name]:9.3f} {float(ratio[name].min()):5.2f}-{float(ratio[name].max()):4.2f}"
        moments += f" (med {median_ratio[name]:.2f})"
    elif name == "NUTS":
        moments = f"{'0 (ref)':>9} {'1 (reference)':>17}"
    else:
        moments = f"{'-':>9} {'-':>17}"
    print(f"{name:<15} {moments} {m['accuracy']:9.4f} {m['log_loss']:9.4f} {m['ece']:7.4f} "
          f"{seconds[name]:8.2f}")
print("(mean off: RMS over the 31 weights of (mean - NUTS mean) / NUTS std; std ratio: min-max "
      "and median of std / NUTS std)")

# %% tags=["hide-input"]
probit_gap = float((probit - cancer_pred["Laplace"]).abs().max())
tut.record("laplace_probit_vs_monte_carlo_max_abs_difference", probit_gap, ".4f")
tut.record("cancer_metrics", metrics)
tut.record("seconds", seconds, ".3f")
accs = [m["accuracy"] for m in metrics.values()]
losses = {k: m["log_loss"] for k, m in metrics.items()}
eces = {k: m["ece"] for k, m in metrics.items()}
tut.claim("All five methods classify the held-out tumours equally well, to within two cases",
          (max(accs) - min(accs)) * len(y_test) <= 2 + 1e-9, accuracies=accs)
tut.claim("MacKay's probit approximation reproduces Laplace's Monte Carlo predictive to within "
          "0.03 on every test case", probit_gap < 0.03, max_abs_difference=probit_gap)
d_fr = paired_difference(case_loss["full-rank VI"], case_loss["NUTS"])
tut.claim("Full-rank VI's held-out log loss is within 0.003 nats of NUTS's (paired over the 171 "
          "cases, 2 standard errors included)", abs(d_fr.mean) + 2 * d_fr.stderr < 0.003,
          **d_fr.evidence(2), tolerance_nats=0.003, **losses)
d_avg = paired_difference(case_loss["NUTS"], case_loss["sklearn MAP"])
tut.claim("Did not reproduce here: averaging over the posterior did not improve the held-out log "
          "loss on this split: NUTS's predictive is not below the MAP plug-in's (NUTS minus MAP, "
          "paired over the cases, is not below -2 standard errors)", not d_avg.falls_short(2),
          nuts_minus_map=d_avg.evidence(2), **losses)
tut.claim("Every method is well calibrated on these 171 cases: ECE below 0.06 for all",
          max(eces.values()) < 0.06, **eces)
agree = {k: float(((p - cancer_pred["NUTS"]).abs() < 0.05).double().mean())
         for k, p in cancer_pred.items() if k != "NUTS"}
tut.claim("Every method gives nearly NUTS's predictions: within 0.05 of its probability on at least "
          "90% of the test cases", min(agree.values()) >= 0.9, **agree)

# %%
curves, bin_counts = {}, {}
for name, p in cancer_pred.items():
    prob_true, prob_pred = calibration_curve(y_test, p.numpy(), n_bins=n_bins)
    curves[name] = (prob_pred, prob_true)
    bin_counts[name] = reliability(y_test, p.numpy(), n_bins=n_bins).counts
fig, ax = subplots(1, 1, size=5.5)
cplot.plot_reliability(curves, ax=ax, counts=bin_counts)
ax.set_title("Reliability diagram, five bins of the predicted probability\n"
             "(marker area: cases per bin)", fontsize="small")
tut.savefig(fig, "cancer_reliability")

# %% tags=["hide-input"]
tut.record("reliability_bin_counts", bin_counts)
# the share of cases outside the two extreme bins [0, 0.2) and [0.8, 1]
middle_share = {k: float(((p >= 0.2) & (p < 0.8)).double().mean()) for k, p in cancer_pred.items()}
tut.claim("The predictions are nearly all confident: the middle bins (0.2 to 0.8) hold fewer than "
          "15% of the test cases for every method, so their points rest on a handful of cases",
          max(middle_share.values()) < 0.15, **middle_share)

# %% [markdown]
# On the toy, with 40 points and a ridge the data cannot resolve, averaging over the
# posterior paid off on average where the test inputs left the ridge. Here, with 398
# training cases for 31 weights, most test cases lie far from the decision boundary, every
# method gives nearly NUTS's predictions, and on this split the plug-in's log loss is even
# a little lower (see the printed table; the claim above says whether the difference beats
# its noise). The lesson of section 3 is about the posterior itself (its spread, what a
# credible interval for a coefficient would say), which the predictions on this data set
# barely test. In the reliability diagram, the two extreme bins carry almost all the
# cases (`vitoolkit.calibration.reliability` returns the counts): the zig-zag in the
# middle is a few cases per bin, not miscalibration.

# %% [markdown]
# ## 5. What each answer costs
#
# CPU time of each method: the seconds this process spent computing, which other work on
# a shared machine changes less than it changes the wall-clock time (the tutorial runs
# torch on one thread). The VI fits run L-BFGS on the reparameterised objective with fixed
# base noise; NUTS pays for its exactness with many gradient evaluations per draw. CPU
# time still moves with the machine's other work (our full runs measured NUTS at 2 to 5 times
# the slower VI fit: 5 alone, 2 beside another run), so only a margin below all of that
# is claimed: at least 1.5 times, at full size (the quick runs draw fewer samples).

# %%
fig, ax = subplots(1, 1, size=4.0)
cplot.plot_costs(list(seconds), list(seconds.values()), ax=ax,
                 xlabel="CPU time (seconds, log scale)")
ax.set_title("CPU time of each method (one run)")
tut.savefig(fig, "cancer_costs")

# %% tags=["hide-input"]
slower_vi = max(seconds["mean-field VI"], seconds["full-rank VI"])
tut.claim("In the full run NUTS costs at least 1.5 times the CPU time of the slower Gaussian VI fit",
          seconds["NUTS"] > 1.5 * slower_vi, full_only=True,
          nuts_over_slower_vi=seconds["NUTS"] / slower_vi, factor=1.5, **seconds)
tut.claim("The Laplace approximation, a Newton search and one Hessian, costs less than a fifth of "
          "either VI fit", seconds["Laplace"] < min(seconds["mean-field VI"], seconds["full-rank VI"]) / 5,
          vi_over_laplace=min(seconds["mean-field VI"], seconds["full-rank VI"]) / seconds["Laplace"],
          factor=5, **seconds)

# %% [markdown]
# What to see:
#
# * The same reverse-KL fit that fitted the targets of tutorial 03 fits a classifier's
#   posterior, from `log_prob` alone.
# * Mean-field VI is too narrow whenever the posterior is correlated, on the toy and on
#   every one of the 31 weights of the real data, and its stds are predicted by
#   $1/\sqrt{\Lambda_{ii}}$ (Bishop 10.1.2). Full-rank VI matches the reference's stds and
#   means; Laplace matches the stds but sits at the mode of a skewed posterior.
# * Averaging over the posterior moderates the probabilities and helped on the small toy;
#   on the larger real data set it changed neither accuracy nor calibration.
# * The Gaussian approximations cost a fraction of the sampler's time.
#
# ## Exercises
#
# * `predictive_log_loss`: the per-example log loss $-\log \frac1S \sum_s
#   \sigma((2y_n - 1)\,\phi_n^\top w_s)$ of the Monte Carlo posterior predictive from draws
#   $w_s$ (the MAP plug-in is the case $S = 1$), stable for confident predictions. Apply it
#   to `ref.samples` and to `laplace.loc[None]` on the test tumours and compare with the
#   table. Start with `vitoolkit exercise start predictive_log_loss`, check with
#   `vitoolkit exercise check predictive_log_loss FILE`.
# * `mean_field_variances` (from tutorial 03): write the mean-field variances of a Gaussian
#   under reverse and forward KL, then apply your function to `ref.covariance` (the NUTS
#   covariance) and compare with `mf.scale ** 2`.
#   Start with `vitoolkit exercise start mean_field_variances`, check with
#   `vitoolkit exercise check mean_field_variances FILE`.
# * Related: `gaussian_kl` (tutorial 01) gives $\mathrm{KL}(q\,\|\,\text{Laplace})$ between two of the
#   fits above in closed form (`vitoolkit exercise start gaussian_kl`, then
#   `vitoolkit exercise check gaussian_kl FILE`).
# * Without a new exercise file: refit with `prior_std=3.0` and watch Laplace's offset and
#   mean-field's shrinkage grow as the posterior gets wider and more skewed.

# %%
tut.finish()
