# %% [markdown]
# # Beyond the plain VAE: collapse, disentanglement, tighter bounds and the amortisation gap.
#
# Question: Where does the plain VAE fall short, and what do annealing, free bits, beta and IWAE fix?
#
# Six experiments on data that need no download (scikit-learn's 8x8 digits,
# binarised, and procedural shapes whose generating factors we know), each
# answering one question with numbers printed and saved: which latent units a VAE
# actually uses (Burda et al. 2015, section 5.2) and how KL annealing, free bits
# and beta change that; what beta does to the alignment of units with true
# factors (Higgins et al. 2017; Chen et al. 2018); how much tighter the IWAE bound
# is and where log p(x) lies (Burda et al. 2015); how much of the gap to log p(x)
# is the encoder's fault (Cremer, Li & Duvenaud 2018); generating a chosen class
# with a conditional VAE (Sohn et al. 2015); and walking the latent space.

# %% [markdown]
# ## 0. Set-up
#
# The networks are small (two hidden layers); the tutorial runtime runs torch on
# one thread. Every model shares the architecture below and differs only in the
# objective it is trained with.

# %%
import math

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

from vitoolkit.course import Tutorial
from vitoolkit.course.evidence import independent_difference, paired_difference
from vitoolkit.datasets import SHAPES_FACTOR_NAMES, load_digits, load_shapes
from vitoolkit.divergences import KHAT_THRESHOLD
from vitoolkit.plotting import subplots
from vitoolkit.plotting.vae_beyond import (
    plot_active_units,
    plot_bound_gaps,
    plot_bounds_vs_samples,
    plot_curves,
    plot_factor_matrix,
    plot_gaps,
    plot_image_grid,
    plot_khat,
    plot_kl_per_dimension,
)
from vitoolkit.vae import VAE, annealing, train
from vitoolkit.vae.diagnostics import (
    active_units,
    amortisation_gap,
    check_posterior_collapse,
    factor_scores,
    iwae_curve,
    kl_per_dimension,
)
from vitoolkit.vae.latent import (
    attribute_vector,
    conditional_grid,
    decode_mean,
    encode_batched,
    interpolate,
    latent_means,
    shift_codes,
    traverse,
)

tut = Tutorial("06_vae_beyond")
Q = tut.quick

X_train, y_train = load_digits(binarize=True, split="train", seed=tut.seed)
X_val, y_val = load_digits(binarize=True, split="val", seed=tut.seed)
X_test, y_test = load_digits(binarize=True, split="test", seed=tut.seed)

LATENT = 16
HIDDEN = (128, 64)
EPOCHS = tut.choose(40, 150)
BATCH = 128
STEPS_PER_EPOCH = -(-len(X_train) // BATCH)


def fit(model, **kwargs):
    """Train with the settings every experiment shares; return the History."""
    return train(model, X_train, epochs=kwargs.pop("epochs", EPOCHS), batch_size=BATCH,
                 validation=kwargs.pop("validation", X_val), seed=tut.seed, progress=tut.progress,
                 **kwargs)


def test_elbo(model, x=X_test, offset=0, draws=10):
    """ELBO (beta = 1, nats) of each held-out example, averaged over ``draws`` samples of z."""
    gen = tut.generator(offset)
    with torch.no_grad():
        return torch.stack([model.elbo(x, generator=gen) for _ in range(draws)]).mean(0)


# %% [markdown]
# ## 1. The KL term collapsing, and four remedies
#
# The ELBO is $\mathbb E_q[\log p(x\mid z)] - \sum_d \mathrm{KL}(q(z_d\mid x)\,\|\,p(z_d))$
# (Kingma & Welling 2013, eq. 10). A unit whose posterior equals the prior for
# every $x$ pays no KL and tells the decoder nothing: it has *collapsed*. Burda
# et al. (2015, section 5.2, eq. 22) count a unit $u$ as **active** when
# $A_u = \mathrm{Cov}_x(\mathbb E_{q(u\mid x)}[u]) > 0.01$.
#
# Early in training the decoder is poor and the KL term is the easy part of the
# loss to reduce, so units switch off; under a strong enough KL pressure they
# never come back. Remedies, each a setting of the same `train` call (configured
# as data, one loop):
#
# - **beta below or above 1**: $\beta < 1$ weakens the KL pressure; $\beta > 1$
#   (Higgins et al. 2017) strengthens it and makes collapse worse;
# - **linear KL warm-up** (Bowman et al. 2016, section 3.1; Sønderby et al.
#   2016, section 2.3): $\beta$ grows from 0 to 1 over the first half of training;
# - **cyclical annealing** (Fu et al. 2019, section 3): the warm-up repeated, four
#   cycles over the run;
# - **free bits** (Kingma et al. 2016, Appendix C.8): the first $\lambda$ nats of
#   each unit's average KL are free, so there is nothing to gain by switching a
#   unit off completely.
#
# Each model is scored on the held-out test digits with the true ELBO ($\beta = 1$).

# %%
total_steps = EPOCHS * STEPS_PER_EPOCH
REMEDIES = [
    ("plain (beta=1)", {}),
    ("beta=4", {"beta": 4.0}),
    ("beta=0.5", {"beta": 0.5}),
    ("KL warm-up", {"beta": annealing.linear_warmup(total_steps // 2)}),
    ("cyclical", {"beta": annealing.cyclical(total_steps // 4)}),
    ("free bits 0.5", {"free_bits": 0.5}),
]
PLAIN, FREE = "plain (beta=1)", "free bits 0.5"
models, histories, rate, units, elbos = {}, {}, {}, {}, {}
for name, kwargs in REMEDIES:
    model = VAE(64, LATENT, HIDDEN, seed=tut.seed)
    histories[name] = fit(model, **kwargs)
    models[name] = model
    rate[name] = kl_per_dimension(model, X_test).mean(0)  # average KL of each unit
    units[name] = active_units(model, X_test).count
    elbos[name] = test_elbo(model)  # per test digit
collapse = check_posterior_collapse(models["beta=4"], X_test)

# %% tags=["hide-input"]
for name in models:
    key = name.split(" (")[0].replace(" ", "_").replace("=", "")
    tut.record(f"active_units_{key}", units[name])
    tut.record(f"test_elbo_{key}", elbos[name].mean(), ".3f")
tut.record("beta4_fraction_collapsed", collapse.fraction_collapsed, ".2f")
tut.claim("beta > 1 makes collapse worse: beta=4 keeps fewer active units than the plain VAE, "
          "and Lucas et al.'s check finds most of its units collapsed",
          units["beta=4"] < units[PLAIN] and collapse.fraction_collapsed > 0.5,
          active_beta4=units["beta=4"], active_plain=units[PLAIN],
          fraction_collapsed_beta4=collapse.fraction_collapsed)
first_epoch_units = {name: h.val_active_units[0] for name, h in histories.items()}
final_units = {name: h.val_active_units[-1] for name, h in histories.items()}
peak_units = {name: max(h.val_active_units) for name, h in histories.items()}

# %%
def recovery_epoch(history, needed=LATENT // 2):
    """First epoch with at least ``needed`` active validation units (None: never)."""
    hits = [e for e, a in zip(history.epoch, history.val_active_units, strict=True) if a >= needed]
    return hits[0] if hits else None


recovery = {name: recovery_epoch(h) for name, h in histories.items()}
fb_rate = rate[FREE]
fig, axes = subplots(1, 2, size=5)
plot_kl_per_dimension(
    rate, threshold=0.5, ax=axes[0],
    title=f"beta=4 keeps {units['beta=4']} of {LATENT} units;\n"
          f"free bits hold each at {float(fb_rate.min()):.2f}-{float(fb_rate.max()):.2f} nats",
)
others = [units[n] for n in units if n != "beta=4"]
span = f"all {min(others)}" if min(others) == max(others) else f"{min(others)}-{max(others)}"
plot_active_units(units, latent_dim=LATENT, ax=axes[1],
                  title=f"beta=4: {units['beta=4']} active units, the others {span}")
tut.savefig(fig, "remedies_rate_and_active_units")


def _when(name):
    return "never" if recovery[name] is None else f"epoch {recovery[name]}"


fig, ax = subplots(1, 1, size=5)
plot_curves({k: h.val_active_units for k, h in histories.items()}, ax=ax,
            ylabel="active units (validation digits)",
            title=f"Half the units active: free bits at {_when(FREE)}, plain at "
                  f"{_when(PLAIN)},\nbeta=4 {_when('beta=4')}")
tut.savefig(fig, "remedies_active_units_per_epoch")

# %% tags=["hide-input"]
tut.record("epoch_reaching_half_units_active", recovery)
tut.claim(f"beta=4 keeps {units['beta=4']} of {LATENT} units active, while free bits hold every "
          "unit near its 0.5-nat floor (within 0.2 nats of it on test digits)",
          units["beta=4"] <= 1 and 0.3 <= float(fb_rate.min()) and float(fb_rate.max()) <= 0.7,
          active_beta4=units["beta=4"], free_bits_rate_min=fb_rate.min(),
          free_bits_rate_max=fb_rate.max())
tut.claim(f"Every setting except beta=4 keeps at least {LATENT // 2} of {LATENT} units active "
          "on the test digits", min(others) >= LATENT // 2,
          active_units={n: units[n] for n in units})

# %% [markdown]
# **What to see.** Every run starts with all units inactive (claim below): a
# fresh encoder maps all digits to nearly the same code, and the cheapest way to
# lower the loss is to drive the KL to zero. The plain VAE climbs out after a
# number of epochs; free bits and $\beta < 1$ climb out sooner, the linear warm-up
# no later; $\beta = 4$ never does. Each setting is trained once, so these epochs
# carry no error bar: read them as an observation of this run, repeated at every
# seed the course is checked at (three short runs and the full one), not as a
# measured difference.

# %% tags=["hide-input"]
tut.claim("Every run starts with all units inactive after its first epoch",
          all(v == 0 for v in first_epoch_units.values()), first_epoch_active=first_epoch_units)
tut.claim("In this run the plain VAE climbs out after a number of epochs; free bits and "
          "beta < 1 climb out sooner, the linear warm-up no later; beta = 4 never does",
          recovery[PLAIN] is not None and recovery[PLAIN] > 1
          and all(recovery[n] is not None and recovery[n] < recovery[PLAIN]
                  for n in (FREE, "beta=0.5"))
          and recovery["KL warm-up"] is not None and recovery["KL warm-up"] <= recovery[PLAIN]
          and recovery["beta=4"] is None,
          epoch_half_active=recovery)

# %% [markdown]
# The cyclical schedule sets $\beta$ back to 0 at the start of each of its four
# cycles; it is left out of the claim above because its timing relative to the
# plain VAE is not stable across seeds and settings (its epoch is printed above).
# The $\beta = 4$ model is checked with Lucas et al. (2019, Definition 1), which
# reports the fraction of collapsed units printed above. In the full run some
# units switch off again late in training for the plain and warm-up models (the
# KL pressure never stops), but not under free bits.

# %% tags=["hide-input"]
tut.claim("In the full run some units switch off again late in training for the plain and "
          "warm-up models (final count below the peak), but not under free bits",
          all(final_units[n] < peak_units[n] for n in (PLAIN, "KL warm-up"))
          and final_units[FREE] == peak_units[FREE],
          full_only=True, final_active=final_units, peak_active=peak_units)

# %% [markdown]
# The per-unit rate (first figure) shows how unevenly the information is spread
# over the units that are active: in the plain VAE the busiest unit carries many
# times the KL of the quietest active one. The test ELBO, printed above, is the
# arbiter: keeping more units busy (free bits) does not by itself give a better
# model of the data. Both models are scored on the same test digits, so their
# ELBOs are compared digit by digit (a paired difference, with the standard error
# of the mean difference; each digit's ELBO averages 10 draws of $z$).

# %% tags=["hide-input"]
plain_active = rate[PLAIN][active_units(models[PLAIN], X_test).mask]
tut.claim("In the plain VAE the busiest active unit carries more than 5 times the KL of the "
          "quietest active one", float(plain_active.max()) > 5 * float(plain_active.min()),
          largest_rate=plain_active.max(), smallest_active_rate=plain_active.min())
FACTOR = 3
free_vs_plain = paired_difference(elbos[FREE], elbos[PLAIN])
tut.claim(f"Free bits keep at least as many units busy as the plain VAE but reach a lower test "
          f"ELBO (the paired difference is below -{FACTOR} standard errors)",
          units[FREE] >= units[PLAIN] and free_vs_plain.falls_short(FACTOR),
          active_free_bits=units[FREE], active_plain=units[PLAIN],
          test_elbo_free_bits=elbos[FREE].mean(), test_elbo_plain=elbos[PLAIN].mean(),
          **free_vs_plain.evidence(FACTOR))

# %% [markdown]
# ## 2. beta-VAE on shapes with known factors
#
# Higgins et al. (2017) argue that a larger $\beta$ pushes $q(z \mid x)$ towards the
# factorised prior and so towards units that each follow one generating
# factor. On our shapes we know the factors (shape, scale, rotation, x, y), so
# we can measure it: the **mutual information gap** (Chen et al. 2018, section
# 5, eq. 6) is, averaged over factors, the difference between the two units
# sharing the most information with the factor, divided by the factor's entropy;
# 1 means each factor is captured by exactly one unit.

# %%
n_shapes = tut.choose(3000, 10000)
S_train, F_train = load_shapes(n_shapes, seed=tut.seed)
# The plug-in mutual information is biased up by about (bins - 1)^2 / (2 n)
# nats (Paninski 2003, eq. 3 ff.); n = 3000 and 20 bins keep that near 0.06.
S_test, F_test = load_shapes(tut.choose(3000, 10000), seed=tut.derived_seed(1))
SHAPE_HW = (16, 16)
SHAPE_LATENT = 8
shape_epochs = tut.choose(20, 60)
BETAS = [1.0, 4.0]
FACTORS = list(SHAPES_FACTOR_NAMES)
SHAPE_SEEDS = [tut.seed, tut.derived_seed(101), tut.derived_seed(102)]  # replicates for MIG
shape_models, shape_scores, shape_units, shape_elbo, replicate_mig = {}, {}, {}, {}, {}
for beta in BETAS:
    replicate_mig[beta] = []
    for seed in SHAPE_SEEDS:
        model = VAE(256, SHAPE_LATENT, (256, 128), seed=seed)
        train(model, S_train, epochs=shape_epochs, batch_size=BATCH, beta=beta, seed=seed,
              progress=tut.progress)
        replicate_mig[beta].append(factor_scores(model, S_test, F_test).mig)
        if seed == tut.seed:  # the first seed's model is the one we look at below
            shape_models[beta] = model
            shape_scores[beta] = factor_scores(model, S_test, F_test)
            shape_units[beta] = active_units(model, S_test)
            shape_elbo[beta] = test_elbo(model, S_test)  # per test shape
# Per factor, the most information any one unit shares with it (nats).
best_mi = {beta: dict(zip(FACTORS, shape_scores[beta].mutual_information.max(0).values.tolist(),
                          strict=True)) for beta in BETAS}

# %%
pos_min = min(best_mi[b][f] for b in BETAS for f in ("x", "y"))
rot_max = max(best_mi[b]["rotation"] for b in BETAS)
fig, axes = subplots(1, 2, size=4.5)
for ax, beta in zip(axes, BETAS, strict=True):
    plot_factor_matrix(shape_scores[beta].mutual_information, factor_names=FACTORS, ax=ax,
                       title=f"beta={beta:g}: MIG = {shape_scores[beta].mig:.2f}")
fig.suptitle(f"x and y each have one unit sharing >= {pos_min:.2f} nats with them; "
             f"rotation no more than {rot_max:.2f}")
tut.savefig(fig, "beta_vae_factor_information")

# Traverse the active units (up to 5, busiest first) around the code of one test shape.
fig, axes = subplots(1, 2, size=4.5)
for ax, beta in zip(axes, BETAS, strict=True):
    model = shape_models[beta]
    act = shape_units[beta]
    order = torch.argsort(act.activity, descending=True)
    dims = order[: max(1, min(5, act.count))]
    base = latent_means(model, S_test[:1])[0]
    trav = traverse(model, base, dims=dims, values=torch.linspace(-2.5, 2.5, 7))
    informs = shape_scores[beta].mutual_information[dims].argmax(1)
    plot_image_grid(trav.images, SHAPE_HW, ax=ax,
                    row_labels=[f"z{int(d)}: {SHAPES_FACTOR_NAMES[int(k)]}"
                                for d, k in zip(dims, informs, strict=True)],
                    col_labels=[f"{v:.1f}" for v in trav.values.tolist()],
                    xlabel="value of the traversed unit",
                    ylabel="active unit: factor it informs most",
                    title=f"beta={beta:g}: {act.count} active units"
                          + (f" ({len(dims)} busiest shown)" if len(dims) < act.count else ""))
fig.suptitle(f"Traversals of the busiest active units (beta=4 keeps {shape_units[4.0].count}, "
             f"beta=1 keeps {shape_units[1.0].count})")
tut.savefig(fig, "beta_vae_traversals")

# %% tags=["hide-input"]
for beta in BETAS:
    tut.record(f"shapes_mig_beta{beta:g}", shape_scores[beta].mig, ".3f")
    tut.record(f"shapes_active_units_beta{beta:g}", shape_units[beta].count)
    tut.record(f"shapes_test_elbo_beta{beta:g}", shape_elbo[beta].mean(), ".2f")
tut.record("shapes_best_unit_information", best_mi)
tut.claim("Position is captured in both models: for x and for y one unit shares more than "
          "0.5 nats with the factor; no unit of either model shares more than 0.15 nats with "
          "rotation", pos_min > 0.5 and rot_max < 0.15, least_position_information=pos_min,
          most_rotation_information=rot_max)
beta_elbo = paired_difference(shape_elbo[4.0], shape_elbo[1.0])
tut.claim(f"A larger beta gives a smaller code: beta=4 keeps fewer active units than beta=1, and "
          f"pays for it in test ELBO (the paired difference over the test shapes is below "
          f"-{FACTOR} standard errors)",
          shape_units[4.0].count < shape_units[1.0].count and beta_elbo.falls_short(FACTOR),
          active_beta4=shape_units[4.0].count, active_beta1=shape_units[1.0].count,
          test_elbo_beta4=shape_elbo[4.0].mean(), test_elbo_beta1=shape_elbo[1.0].mean(),
          **beta_elbo.evidence(FACTOR))

# %% [markdown]
# **What to see.** Read the MIG values and the heatmaps together: a
# disentangled unit is a row with one bright cell. Burgess et al. (2018,
# "Understanding disentangling in beta-VAE", section 4) explain what a larger
# $\beta$ does: it limits the information the code may carry, and the VAE spends
# that budget first on the factors that improve the reconstruction most. For
# $\beta = 4$ that order is visible in the heatmap: position (one unit each for x
# and y) first, scale next, shape and rotation (a few pixels of difference at
# 16 x 16) last. Each number in the heatmap is estimated from the test shapes;
# resampling them (a bootstrap, 50 resamples) gives the standard errors with which
# the claim below compares the factors.

# %% tags=["hide-input"]
BOOT = 50
boot_gen = tut.generator(40)
boot_steps = {"x or y - scale": [], "scale - shape or rotation": []}
for _ in range(BOOT):
    rows = torch.randint(0, len(S_test), (len(S_test),), generator=boot_gen)
    mi = factor_scores(shape_models[4.0], S_test[rows], F_test[rows]).mutual_information.max(0)
    b = dict(zip(FACTORS, mi.values.tolist(), strict=True))
    boot_steps["x or y - scale"].append(min(b["x"], b["y"]) - b["scale"])
    boot_steps["scale - shape or rotation"].append(b["scale"] - max(b["shape"], b["rotation"]))
b4 = best_mi[4.0]
observed = {"x or y - scale": min(b4["x"], b4["y"]) - b4["scale"],
            "scale - shape or rotation": b4["scale"] - max(b4["shape"], b4["rotation"])}
step_se = {k: float(np.std(v, ddof=1)) for k, v in boot_steps.items()}
tut.claim(f"beta=4 spends its budget on position first, scale next, shape and rotation last: "
          f"the most information any unit holds is larger for x and y than for scale, and "
          f"larger for scale than for shape or rotation, each step by more than {FACTOR} "
          f"bootstrap standard errors",
          all(observed[k] > FACTOR * step_se[k] for k in observed), factor=FACTOR,
          beta4_best_unit_information=b4, step=observed, bootstrap_stderr=step_se)

# %% [markdown]
# MIG rewards the clean x and y units and penalises the factors no unit captures.
# The prediction of Higgins et al., a higher MIG at the larger $\beta$, **did not
# reproduce here**. One training run per $\beta$ cannot say that: Locatello et al.
# (2019) show that such scores vary a lot with the seed and the data, and that
# $\beta$ alone does not reliably buy disentanglement. So we trained each $\beta$
# from three seeds (the same three for both, so the runs pair up by seed) and
# compare the MIG seed by seed: the difference is within 2 of its standard errors
# on either side, i.e. no difference was detected. Three seeds give a wide
# standard error, so this says the effect, if any, is small next to the
# seed-to-seed spread, not that it is zero.

# %% tags=["hide-input"]
mig1, mig4 = float(np.mean(replicate_mig[1.0])), float(np.mean(replicate_mig[4.0]))
mig_diff = paired_difference(replicate_mig[4.0], replicate_mig[1.0])
tut.record("shapes_mig_per_seed", replicate_mig)
tut.claim("Did not reproduce: over three training seeds per beta, the MIG at beta=4 is neither "
          "higher nor lower than at beta=1 beyond 2 standard errors of the paired difference",
          mig_diff.within(2), mig_beta1=replicate_mig[1.0], mig_beta4=replicate_mig[4.0],
          **mig_diff.evidence(2))

# %% [markdown]
# ## 3. Tighter bounds: IWAE, and $\log p(x)$ by importance sampling
#
# With $k$ samples $z_j \sim q(z\mid x)$, the IWAE bound (Burda et al. 2015, eq. 8)
# $\mathcal L_k = \mathbb E[\log \frac1k \sum_j w_j]$, $w_j = p(x, z_j)/q(z_j\mid x)$,
# satisfies $\mathrm{ELBO} = \mathcal L_1 \le \mathcal L_k \le \mathcal L_{k+1} \le \log p(x)$
# (their Theorem 1), and $\mathcal L_k \to \log p(x)$: with $k = 5000$ it is the
# standard estimate of the test log-likelihood. Training on $\mathcal L_k$
# instead of the ELBO gives the IWAE. Both models below have the same networks.
#
# Every number here is a Monte Carlo estimate, so each comes with a standard
# error. We draw one pool of $S$ samples per test digit ($S = 5000$ in the full
# run) and estimate each $\mathcal L_k$ by splitting the pool into $S/k$ groups
# of $k$: the mean over groups is the estimate, their spread gives its standard
# error. $\log p(x)$ is $\mathcal L_S$ from the whole pool, with the delta-method
# standard error $\mathrm{sd}(w) / (\sqrt S\, \bar w)$ (`log_likelihood_estimate(...)`
# returns the same). Drawn independently for each $k$,
# two neighbouring estimates whose expectations differ by less than their
# standard errors can come out in the wrong order by noise alone. Drawn from one
# pool, with each $k$ dividing the next, every group of $k$ lies inside one group
# of the next $k$, and the log of a group's mean weight is at least the mean of
# the logs over its subgroups (Jensen's inequality, the concavity of $\log$). So
# the pooled estimates are ordered for every digit, and the gap to $\log p(x)$
# shrinks at every step, **by construction**: that ordering is a sanity check of
# the code, not evidence for Burda et al.'s Theorem 1. The evidence that
# $\mathcal L_k$ rises is statistical: the rise from $k = 1$ to $k = 5$ compared
# with its standard error.
#
# A standard error is only meaningful when the weights have a finite variance.
# When $q(z\mid x)$ is narrower than the posterior in some direction the weights
# are heavy-tailed: the estimate falls short of $\log p(x)$ and its standard error
# says nothing. The Pareto $\hat k$ of the weights (Vehtari et al. 2024, "Pareto
# smoothed importance sampling") detects this for each digit: above 0.7 the
# estimate cannot be trusted, and the toolkit warns.

# %%
iwae_k = 5
iwae_model = VAE(64, LATENT, HIDDEN, seed=tut.seed)
fit(iwae_model, objective="iwae", num_samples=iwae_k)
vae_model = models[PLAIN]
POOL = tut.choose(1000, 5000)
ks = tut.choose([1, 5, 50, 200], [1, 5, 50, 500])
IW = f"IWAE (k={iwae_k})"
curves = {}
for i, (name, model) in enumerate([("VAE", vae_model), (IW, iwae_model)]):
    curves[name] = iwae_curve(model, X_test, ks, pool=POOL, generator=tut.generator(10 + i))
log_px = {n: float(c.log_likelihood.value.mean()) for n, c in curves.items()}
# Monte Carlo standard error of the test-set mean (the test digits held fixed).
log_px_se = {n: float(c.log_likelihood.stderr.pow(2).sum().sqrt() / len(X_test))
             for n, c in curves.items()}
khat = {n: c.log_likelihood.khat for n, c in curves.items()}
unreliable = {n: float((k > KHAT_THRESHOLD).double().mean()) for n, k in khat.items()}
cv, ci = curves["VAE"], curves[IW]

# %%
fig, axes = subplots(1, 3, size=4.6)
plot_bounds_vs_samples(
    ks, {n: c.mean for n, c in curves.items()}, log_likelihood=log_px,
    stderr={n: c.mean_stderr for n, c in curves.items()}, log_likelihood_stderr=log_px_se,
    ax=axes[0], legend_loc="lower right",
    title=f"L_k rises with k, flattening below log p(x)\n"
          f"(VAE: +{float(cv.mean[-1] - cv.mean[0]):.2f} nats from k=1 to {ks[-1]})")
gaps = {n: log_px[n] - c.mean.numpy() for n, c in curves.items()}
plot_bound_gaps(ks, gaps, stderr={n: c.mean_stderr for n, c in curves.items()}, ax=axes[1],
                title=f"Gap to log p(x): VAE {float(gaps['VAE'][0]):.2f} nats at k=1,\n"
                      f"{float(gaps['VAE'][-1]):.3f} at k={ks[-1]}")
plot_khat(khat, ax=axes[2],
          title=f"k-hat of the log p(x) weights: above 0.7 for\n"
                f"{100 * unreliable['VAE']:.0f}% (VAE), {100 * unreliable[IW]:.0f}% (IWAE) "
                "of digits")
tut.savefig(fig, "iwae_bounds_vs_k")

# %% tags=["hide-input"]
tut.record("test_elbo", test_elbo(vae_model).mean(), ".3f")
tut.record("test_iwae_k", ks)
tut.record("test_iwae_vae", cv.mean)
tut.record("test_iwae_vae_stderr", cv.mean_stderr)
tut.record("test_iwae_max_k", float(cv.mean[-1]), ".3f")
tut.record("log_px_pool", POOL)
tut.record("test_log_px_vae", log_px["VAE"], ".3f")
tut.record("test_log_px_vae_stderr", log_px_se["VAE"], ".4f")
tut.record("test_iwae_iwae_model", ci.mean)
tut.record("test_iwae_iwae_model_stderr", ci.mean_stderr)
tut.record("test_log_px_iwae_model", log_px[IW], ".3f")
tut.record("test_log_px_iwae_model_stderr", log_px_se[IW], ".4f")
tut.record("fraction_khat_above_0.7", unreliable)
tut.record("median_khat", {n: float(k.median()) for n, k in khat.items()})
tut.record("active_units_iwae_model", active_units(iwae_model, X_test).count)
first_step = {n: float(c.mean[1] - c.mean[0]) for n, c in curves.items()}
first_se = {n: math.hypot(float(c.mean_stderr[0]), float(c.mean_stderr[1]))
            for n, c in curves.items()}
last_step = {n: float(c.mean[-1] - c.mean[-2]) for n, c in curves.items()}
last_se = {n: math.hypot(float(c.mean_stderr[-2]), float(c.mean_stderr[-1]))
           for n, c in curves.items()}
gap_to_px = {n: log_px[n] - float(c.mean[-1]) for n, c in curves.items()}
gap_se = {n: math.hypot(log_px_se[n], float(c.mean_stderr[-1])) for n, c in curves.items()}
# The pooled estimates are correlated (positively): adding their standard errors in
# quadrature overstates the error of a difference, so the factors below are conservative.
tut.claim("L_k rises with k: from k=1 to k=5 by more than 10 standard errors for both models",
          all(first_step[n] > 10 * first_se[n] for n in curves), rise_1_to_5=first_step,
          stderr_of_rise=first_se, factor=10)
tut.claim("By construction (nested groups of one pool, Jensen's inequality), a sanity check and "
          "not evidence for Theorem 1: the pooled estimates are ordered for every test digit, "
          f"L_1 <= L_5 <= ... <= L_{ks[-1]} <= the log p(x) estimate",
          all(bool((c.bounds.diff(dim=0) >= 0).all())
              and bool((c.bounds[-1] <= c.log_likelihood.value).all()) for c in curves.values()),
          n_digits=len(X_test))
tut.claim(f"The curves flatten: the last step (k={ks[-2]} to {ks[-1]}) adds less than a fifth "
          "of the first (k=1 to 5), by more than 2 standard errors",
          all(0.2 * first_step[n] - last_step[n] > 2 * math.hypot(0.2 * first_se[n], last_se[n])
              for n in curves), last_step=last_step, first_step=first_step,
          stderr_last_step=last_se, stderr_first_step=first_se, factor=2)
tut.claim(f"L_{ks[-1]} lies just below the log p(x) estimate (below it by construction): "
          "within 0.1 nats for both models, with 2 standard errors to spare",
          all(0 <= gap_to_px[n] and gap_to_px[n] + 2 * gap_se[n] < 0.1 for n in curves),
          gap=gap_to_px, stderr_gap=gap_se, factor=2)
tut.claim("The Monte Carlo standard error of each mean log p(x) estimate is below 0.01 nats, so "
          "its +-2 s.e. band spans less than 0.04 nats",
          all(v < 0.01 for v in log_px_se.values()), stderr=log_px_se)
tut.claim("By construction (the same nested pool), a sanity check: the mean gap to log p(x) "
          "shrinks at every step of k for both models",
          all(bool((np.diff(g) < 0).all()) for g in gaps.values()),
          gap_vae=gaps["VAE"], gap_iwae=gaps[IW])

# %% [markdown]
# **What to see.** Each curve rises with $k$ and flattens just below its dashed
# $\log p(x)$ line (its band, $\pm 2$ standard errors, spans less than 0.04 nats);
# the ELBO ($k = 1$) understates $\log p(x)$ by the gap in the middle panel. The
# right panel is the reliability check: the fraction of digits whose $\hat k$
# exceeds 0.7 is in its title, and the toolkit warns when there are any (the
# warning names how many). For those digits neither the estimate nor its standard
# error can be trusted; a per-digit comparison should leave them out or use more
# samples.

# %% tags=["hide-input"]
tut.claim("For most test digits (at least 80%) the log p(x) estimate is reliable (k-hat <= 0.7) "
          "under both models", all(v <= 0.2 for v in unreliable.values()),
          fraction_above_0_7=unreliable)

# %% [markdown]
# Training on $\mathcal L_k$ changes the model itself: Burda et al. (2015, Table
# 1) found IWAE models with a higher $\log p(x)$ but a lower ELBO than VAEs of the
# same size. Our run shows the same pattern, each difference many standard
# errors wide.

# %% tags=["hide-input"]
d_px = log_px[IW] - log_px["VAE"]
d_elbo = float(ci.mean[0] - cv.mean[0])
se_px = math.hypot(log_px_se[IW], log_px_se["VAE"])
se_elbo = math.hypot(float(ci.mean_stderr[0]), float(cv.mean_stderr[0]))
tut.claim("The IWAE has a higher log p(x) than the VAE and a lower ELBO, each by more than 4 "
          "standard errors (Burda et al. 2015, Table 1)",
          d_px > 4 * se_px and d_elbo < -4 * se_elbo, log_px_difference=d_px,
          stderr_log_px_difference=se_px, elbo_difference=d_elbo,
          stderr_elbo_difference=se_elbo)

# %% [markdown]
# ## 4. The amortisation gap
#
# The encoder produces $q(z \mid x)$ for every $x$ with one network. Cremer, Li &
# Duvenaud (2018, section 3) split the gap between $\log p(x)$ and the ELBO into
#
# $$\underbrace{\log p(x) - \mathcal L[q]}_{\text{inference gap}} =
#   \underbrace{\log p(x) - \mathcal L[q^*]}_{\text{approximation gap}} +
#   \underbrace{\mathcal L[q^*] - \mathcal L[q]}_{\text{amortisation gap}},$$
#
# where $q^*$ is the best diagonal Gaussian for that $x$ alone, found by
# optimising the ELBO of the single data point from the encoder's output. The
# first term is the price of the family, the second the price of sharing one
# encoder. On MNIST and Fashion-MNIST they found the amortisation gap often the
# larger one (their Table 2), and larger on held-out than on training data
# (their section 5.3); we measure both on our small model. Here $\log p(x)$ is
# estimated by importance sampling with $q^*$ as the proposal, so its Pareto
# $\hat k$ says whether the approximation gap rests on a trustworthy number.

# %%
n_gap = tut.choose(40, 200)
gap_steps = tut.choose(150, 500)
eval_samples = tut.choose(500, 2000)
gap_results = {}
for name, data in [("train", X_train[:n_gap]), ("test", X_test[:n_gap])]:
    gap_results[name] = amortisation_gap(vae_model, data, steps=gap_steps, num_samples=8,
                                         eval_samples=eval_samples,
                                         generator=tut.generator(7))
g = gap_results["test"]
share = float(g.amortisation_gap.mean() / g.inference_gap.mean())  # the encoder's share

fig, ax = subplots(1, 1, size=5)
plot_gaps({k: (v.approximation_gap.mean(), v.amortisation_gap.mean())
           for k, v in gap_results.items()}, ax=ax, xlabel="digits the gap is measured on",
          title=f"On test digits the encoder causes {100 * share:.0f}% of the inference gap,\n"
                f"the diagonal family {100 * (1 - share):.0f}%")
tut.savefig(fig, "amortisation_gap")

# %% [markdown]
# **What to see.** The bars add up to the inference gap by construction, and
# both parts are positive: per-example optimisation recovers part of the gap.

# %% tags=["hide-input"]
for name, r in gap_results.items():
    for field in ("inference_gap", "approximation_gap", "amortisation_gap"):
        tut.record(f"{field}_{name}", getattr(r, field).mean(), ".3f")
tut.record("amortisation_gap_mean", g.amortisation_gap.mean(), ".3f")
tut.record("approximation_gap_mean", g.approximation_gap.mean(), ".3f")
tut.record("amortisation_share_of_inference_gap_test", share, ".2f")
gap_khat = torch.cat([r.log_likelihood_khat for r in gap_results.values()])
tut.record("gap_fraction_khat_above_0.7", float((gap_khat > KHAT_THRESHOLD).double().mean()),
           ".3f")
amort_se = float(g.elbo_amortised_stderr.pow(2).sum().sqrt() / len(g.amortisation_gap))
tut.claim("The two parts add up to the inference gap, and both are positive: on test digits "
          "the amortisation gap exceeds 3 standard errors of L[q]",
          all(bool(torch.allclose(r.inference_gap, r.approximation_gap + r.amortisation_gap,
                                  atol=1e-5)) for r in gap_results.values())
          and float(g.approximation_gap.mean()) > 0
          and float(g.amortisation_gap.mean()) > 3 * amort_se,
          approximation_gap=g.approximation_gap.mean(), amortisation_gap=g.amortisation_gap.mean(),
          stderr_amortisation_gap=amort_se)
tut.claim("The log p(x) behind the approximation gap is reliable: k-hat <= 0.7 for at least 90% "
          "of the digits", float((gap_khat > KHAT_THRESHOLD).double().mean()) <= 0.1,
          fraction_above_0_7=float((gap_khat > KHAT_THRESHOLD).double().mean()),
          max_khat=gap_khat.max())

# %% [markdown]
# The amortisation part is the room a better (or per-example refined) encoder
# could recover without changing the decoder or the variational family; the
# approximation part needs a richer family (full covariance, flows). Which
# part is larger depends on the model, the data and how long it trained: in
# our full run the encoder's share is close to half and its gap is larger on
# test than on training digits, as Cremer et al. (section 5.3) found; in the
# short quick run the diagonal family causes most of the gap. The training and
# test digits are different digits, so that comparison uses the standard error of
# a difference of two independent means.

# %% tags=["hide-input"]
test_vs_train = independent_difference(gap_results["test"].amortisation_gap,
                                       gap_results["train"].amortisation_gap)
tut.claim("Full run: the encoder's share of the inference gap is close to half (0.35 to 0.65), "
          "and its gap is larger on test than on training digits (by more than 2 standard "
          "errors)", 0.35 <= share <= 0.65 and test_vs_train.exceeds(2), full_only=True,
          share=share, amortisation_gap_test=gap_results["test"].amortisation_gap.mean(),
          amortisation_gap_train=gap_results["train"].amortisation_gap.mean(),
          **test_vs_train.evidence(2))
if tut.quick:
    tut.claim("Quick run: the diagonal family causes most of the inference gap (the encoder's "
              "share is below 0.35)", share < 0.35, share=share)

# %% [markdown]
# ## 5. A conditional VAE: generating a chosen class
#
# Feeding the one-hot label $y$ to encoder and decoder (Sohn et al. 2015;
# Kingma et al. 2014, the M2 model's generative part) gives $p(x\mid z, y)$ and
# $q(z\mid x, y)$: the label carries the class, the latent the rest ("style").
# Decoding prior samples with a chosen $y$ generates that class; we check it with
# a logistic-regression classifier trained on the real training digits.

# %%
cvae = VAE(64, 4, HIDDEN, conditional_dim=10, seed=tut.seed)
train(cvae, X_train, labels=y_train, epochs=EPOCHS, batch_size=BATCH,
      validation=(X_val, y_val), seed=tut.seed, progress=tut.progress)
per_class = 8
wanted = torch.arange(10).repeat_interleave(per_class)
onehot = F.one_hot(wanted, 10).float()
generated = cvae.sample(len(wanted), y=onehot, generator=tut.generator(3))
clf = LogisticRegression(max_iter=2000).fit(X_train.numpy(), y_train.numpy())
clf_accuracy = clf.score(X_test.numpy(), y_test.numpy())
accuracy = float((clf.predict(generated.numpy()) == wanted.numpy()).mean())

styles = latent_means(cvae, X_test[:6], F.one_hot(y_test[:6], 10).float())
grid = conditional_grid(cvae, styles, torch.eye(10))
relabel_accuracy = float((clf.predict(grid.reshape(-1, 64).numpy())
                          == np.tile(np.arange(10), len(styles))).mean())

fig, axes = subplots(1, 2, size=4.5)
plot_image_grid(generated.reshape(10, per_class, 64), (8, 8), ax=axes[0],
                row_labels=[str(c) for c in range(10)], xlabel="prior sample",
                ylabel="requested class",
                title=f"CVAE samples: {100 * accuracy:.0f}% classified as requested")
plot_image_grid(grid, (8, 8), ax=axes[1], col_labels=[str(c) for c in range(10)],
                row_labels=[f"test {int(c)}" for c in y_test[:6]], xlabel="decoded as class",
                ylabel="style from test digit",
                title=f"Same z, new label: {100 * relabel_accuracy:.0f}% read as the new label")
tut.savefig(fig, "cvae_chosen_class")

# %% tags=["hide-input"]
tut.record("classifier_test_accuracy", clf_accuracy, ".3f")
tut.record("cvae_generated_class_accuracy", accuracy, ".3f")
tut.record("cvae_relabelled_class_accuracy", relabel_accuracy, ".3f")
tut.claim("At least 80% of the CVAE's samples are classified as the requested class (chance: "
          "10%)", accuracy >= 0.8, accuracy=accuracy, classifier_test_accuracy=clf_accuracy)
tut.claim("Decoding a test digit's code under each of the ten labels gives that label's digit: "
          "at least 80% are classified as the new label", relabel_accuracy >= 0.8,
          accuracy=relabel_accuracy)

# %% [markdown]
# ## 6. Walking the latent space: interpolation and arithmetic
#
# Decoding the encoder means along a path between two digits shows a gradual
# morph: no single step of the path makes most of the change. Spherical
# interpolation (White 2016, section 2.1) follows the great circle between the
# two codes instead of the straight chord. White's argument: under
# $\mathcal N(0, I_d)$ almost all the prior's mass lies near the sphere of radius
# $\sqrt d$, and the chord's midpoint cuts inside it. Two facts of our run qualify
# that picture. First, the encoder *means* are much shorter than $\sqrt d$. The
# KL term pulls the aggregate of the $q(z\mid x)$ towards $\mathcal N(0, I)$, whose
# second moment is $d$; that moment splits into the spread of the means,
# $\mathbb E\|\mu(x)\|^2$, and the spread each $q$ keeps,
# $\mathbb E \sum_d \sigma_d^2(x)$ (inactive units: mean near 0, $\sigma$ near 1).
# The means alone are therefore shorter than $\sqrt d$, and the codes we
# interpolate between are not on the prior's typical sphere to begin with.
# Second, slerp does not move the path to $\sqrt d$: it keeps the norm at the
# level of the two end points, while the chord's midpoint is shorter than both.
# That second fact is geometry, true of any two codes: the chord's midpoint
# $(a + b)/2$ is no longer than $(\|a\| + \|b\|)/2$ (the triangle inequality), and
# slerp's midpoint is no shorter than the shorter end (from its formula); the
# check below is a sanity check of the code, not a finding about the VAE.

# %%
pairs = [(0, 1), (2, 3), (4, 5)]
idx = {int(c): int(torch.nonzero(y_test == c)[0]) for c in range(10)}
rows, norms, step_share = [], {}, []
for method in ("linear", "spherical"):
    for a, b in pairs:
        path = interpolate(vae_model, X_test[idx[a]], X_test[idx[b]], 8, method=method)
        rows.append(path.images)
        steps = path.images.diff(dim=0).norm(dim=-1)  # image change per step
        step_share.append(float(steps.max() / steps.sum()))
        # Steps 3 and 4 of 0..7 straddle the middle of the path: their mean norm.
        norms.setdefault(method, []).append(float(path.codes[3:5].norm(dim=-1).mean()))
        if method == "linear":
            norms.setdefault("ends", []).append(float(path.codes[[0, -1]].norm(dim=-1).mean()))
            norms.setdefault("ends_min", []).append(float(path.codes[[0, -1]].norm(dim=-1).min()))
mid_lin, mid_sph = float(np.mean(norms["linear"])), float(np.mean(norms["spherical"]))
end_norm = float(np.mean(norms["ends"]))
# The codes' second moment, split into the means' part and the part each q keeps.
enc_loc, enc_scale = encode_batched(vae_model, X_test)
mean_sq = float(enc_loc.pow(2).sum(1).mean())
spread_sq = float(enc_scale.pow(2).sum(1).mean())

# %% tags=["hide-input"]
tut.record("midpoint_norm_linear", mid_lin, ".3f")
tut.record("midpoint_norm_spherical", mid_sph, ".3f")
tut.record("endpoint_norm", end_norm, ".3f")
tut.record("sqrt_latent_dim", math.sqrt(LATENT), ".3f")

tut.record("largest_step_share", max(step_share), ".3f")
tut.claim("A gradual morph: on every path no single step (of 7) makes more than 40% of the "
          "total image change", max(step_share) <= 0.4, largest_step_share=max(step_share))
tut.record("encoder_mean_sq_norm", mean_sq, ".3f")
tut.record("encoder_spread_sq", spread_sq, ".3f")
tut.claim(f"The encoder means are much shorter than sqrt(d) = {math.sqrt(LATENT):.0f}: the end "
          "points' mean norm is below 0.75 sqrt(d)", end_norm < 0.75 * math.sqrt(LATENT),
          endpoint_norm=end_norm, sqrt_d=math.sqrt(LATENT))
tut.claim("The second moment of the codes, E||mu||^2 + E sum sigma^2, is within 25% of d, and "
          "the means' part is less than half of it",
          0.75 * LATENT <= mean_sq + spread_sq <= 1.25 * LATENT and mean_sq < 0.5 * LATENT,
          mean_part=mean_sq, spread_part=spread_sq, d=LATENT)
tut.claim("By construction (geometry), a sanity check: slerp keeps the norm at the level of the "
          "end points (its midpoints are at least as long as the shorter end of each pair), "
          "while the chord's midpoints are shorter than both slerp's and the end points' mean",
          all(m >= e - 1e-6 for m, e in zip(norms["spherical"], norms["ends_min"], strict=True))
          and mid_lin < mid_sph and mid_lin < end_norm,
          midpoint_linear=mid_lin, midpoint_spherical=mid_sph, endpoint_norm=end_norm)

# %% [markdown]
# For arithmetic we use the shapes, whose factors we know: the difference
# between the mean codes of large and small shapes is a "scale" vector (White
# 2016, section 3.3); adding it to small shapes grows them, which we measure as
# the mean ink (pixel mass) of the decoded images.

# %%
fig, axes = subplots(1, 2, size=4.5)
plot_image_grid(torch.stack(rows), (8, 8), ax=axes[0],
                row_labels=[f"{m[:3]} {a}->{b}" for m in ("linear", "spherical")
                            for a, b in pairs],
                xlabel="step along the path", ylabel="path",
                title="Decoded paths between test digits:\nchord (lin) and slerp (sph)")

shape_model = shape_models[1.0]  # beta = 1 keeps the scale information (section 2)
codes = latent_means(shape_model, S_test)
scale = F_test[:, 1]
direction = attribute_vector(codes, scale > scale.median())
small = torch.nonzero(scale < scale.quantile(0.2)).flatten()[:6]
amounts = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0])
moved = decode_mean(shape_model, shift_codes(codes[small], direction, amounts))
ink = moved.sum(-1).mean(0)  # mean pixel mass at each amount
ink_ratio = float(ink[-1] / ink[0])
plot_image_grid(moved, SHAPE_HW, ax=axes[1],
                col_labels=[f"+{a:g}" for a in amounts.tolist()], xlabel="amount of 'scale' vector",
                ylabel="small test shape",
                title="Small test shapes plus a multiple\nof the 'scale' vector")
tut.savefig(fig, "latent_walks")

# %% tags=["hide-input"]
tut.record("arithmetic_ink_ratio_at_2", ink_ratio, ".3f")
tut.record("arithmetic_ink", ink)
tut.claim("Adding the scale vector grows the shapes: the mean ink rises at every step and is "
          "at least 1.3 times larger at +2", bool((ink.diff() > 0).all()) and ink_ratio >= 1.3,
          ink=ink, ratio=ink_ratio)

# %% [markdown]
# ## Summary
#
# - Whether units carry information depends on the objective: count them with the
#   active units of Burda et al. and the per-unit KL, before and after a remedy
#   (section 1: $\beta = 4$ switched off every unit, free bits kept all busy at a
#   worse test ELBO).
# - $\beta$ trades reconstruction for a smaller code; whether units align with
#   true factors can be measured only when the factors are known, and here no
#   difference in MIG between $\beta = 1$ and $\beta = 4$ was detected over three
#   training seeds.
# - $\mathcal L_k$ tightens with $k$ towards $\log p(x)$; report $\log p(x)$ with
#   its standard error and $\hat k$, not the ELBO, to compare models: section 3's
#   two models are ranked one way by the ELBO and the other way by $\log p(x)$.
# - Part of the gap is the encoder's: per-example optimisation recovers it.

# %% tags=["hide-input"]
tut.claim(f"Summary: beta = 4 switched off every unit; free bits kept all busy at a worse test "
          f"ELBO than the plain VAE (by more than {FACTOR} standard errors, paired over digits)",
          units["beta=4"] == 0 and units[FREE] == LATENT and free_vs_plain.falls_short(FACTOR),
          active_beta4=units["beta=4"], active_free_bits=units[FREE],
          test_elbo_free_bits=elbos[FREE].mean(), test_elbo_plain=elbos[PLAIN].mean(),
          **free_vs_plain.evidence(FACTOR))
tut.claim(f"Summary: a larger beta gave a smaller code at a worse test ELBO (by more than "
          f"{FACTOR} standard errors), and no MIG difference was detected over three seeds "
          "(within 2 standard errors either way)",
          shape_units[4.0].count < shape_units[1.0].count and beta_elbo.falls_short(FACTOR)
          and mig_diff.within(2), active_beta4=shape_units[4.0].count,
          active_beta1=shape_units[1.0].count, elbo_difference=beta_elbo.mean,
          elbo_difference_stderr=beta_elbo.stderr, mig_beta1=mig1, mig_beta4=mig4,
          mig_difference=mig_diff.mean, mig_difference_stderr=mig_diff.stderr)
tut.claim("Summary: the ELBO ranks the VAE above the IWAE, log p(x) ranks the IWAE above the VAE "
          "(each by more than 4 standard errors, as in section 3)",
          d_elbo < -4 * se_elbo and d_px > 4 * se_px,
          elbo_vae=cv.mean[0], elbo_iwae=ci.mean[0], log_px_vae=log_px["VAE"],
          log_px_iwae=log_px[IW], elbo_difference=d_elbo, stderr_elbo_difference=se_elbo,
          log_px_difference=d_px, stderr_log_px_difference=se_px)

# %% [markdown]
# ## Exercises
#
# - **iwae_bound**: write `iwae_bound(log_weights)`, the importance-weighted bound
#   $\mathcal L_K = \log \frac1K \sum_k w_k$ of section 3 for each example, from
#   log-weights of shape (K, B); it must stay accurate when the log-weights are
#   around $-10^4$ (where `exp` underflows). Start with
#   `vitoolkit exercise start iwae_bound` (it writes `iwae_bound.py`), then grade
#   it with `vitoolkit exercise check iwae_bound iwae_bound.py`
#   (generally `vitoolkit exercise check NAME FILE`).

# %%
tut.finish()
