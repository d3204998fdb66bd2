"""The public boundary of the VAE analysis modules (diagnostics, wake-sleep, sparse and plain
autoencoders, the linear-Gaussian VAE, networks, posterior statistics).

Each refusal must name the offending argument (TypeError for a wrong kind, ValueError for a
wrong value, ResourceLimitError before allocating); valid input of another container (NumPy
instead of torch) must give the same numbers as before, checked against an independent route.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vitoolkit.exceptions import ResourceLimitError
from vitoolkit.vae import (
    MLP,
    VAE,
    Autoencoder,
    ConvDecoder,
    ConvEncoder,
    SparseAutoencoder,
    active_units,
    amortisation_gap,
    bernoulli_sparsity_penalty,
    check_posterior_collapse,
    kl_per_dimension,
    linear_gaussian_evidence,
    linear_gaussian_posterior,
    rws_loss,
    sample_label_histogram,
    wake_sleep_loss,
)
from vitoolkit.vae.posterior_stats import (
    AggregatePosterior,
    aggregate_kl_to_prior,
    gaussian_total_correlation,
)


def _small_vae(**kw):
    return VAE(6, 2, hidden_dims=(8,), seed=0, **kw)


def _x(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 6, generator=g) > 0.5).float()


# -- diagnostics -----------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [kl_per_dimension, active_units, check_posterior_collapse])
@pytest.mark.parametrize("model", [torch.nn.Linear(6, 2), "vae", None, 1.0])
def test_diagnostics_refuse_a_non_vae_model(fn, model):
    with pytest.raises(TypeError, match=r"\bmodel\b"):
        fn(model, _x())


def test_diagnostics_name_the_model_when_its_data_dim_differs():
    with pytest.raises(ValueError, match=r"\bmodel\b.*|.*\bmodel\b") as err:
        kl_per_dimension(VAE(5, 2, hidden_dims=(4,)), _x())
    assert "data_dim=5" in str(err.value) and "x" in str(err.value)


@pytest.mark.parametrize(
    "x, error",
    [
        (np.full((16, 6), "a"), TypeError),
        (torch.ones(16, 6, dtype=torch.bool), TypeError),
        (torch.ones(16, 6, dtype=torch.complex64), TypeError),
        ("abc", TypeError),
        (None, TypeError),
        (torch.full((16, 6), float("nan")), ValueError),
        (torch.zeros(16, 6, 1), ValueError),
        # Below 0 for a Bernoulli likelihood, though float32 would round it to -0.0.
        (np.r_[[[-1e-300] + [0.0] * 5], np.zeros((15, 6))], ValueError),
    ],
)
def test_diagnostics_refuse_bad_data_naming_x(x, error):
    with pytest.raises(error, match=r"\bx\b"):
        active_units(_small_vae(), x)


def test_diagnostics_refuse_labels_for_an_unconditional_model():
    with pytest.raises(ValueError, match=r"\by\b"):
        kl_per_dimension(_small_vae(), _x(), torch.eye(3)[torch.arange(16) % 3])


def test_diagnostics_give_the_same_numbers_for_numpy_and_torch_input():
    model, x = _small_vae(), _x()
    # Independent route: the closed-form Gaussian KL per unit from the encoder's outputs.
    q = model.encode(x).base_dist
    loc, scale = q.loc.detach().double(), q.scale.detach().double()
    expected = 0.5 * (loc**2 + scale**2 - 1) - scale.log()
    for given in (x, x.numpy().astype(np.float64), x.numpy().astype(np.int64)):
        got = kl_per_dimension(model, given)
        assert torch.allclose(got.double(), expected, rtol=1e-5, atol=1e-6)
    assert active_units(model, x.numpy()).count == active_units(model, x).count


def test_amortisation_gap_checks_lr_and_log_likelihood():
    model, x = _small_vae(), _x(3)
    kw = dict(steps=2, num_samples=2, eval_samples=8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"\blr\b"):
        amortisation_gap(model, x, lr=1e300, **kw)  # not representable in float32
    with pytest.raises(ValueError, match=r"\blr\b"):
        amortisation_gap(model, x, lr=7e16, **kw)  # diverges within the first steps
    with pytest.raises(TypeError, match=r"\blog_likelihood\b"):
        amortisation_gap(model, x, log_likelihood=np.full(3, "a"), **kw)
    with pytest.raises(TypeError, match=r"\blog_likelihood\b"):
        amortisation_gap(model, x, log_likelihood=torch.zeros(3, dtype=torch.complex64), **kw)
    given = amortisation_gap(model, x, log_likelihood=np.full(3, -4.0), **kw)
    # The gaps follow from the given log p(x) exactly.
    assert torch.allclose(given.inference_gap, -4.0 - given.elbo_amortised)


# -- wake-sleep and the linear-Gaussian VAE ------------------------------------------------------


@pytest.mark.parametrize("fn", [wake_sleep_loss, rws_loss])
def test_wake_sleep_surrogates_check_their_arguments(fn):
    model, x = _small_vae(), _x()
    with pytest.raises(TypeError, match=r"\bmodel\b"):
        fn(torch.nn.Linear(6, 2), x, num_samples=2)
    with pytest.raises(TypeError, match=r"\bnum_samples\b"):
        fn(model, x, num_samples=2.0)
    with pytest.raises(TypeError, match=r"\bx\b"):
        fn(model, "abc", num_samples=2)
    with pytest.raises(ValueError, match=r"\bx\b"):
        fn(model, x * 3, num_samples=2)  # outside the Bernoulli support
    with pytest.raises(TypeError, match=r"\bgenerator\b"):
        fn(model, x, num_samples=2, generator=0)
    with pytest.raises(ResourceLimitError, match=r"\bnum_samples\b"):
        fn(model, x, num_samples=10**12)
    loss, _ = fn(model, x.numpy(), num_samples=2, generator=torch.Generator().manual_seed(0))
    ref, _ = fn(model, x, num_samples=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(loss, ref)


def test_linear_gaussian_checks_the_model():
    lin = VAE(6, 2, hidden_dims=(), likelihood="gaussian", seed=0)
    with pytest.raises(ValueError, match=r"\bmodel\b"):
        linear_gaussian_evidence(_small_vae(), _x())
    with pytest.raises(TypeError, match=r"\bmodel\b"):
        linear_gaussian_posterior(torch.nn.Linear(6, 2), _x())
    with pytest.raises(TypeError, match=r"\bx\b"):
        linear_gaussian_evidence(lin, np.full((4, 6), "a"))
    # Independent route: log N(x; b, W W^T + s^2 I) with NumPy.
    x = np.random.default_rng(0).normal(size=(4, 6))
    w = lin.decoder[0].weight.detach().double().numpy()
    b = lin.decoder[0].bias.detach().double().numpy()
    s = lin.likelihood.observation_scale
    cov = w @ w.T + s**2 * np.eye(6)
    d = x - b
    _, logdet = np.linalg.slogdet(cov)
    maha = np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d)
    expected = -0.5 * (maha + logdet + 6 * math.log(2 * math.pi))
    np.testing.assert_allclose(linear_gaussian_evidence(lin, x).numpy(), expected, rtol=1e-5)


# -- sparse and plain autoencoders ---------------------------------------------------------------


def test_bernoulli_sparsity_penalty_checks_and_keeps_the_graph():
    h = torch.tensor([[0.1, 0.5], [0.3, 0.7]], dtype=torch.float64, requires_grad=True)
    rho = 0.2
    got = bernoulli_sparsity_penalty(h, rho)
    r = h.detach().mean(0)
    expected = (rho * torch.log(rho / r) + (1 - rho) * torch.log((1 - rho) / (1 - r))).sum()
    assert torch.allclose(got, expected)
    got.backward()
    assert h.grad is not None and bool(torch.isfinite(h.grad).all())
    assert float(bernoulli_sparsity_penalty(h.detach().numpy(), rho)) == pytest.approx(float(expected))
    for sparsity, error in [(True, TypeError), ("0.1", TypeError), (0.0, ValueError), (1.0, ValueError),
                            (float("nan"), ValueError)]:
        with pytest.raises(error, match=r"\bsparsity\b"):
            bernoulli_sparsity_penalty(h.detach(), sparsity)
    for acts, error in [(h.detach() - 1, ValueError), (torch.full((2, 2), float("nan")), ValueError),
                        (torch.zeros(0, 2), ValueError), ("abc", TypeError),
                        (torch.ones(2, 2, dtype=torch.bool), TypeError)]:
        with pytest.raises(error, match=r"\bactivations\b"):
            bernoulli_sparsity_penalty(acts, 0.1)


@pytest.mark.parametrize("cls", [Autoencoder, SparseAutoencoder])
def test_autoencoders_check_sizes_and_seed(cls):
    for seed, error in [(None, TypeError), (float("nan"), TypeError), (1.5, TypeError), (-1, ValueError)]:
        with pytest.raises(error, match=r"\bseed\b"):
            cls(6, 2, seed=seed)
    # torch's allocator would raise a RuntimeError for the terabytes these need.
    with pytest.raises(ResourceLimitError, match=r"\bdata_dim\b"):
        cls(10**12, 2)
    with pytest.raises(ResourceLimitError, match=r"\bdata_dim\b"):
        cls(2**70, 2)
    model = cls(6, 2)
    x = np.r_[[[-1e-300] + [0.0] * 5], np.zeros((3, 6))]
    with pytest.raises(ValueError, match=r"\bx\b"):
        model.encode(x)  # below 0 for the BCE loss, though float32 would round it to -0.0
    with pytest.raises(TypeError, match=r"\bx\b"):
        model.encode(np.full((4, 6), "a"))


def test_autoencoder_checks_image_shape():
    for shape, error in [("1", TypeError), ((0,), ValueError), ((2.5, 3), TypeError), ((2, 4), ValueError)]:
        with pytest.raises(error, match=r"\bimage_shape\b"):
            Autoencoder(6, 2, image_shape=shape)
    assert Autoencoder(6, 2, image_shape=(2, 3)).image_shape is None  # an MLP does not reshape


def test_sample_label_histogram_checks_and_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    data, samples = torch.randn(30, 4, generator=g), torch.randn(50, 4, generator=g)
    labels = torch.arange(30) % 3
    got = sample_label_histogram(samples, data, labels, num_classes=4)
    nearest = [int(labels[int(((data - s) ** 2).sum(1).argmin())]) for s in samples]
    expected = torch.tensor([nearest.count(c) / 50 for c in range(4)], dtype=torch.float64)
    assert torch.equal(got, expected)
    assert torch.equal(sample_label_histogram(samples.numpy(), data.numpy(), labels.numpy(), 4), got)
    with pytest.raises(ValueError, match=r"\blabels\b"):
        sample_label_histogram(samples, data, labels, num_classes=2)
    with pytest.raises(ValueError, match=r"\blabels\b"):
        sample_label_histogram(samples, data, -labels - 1)
    with pytest.raises(TypeError, match=r"\blabels\b"):
        sample_label_histogram(samples, data, labels.double())
    with pytest.raises(TypeError, match=r"\bsamples\b"):
        sample_label_histogram(samples.to(torch.complex64), data, labels)
    with pytest.raises(ValueError, match=r"\bdata\b"):
        sample_label_histogram(samples, data[:0], labels[:0])
    with pytest.raises(ResourceLimitError, match=r"\bnum_classes\b"):
        sample_label_histogram(samples, data, labels, num_classes=10**12)
    with pytest.raises(TypeError, match=r"\bnum_classes\b"):
        sample_label_histogram(samples, data, labels, num_classes=3.0)


# -- networks ----------------------------------------------------------------------------------


def test_networks_refuse_before_allocating():
    # torch's allocator would raise a RuntimeError for the terabytes these need.
    with pytest.raises(ResourceLimitError, match=r"\bin_features\b"):
        MLP(10**12, (8,), 2)
    with pytest.raises(ResourceLimitError, match=r"\bhidden_dims\b"):
        MLP(6, (10**12,), 2)
    with pytest.raises(ResourceLimitError, match=r"\bout_features\b"):
        ConvEncoder((1, 8, 8), (4,), 10**12)
    with pytest.raises(ResourceLimitError, match=r"\bin_features\b"):
        ConvDecoder(2**70, (1, 8, 8), (4,))


@pytest.mark.parametrize(
    "make, name, error",
    [
        (lambda: ConvEncoder("1", (4,), 2), "image_shape", TypeError),
        (lambda: ConvEncoder((1, 8), (4,), 2), "image_shape", ValueError),
        (lambda: ConvEncoder((1, 6, 6), (4, 4), 2), "image_shape", ValueError),
        (lambda: ConvEncoder((1, 8, 8), "ab", 2), "channels", TypeError),
        (lambda: ConvEncoder((1, 8, 8), (4,), 2, extra_features=True), "extra_features", TypeError),
        (lambda: ConvEncoder((1, 8, 8), (4,), 2.0), "out_features", TypeError),
        (lambda: ConvDecoder(True, (1, 8, 8), (4,)), "in_features", TypeError),
        (lambda: ConvDecoder(2, (1, 8, 8), (4,), params_per_pixel=0), "params_per_pixel", ValueError),
        (lambda: ConvDecoder(2, (1, 8, 8), ()), "channels", ValueError),
        (lambda: MLP(6, (8,), 2, activation=["relu"]), "activation", ValueError),
    ],
)
def test_networks_name_the_bad_argument(make, name, error):
    with pytest.raises(error, match=rf"\b{name}\b"):
        make()


def test_conv_networks_keep_their_shapes():
    enc = ConvEncoder((2, 8, 8), (4, 8), 3, extra_features=2)
    dec = ConvDecoder(3, (2, 8, 8), (4, 8), params_per_pixel=2)
    assert enc(torch.zeros(5, 128), torch.zeros(5, 2)).shape == (5, 3)
    assert dec(torch.zeros(4, 5, 3)).shape == (4, 5, 256)


# -- posterior statistics ----------------------------------------------------------------------


def test_posterior_stats_check_their_arguments():
    loc, scale = torch.zeros(4, 2), torch.ones(4, 2)
    with pytest.raises(TypeError, match=r"\bloc\b"):
        AggregatePosterior(np.full((4, 2), "a"), scale)
    with pytest.raises(ValueError, match=r"\bscale\b"):
        AggregatePosterior(loc, -scale)
    agg = AggregatePosterior(loc, scale)
    with pytest.raises(TypeError, match=r"\bnum_samples\b"):
        aggregate_kl_to_prior(agg, 10.0)
    with pytest.raises(ResourceLimitError, match=r"\bnum_samples\b"):
        aggregate_kl_to_prior(agg, 10**15)
    with pytest.raises(TypeError, match=r"\bagg\b"):
        aggregate_kl_to_prior("agg", 10)
    # Every component is N(0, I): the aggregate is the prior, KL = 0 exactly on any draws.
    est = aggregate_kl_to_prior(agg, 100, generator=torch.Generator().manual_seed(0))
    assert abs(float(est.value)) < 1e-12
    with pytest.raises(ValueError, match=r"\bcovariance\b"):
        gaussian_total_correlation(torch.tensor([[1.0, 2.0], [2.0, 1.0]]))
    rho = 0.6
    assert gaussian_total_correlation(torch.tensor([[1.0, rho], [rho, 1.0]])) == pytest.approx(
        -0.5 * math.log(1 - rho**2))


def test_factor_and_curve_diagnostics_check_their_arguments():
    from vitoolkit.vae.diagnostics import factor_correlation, iwae_curve, mutual_information_gap

    codes = np.random.default_rng(0).normal(size=(40, 2))
    with pytest.raises(TypeError, match=r"\bfactors\b"):
        factor_correlation(codes, np.full((40, 1), "a"))
    with pytest.raises(ValueError, match=r"\bcodes\b"):
        factor_correlation(np.r_[codes[:-1], [[np.nan, 0.0]]], codes[:, :1])
    with pytest.raises(TypeError, match=r"\bbins\b"):
        mutual_information_gap(codes, codes[:, :1], bins=2.0)
    # Independent route: |Pearson r| from NumPy's corrcoef.
    r = abs(np.corrcoef(codes[:, 0], codes[:, 1])[0, 1])
    assert float(factor_correlation(codes, codes[:, 1:])[0, 0]) == pytest.approx(r)
    with pytest.raises(TypeError, match=r"\bnum_samples\b"):
        iwae_curve(_small_vae(), _x(), 4, pool=4)
    with pytest.raises(TypeError, match=r"\bmodel\b"):
        iwae_curve(torch.nn.Linear(6, 2), _x(), [1, 2], pool=4)
