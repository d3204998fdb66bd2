"""Tests of vitoolkit.vae's training loop, schedules and checkpoints (tutorial 05: test_tutorial_05.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from vitoolkit.datasets import load_digits
from vitoolkit.vae import (
    VAE,
    VQVAE,
    Autoencoder,
    CategoricalVAE,
    SparseAutoencoder,
    annealing,
    load_model,
    save_model,
    train,
)
from vitoolkit.vae.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(binarize=True, split="train")
    Xv, yv = load_digits(binarize=True, split="val")
    return X[:300], y[:300], Xv[:100], yv[:100]


def _small(seed=0, **kw):
    return VAE(64, 3, hidden_dims=(16,), seed=seed, **kw)


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_training_is_seeded_and_leaves_global_rng_alone(digits):
    X, *_ = digits
    state = torch.get_rng_state()
    m1, m2, m3 = _small(), _small(), _small()
    h1 = train(m1, X, epochs=2, batch_size=50, seed=5, progress=False)
    train(m2, X, epochs=2, batch_size=50, seed=5, progress=False)
    train(m3, X, epochs=2, batch_size=50, seed=6, progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    assert _same(_params(m1), _params(m2))
    assert not _same(_params(m1), _params(m3))
    assert len(h1) == 2 and h1.epoch == [1, 2]
    # The ELBO splits into its two terms, and the per-dimension KLs sum to the KL.
    for e in range(2):
        assert math.isclose(h1.train_elbo[e], h1.train_recon[e] - h1.train_kl[e], rel_tol=1e-5)
        assert math.isclose(sum(h1.train_kl_per_dim[e]), h1.train_kl[e], rel_tol=1e-4)
        assert 0 <= h1.train_active_units[e] <= 3


def test_training_improves_the_validation_elbo(digits):
    X, _, Xv, _ = digits
    model = _small()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        before = torch.stack([model.elbo(Xv, generator=gen).mean() for _ in range(20)])
    hist = train(model, X, epochs=8, batch_size=32, lr=3e-3, validation=Xv, progress=False)
    with torch.no_grad():
        after = torch.stack([model.elbo(Xv, generator=gen).mean() for _ in range(20)])
    assert float(after.mean() - before.mean()) > 4.5 * float(
        math.hypot(before.std() / math.sqrt(20), after.std() / math.sqrt(20)))
    assert len(hist.val_elbo) == 8 and hist.best_epoch is not None


def test_resume_reproduces_the_uninterrupted_run(digits, tmp_path):
    X, _, Xv, _ = digits
    kw = dict(batch_size=40, lr=2e-3, validation=Xv, seed=3, progress=False,
              beta=annealing.linear_warmup(15), free_bits=0.05, restore_best=False)
    full = _small()
    h_full = train(full, X, epochs=4, **kw)
    ckpt = tmp_path / "run.pt"
    part = _small()
    train(part, X, epochs=2, checkpoint=ckpt, **kw)
    resumed = _small(seed=99)  # fresh weights: everything must come from the checkpoint
    h_res = train(resumed, X, epochs=4, checkpoint=ckpt, resume=True, **kw)
    assert _same(_params(full), _params(resumed))
    assert h_res.train_elbo == h_full.train_elbo and h_res.val_elbo == h_full.val_elbo
    assert h_res.epoch == [1, 2, 3, 4]
    # The checkpoint after the last epoch loads as a model with the same weights.
    assert _same(_params(load_model(ckpt)), _params(full))


def test_early_stopping_restores_the_best_epoch(digits, tmp_path):
    X, _, Xv, _ = digits
    model = _small()
    # A very high learning rate makes the validation ELBO stall quickly.
    hist = train(model, X[:100], epochs=60, batch_size=100, lr=3e-2, validation=Xv,
                 patience=2, progress=False)
    assert hist.stopped_early
    assert len(hist) == hist.best_epoch + 2
    assert hist.val_elbo[hist.best_epoch - 1] == max(hist.val_elbo)
    # Restored: re-evaluating with the validation noise gives the best epoch's value.
    from vitoolkit.vae.training import _evaluate

    again = _evaluate(model, Xv, None, 100, "elbo", 1, 0 + 2, True)
    assert math.isclose(again["elbo"], hist.val_elbo[hist.best_epoch - 1], rel_tol=1e-6)


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    model = _small()
    save_model(model, path)
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_model(_small(seed=1), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]
    assert _same(_params(load_model(path)), _params(model))


def test_corrupt_and_foreign_checkpoints_raise(tmp_path):
    path = tmp_path / "m.pt"
    save_model(_small(), path)
    data = path.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt"):
        load_model(tmp_path / "truncated.pt")
    (tmp_path / "noise.pt").write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(tmp_path / "noise.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="not written by vitoolkit"):
        load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match=r"different architecture: hidden_dims"):
        load_model(path, VAE(64, 3, hidden_dims=(32,)))
    with pytest.raises(ValueError, match="'VAE' model, not a 'Autoencoder'"):
        load_model(path, Autoencoder(64, 3, hidden_dims=(16,)))
    # weights_only=True: a pickle that would run code is refused, not executed.
    save_checkpoint(tmp_path / "ok.pt", {"x": 1})
    torch.save({"format": "vitoolkit.vae.checkpoint/1", "evil": Path("/")}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(tmp_path / "evil.pt")


def test_resume_refuses_other_architecture_or_settings(digits, tmp_path):
    X, *_ = digits
    ckpt = tmp_path / "c.pt"
    train(_small(), X, epochs=1, batch_size=50, checkpoint=ckpt, progress=False)
    with pytest.raises(ValueError, match="different architecture"):
        train(VAE(64, 4, hidden_dims=(16,)), X, epochs=2, batch_size=50, checkpoint=ckpt,
              resume=True, progress=False)
    with pytest.raises(ValueError, match="settings differ.*batch_size"):
        train(_small(), X, epochs=2, batch_size=60, checkpoint=ckpt, resume=True,
              progress=False)


def test_bad_training_input(digits):
    X, y, *_ = digits
    model = _small()
    bad = X.clone()
    bad[7, 3] = float("nan")
    with pytest.raises(ValueError, match=r"data contains NaN.*rows \[7\]"):
        train(model, bad, epochs=1, batch_size=10, progress=False)
    with pytest.raises(ValueError, match=r"data has values in .* outside \[0, 1\]"):
        train(model, X * 2, epochs=1, batch_size=10, progress=False)
    with pytest.raises(ValueError, match=r"data must have shape \(n, 64\)"):
        train(model, X[:, :10], epochs=1, batch_size=10, progress=False)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        train(model, X, epochs=0, batch_size=10, progress=False)
    with pytest.raises(ValueError, match="patience .* needs validation"):
        train(model, X, epochs=1, batch_size=10, patience=2, progress=False)
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1"):
        train(model, X, epochs=1, batch_size=10, objective="iwae", num_samples=0,
              progress=False)
    with pytest.raises(ValueError, match="labels is required"):
        train(VAE(64, 2, conditional_dim=10), X, epochs=1, batch_size=10, progress=False)


def test_iwae_conditional_and_autoencoder_training(digits):
    X, y, Xv, yv = digits
    h = train(_small(), X, epochs=2, batch_size=50, objective="iwae", num_samples=4,
              progress=False)
    assert len(h.train_elbo) == 2 and all(math.isfinite(v) for v in h.train_elbo)
    cvae = VAE(64, 2, hidden_dims=(16,), conditional_dim=10)
    h = train(cvae, X, labels=y, validation=(Xv, yv), epochs=2, batch_size=50, progress=False)
    assert len(h.val_elbo) == 2
    ae = Autoencoder(64, 2, hidden_dims=(16,))
    h = train(ae, X, validation=Xv, epochs=3, batch_size=50, progress=False)
    assert h.train_elbo == [] and len(h.train_loss) == 3 and h.train_loss[-1] < h.train_loss[0]


def test_free_bits_objective():
    x, _ = load_digits(binarize=True, split="val")
    model = _small()
    lam = 50.0  # above every per-dimension KL: the penalty is the constant L * lam
    loss, _ = model._loss(x, None, beta=1.0, free_bits=lam, objective="elbo", num_samples=1,
                          generator=torch.Generator().manual_seed(0))
    recon, kl_dims, _ = model._terms(x, None, torch.Generator().manual_seed(0))
    assert bool((kl_dims.mean(0) < lam).all())
    torch.testing.assert_close(loss, -recon.mean() + 3 * lam)


def test_schedules():
    lin = annealing.linear_warmup(10, start=0.1, end=1.0)
    values = [lin(t) for t in range(15)]
    assert values[0] == pytest.approx(0.1) and values[10:] == [1.0] * 5
    assert all(a < b for a, b in zip(values[:10], values[1:11], strict=True))
    cyc = annealing.cyclical(8, ratio=0.5)
    cycle = [cyc(t) for t in range(8)]
    assert [cyc(t) for t in range(8, 16)] == cycle
    assert cycle[0] == 0.0 and cycle[4:] == [1.0] * 4
    assert annealing.constant(4.0)(123) == 4.0
    with pytest.raises(ValueError, match="ratio must be > 0"):
        annealing.cyclical(8, ratio=0)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        annealing.linear_warmup(0)



@pytest.mark.parametrize("build", [
    lambda: CategoricalVAE(16, num_latents=2, num_categories=3, hidden_dims=(8,)),
    lambda: VQVAE(16, num_embeddings=4, embedding_dim=2, hidden_dims=(8,)),
    lambda: SparseAutoencoder(16, 4),
], ids=["CategoricalVAE", "VQVAE", "SparseAutoencoder"])
def test_every_model_class_round_trips_through_load_model(tmp_path, build):
    model = build()
    path = save_model(model, tmp_path / "m.pt")
    loaded = load_model(path)
    assert type(loaded) is type(model)
    assert _same(_params(loaded), _params(model))
