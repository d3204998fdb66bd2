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
from torch.distributions import OneHotCategorical

from vitoolkit.course import Tutorial
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
FIT = dict(batch_size=64, lr=5e-3, seed=tut.seed, progress=False, restore_best=False)
batch = X[:64]  # the fixed mini-batch on which gradients are measured
tut.record("joint_states", C**L)
tut.record("max_kl_per_latent_log_C", math.log(C), ".4f")


def categorical(estimator, **kwargs):
    return CategoricalVAE(64, L, C, hidden_dims=HIDDEN, estimator=estimator, seed=tut.seed,
                          temperature=TAU, **kwargs)


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
checkpoints, histories, results = {}, {}, {}
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
        with torch.no_grad():
            results[name] = {"elbo": float(model.exact_elbo(X_test).mean()),
                             "log_px": float(model.exact_log_likelihood(X_test).mean()),
                             "kl": hist.val_kl[-1]}
        tut.record(f"exact_test_elbo[{name}]", results[name]["elbo"], ".2f")
        tut.record(f"exact_test_log_px[{name}]", results[name]["log_px"], ".2f")
        tut.record(f"test_kl[{name}]", results[name]["kl"], ".2f")

rf_names = ["REINFORCE, running baseline", "REINFORCE, learned baseline"]
good_names = [GS, f"VIMCO (K={K_VIMCO})"]
worst_good = min(results[n]["log_px"] for n in good_names)
best_rf = max(results[n]["log_px"] for n in rf_names)
tut.claim("Gumbel-softmax and VIMCO both reach a higher exact test log p(x) than either "
          "REINFORCE run in the same epochs.", worst_good > best_rf,
          worst_of_gumbel_vimco=worst_good, best_reinforce=best_rf)
# The no-information solution: a decoder that ignores z (KL near 0) is what every run finds first.
early_kl = {n: min(histories[n].val_kl[:3]) for n in runs}
tut.claim("Every run first finds the no-information solution: within its first three epochs "
          "each run's KL from the prior falls below 0.5 nats.",
          max(early_kl.values()) < 0.5, smallest_kl_in_epochs_1_3=early_kl)
leave = {n: next((e for e, kl in zip(h.epoch, h.val_kl, strict=True) if e > 3 and kl > 1.0),
                 math.inf) for n, h in histories.items()}
tut.record("first_epoch_with_kl_above_1_nat", leave)
tut.claim("Gumbel-softmax and VIMCO leave it sooner: their KL passes 1 nat in an earlier "
          "epoch than either REINFORCE run's.",
          max(leave[n] for n in good_names) < min(leave[n] for n in rf_names), epoch=leave)
final_kl = {n: histories[n].val_kl[-1] for n in runs}
tut.claim("Gumbel-softmax and VIMCO end with codes that carry more information (a larger "
          "KL from the prior) than the REINFORCE runs.",
          min(final_kl[n] for n in good_names) > max(final_kl[n] for n in rf_names),
          final_kl=final_kl)
learned, running = (results[n]["log_px"] for n in
                    ("REINFORCE, learned baseline", "REINFORCE, running baseline"))
tut.claim("Given the full number of epochs, the learned baseline pulls ahead of the running "
          "one.", learned > running, full_only=True, learned=learned, running=running)

curves = {n: (h.epoch, h.val_elbo) for n, h in histories.items()}
fig, ax = subplots(1, 1, size=6.0)
plot_curves_xy(curves, ax=ax, xlabel="epoch", ylabel="held-out ELBO (nats per image)",
               legend="outside",
               title=f"Gumbel-softmax and VIMCO learn;\nREINFORCE lags by "
                     f">= {worst_good - best_rf:.1f} nats in log p(x)")
tut.savefig(fig, "training_by_estimator")

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
noise_to_signal = {}
gen = tut.generator(10)
for label, state in checkpoints.items():
    probe.load_state_dict(state)
    probe.calibrate_baseline(batch, generator=gen)
    exact = probe.exact_encoder_gradient(batch)
    noise_to_signal[label] = {}
    for name, kw in settings.items():
        draws = probe.encoder_gradients(batch, DRAWS, generator=gen, **kw)
        ratio = bias_and_variance(draws, exact).variance / float(exact.norm()) ** 2
        noise_to_signal[label][name] = ratio
        tut.record(f"noise_to_signal[{label}][{name}]", ratio, ".3g")

per_estimator = {name: [noise_to_signal[c][name] for c in checkpoints] for name in settings}
tut.claim("At every checkpoint the baseline cuts REINFORCE's variance.",
          all(a > b for a, b in zip(per_estimator["REINFORCE"],
                                    per_estimator["REINFORCE + baseline"], strict=True)),
          no_baseline=per_estimator["REINFORCE"],
          baseline=per_estimator["REINFORCE + baseline"])
gs_var = per_estimator[GS]
others = [max(per_estimator[n][i] for n in settings if n != GS) for i in range(len(gs_var))]
lowest = [min(per_estimator[n][i] for n in settings) for i in range(len(gs_var))]
tut.claim("At every checkpoint REINFORCE without a baseline is the noisiest estimator.",
          all(per_estimator["REINFORCE"][i] == max(per_estimator[n][i] for n in settings)
              for i in range(len(gs_var))), per_estimator=per_estimator)
tut.claim("At every checkpoint Gumbel-softmax's variance is below both REINFORCE estimators'.",
          all(gs_var[i] < min(per_estimator["REINFORCE"][i],
                              per_estimator["REINFORCE + baseline"][i])
              for i in range(len(gs_var))), gumbel=gs_var)

vimco = per_estimator[f"VIMCO (K={K_VIMCO})"]
tut.claim("Even allowing for its five samples (REINFORCE's variance divided by five), VIMCO's "
          "per-sample baseline is less noisy than REINFORCE's running baseline at every "
          "checkpoint.", all(v < b / K_VIMCO for v, b in
                             zip(vimco, per_estimator["REINFORCE + baseline"], strict=True)),
          vimco=vimco, reinforce_baseline_over_5=[b / K_VIMCO for b in
                                                  per_estimator["REINFORCE + baseline"]])

fig, ax = subplots(1, 1, size=6.0)
plot_grouped_bars(noise_to_signal, ax=ax, ylabel="tr Cov(g) / ||exact gradient||^2",
                  title="Without a baseline REINFORCE is the noisiest at every checkpoint")
tut.savefig(fig, "gradient_variance")

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
bias, spread = [], []
for tau in temperatures:
    draws = probe.encoder_gradients(batch, 2 * DRAWS, estimator="gumbel_softmax",
                                    temperature=tau, generator=gen)
    bv = bias_and_variance(draws, exact)
    bias.append(bv.bias / bv.norm)
    spread.append(bv.variance / bv.norm**2)
tut.record("temperatures", temperatures)
tut.record("relative_bias", bias)
tut.record("relative_variance", spread)
tut.claim("The relaxation's bias is larger at the highest temperature than at the lowest.",
          bias[-1] > bias[0], bias=bias)
tut.claim("The variance rises as the temperature falls, at every step of the ladder.",
          all(a > b for a, b in zip(spread, spread[1:], strict=False)), variance=spread)

fig, axes = subplots(1, 2, size=4.6)
plot_sweep(temperatures, {"bias": bias}, ax=axes[0], xlabel="temperature tau", logy=False,
           ylabel="||E g - exact|| / ||exact||",
           title=f"Bias is larger at high tau:\n{bias[0]:.2f} at tau={temperatures[0]:g}, "
                 f"{bias[-1]:.2f} at tau={temperatures[-1]:g}")
plot_sweep(temperatures, {"variance": spread}, ax=axes[1], xlabel="temperature tau",
           ylabel="tr Cov(g) / ||exact||^2", title="Variance falls as tau rises")
tut.savefig(fig, "relaxation_bias_variance")

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
vq = VQVAE(64, K_CODES, 4, num_latents=L_VQ, seed=tut.seed)
hist_vq = train(vq, X, epochs=VQ_EPOCHS, validation=X_val, batch_size=64, lr=2e-3,
                seed=tut.seed, progress=False)
vq_large = VQVAE(64, K_LARGE, 4, num_latents=L_VQ, seed=tut.seed)
train(vq_large, X, epochs=VQ_EPOCHS, validation=X_val, batch_size=64, lr=2e-3, seed=tut.seed,
      progress=False)
vae = VAE(64, 8, seed=tut.seed)
hist_vae = train(vae, X, epochs=VQ_EPOCHS, validation=X_val, batch_size=64, lr=2e-3,
                 seed=tut.seed, progress=False)

one_hot = OneHotCategorical(probs=torch.eye(K_CODES, dtype=torch.float64)[3])
uniform = OneHotCategorical(probs=torch.full((K_CODES,), 1 / K_CODES, dtype=torch.float64))
kl_registry = float(kl_divergence(one_hot, uniform))
tut.record("vq_kl_per_latent", kl_registry, ".6f")
tut.record("vq_kl_total_L_log_K", vq.kl, ".4f")
tut.claim("The KL of a one-hot posterior from the uniform prior over K codes is log K "
          "per latent.", abs(kl_registry - math.log(K_CODES)) < 1e-12
          and abs(vq.kl - L_VQ * kl_registry) < 1e-9,
          kl_per_latent=kl_registry, log_K=math.log(K_CODES), total=vq.kl)

gen = tut.generator(20)
with torch.no_grad():
    vq_recon = float((vq.elbo(X_test) + vq.kl).mean())
    vq_elbo = float(vq.elbo(X_test).mean())
    vae_elbo = float(torch.stack([vae.elbo(X_test, generator=gen) for _ in range(20)]).mean())
    vae_kl = float(kl_divergence(vae.encode(X_test), vae.prior).mean())
vae_recon = vae_elbo + vae_kl
usage = {f"K={K_CODES}": vq.codebook_usage(X), f"K={K_LARGE}": vq_large.codebook_usage(X)}
perplexity = vq.codebook_perplexity(X)
perplexity_large = vq_large.codebook_perplexity(X)
dead = vq.dead_codes(X)
dead_large = vq_large.dead_codes(X)
for key, value in (("vq_test_reconstruction", vq_recon), ("vq_test_elbo", vq_elbo),
                   ("vae_test_reconstruction", vae_recon), ("vae_test_elbo", vae_elbo),
                   ("vae_test_kl", vae_kl), ("codebook_perplexity", perplexity)):
    tut.record(key, value, ".2f")
tut.record("codebook_perplexity_large", perplexity_large, ".2f")
tut.record("dead_codes", dead)
tut.record("dead_codes_large", dead_large)
tut.claim("The VQ-VAE reconstructs the test digits better than the continuous VAE.",
          vq_recon > vae_recon, vq=vq_recon, vae=vae_recon)
tut.claim("Its bound is lower, because it pays the full L log K nats for its code.",
          vq_elbo < vae_elbo and vq.kl > vae_kl, vq_elbo=vq_elbo, vae_elbo=vae_elbo,
          vq_kl=vq.kl, vae_kl=vae_kl)
tut.claim(f"A four times larger codebook is used less evenly: the share of the K={K_LARGE} "
          f"codes in effective use (perplexity / K) is below that of K={K_CODES}.",
          perplexity_large / K_LARGE < perplexity / K_CODES,
          perplexity=perplexity, perplexity_large=perplexity_large, dead=dead,
          dead_large=dead_large)

fig, axes = subplots(1, 2, size=5.0)
plot_reconstructions(X_test[:10], {"VAE": vae.reconstruct(X_test[:10]),
                                   "VQ-VAE": vq.reconstruct(X_test[:10])}, ax=axes[0],
                     title=f"VQ-VAE reconstructs better:\n{vq_recon:.1f} vs {vae_recon:.1f} nats")
plot_codebook_usage(usage, ax=axes[1],
                    title=f"The larger codebook is used less evenly:\nperplexity "
                          f"{perplexity:.1f} of {K_CODES}, {perplexity_large:.1f} of {K_LARGE}")
tut.savefig(fig, "vqvae_vs_vae")

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
rates = {}
for weight in (0.0, 3.0):
    sae = SparseAutoencoder(64, 32, sparsity=SPARSITY, weight=weight, seed=tut.seed)
    train(sae, X, epochs=tut.choose(15, 40), batch_size=64, lr=1e-2, seed=tut.seed,
          progress=False)
    rates[weight] = sae.mean_activation(X_test)
    tut.record(f"sparse_penalty_nats[weight={weight:g}]", sae.penalty(X_test), ".3f")
gap = {w: float((r - SPARSITY).abs().mean()) for w, r in rates.items()}
tut.record("mean_abs_rate_gap", gap)
tut.claim("With the penalty the units' average activations sit much closer to the target "
          "rate than without it.", gap[3.0] < 0.5 * gap[0.0], gap_with=gap[3.0],
          gap_without=gap[0.0])

# %% [markdown]
# ## What to take away
#
# - A discrete latent has no reparameterisation; the encoder's gradient is estimated.
#   Without a baseline REINFORCE is the noisiest (section 3); Gumbel-softmax trades
#   that variance for a bias that is larger at high temperature (section 4); VIMCO keeps
#   the estimator unbiased (for its bound) with a per-sample baseline that, even counting
#   its five samples, is less noisy than a running baseline.
# - Every run first finds the no-information solution (the held-out ELBO flattens near
#   the same value in the first epochs). Gumbel-softmax and VIMCO leave it sooner and end
#   with a higher log p(x) than REINFORCE in the same epochs (section 2; see the printed
#   numbers).
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
