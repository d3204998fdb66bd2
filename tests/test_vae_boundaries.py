"""vitoolkit.vae at its public boundary: bad paths, devices, schedules, labels, counts and sizes.

Each bad input must be refused with an error naming the argument (or the file and key)
*before* the model changes; oversized importance-sampling requests are streamed when the
math allows and refused before allocating when it does not.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from test_vae_model import _linear_gaussian_vae

from vitoolkit.datasets import load_digits
from vitoolkit.exceptions import ResourceLimitError
from vitoolkit.vae import VAE, annealing, load_model, save_model, train
from vitoolkit.vae import importance as vae_importance
from vitoolkit.vae.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(binarize=True, split="train")
    return X[:120], y[:120]


def _small(seed=0, **kw):
    return VAE(64, 2, hidden_dims=(8,), seed=seed, **kw)


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _unchanged(model, before):
    return all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


FIT = dict(epochs=2, batch_size=40, progress=False)


# -- checkpoint paths and devices: refused before the first epoch -------------------


def test_unwritable_checkpoint_path_is_refused_before_training(digits, tmp_path):
    X, _ = digits
    model = _small()
    before = _snapshot(model)
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError, match="checkpoint must be a file path") as err:
        train(model, X, checkpoint=tmp_path / "folder", **FIT)
    assert str(tmp_path / "folder") in str(err.value)
    (tmp_path / "plain").write_text("a file, not a folder")
    with pytest.raises(NotADirectoryError, match="plain"):
        train(model, X, checkpoint=tmp_path / "plain" / "c.pt", **FIT)
    assert _unchanged(model, before)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_checkpoint_folder_is_refused_before_training(digits, tmp_path):
    X, _ = digits
    model = _small()
    before = _snapshot(model)
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            train(model, X, checkpoint=folder / "c.pt", **FIT)
    finally:
        folder.chmod(0o700)
    assert _unchanged(model, before)


@pytest.mark.parametrize("device", ["foo", "cuda:0" if not torch.cuda.is_available() else "cuda:99",
                                    "mps", "meta"])
def test_devices_that_cannot_work_here_are_refused(digits, device):
    if device == "mps" and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        pytest.skip("MPS is available here")
    X, _ = digits
    model = _small()
    before = _snapshot(model)
    with pytest.raises(ValueError, match=rf"device='{device}'"):
        train(model, X, device=device, **FIT)
    assert _unchanged(model, before)
    with pytest.raises(TypeError, match="device must be"):
        train(model, X, device=3, **FIT)


# -- the beta schedule ------------------------------------------------------------------


def _bad_after(step, value):
    def schedule(t):
        return 1.0 if t < step else value
    return schedule


@pytest.mark.parametrize("value", [-0.5, math.nan, math.inf, "1", None, True])
def test_bad_beta_schedule_values_name_the_schedule_epoch_and_step(digits, value):
    X, _ = digits
    # 120 examples / 40 per batch = 3 steps per epoch: step 4 is in epoch 2.
    with pytest.raises(ValueError, match=rf"beta schedule .*_bad_after.*schedule returned "
                                         rf"{value!r}.* at epoch 2, step 4"):
        train(_small(), X, beta=_bad_after(4, value), **FIT)
    with pytest.raises(ValueError, match=r"epoch 1, step 0"):
        train(_small(), X, beta=_bad_after(0, value), **FIT)


def test_schedule_constructors_refuse_wrong_kinds():
    with pytest.raises(TypeError, match="steps must be an integer"):
        annealing.linear_warmup(10.0)
    with pytest.raises(TypeError, match="end must be a real number"):
        annealing.linear_warmup(10, end="1")
    with pytest.raises(ValueError, match="start must be >= 0"):
        annealing.cyclical(8, start=-1.0)
    with pytest.raises(TypeError, match="beta must be a real number"):
        _small().elbo(torch.zeros(1, 64), beta=True)


# -- the caller's tensors ---------------------------------------------------------------


def test_training_data_that_requires_grad_gets_no_gradient(digits):
    X, y = digits
    data = X.clone().requires_grad_(True)
    val = X[:30].clone().requires_grad_(True)
    hist = train(_small(), data, validation=val, **FIT)
    assert data.grad is None and val.grad is None
    assert len(hist) == 2 and all(math.isfinite(v) for v in hist.train_elbo)
    # The same run as with plain data: detaching changes nothing else.
    ref = train(_small(), X, validation=X[:30], **FIT)
    assert hist.train_elbo == ref.train_elbo
    soft = torch.nn.functional.one_hot(y, 10).float().requires_grad_(True)
    train(_small(conditional_dim=10), X, labels=soft, **FIT)
    assert soft.grad is None


# -- damaged checkpoints ------------------------------------------------------------------


def _training_checkpoint(X, path):
    train(_small(), X, checkpoint=path, **FIT)
    return load_checkpoint(path)


@pytest.mark.parametrize("key, value", [
    ("model_state", None), ("optimizer_state", "adam"), ("shuffle_state", [1, 2]),
    ("noise_state", torch.zeros(3)), ("epoch", 1.5), ("step", -1), ("history", []),
    ("best_value", "high"), ("best_state", 3), ("bad_epochs", True), ("settings", None),
    ("model_config", "VAE"), ("model_class", 7),
])
def test_checkpoint_with_marker_but_wrong_types_names_file_and_key(digits, tmp_path, key, value):
    X, _ = digits
    good = _training_checkpoint(X, tmp_path / "good.pt")
    bad = tmp_path / "bad.pt"
    payloads = [{**good, key: value}, {k: v for k, v in good.items() if k != key}]
    if key == "best_state":  # tensors, but not the model's
        payloads.append({**good, key: {"w": torch.zeros(2)}})
    if key == "history":  # a dict, but not a history
        payloads += [{**good, key: {**good[key], "epoch": 3}},
                     {**good, key: {**good[key], "stopped_early": "no"}},
                     {**good, key: {**good[key], "colour": []}}]
    for payload in payloads:
        save_checkpoint(bad, payload)
        with pytest.raises(ValueError, match=rf"bad\.pt.*key '{key}'"):
            train(_small(), X, epochs=3, batch_size=40, checkpoint=bad, resume=True,
                  progress=False)


def test_damaged_saved_model_names_file_and_key(tmp_path):
    path = tmp_path / "m.pt"
    save_model(_small(), path)
    good = load_checkpoint(path)
    cases = {
        "model_state": {**good, "model_state": {"encoder.0.weight": "not a tensor"}},
        "model_config": {**good, "model_config": {**good["model_config"], "latent_dim": "2"}},
    }
    for key, payload in cases.items():
        save_checkpoint(path, payload)
        with pytest.raises(ValueError, match=rf"m\.pt.*key '{key}'"):
            load_model(path)
    save_checkpoint(path, {k: v for k, v in good.items() if k != "model_class"})
    with pytest.raises(ValueError, match=r"m\.pt.*key 'model_class' is missing"):
        load_model(path)
    # Right keys and types, wrong content of the optimiser state: still named.
    ckpt = tmp_path / "c.pt"
    X, _ = load_digits(binarize=True, split="val")
    state = _training_checkpoint(X[:80], ckpt)
    save_checkpoint(ckpt, {**state, "optimizer_state": {"state": {}, "param_groups": [{}]}})
    with pytest.raises(ValueError, match=r"c\.pt.*key 'optimizer_state'"):
        train(_small(), X[:80], epochs=3, batch_size=40, checkpoint=ckpt, resume=True,
              progress=False)


def test_a_dead_writers_temporary_file_is_removed_by_the_next_save(tmp_path):
    path = tmp_path / "m.pt"
    # A pid that is not running: the writer was killed mid-save.
    dead = 2**22 + 12345
    while True:
        try:
            os.kill(dead, 0)
            dead += 1
        except ProcessLookupError:
            break
    stale = tmp_path / f".m.pt.{dead}.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    save_model(_small(), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


# -- threads ---------------------------------------------------------------------------------


def test_num_threads_applies_during_training_and_is_restored(digits):
    X, _ = digits
    seen = []

    def recording(step):
        seen.append(torch.get_num_threads())
        return 1.0

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        # (The first call, step 0, is the up-front check of the schedule.)
        train(_small(), X, beta=recording, **FIT)
        assert len(seen) == 7 and set(seen[1:]) == {1} and torch.get_num_threads() == 2
        seen.clear()
        train(_small(), X, beta=recording, num_threads=None, **FIT)
        assert set(seen[1:]) == {2} and torch.get_num_threads() == 2
        for bad, error in ((0, ValueError), (True, TypeError), (1.0, TypeError)):
            with pytest.raises(error, match="num_threads"):
                train(_small(), X, num_threads=bad, **FIT)
    finally:
        torch.set_num_threads(before)


# -- counts and seeds ----------------------------------------------------------------------


@pytest.mark.parametrize("value, error", [(1.5, TypeError), (True, TypeError), ("3", TypeError),
                                          (-1, ValueError), (2**70, ValueError)])
def test_seeds_are_checked_not_coerced(digits, value, error):
    X, _ = digits
    with pytest.raises(error, match="seed"):
        VAE(64, 2, seed=value)
    with pytest.raises(error, match="seed"):
        train(_small(), X, seed=value, **FIT)


@pytest.mark.parametrize("name, value, error", [
    ("epochs", 2.0, TypeError), ("batch_size", True, TypeError), ("batch_size", 0, ValueError),
    ("lr", "0.1", TypeError), ("lr", 0.0, ValueError), ("free_bits", math.nan, ValueError),
    ("patience", 1.0, TypeError), ("resume", 1, TypeError), ("progress", "no", TypeError),
])
def test_training_counts_and_flags_are_checked(digits, name, value, error):
    X, _ = digits
    kw = {**FIT, name: value}
    with pytest.raises(error, match=name):
        train(_small(), X, validation=X[:20], **kw)


def test_model_methods_check_their_counts():
    model = _small()
    x = torch.zeros(3, 64)
    for call in (lambda k: model.iwae_bound(x, k), lambda k: model.log_likelihood(x, k),
                 lambda k: model.sample(k)):
        with pytest.raises(TypeError, match=r"(num_samples|n) must be an integer"):
            call(2.0)
        with pytest.raises(TypeError):
            call(True)
        with pytest.raises(ValueError, match=r"must be an integer >= 1"):
            call(0)


# -- conditional labels ---------------------------------------------------------------------


def test_conditional_labels_must_be_one_hot():
    model = VAE(64, 2, hidden_dims=(8,), conditional_dim=3)
    x = torch.zeros(2, 64)
    good = torch.tensor([[1.0, 0, 0], [0, 0, 1]])
    assert model.elbo(x, y=good).shape == (2,)
    assert torch.equal(model.elbo(x, y=torch.tensor([0, 2]), generator=torch.Generator()
                                  .manual_seed(0)),
                       model.elbo(x, y=good, generator=torch.Generator().manual_seed(0)))
    for bad, rows in ((torch.tensor([[0.5, 0.5, 0], [0, 0, 1]]), r"\[0\]"),
                      (torch.tensor([[1.0, 1, 0], [0, 0, 1]]), r"\[0\]"),
                      (torch.tensor([[1.0, 0, 0], [0, 0, 0]]), r"\[1\]"),
                      (torch.tensor([[2.0, -1, 0], [0, 0, 1]]), r"\[0\]")):
        with pytest.raises(ValueError, match=rf"y must be one-hot .* rows {rows}"):
            model.elbo(x, y=bad)
    with pytest.raises(TypeError, match="y must hold integer class labels"):
        model.elbo(x, y=torch.tensor([True, False]))
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.2"):
        model.elbo(x, y=torch.tensor([0, 3]))


# -- importance sampling at any k -------------------------------------------------------------


def test_streamed_importance_sampling_equals_the_kept_weights(monkeypatch):
    """Below the threshold all log weights are kept; above it they are streamed. Same draws,
    same estimate (value, standard error and Pareto k-hat) up to float rounding."""
    model, _ = _linear_gaussian_vae(exact_posterior=False)
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(3))
    k = 3000
    monkeypatch.setattr(vae_importance, "_CHUNK_ELEMENTS", 5 * 6 * 70)  # 70 draws per chunk
    with torch.no_grad():
        kept = model.iwae_estimate(x, k, generator=torch.Generator().manual_seed(1))
        monkeypatch.setattr(vae_importance, "_STREAM_ELEMENTS", 100)
        streamed = model.iwae_estimate(x, k, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(streamed.value, kept.value, rtol=0, atol=2e-5)
    torch.testing.assert_close(streamed.stderr, kept.stderr, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(streamed.khat, kept.khat, rtol=0, atol=1e-6)


def test_streamed_log_likelihood_matches_the_exact_evidence(monkeypatch):
    """The streamed estimator against the closed-form log p(x) of a linear-Gaussian VAE."""
    model, marginal = _linear_gaussian_vae(exact_posterior=False)
    x = torch.randn(8, 5, generator=torch.Generator().manual_seed(4))
    monkeypatch.setattr(vae_importance, "_STREAM_ELEMENTS", 1000)
    est = model.log_likelihood_estimate(x, 20000, batch_size=3, generator=torch.Generator().manual_seed(2))
    exact = marginal.log_prob(x.double())
    z = (est.value.double() - exact) / est.stderr.double()
    assert bool((z.abs() < 5).all()), z
    assert bool((est.khat < 0.7).all())


def test_oversized_importance_requests_are_refused_before_allocating(monkeypatch):
    model = _small()
    x = torch.zeros(4, 64)
    # With a gradient every draw's activations are needed at once: refused, named.
    with pytest.raises(ResourceLimitError, match=r"num_samples=1000000000 would need .*TiB"):
        model.iwae_bound(x, 10**9)
    # More draws than one call may evaluate in reasonable time: refused, named.
    with pytest.raises(ResourceLimitError, match=r"num_samples=10000000000 for 4 examples"):
        model.iwae_bound(x, 10**10)
    # Streaming needs only each example's Pareto tail; refuse when even that cannot fit.
    for k in (10**40, 10**400):
        with pytest.raises(ResourceLimitError, match=r"num_samples=1000000000000"):
            model.log_likelihood(x, k)
    monkeypatch.setenv("VITOOLKIT_MAX_MEMORY", "1M")
    with torch.no_grad(), pytest.raises(ResourceLimitError, match="num_samples=1000000000 would"):
        model.iwae_bound(x, 10**9)


# -- constructors, flags, paths: refused by name, nothing allocated -------------------------


@pytest.mark.parametrize("build, name", [
    (lambda: VAE(10**12, 2), "data_dim"), (lambda: VAE(64, 2, (10**12,)), "hidden_dims"),
    (lambda: VAE(64, 2**70), "latent_dim"), (lambda: VAE(64, 2, conditional_dim=10**12),
                                             "conditional_dim"),
])
def test_oversized_networks_are_refused_before_building(build, name):
    with pytest.raises(ResourceLimitError, match=rf"{name}=.* would need .*TiB"):
        build()


def test_flags_and_names_are_checked_not_coerced(tmp_path):
    model = _small()
    x = torch.zeros(3, 64)
    for call, name in ((lambda v: model.sample(2, mean=v), "mean"),
                       (lambda v: model.iwae_bound(x, 2, return_diagnostics=v),
                        "return_diagnostics"),
                       (lambda v: model.log_likelihood(x, 2, return_diagnostics=v),
                        "return_diagnostics")):
        for bad in ("False", 1, None):
            with pytest.raises(TypeError, match=name):
                call(bad)
    with pytest.raises(ResourceLimitError, match="n=1000000000000"):
        model.sample(10**12)
    with pytest.raises(ValueError, match="likelihood name must be one of"):
        VAE(64, 2, likelihood="poisson")
    with pytest.raises(TypeError, match="observation_scale"):
        VAE(64, 2, observation_scale=True)
    with pytest.raises(ValueError, match="image_shape applies to architecture='conv' only"):
        VAE(64, 2, image_shape=(8, 8))
    with pytest.raises(TypeError, match=r"x must hold real numbers"):
        model.elbo(np.array([["a"] * 64]))
    with pytest.raises(ValueError, match=r"beta=1e\+300 makes beta \* KL overflow"):
        model.elbo(torch.full((2, 64), 0.5), beta=1e300)
    for bad in (None, 1.0, True):
        with pytest.raises(TypeError, match="path must be a path"):
            save_model(model, bad)
        with pytest.raises(TypeError, match="path must be a path"):
            load_model(bad)
    with pytest.raises(TypeError, match="model must be one of"):
        save_model(torch.nn.Linear(2, 2), tmp_path / "m.pt")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match="path's parent"):
        save_model(model, tmp_path / "afile" / "m.pt")


# -- issue 24: the newer models refuse what they cannot use ----------------------------------


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _bits(n=8, d=6, seed=0):
    return (torch.rand(n, d, generator=_gen(seed)) < 0.5).float()


def test_vqvae_refuses_a_nan_encoding_instead_of_quantising_it_to_code_0():
    from vitoolkit.vae import VQVAE

    model = VQVAE(6, 4, 2, hidden_dims=(8,), seed=0)
    z_e = torch.zeros(3, 1, 2)
    z_e[1, 0, 0] = math.nan
    with pytest.raises(ValueError, match=r"z_e contains 1 NaN or infinite entries"):
        model.quantize(z_e)
    with pytest.raises(ValueError, match="z_e contains"):
        model.quantize(torch.full((3, 1, 2), math.inf))
    x = _bits()
    before = model.codebook_usage(x)
    with torch.no_grad():
        next(model.encoder.parameters()).view(-1)[0] = math.nan  # weights gone bad (a diverged run)
    for method in (model.loss, model.elbo, model.reconstruct, model.codebook_usage,
                   model.codebook_perplexity, model.dead_codes):
        with pytest.raises(ValueError, match=r"z_e\(x\) contains .* the model's weights hold NaN"):
            method(x)
    assert before.sum() == x.shape[0]  # the finite model quantised every example


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_categorical_constant_baseline_must_be_finite(bad):
    from vitoolkit.vae import CategoricalVAE

    model = CategoricalVAE(6, 2, 3, hidden_dims=(8,), estimator="reinforce", seed=0)
    with pytest.raises(ValueError, match="baseline must be a finite number"):
        model.encoder_gradients(_bits(), 2, baseline=bad, generator=_gen(1))
    with pytest.raises(TypeError, match="baseline"):
        model.encoder_gradients(_bits(), 2, baseline=True, generator=_gen(1))
    grads = model.encoder_gradients(_bits(), 2, baseline=-3.0, generator=_gen(1))
    assert torch.isfinite(grads).all()


def test_categorical_encoder_gradients_refuse_options_their_estimator_ignores():
    from vitoolkit.vae import CategoricalVAE

    model = CategoricalVAE(6, 2, 3, hidden_dims=(8,), seed=0)
    x = _bits()
    with pytest.raises(ValueError, match="temperature applies to estimator='gumbel_softmax' only"):
        model.encoder_gradients(x, 1, estimator="reinforce", temperature=0.5)
    with pytest.raises(ValueError, match="baseline applies to estimator='reinforce' only"):
        model.encoder_gradients(x, 1, estimator="gumbel_softmax", baseline="none")
    with pytest.raises(ValueError, match="baseline applies"):
        model.encoder_gradients(x, 1, estimator="vimco", num_samples=3, baseline=0.0)
    with pytest.raises(ValueError, match="temperature must be a finite number"):
        model.encoder_gradients(x, 1, temperature=math.nan)
    with pytest.raises(ValueError, match="num_samples must be >= 2 for estimator='vimco'"):
        model.encoder_gradients(x, 1, estimator="vimco")
    # Where an option applies it changes the estimate (same noise, another temperature).
    a = model.encoder_gradients(x, 1, temperature=0.3, generator=_gen(2))
    b = model.encoder_gradients(x, 1, temperature=3.0, generator=_gen(2))
    assert not torch.allclose(a, b)


@pytest.mark.parametrize(
    "make, options, match",
    [
        ("sparse", dict(objective="iwae"), r"objective='iwae' would be ignored"),
        ("sparse", dict(beta=2.0), r"beta=2.0 would be ignored"),
        ("sparse", dict(beta=annealing.linear_warmup(10)), r"beta='a schedule' would be ignored"),
        ("sparse", dict(free_bits=0.5), r"free_bits=0.5 would be ignored"),
        ("sparse", dict(num_samples=3), r"num_samples=3 would be ignored"),
        ("autoencoder", dict(objective="iwae", num_samples=2), r"objective='iwae', num_samples=2"),
        ("autoencoder", dict(beta=0.5), r"beta=0.5 would be ignored"),
        ("vqvae", dict(num_samples=4), r"num_samples=4 would be ignored"),
        ("vae", dict(num_samples=5), r"num_samples=5 would be ignored: a VAE's objective='elbo'"),
        ("vae", dict(objective="iwae", num_samples=2, beta=lambda step: 1.0 if step == 0 else 0.5),
         "beta and free_bits apply to objective='elbo' only"),
    ],
)
def test_train_refuses_options_the_model_would_ignore_before_changing_it(make, options, match):
    from vitoolkit.vae import VQVAE, Autoencoder, SparseAutoencoder

    model = {"sparse": lambda: SparseAutoencoder(6, 4, seed=0),
             "autoencoder": lambda: Autoencoder(6, 2, (8,), seed=0),
             "vqvae": lambda: VQVAE(6, 4, 2, hidden_dims=(8,), seed=0),
             "vae": lambda: VAE(6, 2, hidden_dims=(8,), seed=0)}[make]()
    before = _snapshot(model)
    with pytest.raises(ValueError, match=match):
        train(model, _bits(16), epochs=1, batch_size=8, progress=False, **options)
    assert _unchanged(model, before)


def test_train_num_samples_changes_the_vae_where_it_applies():
    x = _bits(16)
    one, five = VAE(6, 2, hidden_dims=(8,), seed=0), VAE(6, 2, hidden_dims=(8,), seed=0)
    train(one, x, epochs=1, batch_size=8, objective="iwae", num_samples=1, progress=False)
    train(five, x, epochs=1, batch_size=8, objective="iwae", num_samples=5, progress=False)
    assert not all(torch.equal(a, b) for a, b in zip(one.parameters(), five.parameters(), strict=True))


def test_categorical_log_likelihood_guard_refuses_the_issue_example_before_allocating(monkeypatch):
    # k = 2**24 draws for one example under a 100 MB limit: the one-shot route keeps the
    # (k, n) log weights twice and decodes chunks of draws; it counts them all and refuses.
    from vitoolkit.vae import CategoricalVAE

    model = CategoricalVAE(6, 2, 3, hidden_dims=(8,), seed=0)
    monkeypatch.setenv("VITOOLKIT_MAX_MEMORY", "100M")
    with pytest.raises(ResourceLimitError, match=r"num_samples=16777216 would need"):
        model.log_likelihood(_bits(1), 2**24)
    # The guard counts a chunk of draws at the model's measured bytes per draw: at least
    # the decoder's outputs and the one-hot codes, and the log weights twice.
    assert model._draw_bytes() >= 4 * (model.latent_dim + 8 + 6)


def test_categorical_log_likelihood_streams_beyond_the_threshold_with_the_same_value(monkeypatch):
    from vitoolkit.divergences import StreamingImportanceEstimate
    from vitoolkit.vae import CategoricalVAE

    model = CategoricalVAE(6, 2, 3, hidden_dims=(8,), seed=0)
    x = _bits(4)
    monkeypatch.setattr(model, "_chunk", lambda n: 700)  # several chunks of draws
    one_shot = model.log_likelihood(x, 3000, generator=_gen(5))
    fed = []
    original = StreamingImportanceEstimate.update

    def counting(self, lw):
        fed.append(lw.shape[0])
        return original(self, lw)

    monkeypatch.setattr(vae_importance, "_STREAM_ELEMENTS", 2000)
    monkeypatch.setattr(StreamingImportanceEstimate, "update", counting)
    streamed = model.log_likelihood(x, 3000, generator=_gen(5))
    assert len(fed) == 5 and max(fed) <= 700 and sum(fed) == 3000  # chunks of draws
    # Same draws (same generator, same chunks), another summation: equal to float rounding,
    # and both estimate the exact log p(x) (enumeration over the 9 states).
    torch.testing.assert_close(streamed, one_shot, rtol=0, atol=1e-5)
    torch.testing.assert_close(streamed, model.exact_log_likelihood(x), rtol=0, atol=0.05)


@pytest.mark.slow
def test_categorical_log_likelihood_guard_is_an_upper_bound_of_resident_growth():
    # Runs benchmarks/measure_categorical_memory.py's first configuration (k = 2**22) in a
    # fresh process: the figure the guard counts must be at least the resident growth.
    import pathlib
    import subprocess
    import sys

    script = pathlib.Path(__file__).parent.parent / "benchmarks" / "measure_categorical_memory.py"
    out = subprocess.run([sys.executable, str(script), "--one", "0"], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(script.parent.parent)}).stdout
    ratio = float(out.split("ratio ")[1].split()[0])
    assert ratio >= 1.0, out


def test_categorical_iwae_bound_streams_under_no_grad_like_the_gaussian_vae(monkeypatch):
    from vitoolkit.divergences import StreamingImportanceEstimate
    from vitoolkit.vae import CategoricalVAE

    model = CategoricalVAE(6, 2, 3, hidden_dims=(8,), seed=0)
    x = _bits(3)
    monkeypatch.setattr(model, "_chunk", lambda n: 500)
    with_grad = model.iwae_bound(x, 2000, generator=_gen(6))  # every draw kept (a gradient)
    assert with_grad.requires_grad
    fed = []
    original = StreamingImportanceEstimate.update
    monkeypatch.setattr(StreamingImportanceEstimate, "update",
                        lambda self, lw: (fed.append(lw.shape), original(self, lw))[1])
    monkeypatch.setattr(vae_importance, "_STREAM_ELEMENTS", 1000)
    with torch.no_grad():
        streamed = model.iwae_bound(x, 2000, generator=_gen(6))
    assert fed == [(500, 3)] * 4  # streamed in chunks, the three examples in one pass
    torch.testing.assert_close(streamed, with_grad.detach(), rtol=0, atol=1e-5)
