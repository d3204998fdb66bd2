"""Beyond the plain VAE: collapse, disentanglement, tighter bounds and the amortisation gap.

Question: Where does the plain VAE fall short, and what do annealing, free bits, beta and IWAE fix?

Six experiments on data that need no download (scikit-learn's 8x8 digits,
binarised, and procedural shapes whose generating factors we know), each
answering one question with numbers printed and saved: which latent units a VAE
actually uses (Burda et al. 2015, section 5.2) and how KL annealing, free bits
and beta change that; what beta does to the alignment of units with true
factors (Higgins et al. 2017; Chen et al. 2018); how much tighter the IWAE bound
is and where log p(x) lies (Burda et al. 2015); how much of the gap to log p(x)
is the encoder's fault (Cremer, Li & Duvenaud 2018); generating a chosen class
with a conditional VAE (Sohn et al. 2015); and walking the latent space.
"""

# %% [markdown]
# ## 0. Set-up
#
# The networks are small (two hidden layers), so one CPU thread is as fast as two
# and avoids thread contention on a busy machine. Every model shares the
# architecture below and differs only in the objective it is trained with.

# %%
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

from vitoolkit.datasets import SHAPES_FACTOR_NAMES, load_digits, load_shapes
from vitoolkit.plotting import subplots
from vitoolkit.plotting.vae_beyond import (
    plot_active_units,
    plot_bounds_vs_samples,
    plot_curves,
    plot_factor_matrix,
    plot_gaps,
    plot_image_grid,
    plot_kl_per_dimension,
)
from vitoolkit.tutorial import Tutorial
from vitoolkit.vae import VAE, annealing, train
from vitoolkit.vae.diagnostics import (
    active_units,
    amortisation_gap,
    check_posterior_collapse,
    factor_scores,
    kl_per_dimension,
)
from vitoolkit.vae.latent import (
    attribute_vector,
    conditional_grid,
    decode_mean,
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
                 validation=kwargs.pop("validation", X_val), seed=tut.seed, progress=False,
                 **kwargs)


def test_elbo(model, x=X_test, offset=0):
    """Mean ELBO (beta = 1, nats per example) on held-out data."""
    with torch.no_grad():
        return float(model.elbo(x, generator=tut.generator(offset)).mean())


# %% [markdown]
# ## 1. The KL term collapsing, and four remedies
#
# The ELBO is $\mathbb E_q[\log p(x\mid z)] - \sum_d \mathrm{KL}(q(z_d\mid x)\,\|\,p(z_d))$
# (Kingma & Welling 2013, eq. 10). A unit whose posterior equals the prior for
# every $x$ pays no KL and tells the decoder nothing: it has *collapsed*. Burda
# et al. (2015, section 5.2, eq. 22) count a unit $u$ as **active** when
# $A_u = \mathrm{Cov}_x(\mathbb E_{q(u\mid x)}[u]) > 0.01$.
#
# Early in training the decoder is poor, the KL term is the easy part of the
# loss to reduce, and units switch off; some never come back. Remedies, each a
# setting of the same `train` call (configured as data, one loop):
#
# - **beta below or above 1**: $\beta < 1$ weakens the KL pressure; $\beta > 1$
#   (Higgins et al. 2017) strengthens it and makes collapse worse;
# - **linear KL warm-up** (Bowman et al. 2016, section 3.1; Sønderby et al.
#   2016, section 2.3): $\beta$ grows from 0 to 1 over the first half of training;
# - **cyclical annealing** (Fu et al. 2019, section 3): the warm-up repeated;
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
models, histories, rate, units, elbos = {}, {}, {}, {}, {}
for name, kwargs in REMEDIES:
    model = VAE(64, LATENT, HIDDEN, seed=tut.seed)
    histories[name] = fit(model, **kwargs)
    models[name] = model
    rate[name] = kl_per_dimension(model, X_test).mean(0)
    units[name] = active_units(model, X_test).count
    elbos[name] = test_elbo(model)
    key = name.split(" (")[0].replace(" ", "_").replace("=", "")
    tut.record(f"active_units_{key}", units[name])
    tut.record(f"test_elbo_{key}", elbos[name], ".3f")

collapse = check_posterior_collapse(models["beta=4"], X_test)
tut.record("beta4_fraction_collapsed", collapse.fraction_collapsed, ".2f")
best = max(elbos, key=elbos.get)
tut.record("best_test_elbo_setting", best)


def recovery_epoch(history, needed=LATENT // 2):
    """First epoch with at least ``needed`` active validation units (None: never)."""
    hits = [e for e, a in zip(history.epoch, history.val_active_units, strict=True) if a >= needed]
    return hits[0] if hits else None


recovery = {name: recovery_epoch(h) for name, h in histories.items()}
tut.record("epoch_reaching_half_units_active", recovery)

# %%
fig, axes = subplots(1, 2, size=5)
plot_kl_per_dimension(
    rate, threshold=0.5, ax=axes[0],
    title=f"beta=4 keeps {units['beta=4']} of {LATENT} units;\n"
          "free bits hold each near its 0.5-nat floor",
)
plot_active_units(units, latent_dim=LATENT, ax=axes[1],
                  title=f"Active units on test digits\n(best test ELBO: {best})")
tut.savefig(fig, "remedies_rate_and_active_units")


def _when(name):
    return "never" if recovery[name] is None else f"epoch {recovery[name]}"


fig, ax = subplots(1, 1, size=5)
plot_curves({k: h.val_active_units for k, h in histories.items()}, ax=ax,
            ylabel="active units (validation digits)",
            title=f"Half the units active: free bits at {_when('free bits 0.5')}, plain at "
                  f"{_when('plain (beta=1)')},\nbeta=4 {_when('beta=4')}")
tut.savefig(fig, "remedies_active_units_per_epoch")

# %% [markdown]
# **What to see.** Every run starts with all units inactive: a fresh encoder
# maps all digits to nearly the same code, and the cheapest way to lower the
# loss is to drive the KL to zero. The plain VAE climbs out after a number of
# epochs; free bits, $\beta < 1$ and the annealing schedules climb out sooner,
# and $\beta = 4$ never does (the check of Lucas et al. 2019, Definition 1,
# reports the fraction of collapsed units printed above). In the full run a
# couple of units switch off again late in training for the plain and warm-up
# models (the KL pressure never stops), but not under free bits. The per-unit rate
# (first figure) shows how unevenly the information is spread over the units
# that are active. The test ELBO, printed above, is the arbiter: keeping more
# units busy (free bits) does not by itself give a better model of the data.

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
S_test, F_test = load_shapes(tut.choose(3000, 10000), seed=tut.seed + 1)
SHAPE_HW = (16, 16)
SHAPE_LATENT = 8
shape_epochs = tut.choose(20, 60)
BETAS = [1.0, 4.0]
shape_models, shape_scores = {}, {}
for beta in BETAS:
    model = VAE(256, SHAPE_LATENT, (256, 128), seed=tut.seed)
    train(model, S_train, epochs=shape_epochs, batch_size=BATCH, beta=beta, seed=tut.seed,
          progress=False)
    shape_models[beta] = model
    shape_scores[beta] = factor_scores(model, S_test, F_test)
    tut.record(f"shapes_mig_beta{beta:g}", shape_scores[beta].mig, ".3f")
    tut.record(f"shapes_active_units_beta{beta:g}", active_units(model, S_test).count)
    tut.record(f"shapes_test_elbo_beta{beta:g}", test_elbo(model, S_test), ".2f")

# %%
fig, axes = subplots(1, 2, size=4.5)
for ax, beta in zip(axes, BETAS, strict=True):
    s = shape_scores[beta]
    plot_factor_matrix(s.mutual_information, factor_names=list(SHAPES_FACTOR_NAMES), ax=ax,
                       title=f"beta={beta:g}: MIG = {s.mig:.2f}")
fig.suptitle("Mutual information between latent units and true factors")
tut.savefig(fig, "beta_vae_factor_information")

# Traverse the active units (up to 5, busiest first) around the code of one test shape.
fig, axes = subplots(1, 2, size=4.5)
for ax, beta in zip(axes, BETAS, strict=True):
    model = shape_models[beta]
    act = active_units(model, S_test)
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
                    title=f"beta={beta:g}: {act.count} active units")
fig.suptitle("Traversals: which factor each active unit moves")
tut.savefig(fig, "beta_vae_traversals")

# %% [markdown]
# **What to see.** Read the MIG values and the heatmaps together: a
# disentangled unit is a row with one bright cell. Burgess et al. (2018,
# "Understanding disentangling in beta-VAE", section 4) explain what a larger
# $\beta$ does: it limits the information the code may carry, and the VAE spends
# that budget first on the factors that improve the reconstruction most. Here
# that is position (one unit each for x and y); scale comes next, and shape
# and rotation, a few pixels of difference at 16 x 16, are dropped by every
# model. MIG rewards the clean x and y units and penalises the factors no unit
# captures. Locatello et al. (2019) show that such scores vary a lot with the
# seed, so treat one run as an illustration, not a ranking.

# %% [markdown]
# ## 3. Tighter bounds: IWAE, and $\log p(x)$ by importance sampling
#
# With $k$ samples $z_j \sim q(z\mid x)$, the IWAE bound (Burda et al. 2015, eq. 8)
# $\mathcal L_k = \mathbb E[\log \frac1k \sum_j p(x, z_j)/q(z_j\mid x)]$ satisfies
# $\mathrm{ELBO} = \mathcal L_1 \le \mathcal L_k \le \mathcal L_{k+1} \le \log p(x)$
# (their Theorem 1), and $\mathcal L_k \to \log p(x)$: with $k = 5000$ it is the
# standard estimate of the test log-likelihood. Training on $\mathcal L_k$
# instead of the ELBO gives the IWAE. Both models below have the same networks.

# %%
iwae_k = 5
iwae_model = VAE(64, LATENT, HIDDEN, seed=tut.seed)
fit(iwae_model, objective="iwae", num_samples=iwae_k)
vae_model = models["plain (beta=1)"]
ks = tut.choose([1, 5, 50, 500], [1, 5, 50, 500, 5000])
ll_k = tut.choose(1000, 5000)
bounds, log_px = {}, {}
for i, (name, model) in enumerate([("VAE", vae_model), (f"IWAE (k={iwae_k})", iwae_model)]):
    with torch.no_grad():
        bounds[name] = [float(model.iwae_bound(X_test, k, generator=tut.generator(10 * i + j))
                              .mean()) for j, k in enumerate(ks)]
        log_px[name] = float(model.log_likelihood(X_test, ll_k, generator=tut.generator(99))
                             .mean())
tut.record("test_elbo", test_elbo(vae_model), ".3f")
tut.record("test_iwae_k", ks)
tut.record("test_iwae_vae", bounds["VAE"])
tut.record("test_iwae_max_k", bounds["VAE"][-1], ".3f")
tut.record("test_log_px_vae", log_px["VAE"], ".3f")
tut.record("test_iwae_iwae_model", bounds[f"IWAE (k={iwae_k})"])
tut.record("test_log_px_iwae_model", log_px[f"IWAE (k={iwae_k})"], ".3f")
tut.record("active_units_iwae_model", active_units(iwae_model, X_test).count)

fig, ax = subplots(1, 1, size=5)
gain = bounds["VAE"][-1] - bounds["VAE"][0]
iw = f"IWAE (k={iwae_k})"
plot_bounds_vs_samples(
    ks, bounds, log_likelihood=log_px, ax=ax,
    title=f"L_k rises with k (VAE: +{gain:.2f} nats from k=1 to {ks[-1]});\n"
          f"IWAE training: log p(x) {log_px[iw] - log_px['VAE']:+.2f} nats, "
          f"ELBO {bounds[iw][0] - bounds['VAE'][0]:+.2f}",
)
tut.savefig(fig, "iwae_bounds_vs_k")

# %% [markdown]
# **What to see.** Each curve rises monotonically and flattens just below its
# dashed $\log p(x)$ line (estimated with $k = 5000$ in the full run). The ELBO
# understates $\log p(x)$ by the gain in the title. Training on $\mathcal L_k$ changes
# the model itself: Burda et al. (2015, Table 1) found IWAE models with a higher
# $\log p(x)$ but a lower ELBO than VAEs of the same size, the pattern to compare
# with the numbers above.

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
# (their section 5.3); we measure both on our small model.

# %%
n_gap = tut.choose(40, 200)
gap_steps = tut.choose(150, 500)
gap_results = {}
for name, data in [("train", X_train[:n_gap]), ("test", X_test[:n_gap])]:
    gap_results[name] = amortisation_gap(vae_model, data, steps=gap_steps, num_samples=8,
                                         eval_samples=tut.choose(500, 2000),
                                         generator=tut.generator(7))
    for field in ("inference_gap", "approximation_gap", "amortisation_gap"):
        tut.record(f"{field}_{name}", getattr(gap_results[name], field).mean(), ".3f")
g = gap_results["test"]
tut.record("amortisation_gap_mean", g.amortisation_gap.mean(), ".3f")
tut.record("approximation_gap_mean", g.approximation_gap.mean(), ".3f")
share = float(g.amortisation_gap.mean() / g.inference_gap.mean())
tut.record("amortisation_share_of_inference_gap_test", share, ".2f")

fig, ax = subplots(1, 1, size=5)
plot_gaps({k: (v.approximation_gap.mean(), v.amortisation_gap.mean())
           for k, v in gap_results.items()}, ax=ax, xlabel="digits the gap is measured on",
          title=f"On test digits the encoder causes {100 * share:.0f}% of the inference gap,\n"
                f"the diagonal family {100 * (1 - share):.0f}%")
tut.savefig(fig, "amortisation_gap")

# %% [markdown]
# **What to see.** The bars add up to the inference gap by construction. The
# amortisation part is the room a better (or per-example refined) encoder
# could recover without changing the decoder or the variational family; the
# approximation part needs a richer family (full covariance, flows). Which
# part is larger depends on the model, the data and how long it trained: in
# our full run the encoder's share is close to half and its gap is larger on
# test than on training digits, as Cremer et al. (section 5.3) found; the
# short quick run shows a smaller share.

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
      validation=(X_val, y_val), seed=tut.seed, progress=False)
per_class = 8
wanted = torch.arange(10).repeat_interleave(per_class)
onehot = F.one_hot(wanted, 10).float()
generated = cvae.sample(len(wanted), y=onehot, generator=tut.generator(3))
clf = LogisticRegression(max_iter=2000).fit(X_train.numpy(), y_train.numpy())
tut.record("classifier_test_accuracy", clf.score(X_test.numpy(), y_test.numpy()), ".3f")
accuracy = float((clf.predict(generated.numpy()) == wanted.numpy()).mean())
tut.record("cvae_generated_class_accuracy", accuracy, ".3f")

fig, axes = subplots(1, 2, size=4.5)
plot_image_grid(generated.reshape(10, per_class, 64), (8, 8), ax=axes[0],
                row_labels=[str(c) for c in range(10)], xlabel="prior sample",
                ylabel="requested class",
                title=f"CVAE samples: {100 * accuracy:.0f}% classified as requested")
styles = latent_means(cvae, X_test[:6], F.one_hot(y_test[:6], 10).float())
grid = conditional_grid(cvae, styles, torch.eye(10))
plot_image_grid(grid, (8, 8), ax=axes[1], col_labels=[str(c) for c in range(10)],
                row_labels=[f"test {int(c)}" for c in y_test[:6]], xlabel="decoded as class",
                ylabel="style from test digit", title="Same z, new label: style kept")
tut.savefig(fig, "cvae_chosen_class")

# %% [markdown]
# ## 6. Walking the latent space: interpolation and arithmetic
#
# Decoding the encoder means along a path between two digits shows a smooth
# morph where the plain autoencoder of tutorial 05 had holes. Spherical
# interpolation (White 2016, section 2.1) keeps the path at the norm the prior
# expects, $\sqrt{d}$ for $\mathcal N(0, I_d)$, instead of cutting through the low-norm centre.
#
# For arithmetic we use the shapes, whose factors we know: the difference
# between the mean codes of large and small shapes is a "scale" vector (White
# 2016, section 3.3); adding it to small shapes should grow them, which we
# measure as the mean ink (pixel mass) of the decoded images.

# %%
pairs = [(0, 1), (2, 3), (4, 5)]
idx = {int(c): int(torch.nonzero(y_test == c)[0]) for c in range(10)}
rows, norms = [], {}
for method in ("linear", "spherical"):
    for a, b in pairs:
        path = interpolate(vae_model, X_test[idx[a]], X_test[idx[b]], 8, method=method)
        rows.append(path.images)
        norms.setdefault(method, []).append(float(path.codes[4].norm()))
tut.record("midpoint_norm_linear", float(np.mean(norms["linear"])), ".3f")
tut.record("midpoint_norm_spherical", float(np.mean(norms["spherical"])), ".3f")

fig, axes = subplots(1, 2, size=4.5)
plot_image_grid(torch.stack(rows), (8, 8), ax=axes[0],
                row_labels=[f"{m[:3]} {a}->{b}" for m in ("linear", "spherical")
                            for a, b in pairs],
                xlabel="step along the path", ylabel="path",
                title="Interpolated digits morph smoothly")

shape_model = shape_models[1.0]  # beta = 1 keeps the scale information (section 2)
codes = latent_means(shape_model, S_test)
scale = F_test[:, 1]
direction = attribute_vector(codes, scale > scale.median())
small = torch.nonzero(scale < scale.quantile(0.2)).flatten()[:6]
amounts = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0])
moved = decode_mean(shape_model, shift_codes(codes[small], direction, amounts))
ink = moved.sum(-1).mean(0)  # mean pixel mass at each amount
tut.record("arithmetic_ink_ratio_at_2", float(ink[-1] / ink[0]), ".3f")
plot_image_grid(moved, SHAPE_HW, ax=axes[1],
                col_labels=[f"+{a:g}" for a in amounts.tolist()], xlabel="amount of 'scale' vector",
                ylabel="small test shape",
                title=f"z + 2 v_scale: {float(ink[-1] / ink[0]):.1f}x the ink")
tut.savefig(fig, "latent_walks")

# %% [markdown]
# ## Summary
#
# - Units that carry no information are common; count them with the active
#   units of Burda et al. and the per-unit KL, before and after a remedy.
# - $\beta$ trades reconstruction for a factorised code; whether units align with
#   true factors can be measured only when the factors are known.
# - $\mathcal L_k$ tightens with $k$ towards $\log p(x)$; report $\log p(x)$, not the
#   ELBO, to compare models.
# - Part of the gap is the encoder's: per-example optimisation recovers it.

# %%
tut.finish()
