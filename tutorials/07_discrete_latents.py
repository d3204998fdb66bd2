# %% [markdown]
# # Discrete latents: Gumbel-softmax, REINFORCE and VIMCO at network scale, and the VQ-VAE.
#
# Question: How do you train a VAE with a discrete latent, and what does each gradient estimator cost?
#
# Tutorial 04 compared gradient estimators on one-line costs. Here the cost is a
# decoder network and the latent is a set of categorical variables, so sampling
# z cannot be reparameterised. We train the same categorical VAE on scikit-learn's
# 8x8 digits (binarised, the split of tutorial 05) with three estimators of the
# encoder's gradient, measure their variance at fixed checkpoints and the
# relaxation's bias against the exact gradient (the latent is small enough to
# enumerate), then meet the VQ-VAE, which sidesteps the problem with a
# nearest-neighbour quantiser and a straight-through gradient, and the sparse
# autoencoder, which uses the same Bernoulli KL for a different job.

# %% [markdown]
# ## 0. Set-up
#
# The categorical VAE has $L$ latents $z_l$ with $C$ classes each, a uniform prior
# $p(z_l) = 1/C$, an encoder $q_\phi(z_l \mid x) = \mathrm{Cat}(\mathrm{softmax}(\ell_l(x)))$
# and a decoder $p_\theta(x \mid z)$ fed the one-hot codes. Its ELBO is
#
# $$\mathcal L(x) = \mathbb E_{q_\phi}[\log p_\theta(x \mid z)]
#   - \sum_l \mathrm{KL}\big(q_\phi(z_l \mid x) \,\|\, \mathrm{Cat}(1/C)\big),\qquad
#   \mathrm{KL} = \sum_c q_{lc} \log q_{lc} + \log C \le \log C .$$
#
# The KL is closed form. The first term's gradient in $\phi$ is the problem: a small
# change of the logits moves no sample until one jumps. With $L = 6$ and $C = 4$ there
# are $4^6 = 4096$ joint codes, few enough to compute the ELBO, its exact gradient and
# $\log p(x)$ by enumeration, and so to measure every estimator against the truth.

# %%
import math
import tempfile
from pathlib import Path

import torch
from torch.distributions import Independent, OneHotCategorical

from vitoolkit.course import Tutorial
from vitoolkit.course.evidence import (
    Difference,
    independent_difference,
    mean_and_stderr,
    paired_difference,
)
from vitoolkit.datasets import load_digits
from vitoolkit.divergences import kl_divergence
from vitoolkit.plotting import subplots
from vitoolkit.plotting.discrete import (
    plot_codebook_usage,
    plot_curves_xy,
    plot_grouped_bars,
    plot_sweep,
)
from vitoolkit.plotting.vae import plot_reconstructions
from vitoolkit.vae import VAE, VQVAE, CategoricalVAE, SparseAutoencoder, train
from vitoolkit.vae.categorical import bias_and_variance

tut = Tutorial("07_discrete_latents")
X, _ = load_digits(binarize=True, split="train")
X_val, _ = load_digits(binarize=True, split="val")
X_test, _ = load_digits(binarize=True, split="test")

L, C = 6, 4
HIDDEN = (64,)
TAU = 0.5  # Jang et al. (2017) anneal tau to 0.5; we hold it there
K_VIMCO = 5
EPOCHS = tut.choose(12, 50)
DRAWS = tut.choose(40, 120)  # gradient estimates per estimator and checkpoint
FIT = dict(batch_size=64, lr=5e-3, seed=tut.seed, progress=tut.progress, restore_best=False)
batch = X[:64]  # the fixed mini-batch on which gradients are measured


def categorical(estimator, **kwargs):
    return CategoricalVAE(64, L, C, hidden_dims=HIDDEN, estimator=estimator, seed=tut.seed,
                          temperature=TAU, **kwargs)


# %% tags=["hide-input"]
tut.record("joint_states", C**L)
tut.record("max_kl_per_latent_log_C", math.log(C), ".4f")

# %% [markdown]
# ## 1. Three ways to the encoder's gradient
#
# - **Gumbel-softmax / Concrete** (Jang, Gu & Poole 2017; Maddison, Mnih & Teh 2017):
#   feed the decoder $y = \mathrm{softmax}((\ell + G)/\tau)$, $G \sim \mathrm{Gumbel}(0, 1)$,
#   and backpropagate through $y$. Low variance, but it is the gradient of
#   $\mathbb E[\log p(x \mid y)]$, not of $\mathbb E[\log p(x \mid z)]$: biased; the bias
#   shrinks as $\tau \to 0$ while the variance grows.
# - **REINFORCE** (Williams 1992): $(f(z) - b)\,\nabla_\phi \log q_\phi(z \mid x)$ with
#   $f = \log p(x \mid z)$; unbiased for any $b$ that does not depend on $z$. A
#   *running* baseline averages $f$ over batches; a *learned* one adds a network
#   $b_\psi(x)$ fitted to $f$ (Mnih & Gregor 2014, NVIL).
# - **VIMCO** (Mnih & Rezende 2016): trains the $K$-sample bound
#   $\mathcal L_K = \log \frac1K \sum_k w_k$; sample $j$'s learning signal is
#   $\mathcal L_K - \mathcal L_K^{-j}$, where $\mathcal L_K^{-j}$ replaces $\log w_j$ by
#   the mean of the other log-weights: a baseline per sample, from the other samples.
#
# ## 2. Which trains, and how fast
#
# Four runs from the same initial weights, the same data, batches and epochs. Every run
# first settles in the no-information solution (a decoder that ignores $z$, KL near 0)
# and must leave it to learn a code. The curves are the held-out ELBO after each epoch
# (the test set is only monitored, never used to choose anything); the final numbers
# are exact (enumeration). VIMCO decodes
# $K = 5$ samples per example per step, the others one.

# %%
runs = {
    f"Gumbel-softmax (tau={TAU})": (categorical("gumbel_softmax"), "elbo", 1),
    "REINFORCE, running baseline": (categorical("reinforce", baseline="running"), "elbo", 1),
    "REINFORCE, learned baseline": (categorical("reinforce", baseline="learned"), "elbo", 1),
    f"VIMCO (K={K_VIMCO})": (categorical("vimco"), "iwae", K_VIMCO),
}
GS = f"Gumbel-softmax (tau={TAU})"
checkpoint_epochs = [1, max(2, EPOCHS // 4), EPOCHS]
checkpoints, histories, exact_elbo, log_px, code_kl = {}, {}, {}, {}, {}
uniform_prior = Independent(OneHotCategorical(probs=torch.full((L, C), 1 / C)), 1)
with tempfile.TemporaryDirectory() as tmp:
    for name, (model, objective, k) in runs.items():
        if name == GS:
            # Train in stages through a checkpoint (optimizer state kept), saving the weights
            # at fixed epochs for the variance measurements of section 3.
            path = Path(tmp) / "gs.pt"
            for epoch in checkpoint_epochs:
                hist = train(model, X, epochs=epoch, objective=objective, num_samples=k,
                             validation=X_test, checkpoint=path, resume=True, **FIT)
                checkpoints[f"epoch {epoch}"] = {n: t.clone() for n, t in
                                                 model.state_dict().items()}
        else:
            hist = train(model, X, epochs=EPOCHS, objective=objective, num_samples=k,
                         validation=X_test, **FIT)
        histories[name] = hist
        with torch.no_grad():  # per test digit: exact log p(x) and the code's KL from the prior
            exact_elbo[name] = model.exact_elbo(X_test)
            log_px[name] = model.exact_log_likelihood(X_test)
            code_kl[name] = kl_divergence(model.encode(X_test), uniform_prior)

curves = {n: (h.epoch, h.val_elbo) for n, h in histories.items()}
fig, ax = subplots(1, 1, size=6.0)
plot_curves_xy(curves, ax=ax, xlabel="epoch", ylabel="held-out ELBO (nats per image)",
               legend="outside", title="Held-out ELBO after each epoch, by gradient estimator")
tut.savefig(fig, "training_by_estimator")

# %% [markdown]
# The curves show the ELBO; the comparison below uses the exact $\log p(x)$ of each
# test digit (enumerating the 4096 codes), and the code's KL from the prior, digit by
# digit. Both models see the same test digits, so each difference is *paired* over
# the digits and its standard error is that of the mean per-digit difference. It
# measures how much the verdict depends on which digits we test on, for these trained
# networks; it does not measure the spread over training seeds (each estimator is
# trained once; the claims hold at three quick seeds and at full size).

# %% tags=["hide-input"]
rf_names = ["REINFORCE, running baseline", "REINFORCE, learned baseline"]
good_names = [GS, f"VIMCO (K={K_VIMCO})"]
for name in runs:
    tut.record(f"exact_test_elbo[{name}]", exact_elbo[name].mean(), ".2f")
    tut.record(f"exact_test_log_px[{name}]", log_px[name].mean(), ".2f")
    tut.record(f"test_kl[{name}]", code_kl[name].mean(), ".2f")
FACTOR = 3
px_diff = {f"{g} - {r}": paired_difference(log_px[g], log_px[r]) for g in good_names
           for r in rf_names}
tut.claim(f"Gumbel-softmax and VIMCO both reach a higher exact test log p(x) than either "
          f"REINFORCE run in the same epochs: each of the four paired differences exceeds "
          f"{FACTOR} standard errors.", all(d.exceeds(FACTOR) for d in px_diff.values()),
          factor=FACTOR, **{k: d.evidence() for k, d in px_diff.items()})
# The no-information solution: a decoder that ignores z (KL near 0) is what every run finds first.
early_kl = {n: min(histories[n].val_kl[:3]) for n in runs}
tut.claim("Every run first finds the no-information solution: within its first three epochs "
          "each run's KL from the prior falls below 0.5 nats.",
          max(early_kl.values()) < 0.5, smallest_kl_in_epochs_1_3=early_kl)
leave = {n: next((e for e, kl in zip(h.epoch, h.val_kl, strict=True) if e > 3 and kl > 1.0),
                 math.inf) for n, h in histories.items()}
tut.record("first_epoch_with_kl_above_1_nat", leave)
tut.claim("In this run Gumbel-softmax and VIMCO leave it sooner: their KL passes 1 nat in an "
          "earlier epoch than either REINFORCE run's (one training run each: an observation "
          "without an error bar, repeated at every seed the course is checked at).",
          max(leave[n] for n in good_names) < min(leave[n] for n in rf_names), epoch=leave)
kl_diff = {f"{g} - {r}": paired_difference(code_kl[g], code_kl[r]) for g in good_names
           for r in rf_names}
tut.claim(f"Gumbel-softmax and VIMCO end with codes that carry more information (a larger "
          f"KL from the prior) than the REINFORCE runs: each paired difference over the test "
          f"digits exceeds {FACTOR} standard errors.",
          all(d.exceeds(FACTOR) for d in kl_diff.values()), factor=FACTOR,
          **{k: d.evidence() for k, d in kl_diff.items()})
baseline_diff = paired_difference(log_px["REINFORCE, learned baseline"],
                                  log_px["REINFORCE, running baseline"])
tut.claim(f"Given the full number of epochs, the learned baseline pulls ahead of the running "
          f"one: its test log p(x) is higher by more than {FACTOR} standard errors of the "
          f"paired difference.", baseline_diff.exceeds(FACTOR), full_only=True,
          **baseline_diff.evidence(FACTOR))

# %% [markdown]
# ## 3. The variance of the encoder's gradient at fixed checkpoints
#
# At three checkpoints of the Gumbel-softmax run we freeze the weights and draw
# independent estimates of the encoder's gradient on one mini-batch of 64 images, as a
# training step would, for each estimator. We report the total variance
# $\mathrm{tr}\,\mathrm{Cov}(g)$ divided by $\|\nabla_\phi \mathcal L\|^2$, the squared
# norm of the exact ELBO gradient at that checkpoint (by enumeration): a noise-to-signal
# ratio, comparable across checkpoints. The running baseline is set at each checkpoint to
# the mean of $f$, the value its running average tracks.

# %%
probe = categorical("reinforce")
settings = {
    "REINFORCE": dict(estimator="reinforce", baseline="none"),
    "REINFORCE + baseline": dict(estimator="reinforce", baseline="running"),
    f"VIMCO (K={K_VIMCO})": dict(estimator="vimco", num_samples=K_VIMCO),
    f"Gumbel-softmax (tau={TAU})": dict(estimator="gumbel_softmax", temperature=TAU),
}
noise_to_signal, gradient_draws, exact_norm = {}, {}, {}
gen = tut.generator(10)
for label, state in checkpoints.items():
    probe.load_state_dict(state)
    probe.calibrate_baseline(batch, generator=gen)
    exact = probe.exact_encoder_gradient(batch)
    exact_norm[label] = float(exact.norm())
    noise_to_signal[label], gradient_draws[label] = {}, {}
    for name, kw in settings.items():
        draws = probe.encoder_gradients(batch, DRAWS, generator=gen, **kw)
        gradient_draws[label][name] = draws
        noise_to_signal[label][name] = bias_and_variance(draws, exact).variance / exact_norm[label] ** 2

fig, ax = subplots(1, 1, size=6.0)
plot_grouped_bars(noise_to_signal, ax=ax, ylabel="tr Cov(g) / ||exact gradient||^2",
                  title="Noise-to-signal ratio of each estimator at three checkpoints")
tut.savefig(fig, "gradient_variance")

# %% [markdown]
# Each ratio is itself estimated from a finite number of draws. Its standard error
# comes from the draws: $\mathrm{tr}\,\mathrm{Cov}(g)$ is the mean over draws of
# $\frac{m}{m-1}\|g_i - \bar g\|^2$, so the spread of those terms gives the error of
# their mean. Different estimators use independent draws, so two ratios are compared
# with the (Welch) standard error of their difference. The claims below ask for a
# difference of at least 2 standard errors at every checkpoint.

# %% tags=["hide-input"]
def variance_terms(draws, norm):
    """Per-draw terms whose mean is tr Cov(g) / norm^2 (so their spread gives its error)."""
    m = draws.shape[0]
    return (draws - draws.mean(0)).pow(2).sum(1) * m / (m - 1) / norm**2


terms = {c: {n: variance_terms(d, exact_norm[c]) for n, d in per.items()}
         for c, per in gradient_draws.items()}
for c, per in noise_to_signal.items():
    for n, ratio in per.items():
        tut.record(f"noise_to_signal[{c}][{n}]", ratio, ".3g")
        tut.record(f"noise_to_signal_stderr[{c}][{n}]", mean_and_stderr(terms[c][n])[1], ".3g")
VFACTOR = 2
VIMCO_NAME = f"VIMCO (K={K_VIMCO})"


def louder(a, b, c, scale_b=1.0):
    """Independent difference of the ratios of a and (scale_b times) b at checkpoint c."""
    return independent_difference(terms[c][a], scale_b * terms[c][b])


cut = {c: louder("REINFORCE", "REINFORCE + baseline", c) for c in checkpoints}
tut.claim(f"At every checkpoint the baseline cuts REINFORCE's variance (by more than {VFACTOR} "
          "standard errors of the difference).",
          all(d.exceeds(VFACTOR) for d in cut.values()), factor=VFACTOR,
          **{c: d.evidence() for c, d in cut.items()})
runner_up = {c: max((n for n in settings if n != "REINFORCE"),
                    key=lambda n, c=c: noise_to_signal[c][n]) for c in checkpoints}
noisiest = {c: louder("REINFORCE", runner_up[c], c) for c in checkpoints}
tut.claim(f"At every checkpoint REINFORCE without a baseline is the noisiest estimator: its "
          f"ratio exceeds the next largest by more than {VFACTOR} standard errors.",
          all(d.exceeds(VFACTOR) for d in noisiest.values()), factor=VFACTOR,
          next_largest=runner_up, **{c: d.evidence() for c, d in noisiest.items()})
gs_below = {c: min((louder(r, GS, c) for r in ("REINFORCE", "REINFORCE + baseline")),
                   key=lambda d: d.z) for c in checkpoints}
tut.claim(f"At every checkpoint Gumbel-softmax's variance is below both REINFORCE estimators' "
          f"(the closer of the two by more than {VFACTOR} standard errors).",
          all(d.exceeds(VFACTOR) for d in gs_below.values()), factor=VFACTOR,
          **{c: d.evidence() for c, d in gs_below.items()})
vimco_below = {c: independent_difference(terms[c]["REINFORCE + baseline"] / K_VIMCO,
                                         terms[c][VIMCO_NAME]) for c in checkpoints}
tut.claim(f"Even allowing for its five samples (REINFORCE's variance divided by five), VIMCO's "
          f"per-sample baseline is less noisy than REINFORCE's running baseline at every "
          f"checkpoint (by more than {VFACTOR} standard errors).",
          all(d.exceeds(VFACTOR) for d in vimco_below.values()), factor=VFACTOR,
          vimco={c: noise_to_signal[c][VIMCO_NAME] for c in checkpoints},
          reinforce_baseline_over_5={c: noise_to_signal[c]["REINFORCE + baseline"] / K_VIMCO
                                     for c in checkpoints},
          **{c: d.evidence() for c, d in vimco_below.items()})

# %% [markdown]
# ## 4. The relaxation's bias against its temperature
#
# At the last checkpoint we compare the mean Gumbel-softmax gradient with the exact
# ELBO gradient for a ladder of temperatures: the bias $\|\mathbb E[g_\tau] -
# \nabla_\phi\mathcal L\|$ (with the Monte Carlo noise of the mean removed) and the
# variance, both relative to $\|\nabla_\phi\mathcal L\|$.

# %%
temperatures = [0.1, 0.25, 0.5, 1.0, 2.0]
probe.load_state_dict(checkpoints[f"epoch {EPOCHS}"])
exact = probe.exact_encoder_gradient(batch)
bias, spread, tau_draws = [], [], []
for tau in temperatures:
    draws = probe.encoder_gradients(batch, 2 * DRAWS, estimator="gumbel_softmax",
                                    temperature=tau, generator=gen)
    tau_draws.append(draws)
    bv = bias_and_variance(draws, exact)
    bias.append(bv.bias / bv.norm)
    spread.append(bv.variance / bv.norm**2)

fig, axes = subplots(1, 2, size=4.6)
plot_sweep(temperatures, {"bias": bias}, ax=axes[0], xlabel="temperature tau", logy=False,
           ylabel="||E g - exact|| / ||exact||", title="Relative bias of the relaxed gradient")
plot_sweep(temperatures, {"variance": spread}, ax=axes[1], xlabel="temperature tau",
           ylabel="tr Cov(g) / ||exact||^2", title="Relative variance of the relaxed gradient")
tut.savefig(fig, "relaxation_bias_variance")

# %% [markdown]
# The squared bias is estimated without bias as $\|\bar g - \nabla\mathcal L\|^2 -
# \mathrm{tr}(S)/m$; splitting the draws into 8 groups and computing it in each gives
# 8 independent estimates whose spread is its standard error. The variance's error
# comes from the draws as in section 3.

# %% tags=["hide-input"]
GROUPS = 8
norm_sq = float(exact.norm()) ** 2


def bias_sq_per_group(draws):
    """Unbiased estimates of ||E g - exact||^2 / ||exact||^2, one per group of draws."""
    out = []
    for part in draws.chunk(GROUPS):
        m = part.shape[0]
        noise = float(part.var(0).sum()) / m
        out.append((float((part.mean(0) - exact).pow(2).sum()) - noise) / norm_sq)
    return torch.tensor(out, dtype=torch.float64)


bias_sq = [bias_sq_per_group(d) for d in tau_draws]
tut.record("temperatures", temperatures)
tut.record("relative_bias", bias)
tut.record("relative_bias_sq_stderr", [mean_and_stderr(b)[1] for b in bias_sq])
tut.record("relative_variance", spread)
high_low = independent_difference(bias_sq[-1], bias_sq[0])
tut.claim(f"The relaxation's bias is larger at the highest temperature than at the lowest: the "
          f"squared relative bias at tau={temperatures[-1]:g} exceeds that at "
          f"tau={temperatures[0]:g} by more than {VFACTOR} standard errors.",
          high_low.exceeds(VFACTOR), bias=bias, **high_low.evidence(VFACTOR))
var_terms = [variance_terms(d, float(exact.norm())) for d in tau_draws]
steps = [independent_difference(a, b) for a, b in zip(var_terms, var_terms[1:], strict=False)]
tut.claim(f"The variance rises as the temperature falls, at every step of the ladder (each step "
          f"by more than {VFACTOR} standard errors).", all(d.exceeds(VFACTOR) for d in steps),
          variance=spread, factor=VFACTOR,
          **{f"tau {a:g} - tau {b:g}": d.evidence() for a, b, d in
             zip(temperatures, temperatures[1:], steps, strict=False)})

# %% [markdown]
# ## 5. The VQ-VAE: where did the KL go?
#
# The VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017) encodes $x$ to $L$ vectors,
# replaces each by its nearest codebook vector $e_k$, and decodes. The quantiser has no
# gradient, so the decoder's gradient at $z_q$ is copied to $z_e$ unchanged
# (straight-through); a codebook loss pulls the codes to the encoder outputs and a
# commitment loss ($\beta = 0.25$) keeps the encoder near its codes. Its posterior is
# one-hot and its prior uniform over $K$ codes, so
# $\mathrm{KL}(q \,\|\, p) = \log K$ per latent (their section 3.1): a constant, left out
# of the loss. We compare it with the continuous VAE of tutorial 05 (8 Gaussian latents,
# the same networks, data and epochs).

# %%
VQ_EPOCHS = tut.choose(25, 60)
K_CODES, K_LARGE, L_VQ = 16, 64, 4
VQ_FIT = dict(epochs=VQ_EPOCHS, validation=X_val, batch_size=64, lr=2e-3, seed=tut.seed,
              progress=tut.progress)
vq = VQVAE(64, K_CODES, 4, num_latents=L_VQ, seed=tut.seed)
hist_vq = train(vq, X, **VQ_FIT)
vq_large = VQVAE(64, K_LARGE, 4, num_latents=L_VQ, seed=tut.seed)
train(vq_large, X, **VQ_FIT)
vae = VAE(64, 8, seed=tut.seed)
hist_vae = train(vae, X, **VQ_FIT)

# The KL of a one-hot posterior from the uniform prior over K codes, from the KL registry.
one_hot = OneHotCategorical(probs=torch.eye(K_CODES, dtype=torch.float64)[3])
uniform = OneHotCategorical(probs=torch.full((K_CODES,), 1 / K_CODES, dtype=torch.float64))
kl_registry = float(kl_divergence(one_hot, uniform))

gen = tut.generator(20)
with torch.no_grad():  # per test digit
    vq_elbo = vq.elbo(X_test)
    vq_recon = vq_elbo + vq.kl  # the bound plus the constant L log K it pays
    vae_elbo = torch.stack([vae.elbo(X_test, generator=gen) for _ in range(20)]).mean(0)
    vae_kl = kl_divergence(vae.encode(X_test), vae.prior)
    vae_recon = vae_elbo + vae_kl
usage = {f"K={K_CODES}": vq.codebook_usage(X), f"K={K_LARGE}": vq_large.codebook_usage(X)}
perplexity = vq.codebook_perplexity(X)
perplexity_large = vq_large.codebook_perplexity(X)

fig, axes = subplots(1, 2, size=5.0)
plot_reconstructions(X_test[:10], {"VAE": vae.reconstruct(X_test[:10]),
                                   "VQ-VAE": vq.reconstruct(X_test[:10])}, ax=axes[0],
                     title="Ten test digits and\ntheir reconstructions")
plot_codebook_usage(usage, ax=axes[1],
                    title=f"Code use on the training digits: perplexity\n"
                          f"{perplexity:.1f} of {K_CODES}, {perplexity_large:.1f} of {K_LARGE}")
tut.savefig(fig, "vqvae_vs_vae")

# %% tags=["hide-input"]
tut.record("vq_kl_per_latent", kl_registry, ".6f")
tut.record("vq_kl_total_L_log_K", vq.kl, ".4f")
for key, value in (("vq_test_reconstruction", vq_recon), ("vq_test_elbo", vq_elbo),
                   ("vae_test_reconstruction", vae_recon), ("vae_test_elbo", vae_elbo),
                   ("vae_test_kl", vae_kl)):
    tut.record(key, value.mean(), ".2f")
tut.record("codebook_perplexity", perplexity, ".2f")
tut.record("codebook_perplexity_large", perplexity_large, ".2f")
tut.record("dead_codes", vq.dead_codes(X))
tut.record("dead_codes_large", vq_large.dead_codes(X))
tut.claim("The KL of a one-hot posterior from the uniform prior over K codes is log K "
          "per latent.", abs(kl_registry - math.log(K_CODES)) < 1e-12
          and abs(vq.kl - L_VQ * kl_registry) < 1e-9,
          kl_per_latent=kl_registry, log_K=math.log(K_CODES), total=vq.kl)
recon_diff = paired_difference(vq_recon, vae_recon)
tut.claim("The VQ-VAE reconstructs the test digits better than the continuous VAE (the paired "
          "difference of log p(x | z) over the test digits exceeds 2 standard errors).",
          recon_diff.exceeds(2), vq=vq_recon.mean(), vae=vae_recon.mean(),
          **recon_diff.evidence(2))
elbo_diff = paired_difference(vq_elbo, vae_elbo)
tut.claim(f"Its bound is lower (by more than {FACTOR} standard errors of the paired "
          f"difference), because it pays the full L log K nats for its code, more than the "
          f"VAE's KL on every test digit.",
          elbo_diff.falls_short(FACTOR) and bool((vae_kl < vq.kl).all()), vq_kl=vq.kl,
          vae_kl_max=vae_kl.max(), vq_elbo=vq_elbo.mean(), vae_elbo=vae_elbo.mean(),
          **elbo_diff.evidence(FACTOR))
# %% [markdown]
# How evenly the codes are used is measured on the training digits by the perplexity
# $\exp H$ of the code frequencies (between 1 and $K$). Its error comes from which
# digits we count: resampling the training digits with replacement (a bootstrap, 200
# resamples, the same resample for both codebooks) gives the standard error of the
# difference of the two shares.

# %% tags=["hide-input"]
share_small, share_large = perplexity / K_CODES, perplexity_large / K_LARGE
boot_gen = tut.generator(30)
boot = []
for _ in range(200):
    rows = torch.randint(0, len(X), (len(X),), generator=boot_gen)
    boot.append(vq.codebook_perplexity(X[rows]) / K_CODES
                - vq_large.codebook_perplexity(X[rows]) / K_LARGE)
share_diff = Difference(share_small - share_large, float(torch.tensor(boot).std()), len(X))
tut.claim(f"A four times larger codebook is used less evenly: the share of the K={K_LARGE} "
          f"codes in effective use (perplexity / K) is below that of K={K_CODES}, by more "
          f"than {FACTOR} bootstrap standard errors.", share_diff.exceeds(FACTOR),
          share_small=share_small, share_large=share_large, **share_diff.evidence(FACTOR))

# %% [markdown]
# ## 6. The sparse autoencoder: the same KL, a different job
#
# A sparse autoencoder (Ng, CS294A notes, section 3) penalises each sigmoid hidden unit's
# *average* activation $\hat\rho_j$ over the data by
# $\mathrm{KL}(\mathrm{Bern}(\rho)\,\|\,\mathrm{Bern}(\hat\rho_j))$: the same closed-form
# Bernoulli KL as a binary-latent VAE's, but comparing one target rate with the aggregate
# activation of a deterministic unit. Nothing is sampled and no bound on $\log p(x)$
# results: it is a regulariser.

# %%
SPARSITY = 0.05
rates, penalties = {}, {}
for weight in (0.0, 3.0):
    sae = SparseAutoencoder(64, 32, sparsity=SPARSITY, weight=weight, seed=tut.seed)
    train(sae, X, epochs=tut.choose(15, 40), batch_size=64, lr=1e-2, seed=tut.seed,
          progress=tut.progress)
    rates[weight] = sae.mean_activation(X_test)  # rho_hat of each of the 32 units
    penalties[weight] = sae.penalty(X_test)
gap = {w: (r - SPARSITY).abs() for w, r in rates.items()}  # each unit's distance to the target

# %% [markdown]
# The claim below pairs the 32 units (the same unit index in both runs starts from the
# same initial weights) and asks for the mean distance to the target to halve, with the
# halving itself beyond 3 standard errors.

# %% tags=["hide-input"]
for weight, value in penalties.items():
    tut.record(f"sparse_penalty_nats[weight={weight:g}]", value, ".3f")
tut.record("mean_abs_rate_gap", {w: float(g.mean()) for w, g in gap.items()})
halved = paired_difference(0.5 * gap[0.0], gap[3.0])
tut.claim(f"With the penalty the units' average activations sit much closer to the target "
          f"rate than without it: the mean distance is less than half, by more than {FACTOR} "
          f"standard errors (paired over the 32 units).", halved.exceeds(FACTOR),
          gap_with=gap[3.0].mean(), gap_without=gap[0.0].mean(), **halved.evidence(FACTOR))

# %% [markdown]
# ## What to take away
#
# - A discrete latent has no reparameterisation; the encoder's gradient is estimated.
#   Without a baseline REINFORCE is the noisiest (section 3); Gumbel-softmax trades
#   that variance for a bias that is larger at high temperature (section 4); VIMCO keeps
#   the estimator unbiased (for its bound) with a per-sample baseline that, even counting
#   its five samples, is less noisy than a running baseline.
# - Every run first finds the no-information solution (the held-out ELBO flattens near
#   the same value in the first epochs). Gumbel-softmax and VIMCO left it sooner in our
#   runs and end with a higher exact log p(x) than REINFORCE in the same epochs, by many
#   standard errors of the per-digit difference (section 2; see the printed numbers).
# - The VQ-VAE's KL is the constant $L \log K$: it buys sharper reconstructions and pays
#   that constant in its bound (section 5).
#
# ## Exercises
#
# - **gumbel_softmax_relaxation**: write `gumbel_softmax_relaxation(logits, uniform,
#   temperature)`, the relaxed sample $y = \mathrm{softmax}((\ell + G)/\tau)$ of section 1
#   with $G = -\log(-\log U)$ made from the given uniform numbers $U$ of shape (S, ..., K);
#   it must stay finite for logits hundreds of nats apart and at $\tau = 0.01$. Start with
#   `vitoolkit exercise start gumbel_softmax_relaxation` (it writes
#   `gumbel_softmax_relaxation.py`), then grade it with
#   `vitoolkit exercise check gumbel_softmax_relaxation gumbel_softmax_relaxation.py`.

# %%
tut.finish()
