# %% [markdown]
# # The other KL for the encoder: wake-sleep, reweighted wake-sleep and Kingma & Welling's Figure 2.
#
# Question: Can a VAE's encoder be trained with KL(p || q) instead of KL(q || p), and what changes?
#
# The VAE trains its encoder q(z|x) inside the ELBO, that is by the reverse KL,
# KL(q(z|x) || p(z|x)). Two older algorithms train it by the forward KL,
# KL(p(z|x) || q(z|x)), which needs posterior samples (or weights) rather than a
# reparameterisation: wake-sleep (Hinton, Dayan, Frey & Neal 1995) and reweighted
# wake-sleep (Bornschein & Bengio 2015; Le, Kosiorek, Siddharth, Teh & Wood 2019).
# We measure what each direction does to the encoder on a model whose posterior is
# known exactly, compare the four objectives on binarised digits by test
# log p(x), and reproduce the shape of Kingma & Welling's (2013) Figure 2.

# %% [markdown]
# ## 0. Set-up: the two phases
#
# **Wake-sleep.** *Wake:* for a real $x$, draw $z \sim q_\phi(z \mid x)$ and raise
# $\log p_\theta(x, z)$ (the decoder's step). *Sleep:* dream $z \sim p(z)$,
# $x \sim p_\theta(x \mid z)$, and raise $\log q_\phi(z \mid x)$ on the dream: a step on
# $\mathbb E_{p_\theta(x)}\,\mathrm{KL}(p_\theta(z \mid x) \,\|\, q_\phi(z \mid x))$, the forward
# KL, averaged over the model's own data rather than the real data.
#
# **Reweighted wake-sleep (RWS).** For a real $x$ draw $z_1..z_K \sim q_\phi(z \mid x)$,
# $w_k = p_\theta(x, z_k)/q_\phi(z_k \mid x)$, $\tilde w_k = w_k / \sum_j w_j$. The decoder
# raises $\sum_k \tilde w_k \log p_\theta(x, z_k)$ (the IWAE bound's gradient in $\theta$);
# the encoder raises $\sum_k \tilde w_k \log q_\phi(z_k \mid x)$, a self-normalised estimate
# of $-\nabla_\phi \mathrm{KL}(p_\theta(z \mid x) \,\|\, q_\phi(z \mid x))$ on the *real* $x$
# (the "wake-phase" encoder update; biased for finite $K$, consistent as $K$ grows).
#
# All four objectives run through `vitoolkit.vae.train(..., objective=...)` with
# `"elbo"`, `"iwae"`, `"wake_sleep"` or `"rws"`.

# %%
import math
import warnings

import torch

from vitoolkit.course import Tutorial
from vitoolkit.course.evidence import between, paired_difference
from vitoolkit.datasets import load_digits
from vitoolkit.divergences import KHAT_THRESHOLD, UnreliableEstimateWarning
from vitoolkit.plotting import subplots
from vitoolkit.plotting.discrete import plot_curves_xy, plot_ratio_bars
from vitoolkit.plotting.vae import plot_metric_bars
from vitoolkit.vae import VAE, linear_gaussian_evidence, linear_gaussian_posterior, train

tut = Tutorial("08_wake_sleep")
X, _ = load_digits(binarize=True, split="train")
X_val, _ = load_digits(binarize=True, split="val")
X_test, _ = load_digits(binarize=True, split="test")
N = X.shape[0]
K_EVAL = 1000  # importance samples for test log p(x)


def is_estimate(model, x, k, offset):
    """Importance-sampled log p(x) with its Pareto k-hat per example (warnings counted, not shown)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreliableEstimateWarning)
        return model.log_likelihood_estimate(x, k, generator=tut.generator(offset))


# %% [markdown]
# ## 1. On a model whose posterior is known: how wide is each encoder?
#
# A VAE with an affine decoder and Gaussian noise, $x = Wz + b + \sigma\varepsilon$, is
# probabilistic PCA: $p(z \mid x) = \mathcal N(M^{-1}W^\top(x - b)/\sigma^2,\ M^{-1})$ with
# $M = I + W^\top W/\sigma^2$ (Bishop PRML eq. 12.42). We choose $W$ with nearly parallel
# columns, so the posterior of the two latents is strongly correlated, fix the decoder, and
# train only a diagonal Gaussian encoder (linear in $x$, so it can represent either
# optimum) on data drawn from the model (so wake-sleep's dreams come from the same
# distribution as the data, and its forward KL is the one on the data). For a diagonal
# $q$, the reverse KL gives each coordinate the standard deviation $1/\sqrt{M_{ii}}$
# (too narrow) and the forward KL the marginal $\sqrt{(M^{-1})_{ii}}$ (Bishop PRML
# section 10.1.2; tutorial 03). We report the
# encoder's width divided by the true marginal width: 1 is the forward-KL optimum.

# %%
D_LG, SIGMA = 8, 0.5
g = tut.generator(30)
u, v = torch.randn(D_LG, generator=g), torch.randn(D_LG, generator=g)
v = v - (v @ u) / (u @ u) * u
v = v / v.norm() * u.norm()
W = 0.6 * torch.stack([u, 0.9 * u + math.sqrt(1 - 0.81) * v], dim=1)  # cos(angle) = 0.9


def linear_gaussian_vae():
    model = VAE(D_LG, 2, hidden_dims=(), likelihood="gaussian", observation_scale=SIGMA,
                seed=tut.seed)
    with torch.no_grad():
        model.decoder[0].weight.copy_(W)
        model.decoder[0].bias.zero_()
    for p in model.decoder.parameters():
        p.requires_grad_(False)  # the model is fixed; only the encoder learns
    return model


truth = linear_gaussian_vae()
X_lg = truth.sample(2000, mean=False, generator=tut.generator(31))
X_lg_test = truth.sample(300, mean=False, generator=tut.generator(32))
# the exact posterior's covariance (the same for every x): its diagonal gives the true
# marginal widths, the inverse of its precision's diagonal the reverse-KL optimum
cov = linear_gaussian_posterior(truth, X_lg_test[:1]).covariance_matrix[0]
marginal_std = cov.diagonal().sqrt()
reverse_opt = float((torch.linalg.inv(cov).diagonal().rsqrt() / marginal_std).mean())
exact_lg = linear_gaussian_evidence(truth, X_lg_test)  # log p(x) per test point, exact

encoders = {"ELBO (reverse KL)": ("elbo", 1), "wake-sleep": ("wake_sleep", 1),
            "RWS, K=5": ("rws", 5), "RWS, K=50": ("rws", 50)}
width, lg_elbo, lg_is_gap = {}, {}, {}
for name, (objective, k) in encoders.items():
    model = linear_gaussian_vae()
    train(model, X_lg, epochs=30, batch_size=100, lr=2e-2, objective=objective,
          num_samples=k, seed=tut.seed, progress=tut.progress)
    with torch.no_grad():
        # encoder std / true marginal std, averaged over test points and the two latents
        width[name] = float((model.encode(X_lg_test).stddev.double() / marginal_std).mean())
        # per test point: the ELBO (10 draws averaged) and how far a 100-sample
        # importance-sampled log p(x) falls below the exact value
        lg_elbo[name] = torch.stack([model.elbo(X_lg_test, generator=tut.generator(33 + i))
                                     for i in range(10)]).double().mean(0)
    lg_is_gap[name] = exact_lg.double() - is_estimate(model, X_lg_test, 100, 40).value.double()

# %% tags=["hide-input"]
tut.record("log_likelihood_num_samples", K_EVAL)
tut.record("posterior_correlation", cov[0, 1] / marginal_std.prod(), ".3f")
tut.record("reverse_kl_optimum_width_ratio", reverse_opt, ".3f")
tut.record("exact_log_px_linear_gaussian", exact_lg.mean(), ".3f")
for name in encoders:
    tut.record(f"width_ratio[{name}]", width[name], ".3f")
    tut.record(f"elbo[{name}]", lg_elbo[name].mean(), ".3f")
    tut.record(f"is_gap_k100[{name}]", lg_is_gap[name].mean(), ".4f")

ELBO_ENC, WS = "ELBO (reverse KL)", "wake-sleep"
tut.claim("The ELBO-trained encoder settles at the reverse-KL optimum: its width is within "
          "10% of 1/sqrt(M_ii), well below the true marginal width (below 0.8 of it).",
          abs(width[ELBO_ENC] / reverse_opt - 1) < 0.1 and width[ELBO_ENC] < 0.8,
          width_ratio=width[ELBO_ENC], reverse_optimum=reverse_opt, tolerance=0.1)
tut.claim("Wake-sleep's encoder settles at the forward-KL optimum: within 10% of the true "
          "marginal width.", abs(width[WS] - 1) < 0.1, width_ratio=width[WS], tolerance=0.1)
# two-sided, with a margin of 0.02 (in units of the true width) on each side
MARGIN = 0.02
tut.claim("RWS with K = 5 lies between the two, by more than 0.02 of the true width on both "
          "sides; with K = 50 it has moved towards the true width (wider than with K = 5 by more "
          "than 0.02).",
          between(width["RWS, K=5"], width[ELBO_ENC] + MARGIN, width[WS] - MARGIN)
          and width["RWS, K=50"] > width["RWS, K=5"] + MARGIN, widths=width, margin=MARGIN)
tut.claim("With K = 50, RWS's encoder is within 10% of the true marginal width.",
          abs(width["RWS, K=50"] - 1) < 0.1, width_ratio=width["RWS, K=50"], tolerance=0.1)
elbo_vs = {n: paired_difference(lg_elbo[ELBO_ENC], lg_elbo[n]) for n in encoders if n != ELBO_ENC}
tut.claim("The ELBO-trained encoder has the highest test ELBO of the four (it maximises the ELBO): "
          "above each other encoder's, paired over the 300 test points, by more than 3 standard "
          "errors ...", all(d.exceeds(3) for d in elbo_vs.values()),
          **{f"elbo_minus[{n}]": d.evidence(3) for n, d in elbo_vs.items()})
gap_d = paired_difference(lg_is_gap[ELBO_ENC], lg_is_gap[WS])
tut.claim("... but wake-sleep's wider encoder is the better importance sampler: its 100-sample "
          "estimate of log p(x) is closer to the exact value (the gap below it is smaller, paired "
          "over the test points, by more than 3 standard errors).", gap_d.exceeds(3),
          gap_nats={n: float(v.mean()) for n, v in lg_is_gap.items()},
          elbo_encoder_gap_minus_wake_sleep_gap=gap_d.evidence(3))

# %%
fig, ax = subplots(1, 1, size=5.5)
plot_ratio_bars(list(width), list(width.values()), ax=ax,
                references={"true marginal (forward KL)": 1.0,
                            "1/sqrt(M_ii) (reverse KL)": reverse_opt},
                ylabel="encoder std / true marginal std",
                title="Encoder width relative to the true posterior marginal")
tut.savefig(fig, "encoder_width")

# %% [markdown]
# ## 2. Kingma & Welling's Figure 2: AEVB against wake-sleep
#
# Kingma & Welling (2013), Figure 2, plot the variational lower bound against the number
# of training examples evaluated, for AEVB and wake-sleep with the same networks, for
# several latent sizes; AEVB reached a higher bound faster in every panel. We repeat it
# in shape on the digits: one tanh hidden layer of 200 units (their Appendix C uses one
# hidden layer), mini-batches of 100, for $N_z \in \{2, 5, 10, 20\}$. The bound of a
# wake-sleep model uses its own encoder as $q$, as theirs did. Solid: training average
# over each epoch; dashed: held-out (validation) bound after each epoch.

# %%
EPOCHS = tut.choose(12, 40)
NET = dict(hidden_dims=(200,), activation="tanh", seed=tut.seed)
FIT = dict(epochs=EPOCHS, batch_size=100, lr=3e-3, validation=X_val, seed=tut.seed,
           progress=tut.progress, restore_best=False)
latent_sizes = [2, 5, 10, 20]
kw_runs, kw_models = {}, {}
for nz in latent_sizes:
    for method, objective in (("AEVB", "elbo"), ("wake-sleep", "wake_sleep")):
        model = VAE(64, nz, **NET)
        kw_runs[nz, method] = train(model, X, objective=objective, **FIT)
        kw_models[nz, method] = model


def val_bound_per_digit(model, offset):
    """The final model's held-out bound for each validation digit (10 draws averaged)."""
    with torch.no_grad():
        return torch.stack([model.elbo(X_val, generator=tut.generator(offset + j))
                            for j in range(10)]).double().mean(0)


def examples_to_reach(hist, level):
    """Training examples seen when the held-out bound first reaches ``level`` (inf if never)."""
    return next((e * N for e, v in zip(hist.epoch, hist.val_elbo, strict=True) if v >= level),
                math.inf)


# %% tags=["hide-input"]
for (nz, method), run in kw_runs.items():
    tut.record(f"final_val_bound[N_z={nz}][{method}]", run.val_elbo[-1], ".2f")
mean_gap = {nz: (sum(kw_runs[nz, "AEVB"].val_elbo) - sum(kw_runs[nz, "wake-sleep"].val_elbo))
            / EPOCHS for nz in latent_sizes}
tut.record("aevb_minus_wake_sleep_mean_over_run", mean_gap)
# the final held-out bound, AEVB minus wake-sleep, paired over the validation digits
final_gap = {nz: paired_difference(val_bound_per_digit(kw_models[nz, "AEVB"], 70),
                                   val_bound_per_digit(kw_models[nz, "wake-sleep"], 70))
             for nz in latent_sizes}
tut.record("aevb_minus_wake_sleep_final_per_digit", {nz: d.mean for nz, d in final_gap.items()}, ".3f")
tut.claim("For N_z = 5, 10 and 20, AEVB ends with a higher held-out bound than wake-sleep: paired "
          "over the validation digits, by more than 2 standard errors.",
          all(final_gap[nz].exceeds(2) for nz in (5, 10, 20)),
          **{f"aevb_minus_wake_sleep[N_z={nz}]": final_gap[nz].evidence(2) for nz in (5, 10, 20)})
every_panel = tut.claim("In every panel, N_z = 2 included, AEVB ends with a higher held-out "
                        "bound than wake-sleep (paired over the digits, more than 2 standard "
                        "errors).", all(d.exceeds(2) for d in final_gap.values()), full_only=True,
                        **{f"aevb_minus_wake_sleep[N_z={nz}]": d.evidence(2)
                           for nz, d in final_gap.items()})
speed = {nz: examples_to_reach(kw_runs[nz, "AEVB"], kw_runs[nz, "wake-sleep"].val_elbo[-1])
         for nz in latent_sizes}
tut.record("aevb_examples_to_reach_wake_sleep_final", speed)
tut.claim("In every panel AEVB reaches wake-sleep's final held-out bound before the end of "
          "training: it gets there with fewer examples.",
          max(speed.values()) < EPOCHS * N, full_only=True, examples=speed, total=EPOCHS * N)

# %%
fig, axes = subplots(1, 4, size=3.4, sharey=True)
for i, nz in enumerate(latent_sizes):
    curves, styles = {}, {}
    for j, method in enumerate(("AEVB", "wake-sleep")):
        h = kw_runs[nz, method]
        seen = [e * N for e in h.epoch]
        curves[f"{method}, train"] = (seen, h.train_elbo)
        curves[f"{method}, held-out"] = (seen, h.val_elbo)
        styles[f"{method}, train"] = {"color": ["#0072B2", "#D55E00"][j], "ls": "-"}
        styles[f"{method}, held-out"] = {"color": ["#0072B2", "#D55E00"][j], "ls": "--"}
    plot_curves_xy(curves, ax=axes[i], styles=styles, logx=True,
                   xlabel="training examples seen", ylabel="lower bound (nats)" if i == 0 else "",
                   title=f"N_z = {nz}",
                   legend="outside" if i == 3 else "none",
                   ylim=(min(h.val_elbo[-1] for h in kw_runs.values()) - 6,
                         max(max(h.train_elbo[-1], h.val_elbo[-1]) for h in kw_runs.values())
                         + 1))
fig.suptitle("Lower bound against training examples seen, AEVB and wake-sleep "
             "(Kingma & Welling 2013, Fig. 2, in shape)")
tut.savefig(fig, "kingma_welling_figure2")

# %% [markdown]
# ## 3. RWS against the VAE and IWAE on binarised digits
#
# With $N_z = 10$ and the same networks and epochs as above, we add IWAE (Burda et al.
# 2015, $K = 5$) and RWS ($K = 5$) to the AEVB (VAE) and wake-sleep runs of section 2, and
# compare test $\log p(x)$, estimated by importance sampling with $k = 1000$ samples from
# each model's own encoder (Burda et al., section 5). The Pareto $\hat k$ of each test
# digit's importance weights says whether its estimate can be trusted
# ($\hat k > 0.7$: no; Vehtari et al. 2024). All four models see the same test digits, so
# every comparison is paired digit by digit.

# %%
NZ, K_TRAIN = 10, 5
digit_models = {"VAE (ELBO)": kw_models[NZ, "AEVB"], "wake-sleep": kw_models[NZ, "wake-sleep"]}
for name, objective in ((f"IWAE, K={K_TRAIN}", "iwae"), (f"RWS, K={K_TRAIN}", "rws")):
    model = VAE(64, NZ, **NET)
    train(model, X, objective=objective, num_samples=K_TRAIN, **FIT)
    digit_models[name] = model
per_digit, unreliable, test_elbo = {}, {}, {}
for i, (name, model) in enumerate(digit_models.items()):
    est = is_estimate(model, X_test, K_EVAL, 50 + i)
    per_digit[name] = est.value.double()  # test log p(x), one per digit
    unreliable[name] = (est.khat > KHAT_THRESHOLD).double()  # 1 where k-hat > 0.7
    with torch.no_grad():
        test_elbo[name] = torch.stack([model.elbo(X_test, generator=tut.generator(60 + j))
                                       for j in range(10)]).double().mean(0)
RWS, IWAE, VAE_NAME, WS = f"RWS, K={K_TRAIN}", f"IWAE, K={K_TRAIN}", "VAE (ELBO)", "wake-sleep"
# each model minus the VAE, digit by digit
diff = {n: paired_difference(per_digit[n], per_digit[VAE_NAME]) for n in per_digit if n != VAE_NAME}

# %% tags=["hide-input"]
tut.record("test_digits", len(X_test))
for name in digit_models:
    tut.record(f"test_log_px[{name}]", per_digit[name].mean(), ".2f")
    tut.record(f"test_elbo[{name}]", test_elbo[name].mean(), ".2f")
    tut.record(f"test_digits_khat_above_0.7[{name}]", int(unreliable[name].sum()))
d_rv = diff[RWS]
tut.record("rws_minus_vae_test_log_px", d_rv.mean, ".2f")
# "within 1 nat or above": the difference minus 2 standard errors stays above -1
tut.claim("RWS with K = 5 reaches a test log p(x) within 1 nat of the VAE trained for the "
          "same epochs, or above it: the paired difference minus 2 standard errors is above -1.",
          d_rv.mean - 2 * d_rv.stderr > -1.0, **d_rv.evidence(2), tolerance_nats=1.0)
d_ri = paired_difference(per_digit[RWS], per_digit[IWAE])
tut.claim("RWS is also within 1 nat of IWAE, which uses the same K = 5 samples per example: the "
          "paired difference is within 1 nat on both sides, 2 standard errors included.",
          abs(d_ri.mean) + 2 * d_ri.stderr < 1.0, **d_ri.evidence(2), tolerance_nats=1.0)
ws_below = {n: paired_difference(per_digit[n], per_digit[WS]) for n in per_digit if n != WS}
tut.claim("Wake-sleep has the lowest test log p(x) of the four: each other model is higher, "
          "paired over the test digits, by more than 2 standard errors.",
          all(d.exceeds(2) for d in ws_below.values()),
          **{f"minus_wake_sleep[{n}]": d.evidence(2) for n, d in ws_below.items()})
vae_above = {n: paired_difference(test_elbo[VAE_NAME], test_elbo[n]) for n in (WS, IWAE)}
rws_above_vae = paired_difference(test_elbo[RWS], test_elbo[VAE_NAME])
tut.claim("The ELBO is the VAE's own objective: its test ELBO is above wake-sleep's and IWAE's "
          "(paired over the test digits, by more than 2 standard errors each), and RWS's is not "
          "above it (RWS minus VAE below 2 standard errors).",
          all(d.exceeds(2) for d in vae_above.values()) and not rws_above_vae.exceeds(2),
          **{f"vae_minus[{n}]": d.evidence(2) for n, d in vae_above.items()},
          rws_minus_vae=rws_above_vae.evidence(2))
fewer = paired_difference(unreliable[VAE_NAME], unreliable[WS])
tut.claim("Wake-sleep's encoder, trained by the forward KL, leaves fewer test digits with "
          "unreliable importance weights (k-hat > 0.7) than the VAE's: paired over the digits, "
          "by more than 2 standard errors.", fewer.exceeds(2),
          count={n: int(v.sum()) for n, v in unreliable.items()}, **fewer.evidence(2))

# %%
fig, ax = subplots(1, 1, size=4.6)
plot_metric_bars(list(diff), [d.mean for d in diff.values()], [d.stderr for d in diff.values()],
                 ax=ax, ylabel=f"test log p(x) minus the VAE's (nats, k={K_EVAL})",
                 title="Test log p(x) minus the VAE's, paired by digit\n(mean and standard error)")
ax.axhline(0.0, color="0.2", lw=1)
tut.savefig(fig, "test_log_likelihood")

# %% [markdown]
# ## What to take away
#
# - The KL direction shows in the encoder: on a model with a known posterior, the ELBO's
#   reverse KL makes a diagonal encoder too narrow, the forward KL (wake-sleep, RWS with
#   large $K$) matches the true marginal widths (section 1). The wider encoder has the
#   lower ELBO but is the better importance sampler.
# - Wake-sleep's sleep phase fits the encoder on dreams, not on data. Kingma & Welling's
#   comparison reproduces in shape on the digits: AEVB ends higher at $N_z \ge 5$, and in
#   the full run it ends higher in every panel and reaches wake-sleep's final bound
#   before the end (section 2; the claims say which held in this run).
# - RWS fits the encoder by the forward KL *on the real data* with importance weights,
#   and reaches a test log p(x) within 1 nat of the VAE's and IWAE's (section 3; see the
#   printed differences and their standard errors).
#
# ## Exercises
#
# * `rws_encoder_weights`: from $\log p(x, z_k)$ and $\log q(z_k \mid x)$ of shape (K, B),
#   compute the self-normalised weights $\tilde w_k$ and the encoder's wake-phase objective
#   $\sum_k \tilde w_k \log q(z_k \mid x)$, stably for log-weights of any size. Start with
#   `vitoolkit exercise start rws_encoder_weights`, check with
#   `vitoolkit exercise check rws_encoder_weights FILE`.
# * Related: `iwae_bound` (tutorial 06) is the log of the mean of the same unnormalised
#   weights (`vitoolkit exercise start iwae_bound`).

# %%
tut.finish()
