"""The variational autoencoder: what the prior, the noise and the likelihood each buy.

Question: What does a VAE change about an autoencoder's latent space, and what do its terms assume?

We train small VAEs on scikit-learn's 8x8 digits (1,257 training, 270
validation, 270 test images; nothing is downloaded) and answer the questions a
student brings from Kingma & Welling (2013), "Auto-Encoding Variational Bayes":
the autoencoder's holes, the reparameterisation trick in a real network, why
the variance is learned, what each half of the ELBO does on its own, which
likelihood BCE and MSE assume, and why decoded means look blurry.
"""

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

# %%
import torch
from torch.distributions import (
    Bernoulli,
    Categorical,
    ContinuousBernoulli,
    Independent,
    MultivariateNormal,
    Normal,
)

from vitoolkit.datasets import load_digits
from vitoolkit.divergences import kl_divergence, mean_and_stderr
from vitoolkit.plotting import subplots
from vitoolkit.plotting.vae import (
    plot_image_grid,
    plot_latent_scatter,
    plot_manifold,
    plot_metric_bars,
    plot_reconstructions,
    plot_training_curves,
)
from vitoolkit.tutorial import Tutorial
from vitoolkit.vae import VAE, Autoencoder, sample_label_histogram, train

tut = Tutorial("05_vae")
EPOCHS = tut.choose(15, 150)
K_EVAL = tut.choose(200, 1000)  # importance samples for log p(x)
FIT = dict(batch_size=64, lr=2e-3, seed=tut.seed, progress=False)
if not tut.quick:
    FIT.update(patience=25)

Xb, yb = load_digits(binarize=True, split="train")  # {0, 1} pixels
Xb_val, _ = load_digits(binarize=True, split="val")
Xb_test, y_test = load_digits(binarize=True, split="test")
Xc, _ = load_digits(split="train")  # continuous pixels in [0, 1]
Xc_val, _ = load_digits(split="val")
Xc_test, _ = load_digits(split="test")
tut.record("n_train", Xb.shape[0])


def per_image(values):
    """Mean over test images and its standard error."""
    est = mean_and_stderr(values.double())
    return float(est.value), float(est.stderr)


# %% [markdown]
# ## 2. Autoencoder vs VAE: holes in the latent space
#
# A plain autoencoder (same networks, reconstruction loss only) places codes
# wherever reconstruction is easiest. Nothing says how codes are *distributed*,
# so there is no distribution to sample new images from: drawing $z$ from
# $\mathcal N(0, I)$ visits some regions of its code space too often and others
# (where whole digit classes live) almost never, and the space between clusters
# decodes to whatever the decoder happens to do there. The VAE's KL term pulls
# every $q(z\mid x)$ towards the prior, so the codes of the data fill the prior.
# Two numbers: the KL from the prior to a Gaussian fitted to the codes, and the
# entropy of the classes that decoded prior draws resemble (nearest training
# image; $\log 10 = 2.303$ nats when every digit appears equally often).

# %%
ae = Autoencoder(64, 2, seed=tut.seed)
hist_ae = train(ae, Xb, epochs=EPOCHS, validation=Xb_val, **FIT)
vae2 = VAE(64, 2, seed=tut.seed)
hist_vae2 = train(vae2, Xb, epochs=EPOCHS, validation=Xb_val, **FIT)

z_prior = torch.randn(2000, 2, generator=tut.generator(2))
with torch.no_grad():
    codes_ae = ae.encode(Xb)
    codes_vae = vae2.encode(Xb).mean
    prior_ae = ae.decode(z_prior)
    prior_vae = vae2.decode(z_prior).mean
for name, codes, decoded in (("ae", codes_ae, prior_ae), ("vae", codes_vae, prior_vae)):
    fitted = MultivariateNormal(codes.double().mean(0), torch.cov(codes.double().T))
    standard = MultivariateNormal(torch.zeros(2, dtype=torch.float64),
                                  torch.eye(2, dtype=torch.float64))
    tut.record(f"{name}_kl_code_gaussian_to_prior", kl_divergence(fitted, standard), ".2f")
    hist = sample_label_histogram(decoded, Xb, yb, num_classes=10)
    tut.record(f"{name}_prior_sample_class_entropy", Categorical(probs=hist).entropy(), ".3f")
    tut.record(f"{name}_prior_sample_class_shares", hist, None)
ent_ae = tut.summary["ae_prior_sample_class_entropy"]
ent_vae = tut.summary["vae_prior_sample_class_entropy"]

fig, axes = subplots(2, 2, size=4.4)
plot_latent_scatter(codes_ae, yb, ax=axes[0, 0], title="AE codes: arbitrary spread")
plot_latent_scatter(codes_vae, yb, ax=axes[0, 1], title="VAE means: fill N(0, I)")
plot_image_grid(prior_ae[:24], ncols=8, ax=axes[1, 0],
                title=f"AE decodes N(0,I): class entropy {ent_ae:.2f}")
plot_image_grid(prior_vae[:24], ncols=8, ax=axes[1, 1],
                title=f"VAE decodes N(0,I): class entropy {ent_vae:.2f}")
tut.savefig(fig, "ae_vs_vae_latent")

# Midpoints between pairs of test digits.
with torch.no_grad():
    a, b = Xb_test[:8], Xb_test[8:16]
    mid_ae = ae.decode(0.5 * (ae.encode(a) + ae.encode(b)))
    mid_vae = vae2.decode(0.5 * (vae2.encode(a).mean + vae2.encode(b).mean)).mean
fig, ax = subplots(1, 1, size=4.0)
plot_reconstructions(a, {"AE midpoint": mid_ae, "VAE midpoint": mid_vae, "other end": b},
                     ax=ax, title="Decoded midpoints between two test digits")
tut.savefig(fig, "midpoints")

# %% [markdown]
# ## 3. The reparameterisation trick in a real network
#
# Sampling $z \sim q_\phi(z\mid x)$ is not differentiable in $\phi$, but writing
# $z = \mu_\phi(x) + \sigma_\phi(x) \odot \varepsilon$ with $\varepsilon \sim
# \mathcal N(0, I)$ moves the randomness into $\varepsilon$ (Kingma & Welling
# 2013, section 2.4), and the one-sample ELBO becomes an ordinary differentiable
# function of the encoder weights. `VAE.elbo` does exactly this; autograd then
# reaches every encoder weight. The spread of the sample gradients is the
# estimator's noise: it shrinks as $1/\sqrt{m}$ with $m$ samples averaged.

# %%
x_one = Xb_test[:1]
grads = []
gen = tut.generator(3)
for _ in range(tut.choose(50, 200)):
    vae2.zero_grad()
    vae2.elbo(x_one, generator=gen).sum().backward()
    grads.append(torch.cat([p.grad.flatten() for p in vae2.encoder.parameters()]))
grads = torch.stack(grads)
grad_est = mean_and_stderr(grads.double())
# Signal-to-noise of the whole gradient vector: |mean| / sqrt(total variance).
snr = grad_est.value.norm() / grads.double().var(0).sum().sqrt()
tut.record("encoder_gradient_norm", grad_est.value.norm(), ".3f")
tut.record("encoder_gradient_snr_one_sample", snr, ".3f")
vae2.zero_grad()

with torch.no_grad():
    q = vae2.encode(x_one)
    eps = torch.randn(400, 2, generator=tut.generator(4))
    z_cloud = q.mean + q.stddev * eps  # z = mu + sigma * eps
fig, axes = subplots(1, 2, size=4.4)
plot_latent_scatter(codes_vae, None, ax=axes[0], size=4, color="0.75",
                    label="training means")
plot_latent_scatter(z_cloud, None, ax=axes[0], size=6, color="black",
                    label="z = mu + sigma * eps", title="q(z|x) of one digit is a small cloud")
with torch.no_grad():
    decoded = vae2.decode(z_cloud[:16]).mean
plot_image_grid(decoded, ncols=8, ax=axes[1], title="Its samples decode to one digit")
tut.savefig(fig, "reparameterisation")

# %% [markdown]
# ## 4. Why learn the variance?
#
# **Encoder variance.** If $\sigma_\phi(x)$ is fixed at 1, every $q(z\mid x)$
# is as wide as the prior: a sample of $z$ carries little about $x$, so the
# decoder learns to ignore it, and the KL can only shrink $\mu$. Learning
# $\sigma$ lets each digit claim a small region of latent space (more
# information, a larger KL) where it helps reconstruction.
#
# **Decoder variance.** A Gaussian decoder with fixed $\sigma$ weighs the
# squared error by $1/(2\sigma^2)$ against the KL: too large a $\sigma$ and the
# KL wins (blurry, few active units), too small and the KL barely matters. A
# learned per-pixel $\sigma$ sets that balance from the data (Kingma & Welling
# 2013, Appendix C.2); log-likelihoods of Gaussian models are comparable
# (same data space).

# %%
settings = [  # (label, data, constructor arguments)
    ("encoder sigma learned", "binary", dict(likelihood="bernoulli")),
    ("encoder sigma = 1", "binary", dict(likelihood="bernoulli", posterior_scale=1.0)),
    ("decoder sigma = 1", "continuous", dict(likelihood="gaussian", observation_scale=1.0)),
    ("decoder sigma = 0.1", "continuous", dict(likelihood="gaussian", observation_scale=0.1)),
    ("decoder sigma learned", "continuous", dict(likelihood="gaussian_learned", min_scale=0.05)),
]
variance_results = {}
for label, kind, kwargs in settings:
    train_x, val_x, test_x = (Xb, Xb_val, Xb_test) if kind == "binary" else (Xc, Xc_val, Xc_test)
    model = VAE(64, 8, seed=tut.seed, **kwargs)
    hist = train(model, train_x, epochs=EPOCHS, validation=val_x, **FIT)
    ll = model.log_likelihood(test_x, K_EVAL, generator=tut.generator(5))
    variance_results[label] = (per_image(ll), hist.val_kl[-1], hist.val_active_units[-1])
    key = label.replace(" ", "_").replace("=", "").replace("__", "_").replace(".", "")
    tut.record(f"log_likelihood[{key}]", per_image(ll)[0], ".2f")
    tut.record(f"kl[{key}]", hist.val_kl[-1], ".2f")
    tut.record(f"active_units[{key}]", hist.val_active_units[-1])

fig, axes = subplots(1, 2, size=4.6)
labels_b = [lab for lab, kind, _ in settings if kind == "binary"]
labels_c = [lab for lab, kind, _ in settings if kind == "continuous"]
plot_metric_bars(labels_b, [variance_results[lab][0][0] for lab in labels_b],
                 [variance_results[lab][0][1] for lab in labels_b], ax=axes[0],
                 ylabel="test log p(x), nats per image",
                 title="Encoder sigma fixed at 1 loses")
plot_metric_bars(labels_c, [variance_results[lab][0][0] for lab in labels_c],
                 [variance_results[lab][0][1] for lab in labels_c], ax=axes[1],
                 ylabel="test log p(x), nats per image",
                 title="Learned decoder sigma wins")
tut.savefig(fig, "learned_vs_fixed_variance")

# %% [markdown]
# ## 5. Reconstruction only, KL only, both
#
# Drop the KL ($\beta = 0$): the VAE becomes a noisy autoencoder; $\sigma$ shrinks
# and the codes spread out with holes again. Keep essentially only the KL
# ($\beta = 1000$, so the reconstruction term is negligible): every $q(z\mid x)$
# collapses onto the prior and the codes carry nothing about $x$ (Higgins et
# al. 2017 study the dial in between, eq. 4). The ELBO ($\beta = 1$) sits between.

# %%
beta_runs = {"reconstruction only (beta=0)": 0.0, "both (beta=1)": 1.0,
             "KL only (beta=1000)": 1000.0}
fig, axes = subplots(1, 3, size=4.0)
for i, (label, beta) in enumerate(beta_runs.items()):
    model = vae2 if beta == 1.0 else VAE(64, 2, seed=tut.seed)
    if beta != 1.0:
        train(model, Xb, epochs=EPOCHS, beta=beta, **{k: v for k, v in FIT.items()
                                                        if k != "patience"})
    with torch.no_grad():
        q = model.encode(Xb_test)
        kl = torch.distributions.kl_divergence(q, model.prior)  # closed form, nats
        recon = model.elbo(Xb_test, beta=0.0, generator=tut.generator(6))
    tag = label.split(" (")[0].replace(" ", "_")
    tut.record(f"test_kl[{tag}]", kl.mean(), ".2f")
    tut.record(f"test_reconstruction[{tag}]", recon.mean(), ".2f")
    plot_latent_scatter(q.mean, y_test, ax=axes[i], legend=i == 0,
                        title=f"beta = {beta:g}: KL {float(kl.mean()):.1f} nats")
tut.savefig(fig, "reconstruction_vs_kl")

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
# $\lambda$, so images must be decoded through the distribution's mean.

# %%
likelihood_runs = [("BCE (bernoulli)", "bernoulli", {}),
                   ("MSE (gaussian)", "gaussian", {"observation_scale": 0.1}),
                   ("continuous Bernoulli", "continuous_bernoulli", {})]
recons = {}
for label, name, extra in likelihood_runs:
    model = VAE(64, 8, likelihood=name, seed=tut.seed, **extra)
    train(model, Xc, epochs=EPOCHS, validation=Xc_val, **FIT)
    recons[label] = model.reconstruct(Xc_test[:10])
    if name == "bernoulli":
        with torch.no_grad():
            logits = model.decoder(model.encode(Xc_test).mean)
            bce = Independent(Bernoulli(logits=logits, validate_args=False), 1).log_prob(Xc_test)
            cb = Independent(ContinuousBernoulli(logits=logits), 1).log_prob(Xc_test)
        tut.record("bce_missing_log_normaliser_per_image", (cb - bce).mean(), ".2f")
    ll = model.log_likelihood(Xc_test, K_EVAL, generator=tut.generator(7))
    tag = name
    tut.record(f"continuous_pixels_log_likelihood[{tag}]", per_image(ll)[0], ".2f")

fig, ax = subplots(1, 1, size=4.0)
plot_reconstructions(Xc_test[:10], recons, ax=ax,
                     title="Same data, three likelihoods: decoder means differ")
tut.savefig(fig, "likelihood_reconstructions")

# %% [markdown]
# ## 7. Decoding the mean vs sampling
#
# A sample of the generative model is $z \sim p(z)$, then $x \sim p(x \mid z)$.
# The pixels of a Bernoulli decoder are independent given $z$, so a draw of
# $x$ scatters every uncertain pixel independently: speckle. Showing the mean
# $\mathbb E[x \mid z]$ instead averages over that pixel noise, and the
# uncertainty about *where* strokes are (which the factorised decoder cannot
# express) shows up as blur. We also report the bound and the importance-sampled
# log-likelihood (Burda et al. 2015, eq. 8; Kingma & Welling, Appendix D) of the
# 8-dimensional model.

# %%
vae8 = VAE(64, 8, seed=tut.seed)
hist8 = train(vae8, Xb, epochs=EPOCHS, validation=Xb_val, **FIT)
gen = tut.generator(8)
means = vae8.sample(32, generator=tut.generator(9))
draws = vae8.sample(32, mean=False, generator=tut.generator(9))
pixel_std = (means * (1 - means)).sqrt().mean()
tut.record("mean_decoder_pixel_std", pixel_std, ".3f")
with torch.no_grad():
    elbo = vae8.elbo(Xb_test, generator=gen)
    iwae = vae8.iwae_bound(Xb_test, 50, generator=gen)
ll = vae8.log_likelihood(Xb_test, K_EVAL, generator=gen)
tut.record("vae_test_elbo", per_image(elbo)[0], ".2f")
tut.record("vae_test_iwae_k50", per_image(iwae)[0], ".2f")
tut.record("log_likelihood_num_samples", K_EVAL)
tut.record("vae_test_log_likelihood", per_image(ll)[0], ".2f")

fig, axes = subplots(1, 3, size=4.2)
plot_image_grid(means, ncols=8, ax=axes[0], title="Decoder means: smooth but blurry")
plot_image_grid(draws, ncols=8, ax=axes[1], title="Decoder samples: independent speckle")
plot_training_curves({"train": {"epoch": hist8.epoch, "v": hist8.train_elbo},
                      "validation": {"epoch": hist8.epoch, "v": hist8.val_elbo}}, "v",
                     ax=axes[2],
                     title=f"ELBO per epoch; best validation: epoch {hist8.best_epoch}")
tut.savefig(fig, "mean_vs_sample")

# 2-D manifold (Kingma & Welling 2013, Fig. 4): decode a grid of z at Gaussian quantiles.
g = tut.choose(10, 15)
grid = Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, g))
zz = torch.stack(torch.meshgrid(grid, grid.flip(0), indexing="xy"), dim=-1).reshape(-1, 2)
with torch.no_grad():
    manifold = vae2.decode(zz).mean
fig, ax = subplots(1, 1, size=5.0)
plot_manifold(manifold, grid, ax=ax,
              title="The 2-D VAE's latent space decodes to smoothly changing digits")
tut.savefig(fig, "manifold")

# %% [markdown]
# ## What to take away
#
# - The KL term is what makes a latent space *samplable*: far fewer prior draws
#   land in holes for the VAE than for the autoencoder.
# - The reparameterisation $z = \mu + \sigma \varepsilon$ turns sampling into a
#   differentiable layer; learning $\sigma$ lets the code carry information.
# - BCE and MSE are likelihood assumptions; on continuous pixels only the
#   continuous Bernoulli (or a Gaussian) is a proper density.
# - Means blur, samples speckle: both come from the factorised decoder.

# %%
tut.finish()
