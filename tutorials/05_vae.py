# %% [markdown]
# # The variational autoencoder: what the prior, the noise and the likelihood each buy.
#
# Question: What does a VAE change about an autoencoder's latent space, and what do its terms assume?
#
# We train small VAEs on scikit-learn's 8x8 digits (1,257 training, 270
# validation, 270 test images; nothing is downloaded) and answer the questions a
# student brings from Kingma & Welling (2013), "Auto-Encoding Variational Bayes":
# the autoencoder's holes, the reparameterisation trick in a real network, why
# the variance is learned, what each half of the ELBO does on its own, which
# likelihood BCE and MSE assume, why decoded means look blurry and whether pixel
# noise makes samples sharper, which distribution the KL term really pulls
# towards N(0, I), whether a diagonal sigma makes the codes independent, and what
# a Monte Carlo KL costs inside a real training run.

# %% [markdown]
# ## 1. Data and the model
#
# The VAE has a decoder $p_\theta(x \mid z)$, a prior $p(z) = \mathcal N(0, I)$ and
# an encoder $q_\phi(z \mid x) = \mathcal N(\mu_\phi(x), \mathrm{diag}\,\sigma^2_\phi(x))$,
# trained by maximising the ELBO (Kingma & Welling 2013, eq. 3)
#
# $$\mathcal L(x) = \mathbb E_{q_\phi(z\mid x)}[\log p_\theta(x \mid z)]
#   - \mathrm{KL}(q_\phi(z \mid x)\,\|\,p(z)) \le \log p_\theta(x).$$
#
# The first term rewards reconstruction, the second keeps each $q(z\mid x)$ close
# to the prior. The KL is in closed form (their Appendix B).
#
# Every model below is trained the same way: same optimiser, learning rate, batch
# size and number of epochs, no early stopping (the weights of the last epoch are
# used), so every comparison is like for like. Test log-likelihoods are
# importance-sampled (Burda et al. 2015, eq. 8; Kingma & Welling, Appendix D); the
# number of test images whose importance weights are too heavy-tailed to trust
# (Pareto $\hat k > 0.7$, Vehtari et al. 2024) is printed with each, and for those
# the estimate is, if anything, too low.

# %%
import math
import warnings

import torch
from torch.distributions import (
    Bernoulli,
    Categorical,
    ContinuousBernoulli,
    Independent,
    MultivariateNormal,
    Normal,
)

from vitoolkit.course import Tutorial
from vitoolkit.datasets import load_digits
from vitoolkit.divergences import (
    KHAT_THRESHOLD,
    UnreliableEstimateWarning,
    kl_divergence,
    mean_and_stderr,
)
from vitoolkit.plotting import subplots
from vitoolkit.plotting.vae import (
    plot_correlation_matrix,
    plot_curves,
    plot_density_contours,
    plot_image_grid,
    plot_latent_scatter,
    plot_manifold,
    plot_metric_bars,
    plot_reconstructions,
    plot_training_curves,
)
from vitoolkit.vae import VAE, Autoencoder, sample_label_histogram, train
from vitoolkit.vae.diagnostics import active_units
from vitoolkit.vae.generation import (
    ancestral_samples,
    grid_neighbour_distance,
    image_roughness,
    mean_pairwise_distance,
    nearest_distance,
    variance_decomposition,
)
from vitoolkit.vae.gradient_noise import elbo_gradients, gradient_noise
from vitoolkit.vae.latent import encode_batched, interpolation_distances
from vitoolkit.vae.likelihoods import bce_floor, continuous_bernoulli_log_normaliser
from vitoolkit.vae.posterior_stats import (
    aggregate_posterior,
    aggregate_total_correlation,
    correlation_matrix,
    gaussian_total_correlation,
    kl_decomposition,
    max_abs_off_diagonal,
)

tut = Tutorial("05_vae")
EPOCHS = tut.choose(15, 150)
K_EVAL = tut.choose(200, 1000)  # importance samples for log p(x)
# One training recipe for every model: no early stopping, last epoch kept.
FIT = dict(epochs=EPOCHS, batch_size=64, lr=2e-3, seed=tut.seed, progress=False,
           restore_best=False)

Xb, yb = load_digits(binarize=True, split="train")  # {0, 1} pixels
Xb_val, _ = load_digits(binarize=True, split="val")
Xb_test, y_test = load_digits(binarize=True, split="test")
Xc, _ = load_digits(split="train")  # continuous pixels in [0, 1]
Xc_val, _ = load_digits(split="val")
Xc_test, _ = load_digits(split="test")
N_TRAIN = Xb.shape[0]
tut.record("n_train", N_TRAIN)
tut.record("epochs", EPOCHS)


def per_image(values):
    """Mean over images and its standard error."""
    est = mean_and_stderr(torch.as_tensor(values).double())
    return float(est.value), float(est.stderr)


def log_px(model, X, offset, key):
    """Importance-sampled test log p(x) per image; records the mean and the unreliable count."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreliableEstimateWarning)
        est = model.log_likelihood_estimate(X, K_EVAL, generator=tut.generator(offset))
    tut.record(f"log_likelihood[{key}]", per_image(est.value)[0], ".2f")
    tut.record(f"log_likelihood_khat_above_0.7[{key}]", int((est.khat > KHAT_THRESHOLD).sum()))
    return est.value


def reconstruction_and_kl(model, X, offset):
    """Per-image E_q[log p(x|z)] (one sample) and analytic KL(q(z|x) || p(z)), nats."""
    with torch.no_grad():
        q = model.encode(X)
        kl = torch.distributions.kl_divergence(q, model.prior)
        recon = model.elbo(X, beta=0.0, generator=tut.generator(offset))
    return recon, kl


# %% [markdown]
# ## 2. Autoencoder vs VAE: holes in the latent space
#
# A plain autoencoder (same networks, reconstruction loss only) places codes
# wherever reconstruction is easiest. Nothing says how codes are *distributed*,
# so there is no distribution to sample new images from: drawing $z$ from
# $\mathcal N(0, I)$ visits some regions of its code space too often and others
# almost never. The VAE's KL term pulls every $q(z\mid x)$ towards the prior
# (section 8 shows what that does to the codes as a whole).
# Two numbers on 2-D codes: the KL from a Gaussian fitted to the codes to the
# prior (the "nats from N(0,I)" of the figure), and the entropy of the classes
# that decoded prior draws resemble (nearest training image; $\log 10 = 2.303$
# nats when every digit appears equally often).

# %%
ae2 = Autoencoder(64, 2, seed=tut.seed)
train(ae2, Xb, **FIT)
vae2 = VAE(64, 2, seed=tut.seed)
train(vae2, Xb, **FIT)

z_prior = torch.randn(2000, 2, generator=tut.generator(2))
with torch.no_grad():
    codes_ae = ae2.encode(Xb)
    codes_vae = vae2.encode(Xb).mean
    prior_ae = ae2.decode(z_prior)
    prior_vae = vae2.decode(z_prior).mean
standard2 = MultivariateNormal(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
for name, codes, decoded in (("ae", codes_ae, prior_ae), ("vae", codes_vae, prior_vae)):
    fitted = MultivariateNormal(codes.double().mean(0), torch.cov(codes.double().T))
    tut.record(f"{name}_kl_code_gaussian_to_prior", kl_divergence(fitted, standard2), ".2f")
    hist = sample_label_histogram(decoded, Xb, yb, num_classes=10)
    tut.record(f"{name}_prior_sample_class_entropy", Categorical(probs=hist).entropy(), ".3f")
    tut.record(f"{name}_prior_sample_class_shares", hist, None)
kl_fit_ae = tut.summary["ae_kl_code_gaussian_to_prior"]
kl_fit_vae = tut.summary["vae_kl_code_gaussian_to_prior"]
ent_ae = tut.summary["ae_prior_sample_class_entropy"]
ent_vae = tut.summary["vae_prior_sample_class_entropy"]
tut.claim("The VAE's encoder means are close to N(0, I): a Gaussian fitted to them is less than "
          "0.25 nats from the prior, and less than half as far as the autoencoder's codes",
          kl_fit_vae < 0.25 and kl_fit_vae < 0.5 * kl_fit_ae, vae=kl_fit_vae, ae=kl_fit_ae)
tut.claim("Decoded prior draws cover the ten digit classes more evenly for the VAE than for the "
          "autoencoder (higher class entropy)", ent_vae > ent_ae, vae=ent_vae, ae=ent_ae,
          uniform=math.log(10))

fig, axes = subplots(2, 2, size=4.4)
plot_latent_scatter(codes_ae, yb, ax=axes[0, 0], legend=False,
                    title=f"AE codes: {kl_fit_ae:.2f} nats from N(0,I)")
plot_latent_scatter(codes_vae, yb, ax=axes[0, 1],
                    title=f"VAE means: {kl_fit_vae:.2f} nats from N(0,I)")
plot_image_grid(prior_ae[:24], ncols=8, ax=axes[1, 0],
                title=f"AE decodes N(0,I): class entropy {ent_ae:.2f}")
plot_image_grid(prior_vae[:24], ncols=8, ax=axes[1, 1],
                title=f"VAE decodes N(0,I): class entropy {ent_vae:.2f}")
tut.savefig(fig, "ae_vs_vae_latent")

# %% [markdown]
# **Holes between codes.** Walk in a straight line from the code of one test digit
# to the code of a test digit of another class and decode each point. Where the
# decoder was never trained the decoded image is unlike any digit: we measure how
# far each decoded image is from its *nearest training image* (Euclidean distance
# in pixel space) and report the *excess* over the straight line between the end
# points' distances (zero at both ends; at the midpoint, the midpoint's distance
# minus the mean of the end points'). We use 8-dimensional codes (an autoencoder
# and a VAE with the same networks and training).

# %%
ae8 = Autoencoder(64, 8, seed=tut.seed)
train(ae8, Xb, **FIT)
vae8 = VAE(64, 8, seed=tut.seed)
hist8 = train(vae8, Xb, validation=Xb_val, **FIT)

perm = torch.randperm(Xb_test.shape[0], generator=tut.generator(10))
half = Xb_test.shape[0] // 2
ia, ib = perm[:half], perm[half:2 * half]
other = y_test[ia] != y_test[ib]
ia, ib = ia[other], ib[other]
steps = 9
t_path = torch.linspace(0, 1, steps)
path_dist = {}
for label, model in (("autoencoder", ae8), ("VAE", vae8)):
    d = interpolation_distances(model, Xb_test[ia], Xb_test[ib], Xb, num_steps=steps)
    # Excess over the line joining the end points' distances, per pair: 0 at t = 0 and 1.
    path_dist[label] = d - (1 - t_path[:, None]) * d[0] - t_path[:, None] * d[-1]
    m, se = per_image(path_dist[label][steps // 2])
    tut.record(f"midpoint_excess_distance[{label}]", m, ".3f")
    tut.record(f"midpoint_excess_distance_stderr[{label}]", se, ".3f")
tut.record("midpoint_pairs", int(other.sum()))
ex_ae = tut.summary["midpoint_excess_distance[autoencoder]"]
ex_vae = tut.summary["midpoint_excess_distance[VAE]"]
se_ae = tut.summary["midpoint_excess_distance_stderr[autoencoder]"]
se_vae = tut.summary["midpoint_excess_distance_stderr[VAE]"]
tut.claim("The autoencoder's midpoints decode to images farther from every training digit than "
          "its end points (excess above 2 standard errors)", ex_ae > 2 * se_ae, excess=ex_ae,
          stderr=se_ae)
tut.claim("With 8-dimensional codes the autoencoder's midpoints land farther from every training "
          "digit, relative to its end points, than the VAE's",
          ex_ae > ex_vae, autoencoder=ex_ae, vae=ex_vae, se_autoencoder=se_ae, se_vae=se_vae)

with torch.no_grad():
    a, b = Xb_test[ia[:8]], Xb_test[ib[:8]]
    mid_ae = ae8.decode(0.5 * (ae8.encode(a) + ae8.encode(b)))
    mid_vae = vae8.decode(0.5 * (vae8.encode(a).mean + vae8.encode(b).mean)).mean
fig, axes = subplots(1, 2, size=4.2)
plot_curves(t_path, {k: v.mean(1) for k, v in path_dist.items()}, ax=axes[0],
            bands={k: 2 * v.std(1) / math.sqrt(v.shape[1]) for k, v in path_dist.items()},
            xlabel="position t on the path z(t) = (1 - t) z_a + t z_b",
            ylabel="excess distance to nearest training digit",
            title=f"Midpoint excess: AE {ex_ae:.2f}, VAE {ex_vae:.2f}")
plot_reconstructions(a, {"AE midpoint": mid_ae, "VAE midpoint": mid_vae, "other end": b},
                     ax=axes[1], title="Decoded midpoints (8-D codes)")
tut.savefig(fig, "midpoints")

# %% [markdown]
# ## 3. The reparameterisation trick in a real network
#
# Sampling $z \sim q_\phi(z\mid x)$ is not differentiable in $\phi$, but writing
# $z = \mu_\phi(x) + \sigma_\phi(x) \odot \varepsilon$ with $\varepsilon \sim
# \mathcal N(0, I)$ moves the randomness into $\varepsilon$ (Kingma & Welling
# 2013, section 2.4), and the one-sample ELBO becomes an ordinary differentiable
# function of the encoder weights. `VAE.elbo` does exactly this; autograd then
# reaches every encoder weight. Repeating the backward pass with fresh
# $\varepsilon$ shows the estimator's noise: the signal-to-noise ratio of one
# sample (norm of the mean gradient over the square root of the total variance)
# is below 1. Averaging $m$ independent samples divides the variance by $m$ (and
# multiplies the ratio by $\sqrt m$); a mini-batch averages over images as well.

# %%
x_one = Xb_test[:1]
n_grad = tut.choose(60, 200)
grads = elbo_gradients(vae2, x_one, n_grad, generator=tut.generator(3))
one = gradient_noise(grads)
tut.record("encoder_gradient_norm", one.mean_norm, ".3f")
tut.record("encoder_gradient_snr_one_sample", one.snr, ".3f")
tut.claim("One reparameterised sample gives a gradient whose signal-to-noise ratio is below 1",
          one.snr < 1.0, snr=one.snr)

with torch.no_grad():
    q_one = vae2.encode(x_one)
    eps = torch.randn(400, 2, generator=tut.generator(4))
    z_cloud = q_one.mean + q_one.stddev * eps  # z = mu + sigma * eps
    decoded = vae2.decode(z_cloud).mean
cloud_sd = float(q_one.stddev.max())
means_sd = float(codes_vae.std(0).min())
apart_cloud = mean_pairwise_distance(decoded)
apart_prior = mean_pairwise_distance(prior_vae[:400])
tut.record("one_digit_posterior_max_sd", cloud_sd, ".3f")
tut.record("training_means_min_sd", means_sd, ".3f")
tut.record("one_digit_samples_mean_pairwise_distance", apart_cloud, ".3f")
tut.record("prior_samples_mean_pairwise_distance", apart_prior, ".3f")
tut.claim("q(z|x) of one digit is a small cloud: its largest standard deviation is under half "
          "the spread of the training means", cloud_sd < 0.5 * means_sd, cloud_sd=cloud_sd,
          means_sd=means_sd)
tut.claim("The samples of that cloud decode to variations of one image: less than half as far "
          "apart (pixel distance) as decoded prior draws", apart_cloud < 0.5 * apart_prior,
          cloud=apart_cloud, prior_draws=apart_prior)
fig, axes = subplots(1, 2, size=4.4)
plot_latent_scatter(codes_vae, None, ax=axes[0], size=4, color="0.75", label="training means")
plot_latent_scatter(z_cloud, None, ax=axes[0], size=6, color="black",
                    label="z = mu + sigma * eps",
                    title=f"One digit's q(z|x): sd {cloud_sd:.2f} vs means' spread {means_sd:.2f}")
plot_image_grid(decoded[:16], ncols=8, ax=axes[1],
                title=f"Its samples: {apart_cloud:.2f} apart (prior draws {apart_prior:.2f})")
tut.savefig(fig, "reparameterisation")

# %% [markdown]
# ## 4. Why learn the variance?
#
# **Encoder variance.** If $\sigma_\phi(x)$ is fixed at 1, every $q(z\mid x)$ is as
# wide as the prior and $z = \mu + \varepsilon$ is a noisy channel: to be heard
# above unit noise the encoder must push the means apart, and the KL charges
# $\mu^2/2$ per unit for it. The decoder does *not* learn to ignore $z$ (its units
# stay active and $z$ still carries information), but each nat of KL buys less
# information about $x$: we measure the mutual information $I_q(x; z)$ between a
# training image and its code (section 8 shows how), the reconstruction term and
# log p(x). Learning $\sigma$ lets each digit claim a small region of latent space:
# on the active units the learned $\sigma$ averages below the prior's 1.
#
# **Decoder variance.** A Gaussian decoder with fixed $\sigma$ weighs the
# squared error by $1/(2\sigma^2)$ against the KL: too large a $\sigma$ and the
# KL wins (no active units), too small and the KL is cheap next to the
# reconstruction term. A learned per-pixel $\sigma$ sets that balance from the
# data (Kingma & Welling 2013, Appendix C.2); log-likelihoods of Gaussian models
# are comparable (same data space). For the Gaussian decoders with small or
# learned $\sigma$ many test images have $\hat k > 0.7$ (printed): those
# estimates are likely too low, so we compare estimates that differ by more than
# 5 nats, and part of the learned $\sigma$'s lead comes from the background
# pixels that are always 0, where it sits at its floor.

# %%
settings = [  # (label, key, data, constructor arguments); vae8 is the first one
    ("encoder sigma learned", "encoder_sigma_learned", "binary", None),
    ("encoder sigma = 1", "encoder_sigma_1", "binary", dict(posterior_scale=1.0)),
    ("decoder sigma = 1", "decoder_sigma_1", "continuous",
     dict(likelihood="gaussian", observation_scale=1.0)),
    ("decoder sigma = 0.1", "decoder_sigma_01", "continuous",
     dict(likelihood="gaussian", observation_scale=0.1)),
    ("decoder sigma learned", "decoder_sigma_learned", "continuous",
     dict(likelihood="gaussian_learned", min_scale=0.05)),
]
models, res = {}, {}
for _label, key, kind, kwargs in settings:
    train_x, test_x = (Xb, Xb_test) if kind == "binary" else (Xc, Xc_test)
    if kwargs is None:
        model = vae8
    else:
        model = VAE(64, 8, seed=tut.seed, **kwargs)
        train(model, train_x, **FIT)
    models[key] = model
    ll = log_px(model, test_x, 5, key)
    recon, kl = reconstruction_and_kl(model, test_x, 6)
    act = active_units(model, train_x)
    _, scale = encode_batched(model, train_x)
    res[key] = dict(ll=per_image(ll), recon=per_image(recon)[0], kl=per_image(kl)[0],
                    active=act.count, ll_values=ll,
                    sigma_active=float(scale[:, act.mask].mean()) if act.count else math.nan)
    tut.record(f"reconstruction[{key}]", res[key]["recon"], ".2f")
    tut.record(f"kl[{key}]", res[key]["kl"], ".2f")
    tut.record(f"active_units[{key}]", res[key]["active"])
    if kind == "binary":
        dec = kl_decomposition(aggregate_posterior(model, Xb), tut.choose(1000, 2000),
                               generator=tut.generator(11))
        res[key]["mi"] = float(dec.mutual_information.value)
        res[key]["train_kl"] = dec.average_kl
        tut.record(f"mutual_information[{key}]", res[key]["mi"], ".2f")
        tut.record(f"information_per_nat_of_kl[{key}]", res[key]["mi"] / dec.average_kl, ".2f")

L, F = res["encoder_sigma_learned"], res["encoder_sigma_1"]
tut.record("encoder_sigma_on_active_units[learned]", L["sigma_active"], ".3f")
tut.claim("On the active units the learned encoder sigma averages below the prior's 1 "
          "(below 0.8)", L["sigma_active"] < 0.8, mean_sigma=L["sigma_active"])
tut.claim("With encoder sigma fixed at 1 the decoder does not ignore z: units stay active and z "
          "carries more than half a nat about x", F["active"] >= 1 and F["mi"] > 0.5,
          active_units=F["active"], mutual_information=F["mi"])
tut.claim("Learning sigma puts more information about x into z than fixing it at 1",
          L["mi"] > F["mi"], learned=L["mi"], fixed=F["mi"])
tut.claim("Each nat of KL buys more information with a learned sigma than with sigma = 1",
          L["mi"] / L["train_kl"] > F["mi"] / F["train_kl"],
          learned=L["mi"] / L["train_kl"], fixed=F["mi"] / F["train_kl"])
tut.claim("The learned-sigma model reconstructs test digits better and has the higher test "
          "log p(x)", L["recon"] > F["recon"] and L["ll"][0] > F["ll"][0],
          recon_learned=L["recon"], recon_fixed=F["recon"], ll_learned=L["ll"][0],
          ll_fixed=F["ll"][0])

D1, D01, DL = (res[k] for k in ("decoder_sigma_1", "decoder_sigma_01", "decoder_sigma_learned"))
tut.claim("Decoder sigma = 1: the KL wins, the code is unused (no active unit, KL under 0.5 nats)",
          D1["active"] == 0 and D1["kl"] < 0.5, active_units=D1["active"], kl=D1["kl"])
tut.claim("Decoder sigma = 0.1 makes the KL cheap: it spends more KL than the learned sigma, "
          "which spends more than sigma = 1", D01["kl"] > DL["kl"] > D1["kl"],
          sigma_01=D01["kl"], learned=DL["kl"], sigma_1=D1["kl"])
tut.claim("The learned decoder sigma has the highest test log p(x) estimate, sigma = 1 the "
          "lowest, each by more than 5 nats", DL["ll"][0] - 5 > D01["ll"][0] > D1["ll"][0] + 5,
          learned=DL["ll"][0], sigma_01=D01["ll"][0], sigma_1=D1["ll"][0])
with torch.no_grad():
    dec_scale = models["decoder_sigma_learned"].decode(
        encode_batched(models["decoder_sigma_learned"], Xc_test)[0]).stddev
at_floor = float((dec_scale < 0.05 * 1.1).double().mean())
tut.record("learned_decoder_share_of_pixels_at_min_scale", at_floor, ".2f")
tut.claim("The learned decoder sigma sits at its floor on the background: over a fifth of the "
          "test pixels get a sigma within 10% of min_scale = 0.05", at_floor > 0.2,
          share=at_floor)

fig, axes = subplots(1, 3, size=4.4)
names_b = ["encoder sigma learned", "encoder sigma = 1"]
plot_metric_bars(["KL, learned", "I(x;z), learned", "KL, sigma = 1", "I(x;z), sigma = 1"],
                 [L["train_kl"], L["mi"], F["train_kl"], F["mi"]], ax=axes[0],
                 ylabel="nats per image",
                 title=f"I(x;z): learned {L['mi']:.1f} vs sigma = 1 {F['mi']:.1f}")
plot_metric_bars(names_b, [L["ll"][0], F["ll"][0]], [L["ll"][1], F["ll"][1]], ax=axes[1],
                 ylabel="test log p(x), nats per image",
                 title=f"Encoder sigma = 1 loses {L['ll'][0] - F['ll'][0]:.1f} nats")
labels_c = ["decoder sigma = 1", "decoder sigma = 0.1", "decoder sigma learned"]
plot_metric_bars(labels_c, [D1["ll"][0], D01["ll"][0], DL["ll"][0]],
                 [D1["ll"][1], D01["ll"][1], DL["ll"][1]], ax=axes[2],
                 ylabel="test log p(x), nats per image", title="Learned decoder sigma wins")
tut.savefig(fig, "learned_vs_fixed_variance")

# %% [markdown]
# ## 5. Reconstruction only, KL only, both
#
# Drop the KL ($\beta = 0$): the VAE becomes a noisy autoencoder; $\sigma$ shrinks
# and the codes spread out far beyond the prior. Keep essentially only the KL
# ($\beta = 1000$, so the reconstruction term is negligible): every $q(z\mid x)$
# collapses onto the prior and the codes carry nothing about $x$ (Higgins et
# al. 2017 study the dial in between, eq. 4). The ELBO ($\beta = 1$, the 2-D VAE
# of section 2, trained the same way) sits between, in both terms, on the
# training digits.

# %%
beta_runs = {"reconstruction only (beta=0)": 0.0, "both (beta=1)": 1.0,
             "KL only (beta=1000)": 1000.0}
beta_res = {}
fig, axes = subplots(1, 3, size=4.0)
for i, (label, beta) in enumerate(beta_runs.items()):
    model = vae2 if beta == 1.0 else VAE(64, 2, seed=tut.seed)
    if beta != 1.0:
        train(model, Xb, beta=beta, **FIT)
    tag = label.split(" (")[0].replace(" ", "_")
    recon_tr, kl_tr = reconstruction_and_kl(model, Xb, 6)
    recon_te, _ = reconstruction_and_kl(model, Xb_test, 6)
    loc, scale = encode_batched(model, Xb_test)
    beta_res[beta] = dict(kl=float(kl_tr.mean()), recon=float(recon_tr.mean()),
                          recon_test=float(recon_te.mean()), sigma=float(scale.mean()),
                          spread=float(loc.std(0).mean()), active=active_units(model, Xb_test).count)
    for k, v in beta_res[beta].items():
        tut.record(f"{k}[{tag}]", v, ".3f" if isinstance(v, float) else None)
    plot_latent_scatter(loc, y_test, ax=axes[i], legend="outside" if i == 2 else False,
                        title=f"beta = {beta:g}: KL {beta_res[beta]['kl']:.1f} nats")
tut.savefig(fig, "reconstruction_vs_kl")
B0, B1, B1000 = beta_res[0.0], beta_res[1.0], beta_res[1000.0]
tut.claim("Without the KL (beta = 0) sigma shrinks below the ELBO model's and the codes spread "
          "out farther, beyond the prior (mean sd above 1.5)",
          B0["sigma"] < B1["sigma"] and B0["spread"] > max(B1["spread"], 1.5),
          sigma_beta0=B0["sigma"], sigma_beta1=B1["sigma"], spread_beta0=B0["spread"],
          spread_beta1=B1["spread"])
tut.claim("With beta = 1000 every q(z|x) collapses onto the prior: KL under 0.05 nats, no "
          "active unit", B1000["kl"] < 0.05 and B1000["active"] == 0, kl=B1000["kl"],
          active_units=B1000["active"])
tut.claim("On the training digits the ELBO (beta = 1) sits between the two in both terms",
          B0["kl"] > B1["kl"] > B1000["kl"] and B0["recon"] > B1["recon"] > B1000["recon"],
          kl=[B0["kl"], B1["kl"], B1000["kl"]], recon=[B0["recon"], B1["recon"], B1000["recon"]])

# %% [markdown]
# ## 6. BCE, MSE and the continuous Bernoulli are likelihoods
#
# Each reconstruction loss is a negative log-likelihood: binary cross-entropy
# is a Bernoulli decoder, squared error a Gaussian with fixed $\sigma$ (section 4).
# On *continuous* pixels in $[0, 1]$ BCE is not a proper likelihood: as a function
# of $x \in [0, 1]$, $\lambda^x (1 - \lambda)^{1 - x}$ integrates to less than 1.
# The continuous Bernoulli adds the missing normaliser $C(\lambda)$
# (Loaiza-Ganem & Cunningham 2019, eq. 3); $\log C(\lambda) \ge \log 2 > 0$ per
# pixel is how far BCE's "log-likelihood" is from a real one. Its mean is not
# $\lambda$, so images must be decoded through the distribution's mean. Each
# decoder is best at the loss it is: the Gaussian one (squared error) reconstructs
# with the lowest squared error.
#
# **BCE's floor on grey pixels.** For a target $y \in [0, 1]$ the loss
# $-y \log p - (1 - y)\log(1 - p)$ is smallest at $p = y$, where it equals the
# binary entropy $H(y)$: zero only at $y = 0$ and $y = 1$, $\log 2$ at $y = 1/2$.
# A perfect decoder still pays $H(y)$ on every grey pixel, so BCE on continuous
# digits can never reach zero.

# %%
likelihood_runs = [("BCE (bernoulli)", "bernoulli", {}),
                   ("MSE (gaussian)", "gaussian", None),  # = section 4's decoder sigma = 0.1
                   ("continuous Bernoulli", "continuous_bernoulli", {})]
recons, mse = {}, {}
for label, name, extra in likelihood_runs:
    if extra is None:
        model = models["decoder_sigma_01"]
    else:
        model = VAE(64, 8, likelihood=name, seed=tut.seed, **extra)
        train(model, Xc, **FIT)
    recons[label] = model.reconstruct(Xc_test[:10])
    mse[label] = float((model.reconstruct(Xc_test) - Xc_test).pow(2).sum(1).mean())
    if name == "bernoulli":
        with torch.no_grad():
            logits = model.decoder(model.encode(Xc_test).mean)
            bce = Independent(Bernoulli(logits=logits, validate_args=False), 1).log_prob(Xc_test)
            cb_dist = Independent(ContinuousBernoulli(logits=logits), 1)
            cb = cb_dist.log_prob(Xc_test)
        tut.record("bce_missing_log_normaliser_per_image", (cb - bce).mean(), ".2f")
        floor = bce_floor(Xc_test.double()).sum(1)
        bce_recon, _ = reconstruction_and_kl(model, Xc_test, 12)
        tut.record("bce_floor_per_image", floor.mean(), ".2f")
        tut.record("bce_model_reconstruction_nll_per_image", -bce_recon.mean(), ".2f")
    if name == "continuous_bernoulli":
        with torch.no_grad():
            dist = model.decode(model.encode(Xc_test).mean)
            gap = (dist.mean - dist.base_dist.probs).abs().mean()
        tut.record("continuous_bernoulli_mean_minus_lambda", gap, ".3f")
    key = name if extra is not None else "gaussian"
    if extra is not None:
        log_px(model, Xc_test, 7, f"continuous_pixels_{key}")
    else:
        tut.record(f"log_likelihood[continuous_pixels_{key}]",
                   tut.summary["log_likelihood[decoder_sigma_01]"], ".2f")
    tut.record(f"reconstruction_squared_error[{key}]", mse[label], ".3f")

gap_norm = tut.summary["bce_missing_log_normaliser_per_image"]
tut.claim("log C(lambda) >= log 2 per pixel: BCE's log-likelihood on continuous digits lies at "
          "least 64 log 2 nats per image below the normalised one", gap_norm >= 64 * math.log(2),
          gap=gap_norm, bound=64 * math.log(2))
cb_gap = tut.summary["continuous_bernoulli_mean_minus_lambda"]
tut.claim("The continuous Bernoulli's mean is not lambda (mean |E[x] - lambda| over test pixels "
          "above 0.02)", cb_gap > 0.02, gap=cb_gap)
floor_img = tut.summary["bce_floor_per_image"]
bce_nll = tut.summary["bce_model_reconstruction_nll_per_image"]
grey = float(((Xc_test > 0) & (Xc_test < 1)).double().mean())
tut.record("share_of_grey_test_pixels", grey, ".2f")
tut.claim("BCE cannot reach zero on continuous digits: the floor sum_d H(y_d) is positive and "
          "the trained BCE model's reconstruction loss lies above it",
          floor_img > 0 and bce_nll > floor_img, floor=floor_img, bce_model=bce_nll,
          grey_pixels=grey)

y_grid = torch.linspace(0.0, 1.0, 401, dtype=torch.float64)
lam_grid = y_grid[1:-1]
h = bce_floor(y_grid)
log_c = continuous_bernoulli_log_normaliser(lam_grid)
tut.claim("The floor H(y) is zero only at y = 0 and y = 1 and peaks at log 2 at y = 1/2",
          float(h[0]) == 0.0 and float(h[-1]) == 0.0 and bool((h[1:-1] > 0).all())
          and abs(float(h.max()) - math.log(2)) < 1e-12 and abs(float(y_grid[h.argmax()]) - 0.5) < 1e-9,
          h_max=h.max(), at=y_grid[h.argmax()])
tut.claim("log C(lambda) is never below log 2, which it reaches at lambda = 1/2",
          float(log_c.min()) >= math.log(2) - 1e-12
          and abs(float(lam_grid[log_c.argmin()]) - 0.5) < 1e-9, minimum=log_c.min())

fig, axes = subplots(1, 2, size=4.2)
plot_curves({"BCE floor H(y)": y_grid, "log C(lambda), continuous Bernoulli": lam_grid},
            {"BCE floor H(y)": h, "log C(lambda), continuous Bernoulli": log_c}, ax=axes[0],
            xlabel="target pixel y  /  decoder parameter lambda", ylabel="nats per pixel",
            title=f"BCE floor: {floor_img:.1f} nats per test digit")
axes[0].set_ylim(0, 2.5)
m_bce, m_mse, m_cb = (mse[lab] for lab, _, _ in likelihood_runs)
plot_reconstructions(Xc_test[:10], recons, ax=axes[1],
                     title=f"Squared error: MSE {m_mse:.2f}, CB {m_cb:.2f}, BCE {m_bce:.2f}")
tut.claim("The Gaussian (MSE) decoder reconstructs test digits with the lowest squared error",
          m_mse < min(m_bce, m_cb), mse=m_mse, continuous_bernoulli=m_cb, bce=m_bce)
tut.savefig(fig, "likelihood_reconstructions")

# %% [markdown]
# ## 7. Decoding the mean vs sampling
#
# A sample of the generative model is $z \sim p(z)$, then $x \sim p(x \mid z)$.
# The pixels of a Bernoulli decoder are independent given $z$, so a draw of
# $x$ scatters every uncertain pixel independently: speckle. Showing the mean
# $\mathbb E[x \mid z]$ instead averages over that pixel noise, and the
# uncertainty about *where* strokes are (which the factorised decoder cannot
# express) shows up as blur. We measure both with the roughness of an image (the
# mean squared difference of neighbouring pixels), against the test digits': the
# means are too smooth, the draws get their roughness back from speckle.
# The bound and the importance-sampled log-likelihood of the 8-dimensional model
# order as theory says: ELBO $\le L_{50} \le \log p(x)$ (Burda et al. 2015).

# %%
means = vae8.sample(32, generator=tut.generator(9))
draws = vae8.sample(32, mean=False, generator=tut.generator(9))
rough = {"test digits": per_image(image_roughness(Xb_test))[0],
         "decoder means": per_image(image_roughness(means))[0],
         "decoder draws": per_image(image_roughness(draws))[0]}
for k, v in rough.items():
    tut.record(f"roughness[{k.replace(' ', '_')}]", v, ".3f")
tut.claim("Decoder means are smoother than real digits; Bernoulli draws are rough again, closer "
          "to the digits' roughness than the means are",
          rough["decoder means"] < rough["test digits"]
          and abs(rough["decoder draws"] - rough["test digits"])
          < abs(rough["decoder means"] - rough["test digits"]),
          **{k.replace(" ", "_"): v for k, v in rough.items()})
gen = tut.generator(8)
with torch.no_grad():
    elbo = vae8.elbo(Xb_test, generator=gen)
    with warnings.catch_warnings():  # k-hat of L_50: see log_likelihood_khat_above_0.7
        warnings.simplefilter("ignore", UnreliableEstimateWarning)
        iwae = vae8.iwae_bound(Xb_test, 50, generator=gen)
ll8 = res["encoder_sigma_learned"]["ll_values"]
tut.record("vae_test_elbo", per_image(elbo)[0], ".2f")
tut.record("vae_test_iwae_k50", per_image(iwae)[0], ".2f")
tut.record("log_likelihood_num_samples", K_EVAL)
tut.record("vae_test_log_likelihood", per_image(ll8)[0], ".2f")
d1, s1 = per_image(iwae - elbo)
d2, s2 = per_image(ll8 - iwae)
tut.claim("ELBO <= L_50 on the test digits", d1 > 0, gap=d1, stderr=s1)
tut.claim(f"L_50 <= the log p(x) estimate with K = {K_EVAL} (within 2 standard errors)",
          d2 > -2 * s2, gap=d2, stderr=s2)
val_gain = hist8.val_elbo[-1] - hist8.val_elbo[0]
tut.claim("The validation ELBO improves from the first epoch to the last", val_gain > 0,
          gain=val_gain)

fig, axes = subplots(1, 3, size=4.2)
plot_image_grid(means, ncols=8, ax=axes[0],
                title=f"Decoder means: roughness {rough['decoder means']:.3f}")
plot_image_grid(draws, ncols=8, ax=axes[1],
                title=f"Decoder draws: roughness {rough['decoder draws']:.3f}")
plot_training_curves({"train": {"epoch": hist8.epoch, "v": hist8.train_elbo},
                      "validation": {"epoch": hist8.epoch, "v": hist8.val_elbo}}, "v",
                     ax=axes[2], title=f"Validation ELBO gains {val_gain:.1f} nats")
tut.savefig(fig, "mean_vs_sample")

# %% [markdown]
# **Does sampling a Gaussian decoder's pixel noise make images sharper?** The
# decoder with learned per-pixel $\sigma$ (section 4) is a full generative model
# of continuous digits. Separate its two random steps: *sample $z$* (each column
# below: a new $z$, a new mean $\mathbb E[x \mid z]$) and *sample $x$ given $z$*
# (the rows under each mean: the same $z$, fresh pixel noise). The law of total
# variance splits the samples' pixel variance into the part from $z$ and the part
# from pixel noise, and the pixel noise is a large part of it. The noise lifts
# the roughness of the images towards that of real digits, so they *look*
# crisper, but it moves them farther from every real digit: sharper-looking, not
# more digit-like.

# %%
gl = models["decoder_sigma_learned"]
anc = ancestral_samples(gl, tut.choose(300, 1000), 3, generator=tut.generator(13))
vd = variance_decomposition(anc.means, anc.variances)
tut.record("variance_between_z", vd.between_z, ".4f")
tut.record("variance_within_z_pixel_noise", vd.within_z, ".4f")
tut.record("pixel_noise_share_of_variance", vd.noise_fraction, ".2f")
rough_c = {"test digits": per_image(image_roughness(Xc_test))[0],
           "means": per_image(image_roughness(anc.means))[0],
           "draws": per_image(image_roughness(anc.draws[0]))[0]}
near_c = {"test digits": per_image(nearest_distance(Xc_test, Xc))[0],
          "means": per_image(nearest_distance(anc.means, Xc))[0],
          "draws": per_image(nearest_distance(anc.draws[0], Xc))[0]}
for k in rough_c:
    tut.record(f"gaussian_decoder_roughness[{k.replace(' ', '_')}]", rough_c[k], ".3f")
    tut.record(f"gaussian_decoder_nearest_distance[{k.replace(' ', '_')}]", near_c[k], ".3f")
tut.claim("Pixel noise is a large part of what varies between samples: more than a fifth of "
          "their pixel variance", vd.noise_fraction > 0.2, share=vd.noise_fraction,
          between_z=vd.between_z, within_z=vd.within_z)
tut.claim("Pixel noise makes samples rougher than the means, closer to the roughness of real "
          "digits", rough_c["draws"] > rough_c["means"]
          and abs(rough_c["draws"] - rough_c["test digits"])
          < abs(rough_c["means"] - rough_c["test digits"]), **rough_c)
tut.claim("... but it moves them farther from every real digit than the means",
          near_c["draws"] > near_c["means"], draws=near_c["draws"], means=near_c["means"],
          test_digits=near_c["test digits"])

n_show = 8
rows = torch.cat([anc.means[:n_show], anc.draws[:, :n_show].reshape(-1, 64)])
fig, axes = subplots(1, 2, size=4.6)
plot_image_grid(rows, ncols=n_show, ax=axes[0],
                row_labels=["E[x|z]", "x ~ p(x|z)", "x ~ p(x|z)", "x ~ p(x|z)"],
                xlabel="each column: one z ~ p(z)",
                title=f"Pixel noise: {vd.noise_fraction:.0%} of the variance")
plot_metric_bars(["test digits", "decoder means", "decoder draws"],
                 [near_c["test digits"], near_c["means"], near_c["draws"]], ax=axes[1],
                 ylabel="distance to nearest training digit",
                 title=f"Draws {near_c['draws'] - near_c['means']:.2f} farther from the data")
tut.savefig(fig, "decoder_noise")

# %%
# 2-D manifold (Kingma & Welling 2013, Fig. 4): decode a grid of z at Gaussian quantiles.
g = tut.choose(10, 15)
grid = Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, g))
zz = torch.stack(torch.meshgrid(grid, grid.flip(0), indexing="xy"), dim=-1).reshape(-1, 2)
with torch.no_grad():
    manifold = vae2.decode(zz).mean
neighbour = grid_neighbour_distance(manifold, g, g)
random_pairs = mean_pairwise_distance(manifold)
tut.record("manifold_neighbour_distance", neighbour, ".3f")
tut.record("manifold_random_pair_distance", random_pairs, ".3f")
tut.claim("The 2-D VAE's latent space decodes to smoothly changing digits: neighbouring grid "
          "images are less than half as far apart as random pairs of grid images",
          float(neighbour) < 0.5 * float(random_pairs), neighbour=neighbour,
          random_pairs=random_pairs)
fig, ax = subplots(1, 1, size=5.0)
plot_manifold(manifold, grid, ax=ax,
              title=f"Neighbours {neighbour:.2f} apart, random pairs {random_pairs:.2f}")
tut.savefig(fig, "manifold")

# %% [markdown]
# ## 8. Which distribution is pulled towards N(0, I)?
#
# The KL term acts on each $q(z \mid x_n)$, but averaged over the $N$ training
# images it splits in two (Hoffman & Johnson 2016, "ELBO surgery", eq. 2):
#
# $$\frac1N \sum_n \mathrm{KL}(q(z\mid x_n)\,\|\,p(z)) = I_q(n; z)
#   + \mathrm{KL}(q(z)\,\|\,p(z)),\qquad q(z) = \frac1N \sum_n q(z \mid x_n),$$
#
# the mutual information between an image's index and its code ($0 \le I_q \le
# \log N$), plus the KL from the *aggregate posterior* $q(z)$, a mixture of $N$
# Gaussians, to the prior. A code that says anything about $x$ must keep each
# $q(z\mid x_n)$ away from $N(0, I)$; what ends up close to the prior is the
# aggregate. We estimate KL(q(z) || p(z)) by Monte Carlo: draw from the mixture,
# evaluate its exact density (a log-sum-exp over its $N$ components).

# %%
n_mc = tut.choose(1000, 4000)
agg2 = aggregate_posterior(vae2, Xb)
dec2 = kl_decomposition(agg2, n_mc, generator=tut.generator(14))
dec8 = kl_decomposition(aggregate_posterior(vae8, Xb), n_mc, generator=tut.generator(15))
for tag, dec in (("2d", dec2), ("8d", dec8)):
    tut.record(f"average_kl_per_image[{tag}]", dec.average_kl, ".3f")
    tut.record(f"aggregate_kl_to_prior[{tag}]", dec.aggregate_kl.value, ".3f")
    tut.record(f"aggregate_kl_to_prior_stderr[{tag}]", dec.aggregate_kl.stderr, ".3f")
    tut.record(f"mutual_information[{tag}]", dec.mutual_information.value, ".3f")
    tut.claim(f"{tag.upper()} codes: the aggregate q(z) is less than a quarter as far from N(0, I) "
              "as the average q(z|x)", float(dec.aggregate_kl.value) < 0.25 * dec.average_kl,
              aggregate_kl=dec.aggregate_kl.value, average_kl=dec.average_kl)
    tut.claim(f"{tag.upper()} codes: most of the average KL is information about the image "
              "(I_q > KL(q(z) || p(z))), and I_q stays below log N",
              float(dec.aggregate_kl.value) < float(dec.mutual_information.value)
              < dec.log_num_components, information=dec.mutual_information.value,
              aggregate_kl=dec.aggregate_kl.value, log_n=dec.log_num_components)

lim = 3.2
axis = torch.linspace(-lim, lim, tut.choose(60, 120), dtype=torch.float64)
gx, gy = torch.meshgrid(axis, axis, indexing="xy")
pts = torch.stack([gx, gy], -1)
agg_density = agg2.log_prob(pts).exp()
prior_density = Normal(0.0, 1.0).log_prob(pts).sum(-1).exp()
one_kl = float(torch.distributions.kl_divergence(q_one, vae2.prior).detach())
fig, axes = subplots(1, 2, size=4.8)
plot_density_contours(gx, gy, agg_density, prior_density, ax=axes[0],
                      colorbar_label="aggregate q(z) density",
                      title=f"q(z) vs N(0,I) (dashed): KL {float(dec2.aggregate_kl.value):.2f}")
marg = {"aggregate q(z[0])": agg2.marginal_log_prob(axis, 0).exp(),
        "aggregate q(z[1])": agg2.marginal_log_prob(axis, 1).exp(),
        "N(0, 1)": Normal(0.0, 1.0).log_prob(axis).exp(),
        "one q(z[0]|x)": Normal(float(q_one.mean[0, 0]), float(q_one.stddev[0, 0])).log_prob(axis).exp()}
plot_curves(axis, marg, ax=axes[1], xlabel="z", ylabel="density", legend_loc="outside",
            styles={"N(0, 1)": {"color": "k", "ls": "--"}},
            title=f"One q(z|x): KL {one_kl:.1f}; average {dec2.average_kl:.1f}")
tut.savefig(fig, "aggregate_posterior")

# %% [markdown]
# **Does a diagonal $\sigma$ make the latent variables independent?** No: a
# diagonal $\sigma_\phi(x)$ makes each $q(z \mid x)$ factorise, but says nothing
# about how the *means* $\mu_\phi(x)$ vary together across the data set. What
# discourages dependent codes is only the soft pull of KL(q(z) || p(z)) towards
# the isotropic prior. We measure the correlation of the posterior means over the
# training set, on the active units (with $N$ independent pairs a sample
# correlation has standard deviation about $1/\sqrt N$): with $\sigma$ fixed at 1
# the means are clearly correlated. A linear correlation near zero would still not
# mean independence, so we also estimate the *total correlation* of the aggregate
# posterior, $\mathrm{KL}(q(z)\,\|\,\prod_d q(z_d))$ (Chen et al. 2018, eq. 2),
# zero exactly when its coordinates are independent; it is clearly positive for
# both encoders.

# %%
corr_res = {}
for key, label in (("encoder_sigma_learned", "sigma learned"), ("encoder_sigma_1", "sigma = 1")):
    loc, _ = encode_batched(models[key], Xb)
    act = active_units(models[key], Xb).mask
    corr = correlation_matrix(loc[:, act])
    dims = torch.nonzero(act).flatten().tolist()
    tc = aggregate_total_correlation(aggregate_posterior(models[key], Xb), tut.choose(1000, 2000),
                                     dims=dims,
                                     generator=tut.generator(17))
    corr_res[label] = dict(corr=corr, max=max_abs_off_diagonal(corr), dims=dims,
                           tc=float(tc.value), tc_se=float(tc.stderr),
                           gauss_tc=gaussian_total_correlation(torch.cov(loc[:, act].double().T)))
    tut.record(f"max_abs_mean_correlation[{key}]", corr_res[label]["max"], ".3f")
    tut.record(f"gaussian_total_correlation_of_means[{key}]", corr_res[label]["gauss_tc"], ".3f")
    tut.record(f"aggregate_total_correlation[{key}]", corr_res[label]["tc"], ".3f")
    tut.record(f"aggregate_total_correlation_stderr[{key}]", corr_res[label]["tc_se"], ".3f")
null_sd = 1 / math.sqrt(N_TRAIN)
tut.record("correlation_null_sd", null_sd, ".3f")
r1 = corr_res["sigma = 1"]
tut.claim("With sigma fixed at 1 the posterior means are clearly correlated across the data set "
          "(largest |r| above 4/sqrt(N))", r1["max"] > 4 * null_sd, max_abs_r=r1["max"],
          four_over_sqrt_n=4 * null_sd)
for label, r in corr_res.items():
    tut.claim(f"Encoder {label}: the aggregate posterior's coordinates are dependent (total "
              "correlation above 0.05 nats and 5 standard errors)",
              r["tc"] > max(0.05, 5 * r["tc_se"]), total_correlation=r["tc"], stderr=r["tc_se"],
              max_abs_r=r["max"])

fig, axes = subplots(1, 2, size=5.0)
for ax, (label, r) in zip(axes, corr_res.items(), strict=True):
    plot_correlation_matrix(r["corr"], [f"z[{d}]" for d in r["dims"]], ax=ax,
                            title=f"{label}: max |r| {r['max']:.2f}, TC {r['tc']:.2f}")
tut.savefig(fig, "mean_correlations")

# %% [markdown]
# ## 9. The KL by Monte Carlo inside a training run
#
# The KL term need not be computed in closed form: $\log q(z\mid x) - \log p(z)$
# at the same reparameterised sample is an unbiased estimate (Kingma & Welling
# 2013, eq. 6, their estimator A), and it is what one uses when no closed form
# exists. What does it cost? On the trained 8-dimensional VAE, the same batch of
# 64 digits and the *same* noise $\varepsilon$, the decoder's gradient is
# identical and the encoder's gradient picks up the estimator's extra noise.
# Then we train a second VAE with `kl="monte_carlo"`, everything else equal, and
# compare its test log p(x): the noisier gradient costs likelihood (the paired
# difference over the test images is printed).

# %%
n_rep = tut.choose(50, 100)
batch = Xb[:64]
g_an = elbo_gradients(vae8, batch, n_rep, kl="analytic", generator=tut.generator(16))
g_mc = elbo_gradients(vae8, batch, n_rep, kl="monte_carlo", generator=tut.generator(16))
noise_an, noise_mc = gradient_noise(g_an), gradient_noise(g_mc)
var_ratio = noise_mc.total_variance / noise_an.total_variance
tut.record("encoder_gradient_total_variance[analytic]", noise_an.total_variance, ".2f")
tut.record("encoder_gradient_total_variance[monte_carlo]", noise_mc.total_variance, ".2f")
tut.record("gradient_variance_ratio_mc_over_analytic", var_ratio, ".3f")
g_dec = [elbo_gradients(vae8, batch, 3, kl=kl, parameters="decoder", generator=tut.generator(16))
         for kl in ("analytic", "monte_carlo")]
tut.claim("With the same noise the decoder's gradient is identical under both KL estimators",
          bool(torch.equal(g_dec[0], g_dec[1])),
          max_abs_difference=(g_dec[0] - g_dec[1]).abs().max())
tut.claim("The Monte Carlo KL makes the encoder's gradient noisier than the analytic KL",
          var_ratio > 1, ratio=var_ratio, snr_analytic=noise_an.snr, snr_mc=noise_mc.snr)

vae8_mc = VAE(64, 8, kl="monte_carlo", seed=tut.seed)
hist_mc = train(vae8_mc, Xb, validation=Xb_val, **FIT)
ll_mc = log_px(vae8_mc, Xb_test, 5, "monte_carlo_kl")
diff_mc, se_mc = per_image(ll_mc - ll8)
tut.record("log_likelihood_difference_mc_minus_analytic", diff_mc, ".3f")
tut.record("log_likelihood_difference_stderr", se_mc, ".3f")
tut.claim("Trained with the Monte Carlo KL, everything else equal, the VAE ends with a lower "
          "test log p(x) than with the analytic KL", diff_mc < 0, difference=diff_mc,
          stderr=se_mc)

fig, axes = subplots(1, 2, size=4.4)
plot_metric_bars(["analytic KL", "Monte Carlo KL"],
                 [noise_an.total_variance, noise_mc.total_variance], ax=axes[0],
                 ylabel="total variance of the encoder gradient",
                 title=f"Monte Carlo KL: gradient variance x{var_ratio:.2f}")
plot_training_curves({"analytic KL": hist8, "Monte Carlo KL": hist_mc}, "val_elbo", ax=axes[1],
                     title=f"Test log p(x): Monte Carlo minus analytic {diff_mc:+.2f} nats")
tut.savefig(fig, "monte_carlo_kl")

# %% [markdown]
# ## What to take away
#
# - The KL term is what makes a latent space *samplable*: prior draws decode to
#   every digit class more evenly, and straight paths between 8-dimensional codes
#   stay nearer real digits, for the VAE than for the autoencoder.
# - The reparameterisation $z = \mu + \sigma \varepsilon$ turns sampling into a
#   differentiable layer; learning $\sigma$ lets the code carry more information
#   per nat of KL. With $\sigma = 1$ the code is used, just less efficiently.
# - What the KL pulls towards $N(0, I)$ is the aggregate posterior; each
#   $q(z\mid x)$ stays, on average, as far from the prior as the information it
#   carries plus KL(q(z) || p(z)).
#   A diagonal $\sigma$ does not make the codes independent across the data set:
#   their total correlation stays positive.
# - BCE and MSE are likelihood assumptions; on continuous pixels only the
#   continuous Bernoulli (or a Gaussian) is a proper density, and BCE's floor is
#   the entropy of the grey pixels.
# - Means blur, samples speckle: both come from the factorised decoder. Gaussian
#   pixel noise makes samples look rougher, not more like digits.
# - A Monte Carlo KL trains too, with a noisier encoder gradient and, here, a lower
#   log p(x).

# %% [markdown]
# ## Exercises
#
# - **`bernoulli_vae_elbo`**: write the one-sample ELBO per example of a VAE with
#   a Bernoulli decoder, `bernoulli_vae_elbo(x, mu, log_var, decoder, eps)`: the
#   reparameterised $z = \mu + \sigma\varepsilon$, the Bernoulli log-likelihood of
#   the decoder's logits and the analytic KL to $N(0, I)$ (Kingma & Welling 2013,
#   eq. 10 and Appendix B).
#
# Start it with `vitoolkit exercise start bernoulli_vae_elbo` and check your file
# with `vitoolkit exercise check bernoulli_vae_elbo FILE`.

# %%
tut.finish()
