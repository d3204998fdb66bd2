"""Every model class of vitoolkit.vae is an ``nn.Module`` called on a batch: ``model(x)``
returns what its ``forward`` docstring states (the per-example ELBO of the probabilistic
models, the reconstruction of the autoencoders), equal to the named method and differentiable.
"""

from __future__ import annotations

import pytest
import torch

from vitoolkit.vae import VAE, VQVAE, Autoencoder, CategoricalVAE, SparseAutoencoder
from vitoolkit.vae.flow_posterior import PlanarFlowPosterior

D = 12


def _x(n: int = 5) -> torch.Tensor:
    return (torch.rand((n, D), generator=torch.Generator().manual_seed(0)) > 0.5).float()


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(3)


CASES = [
    ("VAE", lambda: VAE(D, 2, hidden_dims=(8,)),
     lambda m, x: m(x, generator=_gen()), lambda m, x: m.elbo(x, generator=_gen()), (5,)),
    ("VAE beta", lambda: VAE(D, 2, hidden_dims=(8,)),
     lambda m, x: m(x, 2.0, generator=_gen()), lambda m, x: m.elbo(x, 2.0, generator=_gen()), (5,)),
    ("CategoricalVAE", lambda: CategoricalVAE(D, 2, 3, hidden_dims=(8,)),
     lambda m, x: m(x, generator=_gen()), lambda m, x: m.elbo(x, generator=_gen()), (5,)),
    ("VQVAE", lambda: VQVAE(D, 4, 2, hidden_dims=(8,)),
     lambda m, x: m(x), lambda m, x: m.elbo(x), (5,)),
    ("Autoencoder", lambda: Autoencoder(D, 2, hidden_dims=(8,)),
     lambda m, x: m(x), lambda m, x: m.reconstruct(x), (5, D)),
    ("SparseAutoencoder", lambda: SparseAutoencoder(D, 6),
     lambda m, x: m(x), lambda m, x: m.reconstruct(x), (5, D)),
]


@pytest.mark.parametrize("name,build,call,named,shape", CASES, ids=[c[0] for c in CASES])
def test_calling_the_model_returns_its_documented_output(name, build, call, named, shape):
    model, x = build(), _x()
    out = call(model, x)
    assert isinstance(out, torch.Tensor) and out.shape == shape
    torch.testing.assert_close(out, named(model, x), rtol=1e-6, atol=1e-6)
    assert bool(torch.isfinite(out).all())
    out.sum().backward()  # differentiable: every model is trained through its call
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(bool(g.abs().sum() > 0) for g in grads)


def test_the_vae_call_is_the_elbo_which_bounds_the_likelihood():
    """An independent route: the ELBO from model(x), averaged over draws, stays below log p(x)."""
    model, x = VAE(D, 2, hidden_dims=(8,)), _x(4)
    with torch.no_grad():
        elbo = torch.stack([model(x, generator=torch.Generator().manual_seed(s)) for s in range(200)])
        log_px = model.log_likelihood(x, 2000, generator=torch.Generator().manual_seed(1))
    assert bool((elbo.mean(0) < log_px).all())


def test_the_flow_posterior_call_gives_its_layer_parameters():
    vae = VAE(D, 2, hidden_dims=(8,))
    flow = PlanarFlowPosterior(vae, num_layers=2, hidden=4)
    x = _x()
    layers = flow(x)
    assert len(layers) == 2
    for got, want in zip(layers, flow.layer_params(x), strict=True):
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b)
