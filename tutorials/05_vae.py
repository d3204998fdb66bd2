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
# to the prior. The KL is in closed form (their Appendix B), and every model here
# is trained with Kingma & Welling's *estimator B* (their eq. 7): the exact KL
# minus a sampled reconstruction term. Section 9 sets it beside *estimator A*
# (their eq. 6, everything sampled) and derives why B is the quieter one.
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

from vitoolkit.course import Tutorial, evidence
from vitoolkit.datasets import load_digits
from vitoolkit.datasets.dequantize import bin_width, uniform_dequantize
from vitoolkit.discrete_likelihood import bits_per_dim, dequantized_log_prob_bound
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
FIT = dict(epochs=EPOCHS, batch_size=64, lr=2e-3, seed=tut.seed, progress=tut.progress,
           restore_best=False)

Xb, yb = load_digits(binarize=True, split="train")  # {0, 1} pixels
Xb_val, _ = load_digits(binarize=True, split="val")
Xb_test, y_test = load_digits(binarize=True, split="test")
Xc, _ = load_digits(split="train")  # continuous pixels in [0, 1]
Xc_val, _ = load_digits(split="val")
Xc_test, _ = load_digits(split="test")
N_TRAIN = Xb.shape[0]


def per_image(values):
    """Mean over images and its standard error."""
    est = mean_and_stderr(torch.as_tensor(values).double())
    return float(est.value), float(est.stderr)


def log_px(model, X, offset):
    """Importance-sampled test log p(x) per image (Burda et al. 2015, eq. 8), and the
    number of images whose importance weights are too heavy-tailed (k-hat > 0.7)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreliableEstimateWarning)
        est = model.log_likelihood_estimate(X, K_EVAL, generator=tut.generator(offset))
    return est.value, int((est.khat > KHAT_THRESHOLD).sum())


def reconstruction_and_kl(model, X, offset):
    """Per-image E_q[log p(x|z)] (one sample) and analytic KL(q(z|x) || p(z)), nats."""
    with torch.no_grad():
        q = model.encode(X)
        kl = torch.distributions.kl_divergence(q, model.prior)
        recon = model.elbo(X, beta=0.0, generator=tut.generator(offset))
    return recon, kl


# %% tags=["hide-input"]
tut.record("n_train", N_TRAIN)
tut.record("epochs", EPOCHS)


def record_log_px(key, values_and_unreliable):
    """Record a test log p(x): its mean over images and the unreliable count."""
    values, unreliable = values_and_unreliable
    tut.record(f"log_likelihood[{key}]", per_image(values)[0], ".2f")
    tut.record(f"log_likelihood_khat_above_0.7[{key}]", unreliable)


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
kl_fit, class_shares = {}, {}
for name, codes, decoded in (("ae", codes_ae, prior_ae), ("vae", codes_vae, prior_vae)):
    # How far is a Gaussian fitted to the codes from the prior we would sample from?
    fitted = MultivariateNormal(codes.double().mean(0), torch.cov(codes.double().T))
    kl_fit[name] = float(kl_divergence(fitted, standard2))
    # Which digit does each decoded prior draw resemble (its nearest training image's label)?
    class_shares[name] = sample_label_histogram(decoded, Xb, yb, num_classes=10)
class_entropy = {name: float(Categorical(probs=h).entropy()) for name, h in class_shares.items()}

fig, axes = subplots(2, 2, size=4.4)
plot_latent_scatter(codes_ae, yb, ax=axes[0, 0], legend=False,
                    title=f"AE codes: {kl_fit['ae']:.2f} nats from N(0,I)")
plot_latent_scatter(codes_vae, yb, ax=axes[0, 1],
                    title=f"VAE means: {kl_fit['vae']:.2f} nats from N(0,I)")
plot_image_grid(prior_ae[:24], ncols=8, ax=axes[1, 0],
                title=f"AE decodes N(0,I): class entropy {class_entropy['ae']:.2f}")
plot_image_grid(prior_vae[:24], ncols=8, ax=axes[1, 1],
                title=f"VAE decodes N(0,I): class entropy {class_entropy['vae']:.2f}")
tut.savefig(fig, "ae_vs_vae_latent")

# %% tags=["hide-input"]
for name in ("ae", "vae"):
    tut.record(f"{name}_kl_code_gaussian_to_prior", kl_fit[name], ".2f")
    tut.record(f"{name}_prior_sample_class_entropy", class_entropy[name], ".3f")
    tut.record(f"{name}_prior_sample_class_shares", class_shares[name], None)
kl_fit_ae, kl_fit_vae = kl_fit["ae"], kl_fit["vae"]
ent_ae, ent_vae = class_entropy["ae"], class_entropy["vae"]
tut.claim("The VAE's encoder means are close to N(0, I): a Gaussian fitted to them is less than "
          "0.25 nats from the prior, and less than half as far as the autoencoder's codes",
          kl_fit_vae < 0.25 and kl_fit_vae < 0.5 * kl_fit_ae, vae=kl_fit_vae, ae=kl_fit_ae)

def entropy_stderr(shares, n):
    """Standard error of the plug-in entropy of n draws: sqrt((sum p log^2 p - H^2) / n)."""
    p = shares.double()[shares > 0]
    return math.sqrt(max(float((p * p.log() ** 2).sum()) - float((p * p.log()).sum()) ** 2, 0) / n)


ent_gap = evidence.difference_of_estimates(
    ent_vae, entropy_stderr(class_shares["vae"], z_prior.shape[0]),
    ent_ae, entropy_stderr(class_shares["ae"], z_prior.shape[0]))
tut.claim("Decoded prior draws cover the ten digit classes more evenly for the VAE than for the "
          "autoencoder (higher class entropy, by more than 2 standard errors)", ent_gap.exceeds(2),
          vae=ent_vae, ae=ent_ae, uniform=math.log(10), **ent_gap.evidence(2))

# %% [markdown]
# **Holes between codes.** Walk in a straight line from the code of one test digit
# to the code of a test digit of another class and decode each point. Where the
# decoder was never trained the decoded image is unlike any digit: we measure how
# far each decoded image is from its *nearest training image* (Euclidean distance
# in pixel space) and report the *excess* over the straight line between the end
# points' distances (zero at both ends; at the midpoint, the midpoint's distance
# minus the mean of the end points'). We use 8-dimensional codes (an autoencoder
# and a VAE with the same networks and training) and about 240 pairs of held-out
# digits (validation and test), and compare the two models on the *same* pairs
# (a paired difference). Trained for 150 epochs, the autoencoder's midpoints land
# clearly farther from the data than the VAE's; after the quick setting's 15
# epochs the gap is smaller and, at some seeds, within noise. (Shaded in the
# figure: two standard errors of each curve.)

# %%
ae8 = Autoencoder(64, 8, seed=tut.seed)
train(ae8, Xb, **FIT)
vae8 = VAE(64, 8, seed=tut.seed)
hist8 = train(vae8, Xb, validation=Xb_val, **FIT)

# End points: held-out digits (validation and test), paired at random, different classes.
X_held = torch.cat([Xb_val, Xb_test])
y_held = torch.cat([load_digits(binarize=True, split="val")[1], y_test])
perm = torch.randperm(X_held.shape[0], generator=tut.generator(10))
half = X_held.shape[0] // 2
ia, ib = perm[:half], perm[half:2 * half]
other = y_held[ia] != y_held[ib]
ia, ib = ia[other], ib[other]
steps = 9
t_path = torch.linspace(0, 1, steps)
path_dist = {}
for label, model in (("autoencoder", ae8), ("VAE", vae8)):
    d = interpolation_distances(model, X_held[ia], X_held[ib], Xb, num_steps=steps)
    # Excess over the line joining the end points' distances, per pair: 0 at t = 0 and 1.
    path_dist[label] = d - (1 - t_path[:, None]) * d[0] - t_path[:, None] * d[-1]

# %% tags=["hide-input"]
mid = {label: v[steps // 2] for label, v in path_dist.items()}
for label, v in mid.items():
    m, se = per_image(v)
    tut.record(f"midpoint_excess_distance[{label}]", m, ".3f")
    tut.record(f"midpoint_excess_distance_stderr[{label}]", se, ".3f")
tut.record("midpoint_pairs", int(other.sum()))
ex_ae = tut.summary["midpoint_excess_distance[autoencoder]"]
ex_vae = tut.summary["midpoint_excess_distance[VAE]"]
ae_excess = evidence.mean_and_stderr(mid["autoencoder"])
tut.claim("The autoencoder's midpoints decode to images farther from every training digit than "
          "its end points (excess above 2 standard errors)", ae_excess[0] > 2 * ae_excess[1],
          excess=ae_excess[0], stderr=ae_excess[1], factor=2.0)
# The same pairs of end points under both models: a paired difference.
mid_gap = evidence.paired_difference(mid["autoencoder"], mid["VAE"])
tut.record("midpoint_excess_ae_minus_vae", mid_gap.mean, ".3f")
tut.record("midpoint_excess_ae_minus_vae_stderr", mid_gap.stderr, ".3f")
tut.claim("Trained at full size (150 epochs), with 8-dimensional codes the autoencoder's midpoints "
          "land farther from every training digit, relative to its end points, than the VAE's (by "
          "more than 2 standard errors, paired over the same end points)", mid_gap.exceeds(2),
          full_only=True, autoencoder=ex_ae, vae=ex_vae, **mid_gap.evidence(2))

# %%
with torch.no_grad():
    a, b = X_held[ia[:8]], X_held[ib[:8]]
    mid_ae = ae8.decode(0.5 * (ae8.encode(a) + ae8.encode(b)))
    mid_vae = vae8.decode(0.5 * (vae8.encode(a).mean + vae8.encode(b).mean)).mean
fig, axes = subplots(1, 2, size=4.2)
plot_curves(t_path, {k: v.mean(1) for k, v in path_dist.items()}, ax=axes[0], legend_loc="outside",
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
grads = elbo_gradients(vae2, x_one, n_grad, generator=tut.generator(3))  # (n_grad, parameters)
one = gradient_noise(grads)  # norm of the mean gradient, total variance, their ratio

with torch.no_grad():
    q_one = vae2.encode(x_one)
    eps = torch.randn(400, 2, generator=tut.generator(4))
    z_cloud = q_one.mean + q_one.stddev * eps  # z = mu + sigma * eps
    decoded = vae2.decode(z_cloud).mean
cloud_sd = float(q_one.stddev.max())
means_sd = float(codes_vae.std(0).min())
apart_cloud = mean_pairwise_distance(decoded)
apart_prior = mean_pairwise_distance(prior_vae[:400])

fig, axes = subplots(1, 2, size=4.4)
plot_latent_scatter(codes_vae, None, ax=axes[0], size=4, color="0.75", label="training means")
plot_latent_scatter(z_cloud, None, ax=axes[0], size=6, color="black",
                    label="z = mu + sigma * eps",
                    title=f"One digit's q(z|x): sd {cloud_sd:.2f} vs means' spread {means_sd:.2f}")
plot_image_grid(decoded[:16], ncols=8, ax=axes[1],
                title=f"Its samples: {apart_cloud:.2f} apart (prior draws {apart_prior:.2f})")
tut.savefig(fig, "reparameterisation")

# %% tags=["hide-input"]
# The SNR is itself an estimate: its standard error by the bootstrap over the gradient draws.
boot = torch.randint(0, n_grad, (200, n_grad), generator=tut.generator(30))
snr_boot = torch.tensor([gradient_noise(grads[i]).snr for i in boot])
snr_se = float(snr_boot.std())
tut.record("encoder_gradient_norm", one.mean_norm, ".3f")
tut.record("encoder_gradient_snr_one_sample", one.snr, ".3f")
tut.record("encoder_gradient_snr_one_sample_stderr", snr_se, ".3f")
tut.claim("One reparameterised sample gives a gradient whose signal-to-noise ratio is below 1 "
          "(by more than 2 bootstrap standard errors)", one.snr + 2 * snr_se < 1.0, snr=one.snr,
          stderr=snr_se, factor=2.0)
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
# 5 nats. These Gaussian numbers are log-*densities* of the raw 17-level pixels,
# and they come out positive: the subsection after the figure explains why, and
# measures the same decoders honestly, as probabilities of the pixels' bins.

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
    recon, kl = reconstruction_and_kl(model, test_x, 6)  # per test image
    ll, unreliable = log_px(model, test_x, 5)
    res[key] = dict(ll=ll, unreliable=unreliable, recon=recon, kl=kl,
                    active=active_units(model, train_x))
    if kind == "binary":  # how much z says about x (section 8 explains the split)
        res[key]["split"] = kl_decomposition(aggregate_posterior(model, Xb),
                                             tut.choose(1000, 2000), generator=tut.generator(11))
L, F = res["encoder_sigma_learned"], res["encoder_sigma_1"]
D1, D01, DL = (res[k] for k in ("decoder_sigma_1", "decoder_sigma_01", "decoder_sigma_learned"))
# Where does the learned decoder put its sigma? At the reconstruction of each test digit:
with torch.no_grad():
    dec_scale = models["decoder_sigma_learned"].decode(
        encode_batched(models["decoder_sigma_learned"], Xc_test)[0]).stddev

# %% tags=["hide-input"]
for key, r in res.items():
    record_log_px(key, (r["ll"], r["unreliable"]))
    tut.record(f"reconstruction[{key}]", r["recon"].mean(), ".2f")
    tut.record(f"kl[{key}]", r["kl"].mean(), ".2f")
    tut.record(f"active_units[{key}]", r["active"].count)
    if "split" in r:
        tut.record(f"mutual_information[{key}]", r["split"].mutual_information.value, ".2f")
        tut.record(f"information_per_nat_of_kl[{key}]",
                   r["split"].mutual_information.value / r["split"].average_kl, ".2f")
_, scale_l = encode_batched(vae8, Xb)
sigma_active = float(scale_l[:, L["active"].mask].mean())
tut.record("encoder_sigma_on_active_units[learned]", sigma_active, ".3f")
tut.claim("On the active units the learned encoder sigma averages below the prior's 1 "
          "(below 0.8)", sigma_active < 0.8, mean_sigma=sigma_active)
mi = {k: (float(r["split"].mutual_information.value), float(r["split"].mutual_information.stderr),
          r["split"].average_kl) for k, r in (("learned", L), ("fixed", F))}
tut.claim("With encoder sigma fixed at 1 the decoder does not ignore z: units stay active and z "
          "carries more than half a nat about x (by more than 2 standard errors)",
          F["active"].count >= 1 and mi["fixed"][0] - 2 * mi["fixed"][1] > 0.5,
          active_units=F["active"].count, mutual_information=mi["fixed"][0],
          stderr=mi["fixed"][1])
mi_gap = evidence.difference_of_estimates(mi["learned"][0], mi["learned"][1],
                                          mi["fixed"][0], mi["fixed"][1])
tut.claim("Learning sigma puts more information about x into z than fixing it at 1 (by more "
          "than 2 standard errors)", mi_gap.exceeds(2), learned=mi["learned"][0],
          fixed=mi["fixed"][0], **mi_gap.evidence(2))
# Information per nat: the average KL is exact, so only the information's error scales.
per_nat = evidence.difference_of_estimates(
    mi["learned"][0] / mi["learned"][2], mi["learned"][1] / mi["learned"][2],
    mi["fixed"][0] / mi["fixed"][2], mi["fixed"][1] / mi["fixed"][2])
tut.claim("Each nat of KL buys more information with a learned sigma than with sigma = 1 (by more "
          "than 2 standard errors)", per_nat.exceeds(2), learned=mi["learned"][0] / mi["learned"][2],
          fixed=mi["fixed"][0] / mi["fixed"][2], **per_nat.evidence(2))
recon_gap = evidence.paired_difference(L["recon"], F["recon"])
ll_gap_sigma = evidence.paired_difference(L["ll"], F["ll"])
tut.claim("The learned-sigma model reconstructs test digits better and has the higher test "
          "log p(x) (each by more than 2 standard errors, paired over test images)",
          recon_gap.exceeds(2) and ll_gap_sigma.exceeds(2),
          recon=recon_gap.evidence(2), log_px=ll_gap_sigma.evidence(2))

tut.claim("Decoder sigma = 1: the KL wins, the code is unused (no active unit, KL under 0.5 nats)",
          D1["active"].count == 0 and float(D1["kl"].mean()) < 0.5,
          active_units=D1["active"].count, kl=D1["kl"].mean())
kl_hi = evidence.paired_difference(D01["kl"], DL["kl"])
kl_lo = evidence.paired_difference(DL["kl"], D1["kl"])
tut.claim("Decoder sigma = 0.1 makes the KL cheap: it spends more KL than the learned sigma, "
          "which spends more than sigma = 1 (each by more than 2 standard errors, paired)",
          kl_hi.exceeds(2) and kl_lo.exceeds(2), sigma_01=D01["kl"].mean(), learned=DL["kl"].mean(),
          sigma_1=D1["kl"].mean(), upper=kl_hi.evidence(2), lower=kl_lo.evidence(2))
ll_hi = evidence.paired_difference(DL["ll"], D01["ll"])
ll_lo = evidence.paired_difference(D01["ll"], D1["ll"])
tut.claim("On the raw 17-level pixels the learned decoder sigma has the highest test log-density "
          "estimate, sigma = 1 the lowest, each by more than 5 nats and 2 standard errors (paired)",
          ll_hi.mean > max(5, 2 * ll_hi.stderr) and ll_lo.mean > max(5, 2 * ll_lo.stderr),
          upper=ll_hi.evidence(2), lower=ll_lo.evidence(2))
at_floor = float((dec_scale < 0.05 * 1.1).double().mean())
background = float((Xc_test == 0).double().mean())
tut.record("learned_decoder_share_of_pixels_at_min_scale", at_floor, ".2f")
tut.record("share_of_background_test_pixels", background, ".2f")
tut.claim("The learned decoder sigma sits at its floor on the background: over a fifth of the "
          "test pixels get a sigma within 10% of min_scale = 0.05", at_floor > 0.2,
          share=at_floor, background_pixels=background)

# %%
fig, axes = subplots(1, 3, size=4.4)
mi_l, mi_f = mi["learned"][0], mi["fixed"][0]
plot_metric_bars(["KL, learned", "I(x;z), learned", "KL, sigma = 1", "I(x;z), sigma = 1"],
                 [mi["learned"][2], mi_l, mi["fixed"][2], mi_f], ax=axes[0],
                 ylabel="nats per image",
                 title=f"I(x;z): learned {mi_l:.1f} vs sigma = 1 {mi_f:.1f}")
plot_metric_bars(["encoder sigma learned", "encoder sigma = 1"],
                 [per_image(L["ll"])[0], per_image(F["ll"])[0]],
                 [per_image(L["ll"])[1], per_image(F["ll"])[1]], ax=axes[1],
                 ylabel="test log p(x), nats per image",
                 title=f"Encoder sigma = 1 loses {ll_gap_sigma.mean:.1f} nats")
labels_c = ["decoder sigma = 1", "decoder sigma = 0.1", "decoder sigma learned"]
plot_metric_bars(labels_c, [per_image(r["ll"])[0] for r in (D1, D01, DL)],
                 [per_image(r["ll"])[1] for r in (D1, D01, DL)], ax=axes[2],
                 ylabel="test log density, nats per image (raw pixels)",
                 title="Gaussian decoders on raw pixels")
tut.savefig(fig, "learned_vs_fixed_variance")

# %% [markdown]
# ### Densities on discrete pixels: dequantisation and bits per dimension
#
# The digits' pixels take 17 values ($0, 1/16, \dots, 1$), and the Gaussian decoders'
# test log-densities above are *positive*, tens of nats per image. A density can
# exceed 1: a Gaussian that shrinks $\sigma$ on values that recur exactly (the
# background's zeros) piles density onto them without limit, which is why the
# learned $\sigma$ runs into its floor. Those numbers are not log-probabilities and
# cannot be set beside the Bernoulli model's $\log P(x)$ on binary pixels, which is
# one. The fix (Theis, van den Oord & Bethge 2016, section 3.1) is *uniform
# dequantisation*: add noise within each pixel's bin, $y = x + u$,
# $u \sim \mathcal U[0, w)^D$ with bin width $w = 1/16$, train and evaluate the
# density on $y$. The probability the continuous model gives $x$'s bin is
# $P(x) = \int_{[0,w)^D} p(x + u)\,du$, and by Jensen's inequality
#
# $$\log P(x) = \log \mathbb E_{u}\big[w^D p(x + u)\big]
#   \ge \mathbb E_u[\log p(x + u)] + D \log w .$$
#
# The log-volume term $D \log w = 64 \log(1/16) \approx -177$ nats turns a density
# into a probability, so the bound is at most 0: the sign flips because a
# probability cannot exceed 1. *Bits per dimension*, $\mathrm{bpd} = -\log P(x) /
# (D \ln 2)$, put every model on one scale: a uniform guess costs
# $\log_2 17 \approx 4.09$ bits per pixel on 17 levels and 1 bit on binary pixels,
# so each model is read against its own data's uniform cost (binary and 17-level
# digits are different data; their bpd are not a contest). We retrain the
# $\sigma = 0.1$ and learned-$\sigma$ decoders on dequantised digits (one noise draw
# for the training set, an independent one for the test set) and ask again whether
# the learned $\sigma$ wins, by how much, and where.

# %%
W = bin_width(17)  # pixel counts 0..16 scaled to [0, 1]: w = 1/16
D = Xc.shape[1]  # 64 pixels
Xd = uniform_dequantize(Xc, 17, generator=tut.generator(19))  # y = x + u, u ~ U[0, w)
Xd_test = uniform_dequantize(Xc_test, 17, generator=tut.generator(20))
deq = {}
for key, kwargs in (("decoder_sigma_01", dict(likelihood="gaussian", observation_scale=0.1)),
                    ("decoder_sigma_learned", dict(likelihood="gaussian_learned",
                                                   min_scale=0.05))):
    model = VAE(64, 8, seed=tut.seed, **kwargs)
    train(model, Xd, **FIT)
    log_density, unreliable = log_px(model, Xd_test, 5)  # log p(x + u), a density
    deq[key] = dict(model=model, log_density=log_density, unreliable=unreliable,
                    log_prob=dequantized_log_prob_bound(log_density, W, D))
bpd = {"binary pixels, Bernoulli": bits_per_dim(L["ll"].mean(), D),
       "17 levels, Gaussian sigma = 0.1": bits_per_dim(deq["decoder_sigma_01"]["log_prob"].mean(), D),
       "17 levels, Gaussian sigma learned":
           bits_per_dim(deq["decoder_sigma_learned"]["log_prob"].mean(), D)}


def gain_by_region(learned, fixed, X_scored, X_discrete):
    """Learned- minus fixed-sigma log density of each test digit's reconstruction, per pixel,
    summed over background (x = 0) and ink pixels: two (n,) tensors, nats per image."""
    with torch.no_grad():
        gain = sum(sign * m.decode(encode_batched(m, X_scored)[0]).base_dist.log_prob(X_scored)
                   for sign, m in ((1, learned), (-1, fixed)))
    is_background = X_discrete == 0
    return (gain * is_background).sum(1), (gain * ~is_background).sum(1)


# Where does the learned sigma's gain come from? Background (x = 0) vs ink, raw and dequantised.
raw_background, raw_ink = gain_by_region(models["decoder_sigma_learned"],
                                         models["decoder_sigma_01"], Xc_test, Xc_test)
gain_background, gain_ink = gain_by_region(deq["decoder_sigma_learned"]["model"],
                                           deq["decoder_sigma_01"]["model"], Xd_test, Xc_test)

fig, axes = subplots(1, 2, size=4.6)
plot_metric_bars(list(bpd), list(bpd.values()), ax=axes[0], ylabel="bits per dimension",
                 title="Test bits per pixel vs a uniform guess")
axes[0].axhline(1.0, color="0.4", ls=":", label="uniform, binary: 1 bit")
axes[0].axhline(math.log2(17), color="0.4", ls="--", label="uniform, 17 levels: log2 17 bits")
axes[0].set_ylim(0, 6.5)  # room above the bars for the legend
axes[0].legend(loc="upper right", fontsize="small")
plot_metric_bars(["raw: background", "raw: ink", "dequantised: background",
                  "dequantised: ink"],
                 [float(v.mean()) for v in (raw_background, raw_ink, gain_background, gain_ink)],
                 [per_image(v)[1] for v in (raw_background, raw_ink, gain_background, gain_ink)],
                 ax=axes[1], ylabel="nats per image",
                 title="Learned minus fixed sigma:\nlog density of reconstructions")
tut.savefig(fig, "dequantized_bits_per_dim")

# %% tags=["hide-input"]
for key, v in deq.items():
    record_log_px(f"dequantized_{key}", (v["log_density"], v["unreliable"]))
    tut.record(f"dequantized_log_prob_bound[{key}]", v["log_prob"].mean(), ".2f")
    tut.record(f"dequantized_bits_per_dim[{key}]", bits_per_dim(v["log_prob"].mean(), D), ".3f")
tut.record("bits_per_dim[binary_bernoulli]", bpd["binary pixels, Bernoulli"], ".3f")
tut.record("log_volume_correction", D * math.log(W), ".2f")
raw_best = per_image(DL["ll"])[0]
tut.claim("On raw 17-level pixels the learned-sigma decoder's log density is positive (a density "
          "above 1), and every dequantised bound on log P(x) is negative, as a log-probability "
          "must be", raw_best > 0 and all(float(v["log_prob"].mean()) < 0 for v in deq.values()),
          raw_log_density=raw_best,
          bounds={k: float(v["log_prob"].mean()) for k, v in deq.items()})
deq_gap = evidence.paired_difference(deq["decoder_sigma_learned"]["log_prob"],
                                     deq["decoder_sigma_01"]["log_prob"])
tut.record("dequantized_learned_minus_sigma_01", deq_gap.mean, ".2f")
tut.record("dequantized_learned_minus_sigma_01_bits_per_dim", deq_gap.mean / (D * math.log(2)), ".3f")
tut.claim("On dequantised digits the learned decoder sigma still wins: its bound on log P(x) is "
          "higher than sigma = 0.1's by more than 2 standard errors (paired over test images)",
          deq_gap.exceeds(2), **deq_gap.evidence(2))
with torch.no_grad():
    deq_scale = deq["decoder_sigma_learned"]["model"].decode(
        encode_batched(deq["decoder_sigma_learned"]["model"], Xd_test)[0]).stddev
floor_deq = float((deq_scale < 0.05 * 1.1).double().mean())
tut.record("dequantized_learned_share_of_pixels_at_min_scale", floor_deq, ".2f")
shares = {}
for tag, (bg, ink) in (("raw", (raw_background, raw_ink)),
                       ("dequantized", (gain_background, gain_ink))):
    shares[tag] = float(bg.mean() / (bg.mean() + ink.mean()))
    tut.record(f"{tag}_gain_share_background", shares[tag], ".2f")
splits = {"raw": evidence.paired_difference(raw_background, raw_ink),
          "dequantized": evidence.paired_difference(gain_background, gain_ink)}
tut.claim("Trained at full size, most of the learned sigma's lead over sigma = 0.1 comes from the "
          "background, on raw and on dequantised pixels alike (background exceeds ink by more than "
          "2 standard errors, paired over test images, in both)",
          all(d.exceeds(2) for d in splits.values()), full_only=True,
          background_pixels=background, share_background=shares,
          **{k: d.evidence(2) for k, d in splits.items()})

# %% [markdown]
# **What dequantisation changes.** The Gaussian decoders' numbers become negative,
# as log-probabilities must, and land on the same bits-per-pixel scale as the
# Bernoulli model's, each to be read against its own data's uniform cost (the binary
# and the 17-level digits are different data, so the bars are not a contest).
# The learned $\sigma$ still beats $\sigma = 0.1$ clearly. Is its lead an artefact of
# the background's exact zeros, where on raw pixels it sits at its floor? The right
# panel splits the lead in the reconstruction term (the decoder's log density at
# the encoder mean; $\log p(x)$ itself does not split by pixel) into background and
# ink pixels. Trained at full size (150 epochs), most of the lead comes from the
# background, raw and dequantised alike (about four fifths; the shares are
# printed), although the background is only about half of the pixels. Dequantisation
# makes the numbers honest probabilities, but it does not remove the background's
# part: with $\sigma = 0.1$ a background pixel's bin of width $1/16$ gets probability
# at most about $0.25$, while the learned $\sigma$ shrinks towards its floor 0.05
# (uniform noise in a bin has standard deviation $w/\sqrt{12} \approx 0.018$, below
# the floor) and gives the bin about twice that, on some thirty background pixels
# per image. After the quick setting's 15 epochs the split is closer to even.

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
for i, beta in enumerate(beta_runs.values()):
    model = vae2 if beta == 1.0 else VAE(64, 2, seed=tut.seed)
    if beta != 1.0:
        train(model, Xb, beta=beta, **FIT)
    recon_tr, kl_tr = reconstruction_and_kl(model, Xb, 6)  # per training image
    recon_te, _ = reconstruction_and_kl(model, Xb_test, 6)
    loc, scale = encode_batched(model, Xb_test)
    beta_res[beta] = dict(kl_values=kl_tr, recon_values=recon_tr, kl=float(kl_tr.mean()),
                          recon=float(recon_tr.mean()), recon_test=float(recon_te.mean()),
                          sigma=float(scale.mean()), spread=float(loc.std(0).mean()),
                          active=active_units(model, Xb_test).count)
    plot_latent_scatter(loc, y_test, ax=axes[i], legend="outside" if i == 2 else False,
                        title=f"beta = {beta:g}: KL {beta_res[beta]['kl']:.1f} nats")
tut.savefig(fig, "reconstruction_vs_kl")

# %% tags=["hide-input"]
for (label, beta) in beta_runs.items():
    tag = label.split(" (")[0].replace(" ", "_")
    for k, v in beta_res[beta].items():
        if not k.endswith("_values"):
            tut.record(f"{k}[{tag}]", v, ".3f" if isinstance(v, float) else None)
B0, B1, B1000 = beta_res[0.0], beta_res[1.0], beta_res[1000.0]
tut.claim("Without the KL (beta = 0) sigma shrinks below the ELBO model's and the codes spread "
          "out farther, beyond the prior (mean sd above 1.5)",
          B0["sigma"] < B1["sigma"] and B0["spread"] > max(B1["spread"], 1.5),
          sigma_beta0=B0["sigma"], sigma_beta1=B1["sigma"], spread_beta0=B0["spread"],
          spread_beta1=B1["spread"])
tut.claim("With beta = 1000 every q(z|x) collapses onto the prior: KL under 0.05 nats, no "
          "active unit", B1000["kl"] < 0.05 and B1000["active"] == 0, kl=B1000["kl"],
          active_units=B1000["active"])
# "Between" is two-sided: each side, in each term, paired over the training images.
sides = {f"{term}: {hi} > {lo}": evidence.paired_difference(beta_res[a][f"{term}_values"],
                                                            beta_res[b][f"{term}_values"])
         for term in ("kl", "recon") for (a, hi), (b, lo) in
         (((0.0, "beta 0"), (1.0, "beta 1")), ((1.0, "beta 1"), (1000.0, "beta 1000")))}
tut.claim("On the training digits the ELBO (beta = 1) sits between the two in both terms (each "
          "of the four sides by more than 2 standard errors, paired over images)",
          all(d.exceeds(2) for d in sides.values()),
          **{k: d.evidence(2) for k, d in sides.items()})

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
recons, sq_err, lik_models = {}, {}, {}
for label, name, extra in likelihood_runs:
    if extra is None:
        model = models["decoder_sigma_01"]
    else:
        model = VAE(64, 8, likelihood=name, seed=tut.seed, **extra)
        train(model, Xc, **FIT)
    lik_models[name] = model
    recons[label] = model.reconstruct(Xc_test[:10])
    sq_err[label] = (model.reconstruct(Xc_test) - Xc_test).pow(2).sum(1)  # per test image
mse = {label: float(v.mean()) for label, v in sq_err.items()}

# BCE's missing normaliser: the same logits read as a continuous Bernoulli.
with torch.no_grad():
    logits = lik_models["bernoulli"].decoder(lik_models["bernoulli"].encode(Xc_test).mean)
    bce = Independent(Bernoulli(logits=logits, validate_args=False), 1).log_prob(Xc_test)
    cb = Independent(ContinuousBernoulli(logits=logits), 1).log_prob(Xc_test)
    cb_dist = lik_models["continuous_bernoulli"].decode(
        lik_models["continuous_bernoulli"].encode(Xc_test).mean)
    cb_gap = float((cb_dist.mean - cb_dist.base_dist.probs).abs().mean())  # E[x] vs lambda
floor = bce_floor(Xc_test.double()).sum(1)  # sum_d H(y_d) per test image
bce_recon, _ = reconstruction_and_kl(lik_models["bernoulli"], Xc_test, 12)

y_grid = torch.linspace(0.0, 1.0, 401, dtype=torch.float64)
lam_grid = y_grid[1:-1]
h = bce_floor(y_grid)
log_c = continuous_bernoulli_log_normaliser(lam_grid)

fig, axes = subplots(1, 2, size=4.2)
plot_curves({"BCE floor H(y)": y_grid, "log C(lambda), continuous Bernoulli": lam_grid},
            {"BCE floor H(y)": h, "log C(lambda), continuous Bernoulli": log_c}, ax=axes[0],
            xlabel="target pixel y  /  decoder parameter lambda", ylabel="nats per pixel",
            title=f"BCE floor: {float(floor.mean()):.1f} nats per test digit")
axes[0].set_ylim(0, 2.5)
m_bce, m_mse, m_cb = (mse[lab] for lab, _, _ in likelihood_runs)
plot_reconstructions(Xc_test[:10], recons, ax=axes[1],
                     title=f"Squared error: MSE {m_mse:.2f}, CB {m_cb:.2f}, BCE {m_bce:.2f}")
tut.savefig(fig, "likelihood_reconstructions")

# %% tags=["hide-input"]
for label, name, extra in likelihood_runs:
    key = name if extra is not None else "gaussian"
    if extra is not None:
        record_log_px(f"continuous_pixels_{key}", log_px(lik_models[name], Xc_test, 7))
    else:
        tut.record(f"log_likelihood[continuous_pixels_{key}]",
                   tut.summary["log_likelihood[decoder_sigma_01]"], ".2f")
    tut.record(f"reconstruction_squared_error[{key}]", mse[label], ".3f")
tut.record("bce_missing_log_normaliser_per_image", (cb - bce).mean(), ".2f")
tut.record("continuous_bernoulli_mean_minus_lambda", cb_gap, ".3f")
tut.record("bce_floor_per_image", floor.mean(), ".2f")
tut.record("bce_model_reconstruction_nll_per_image", -bce_recon.mean(), ".2f")
gap_norm = tut.summary["bce_missing_log_normaliser_per_image"]
tut.claim("log C(lambda) >= log 2 per pixel: BCE's log-likelihood on continuous digits lies at "
          "least 64 log 2 nats per image below the normalised one (true of any logits: a sanity "
          "check of the normaliser)", gap_norm >= 64 * math.log(2),
          gap=gap_norm, bound=64 * math.log(2))
tut.claim("The continuous Bernoulli's mean is not lambda (mean |E[x] - lambda| over test pixels "
          "above 0.02)", cb_gap > 0.02, gap=cb_gap)
floor_img = tut.summary["bce_floor_per_image"]
bce_nll = tut.summary["bce_model_reconstruction_nll_per_image"]
grey = float(((Xc_test > 0) & (Xc_test < 1)).double().mean())
tut.record("share_of_grey_test_pixels", grey, ".2f")
tut.claim("BCE cannot reach zero on continuous digits: the floor sum_d H(y_d) is positive, and the "
          "trained BCE model's reconstruction loss lies above it (as it must for any decoder, "
          "since -y log p - (1 - y) log(1 - p) >= H(y): a sanity check)",
          floor_img > 0 and bce_nll > floor_img, floor=floor_img, bce_model=bce_nll,
          grey_pixels=grey)
tut.claim("The floor H(y) is zero only at y = 0 and y = 1 and peaks at log 2 at y = 1/2 (on a grid "
          "of 401 points)",
          float(h[0]) == 0.0 and float(h[-1]) == 0.0 and bool((h[1:-1] > 0).all())
          and abs(float(h.max()) - math.log(2)) < 1e-12 and abs(float(y_grid[h.argmax()]) - 0.5) < 1e-9,
          h_max=h.max(), at=y_grid[h.argmax()])
tut.claim("log C(lambda) is never below log 2, which it reaches at lambda = 1/2 (on the same grid)",
          float(log_c.min()) >= math.log(2) - 1e-12
          and abs(float(lam_grid[log_c.argmin()]) - 0.5) < 1e-9, minimum=log_c.min())
mse_vs = {other: evidence.paired_difference(sq_err[other], sq_err["MSE (gaussian)"])
          for other in ("BCE (bernoulli)", "continuous Bernoulli")}
tut.claim("The Gaussian (MSE) decoder reconstructs test digits with the lowest squared error (below "
          "each other decoder's by more than 2 standard errors, paired over test images)",
          all(d.exceeds(2) for d in mse_vs.values()), mse=m_mse, continuous_bernoulli=m_cb, bce=m_bce,
          **{f"{k} minus MSE": d.evidence(2) for k, d in mse_vs.items()})

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
roughness = {"test digits": image_roughness(Xb_test), "decoder means": image_roughness(means),
             "decoder draws": image_roughness(draws)}  # per image
rough = {k: per_image(v)[0] for k, v in roughness.items()}
gen = tut.generator(8)
with torch.no_grad():
    elbo = vae8.elbo(Xb_test, generator=gen)
    with warnings.catch_warnings():  # k-hat of L_50: see log_likelihood_khat_above_0.7
        warnings.simplefilter("ignore", UnreliableEstimateWarning)
        iwae = vae8.iwae_bound(Xb_test, 50, generator=gen)
ll8 = res["encoder_sigma_learned"]["ll"]
val_gain = hist8.val_elbo[-1] - hist8.val_elbo[0]

fig, axes = subplots(1, 3, size=4.2)
plot_image_grid(means, ncols=8, ax=axes[0],
                title=f"Decoder means: roughness {rough['decoder means']:.3f}")
plot_image_grid(draws, ncols=8, ax=axes[1],
                title=f"Decoder draws: roughness {rough['decoder draws']:.3f}")
plot_training_curves({"train": {"epoch": hist8.epoch, "v": hist8.train_elbo},
                      "validation": {"epoch": hist8.epoch, "v": hist8.val_elbo}}, "v",
                     ax=axes[2], title=f"Validation ELBO gains {val_gain:.1f} nats")
tut.savefig(fig, "mean_vs_sample")

# %% tags=["hide-input"]
for k, v in rough.items():
    tut.record(f"roughness[{k.replace(' ', '_')}]", v, ".3f")
smoother = evidence.independent_difference(roughness["test digits"], roughness["decoder means"])
# "Closer": |draws - digits| < |means - digits|, i.e. (digits - means) - |draws - digits| > 0.
# Three independent samples; the digits enter twice at most, hence the conservative 4 se^2.
se_r = {k: per_image(v)[1] for k, v in roughness.items()}
mean_gap = rough["test digits"] - rough["decoder means"]
draw_gap = abs(rough["decoder draws"] - rough["test digits"])
closer_se = math.sqrt(4 * se_r["test digits"] ** 2 + se_r["decoder means"] ** 2
                      + se_r["decoder draws"] ** 2)
tut.claim("Decoder means are smoother than real digits (by more than 2 standard errors); Bernoulli "
          "draws are rough again, closer to the digits' roughness than the means are (the means' "
          "gap exceeds the draws' by more than 2 standard errors)",
          smoother.exceeds(2) and mean_gap - draw_gap > 2 * closer_se,
          **{k.replace(" ", "_"): v for k, v in rough.items()}, smoother=smoother.evidence(2),
          gap_means=mean_gap, gap_draws=draw_gap, stderr=closer_se, factor=2.0)
tut.record("vae_test_elbo", per_image(elbo)[0], ".2f")
tut.record("vae_test_iwae_k50", per_image(iwae)[0], ".2f")
tut.record("log_likelihood_num_samples", K_EVAL)
tut.record("vae_test_log_likelihood", per_image(ll8)[0], ".2f")
bound_gap = evidence.paired_difference(iwae, elbo)
est_gap = evidence.paired_difference(ll8, iwae)
tut.claim("ELBO <= L_50 on the test digits (Burda et al. prove it in expectation; here the paired "
          "gap is above 2 standard errors)", bound_gap.exceeds(2), **bound_gap.evidence(2))
tut.claim(f"L_50 <= the log p(x) estimate with K = {K_EVAL} (not below it by more than 2 standard "
          "errors)", not est_gap.falls_short(2), **est_gap.evidence(2))
tut.claim("The validation ELBO improves from the first epoch to the last", val_gain > 0,
          gain=val_gain)

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
vd = variance_decomposition(anc.means, anc.variances)  # law of total variance
rough_c = {"test digits": image_roughness(Xc_test), "means": image_roughness(anc.means),
           "draws": image_roughness(anc.draws[0])}  # per image
near_c = {"test digits": nearest_distance(Xc_test, Xc), "means": nearest_distance(anc.means, Xc),
          "draws": nearest_distance(anc.draws[0], Xc)}  # distance to the nearest training digit

n_show = 8
rows = torch.cat([anc.means[:n_show], anc.draws[:, :n_show].reshape(-1, 64)])
fig, axes = subplots(1, 2, size=4.6)
plot_image_grid(rows, ncols=n_show, ax=axes[0],
                row_labels=["E[x|z]", "x ~ p(x|z)", "x ~ p(x|z)", "x ~ p(x|z)"],
                xlabel="each column: one z ~ p(z)",
                title=f"Pixel noise: {vd.noise_fraction:.0%} of the variance")
near_mean = {k: per_image(v)[0] for k, v in near_c.items()}
plot_metric_bars(["test digits", "decoder means", "decoder draws"],
                 [near_mean["test digits"], near_mean["means"], near_mean["draws"]], ax=axes[1],
                 ylabel="distance to nearest training digit",
                 title=f"Draws {near_mean['draws'] - near_mean['means']:.2f} farther from the data")
tut.savefig(fig, "decoder_noise")

# %% tags=["hide-input"]
tut.record("variance_between_z", vd.between_z, ".4f")
tut.record("variance_within_z_pixel_noise", vd.within_z, ".4f")
tut.record("pixel_noise_share_of_variance", vd.noise_fraction, ".2f")
for k in rough_c:
    tut.record(f"gaussian_decoder_roughness[{k.replace(' ', '_')}]", per_image(rough_c[k])[0], ".3f")
    tut.record(f"gaussian_decoder_nearest_distance[{k.replace(' ', '_')}]", near_mean[k], ".3f")
tut.claim("Pixel noise is a large part of what varies between samples: more than a fifth of "
          "their pixel variance", vd.noise_fraction > 0.2, share=vd.noise_fraction,
          between_z=vd.between_z, within_z=vd.within_z)
# Each draw shares its z with a mean: paired. The test digits are an independent sample.
rougher = evidence.paired_difference(rough_c["draws"], rough_c["means"])
rc = {k: per_image(v) for k, v in rough_c.items()}
gap_means = rc["test digits"][0] - rc["means"][0]
gap_draws = abs(rc["draws"][0] - rc["test digits"][0])
gap_se = math.sqrt(4 * rc["test digits"][1] ** 2 + rc["means"][1] ** 2 + rc["draws"][1] ** 2)
tut.claim("Pixel noise makes samples rougher than the means (paired, by more than 2 standard "
          "errors), closer to the roughness of real digits (the means' gap exceeds the draws' by "
          "more than 2 standard errors)", rougher.exceeds(2) and gap_means - gap_draws > 2 * gap_se,
          **{k.replace(" ", "_"): v[0] for k, v in rc.items()}, rougher=rougher.evidence(2),
          gap_means=gap_means, gap_draws=gap_draws, stderr=gap_se)
farther = evidence.paired_difference(near_c["draws"], near_c["means"])
tut.claim("... but it moves them farther from every real digit than the means (paired, by more "
          "than 2 standard errors)", farther.exceeds(2), draws=near_mean["draws"],
          means=near_mean["means"], test_digits=near_mean["test digits"], **farther.evidence(2))

# %%
# 2-D manifold (Kingma & Welling 2013, Fig. 4): decode a grid of z at Gaussian quantiles.
g = tut.choose(10, 15)
grid = Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, g))
zz = torch.stack(torch.meshgrid(grid, grid.flip(0), indexing="xy"), dim=-1).reshape(-1, 2)
with torch.no_grad():
    manifold = vae2.decode(zz).mean
neighbour = grid_neighbour_distance(manifold, g, g)  # mean distance between grid neighbours
random_pairs = mean_pairwise_distance(manifold)
fig, ax = subplots(1, 1, size=5.0)
plot_manifold(manifold, grid, ax=ax,
              title=f"Neighbours {neighbour:.2f} apart, random pairs {random_pairs:.2f}")
tut.savefig(fig, "manifold")

# %% tags=["hide-input"]
tut.record("manifold_neighbour_distance", neighbour, ".3f")
tut.record("manifold_random_pair_distance", random_pairs, ".3f")
tut.claim("The 2-D VAE's latent space decodes to smoothly changing digits: neighbouring grid "
          "images are less than half as far apart as random pairs of grid images",
          float(neighbour) < 0.5 * float(random_pairs), neighbour=neighbour,
          random_pairs=random_pairs)

# %% [markdown]
# ## 8. Which distribution is pulled towards $\mathcal N(0, I)$?
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

# %% tags=["hide-input"]
for tag, dec in (("2d", dec2), ("8d", dec8)):
    tut.record(f"average_kl_per_image[{tag}]", dec.average_kl, ".3f")
    tut.record(f"aggregate_kl_to_prior[{tag}]", dec.aggregate_kl.value, ".3f")
    tut.record(f"aggregate_kl_to_prior_stderr[{tag}]", dec.aggregate_kl.stderr, ".3f")
    tut.record(f"mutual_information[{tag}]", dec.mutual_information.value, ".3f")
    agg_kl, agg_se = float(dec.aggregate_kl.value), float(dec.aggregate_kl.stderr)
    info = float(dec.mutual_information.value)
    tut.claim(f"{tag.upper()} codes: the aggregate q(z) is less than a quarter as far from N(0, I) "
              "as the average q(z|x) (even 2 standard errors up)",
              agg_kl + 2 * agg_se < 0.25 * dec.average_kl, aggregate_kl=agg_kl, stderr=agg_se,
              average_kl=dec.average_kl)
    # I_q = average KL - aggregate KL from the same draws, so I_q - KL(q(z)||p(z)) has error 2 se.
    tut.claim(f"{tag.upper()} codes: most of the average KL is information about the image "
              "(I_q > KL(q(z) || p(z)) by more than 2 standard errors), and I_q stays below log N",
              info - agg_kl > 2 * (2 * agg_se) and info < dec.log_num_components,
              information=info, aggregate_kl=agg_kl, stderr_of_difference=2 * agg_se,
              log_n=dec.log_num_components)

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
fig, axes = subplots(1, 2, size=5.0)
for ax, (label, r) in zip(axes, corr_res.items(), strict=True):
    plot_correlation_matrix(r["corr"], [f"z[{d}]" for d in r["dims"]], ax=ax,
                            title=f"{label}: max |r| {r['max']:.2f}, TC {r['tc']:.2f}")
tut.savefig(fig, "mean_correlations")

# %% tags=["hide-input"]
for key, label in (("encoder_sigma_learned", "sigma learned"), ("encoder_sigma_1", "sigma = 1")):
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


# %% [markdown]
# ## 9. Estimator A and estimator B: the KL sampled or in closed form
#
# Kingma & Welling (2013) give two estimators of the same ELBO. With $L$
# reparameterised samples $z^{(l)} = \mu_\phi(x) + \sigma_\phi(x) \odot \varepsilon^{(l)}$,
#
# $$\tilde{\mathcal L}^A(x) = \frac1L \sum_{l=1}^L \big[\log p_\theta(x, z^{(l)})
#   - \log q_\phi(z^{(l)} \mid x)\big] \quad\text{(their eq. 6, everything sampled)},$$
#
# $$\tilde{\mathcal L}^B(x) = -\mathrm{KL}(q_\phi(z \mid x)\,\|\,p(z))
#   + \frac1L \sum_{l=1}^L \log p_\theta(x \mid z^{(l)}) \quad\text{(their eq. 7)}.$$
#
# Every model in this lesson (and in the toolkit) trains with estimator B. Why?
# Write one sample's two terms as $r = \log p_\theta(x \mid z)$ and
# $k = \log q_\phi(z \mid x) - \log p(z)$, whose mean is the KL. Then
# $\tilde{\mathcal L}^A = r - k$ and $\tilde{\mathcal L}^B = r - \mathbb E[k]$: both are
# unbiased, and (for $L = 1$)
#
# $$\mathrm{Var}[\tilde{\mathcal L}^A] - \mathrm{Var}[\tilde{\mathcal L}^B]
#   = \mathrm{Var}[k] - 2\,\mathrm{Cov}(r, k).$$
#
# Replacing $k$ by its exact mean removes $\mathrm{Var}[k]$, which for a Gaussian
# $q$ and the $N(0, I)$ prior is, per latent unit ($k_d = -\log\sigma_d + \mu_d^2/2
# + \mu_d\sigma_d\varepsilon_d + (\sigma_d^2 - 1)\varepsilon_d^2/2$),
#
# $$\mathrm{Var}[k] = \sum_d \big[\mu_d^2 \sigma_d^2 + (\sigma_d^2 - 1)^2 / 2\big],$$
#
# zero only for a unit whose $q$ *is* the prior and positive for every unit that
# carries information (up to $1/2$ from its width, plus $\mu_d^2\sigma_d^2$ from its
# mean). That is Kingma & Welling's argument for B: when the
# KL is available in closed form, do not sample it. But the covariance term can
# undo it: estimator B is quieter only while $\mathrm{Cov}(r, k) < \mathrm{Var}[k]/2$.
# Near the exact posterior the two terms move together: if $q_\phi(z\mid x) =
# p_\theta(z \mid x)$ then $r - k = \log p_\theta(x)$ for every $z$, so estimator A has
# zero variance while B keeps all of $\mathrm{Var}[r]$ (the "sticking the landing"
# effect of tutorial 04, section 7). Which regime is a trained VAE in? We measure
# both estimators on the 8-dimensional VAE: $S$ draws per test digit, the variance of
# each estimator over the draws, $\mathrm{Cov}(r, k)$, and the measured
# $\mathrm{Var}[k]$ against the formula above.

# %%
def estimators_a_and_b(model, X, num_draws, generator):
    """Per-image draws of estimator A (eq. 6) and estimator B (eq. 7), L = 1; shape (S, n)."""
    with torch.no_grad():
        q = model.encode(X)
        eps = torch.randn((num_draws, *q.mean.shape), generator=generator)
        z = q.mean + q.stddev * eps  # reparameterised samples, (S, n, latent)
        r = model.decode(z).log_prob(X)  # log p(x | z)
        k = q.log_prob(z) - model.prior.log_prob(z)  # sampled KL term
        kl = torch.distributions.kl_divergence(q, model.prior)  # its exact mean
    return r - k, r - kl, k, q


S_DRAWS = tut.choose(64, 256)
est_a, est_b, k_draws, q_test = estimators_a_and_b(vae8, Xb_test, S_DRAWS, tut.generator(18))
var_a, var_b = est_a.var(0), est_b.var(0)  # per test image, over the draws
var_k_formula = (q_test.mean ** 2 * q_test.variance + (q_test.variance - 1) ** 2 / 2).sum(-1)

# %% tags=["hide-input"]
var_gap = evidence.paired_difference(var_a, var_b)
tut.record("estimator_draws_per_image", S_DRAWS)
tut.record("estimator_a_variance", per_image(var_a)[0], ".2f")
tut.record("estimator_b_variance", per_image(var_b)[0], ".2f")
tut.record("estimator_a_over_b_variance", float(var_a.mean() / var_b.mean()), ".2f")
same_elbo = evidence.paired_difference(est_a.mean(0), est_b.mean(0))
tut.claim("Estimators A and B estimate the same ELBO: their per-image means differ by less than "
          "4 standard errors (a sanity check: both are unbiased by the algebra above)",
          same_elbo.within(4), **same_elbo.evidence(4))
k_check = evidence.paired_difference(k_draws.var(0), var_k_formula)
tut.claim("The measured variance of the sampled KL term matches the closed form "
          "sum_d [mu_d^2 sigma_d^2 + (sigma_d^2 - 1)^2 / 2] (within 4 standard errors)",
          k_check.within(4), measured=per_image(k_draws.var(0))[0],
          formula=per_image(var_k_formula)[0], **k_check.evidence(4))
cov_rk = ((est_b - est_b.mean(0)) * (k_draws - k_draws.mean(0))).sum(0) / (S_DRAWS - 1)
cov_vs_half = evidence.paired_difference(cov_rk, k_draws.var(0) / 2)
tut.record("cov_reconstruction_sampled_kl", per_image(cov_rk)[0], ".2f")
tut.claim("On the trained VAE the value of estimator A (KL sampled) is the less noisy one: its "
          "per-image variance is lower than estimator B's by more than 2 standard errors",
          var_gap.falls_short(2), **var_gap.evidence(2),
          variance_a=per_image(var_a)[0], variance_b=per_image(var_b)[0])
tut.claim("... because the reconstruction term moves with the sampled KL: Cov(r, k) exceeds "
          "Var[k] / 2 (by more than 2 standard errors, paired over test images)",
          cov_vs_half.exceeds(2), cov=per_image(cov_rk)[0],
          half_var_k=per_image(k_draws.var(0) / 2)[0], **cov_vs_half.evidence(2))

# %% [markdown]
# So for the *value* of the ELBO of a trained VAE, sampling the KL is not the noisy
# choice: the trained encoder is close enough to the posterior that the errors of
# the two terms cancel. Training, though, uses the *gradient*, and there the
# sampled KL brings the score term $-\nabla_\phi \log q_\phi(z \mid x)$ at fixed $z$,
# zero in mean but not in variance (Roeder et al. 2017; tutorial 04, section 7).
# **What does it cost inside a training run?** On the same batch of 64 digits and
# with the *same* noise $\varepsilon$, the decoder's gradient is identical under both
# estimators (the KL does not involve the decoder) and the encoder's gradient picks
# up the sampled KL's extra noise. Then we train a second VAE with estimator A
# (`kl="monte_carlo"`), everything else equal, and compare test log p(x), paired
# over the test images.

# %%
n_rep = tut.choose(50, 100)
batch = Xb[:64]
g_an = elbo_gradients(vae8, batch, n_rep, kl="analytic", generator=tut.generator(16))
g_mc = elbo_gradients(vae8, batch, n_rep, kl="monte_carlo", generator=tut.generator(16))
noise_an, noise_mc = gradient_noise(g_an), gradient_noise(g_mc)
var_ratio = noise_mc.total_variance / noise_an.total_variance
g_dec = [elbo_gradients(vae8, batch, 3, kl=kl, parameters="decoder", generator=tut.generator(16))
         for kl in ("analytic", "monte_carlo")]

vae8_mc = VAE(64, 8, kl="monte_carlo", seed=tut.seed)
hist_mc = train(vae8_mc, Xb, validation=Xb_val, **FIT)
ll_mc, unreliable_mc = log_px(vae8_mc, Xb_test, 5)

# %% tags=["hide-input"]
tut.record("encoder_gradient_total_variance[analytic]", noise_an.total_variance, ".2f")
tut.record("encoder_gradient_total_variance[monte_carlo]", noise_mc.total_variance, ".2f")
tut.record("gradient_variance_ratio_mc_over_analytic", var_ratio, ".3f")
tut.claim("With the same noise the decoder's gradient is identical under both KL estimators",
          bool(torch.equal(g_dec[0], g_dec[1])),
          max_abs_difference=(g_dec[0] - g_dec[1]).abs().max())
# Each replicate used the same noise under both estimators: pair the squared deviations.
sq_dev = [((g - g.mean(0)) ** 2).sum(1) for g in (g_mc, g_an)]
grad_gap = evidence.paired_difference(*sq_dev)
tut.claim("The Monte Carlo KL makes the encoder's gradient noisier than the analytic KL (total "
          "variance higher by more than 2 standard errors, paired over replicates)",
          grad_gap.exceeds(2), ratio=var_ratio, **grad_gap.evidence(2),
          snr_analytic=noise_an.snr, snr_mc=noise_mc.snr)
record_log_px("monte_carlo_kl", (ll_mc, unreliable_mc))
ll_gap = evidence.paired_difference(ll_mc, ll8)
tut.record("log_likelihood_difference_mc_minus_analytic", ll_gap.mean, ".3f")
tut.record("log_likelihood_difference_stderr", ll_gap.stderr, ".3f")
diff_mc = ll_gap.mean
tut.claim("Trained with the Monte Carlo KL, everything else equal, the VAE ends with a lower "
          "test log p(x) than with the analytic KL (by more than 2 standard errors, paired over "
          "test images)", ll_gap.falls_short(2), **ll_gap.evidence(2))

# %%
fig, axes = subplots(1, 2, size=4.4)
plot_metric_bars(["analytic KL", "Monte Carlo KL"],
                 [noise_an.total_variance, noise_mc.total_variance], ax=axes[0],
                 ylabel="total variance of the encoder gradient",
                 title=f"Monte Carlo KL: gradient variance x{var_ratio:.2f}")
plot_training_curves({"analytic KL": hist8, "Monte Carlo KL": hist_mc}, "val_elbo", ax=axes[1],
                     title="Validation ELBO by epoch")
tut.savefig(fig, "monte_carlo_kl")

# %% [markdown]
# ## What to take away
#
# - The KL term is what makes a latent space *samplable*: prior draws decode to
#   every digit class more evenly for the VAE than for the autoencoder, and, once
#   trained long enough, straight paths between its 8-dimensional codes stay nearer
#   real digits.
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
# - Gaussian decoders on 17-level pixels report log-*densities*, which can be
#   positive; uniform dequantisation (Theis et al. 2016) turns them into a bound on
#   the probability of the pixels' bins, and bits per dimension put every model on
#   one scale beside the cost of a uniform guess.
# - Estimator B (analytic KL, Kingma & Welling eq. 7) drops the variance of the
#   sampled KL that estimator A (eq. 6) carries, unless the reconstruction term
#   moves with it: on a trained VAE it does, and A's *value* is the quieter one.
#   Its *gradient* is not: trained with estimator A the encoder gradient is noisier
#   and, here, the test log p(x) lower.

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
