"""Saving and loading models and training runs, safely.

- Writes are atomic: the payload goes to a temporary file in the same folder,
  is flushed to disk, and only then ``os.replace``-d over the target, so a
  crash or an error during a save leaves the previous checkpoint intact.
- Reads use ``torch.load(..., weights_only=True)``: no arbitrary code runs when
  a file is loaded. Payloads hold only tensors, numbers, strings, lists and dicts.
- A truncated or foreign file, or a checkpoint of a different architecture,
  raises a ``ValueError`` that says which.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch

__all__ = ["FORMAT", "save_checkpoint", "load_checkpoint", "save_model", "load_model",
           "check_compatible"]

#: Marker stored in every file this module writes.
FORMAT = "vitoolkit.vae.checkpoint/1"


def save_checkpoint(path, payload: dict) -> Path:
    """Atomically write ``payload`` (a dict) to ``path`` with ``torch.save``.

    A failed save raises and removes its temporary file; ``path`` keeps its
    previous content.
    """
    if not isinstance(payload, dict):
        raise TypeError(f"payload must be a dict, got {type(payload).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**payload, "format": FORMAT}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def load_checkpoint(path) -> dict:
    """Load a payload written by :func:`save_checkpoint` (``weights_only=True``, on CPU).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is corrupt or truncated, or was not written by this module.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {str(path)!r}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError,
            ValueError, KeyError, AttributeError) as err:
        raise ValueError(f"{str(path)!r} is not a readable checkpoint (corrupt, truncated or "
                         f"not saved by torch.save): {type(err).__name__}: {err}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} was not written by vitoolkit.vae.checkpoint "
                         f"(expected format {FORMAT!r})")
    return payload


def _model_classes():
    from .autoencoder import Autoencoder
    from .categorical import CategoricalVAE
    from .model import VAE
    from .sparse import SparseAutoencoder
    from .vqvae import VQVAE

    return {cls.__name__: cls for cls in (VAE, Autoencoder, CategoricalVAE, VQVAE, SparseAutoencoder)}


def check_compatible(model, payload: dict, path="checkpoint") -> None:
    """Raise ``ValueError`` unless ``payload`` holds weights for ``model``'s architecture."""
    name = type(model).__name__
    if payload.get("model_class") != name:
        raise ValueError(f"{path} holds a {payload.get('model_class')!r} model, not a {name!r}")
    saved = payload.get("model_config", {})
    config = getattr(model, "config", {})
    # The seed only sets the initial weights; every other entry fixes the architecture.
    diffs = [f"{k}: checkpoint {saved.get(k)!r} vs model {config.get(k)!r}"
             for k in sorted(set(saved) | set(config))
             if k != "seed" and saved.get(k) != config.get(k)]
    if diffs:
        raise ValueError(f"{path} was saved from a different architecture: " + "; ".join(diffs))
    state = payload.get("model_state", {})
    own = model.state_dict()
    if set(state) != set(own) or any(tuple(state[k].shape) != tuple(own[k].shape)
                                     for k in own):
        raise ValueError(f"{path}: parameter names or shapes do not match the model")


def save_model(model, path) -> Path:
    """Save any of the package's models (VAE, Autoencoder, CategoricalVAE, VQVAE, ...) atomically."""
    return save_checkpoint(path, {
        "kind": "model", "model_class": type(model).__name__,
        "model_config": dict(model.config),
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    })


def load_model(path, model=None):
    """Load a saved model: into ``model`` (after an architecture check) or a new one.

    Parameters
    ----------
    path : str or Path
        A file written by :func:`save_model` or by ``train(..., checkpoint=path)``.
    model : VAE or Autoencoder, optional
        When given, its weights are replaced; otherwise a model is rebuilt from
        the stored constructor arguments.
    """
    payload = load_checkpoint(path)
    if model is None:
        classes = _model_classes()
        cls = classes.get(payload.get("model_class"))
        if cls is None:
            raise ValueError(f"{str(path)!r} holds an unknown model class "
                             f"{payload.get('model_class')!r}")
        model = cls(**payload["model_config"])
    check_compatible(model, payload, repr(str(path)))
    model.load_state_dict(payload["model_state"])
    return model
