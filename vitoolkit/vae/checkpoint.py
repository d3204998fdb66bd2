"""Saving and loading models and training runs, safely.

- Writes are atomic (:func:`vitoolkit.fileio.atomic_write`): the payload goes to
  a temporary file in the same folder, is flushed to disk, and only then
  ``os.replace``-d over the target, so a crash, an error or a ``kill -9`` during
  a save leaves the previous checkpoint intact; the temporary file a killed
  writer leaves behind is removed by the next save to the same path.
- Reads use ``torch.load(..., weights_only=True)``: no arbitrary code runs when
  a file is loaded. Payloads hold only tensors, numbers, strings, lists and dicts.
- A truncated or foreign file, a checkpoint of a different architecture, or one
  with the right format marker but missing keys or values of the wrong type,
  raises a ``ValueError`` that names the file (and the key).
- Files are untrusted: before ``torch.load`` inflates anything, the zip archive's
  central directory is read and the members' declared sizes are capped by the memory
  limit (:func:`vitoolkit.fileio.check_zip_members`, as the IDX and ``.npz`` readers do),
  so a small file that would inflate to gigabytes is refused without inflating it
  (:class:`~vitoolkit.exceptions.ResourceLimitError` naming the file).
- Weights are checked: a saved model or training state whose parameters, buffers,
  best-epoch weights or optimiser state hold NaN or inf is refused on load, naming the
  file and the tensor (training that diverged must not come back as a model).
"""

from __future__ import annotations

import math
import numbers
import os
import pickle
import zipfile
from pathlib import Path

import torch

from ..exceptions import FileFormatError, ResourceLimitError
from ..fileio import atomic_write, check_output_file, check_zip_members

__all__ = ["FORMAT", "save_checkpoint", "load_checkpoint", "save_model", "load_model",
           "check_compatible", "check_model_payload", "check_training_state"]

#: Marker stored in every file this module writes.
FORMAT = "vitoolkit.vae.checkpoint/1"


def save_checkpoint(path, payload: dict) -> Path:
    """Atomically write ``payload`` (a dict) to ``path`` with ``torch.save``.

    A failed save raises and removes its temporary file; ``path`` keeps its
    previous content.
    """
    if not isinstance(payload, dict):
        raise TypeError(f"payload must be a dict, got {type(payload).__name__}")
    path = check_output_file(path, "path")
    payload = {**payload, "format": FORMAT}
    with atomic_write(path, "wb") as f:
        torch.save(payload, f)
    return path


def load_checkpoint(path) -> dict:
    """Load a payload written by :func:`save_checkpoint` (``weights_only=True``, on CPU).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is corrupt or truncated, or was not written by this module.
    ResourceLimitError
        The archive's members would inflate beyond the memory limit (checked before
        anything is inflated).
    """
    path = Path(_check_path(path))
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {str(path)!r}")
    _check_archive(path)
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


def _check_archive(path: Path) -> None:
    """Refuse, before ``torch.load`` inflates it, a file that is not a zip archive (what
    ``torch.save`` writes) or whose members declare more data than memory allows."""
    try:
        with zipfile.ZipFile(path) as archive:
            check_zip_members(archive, repr(str(path)))
    except ResourceLimitError:
        raise
    except FileFormatError as err:
        raise ValueError(f"{str(path)!r} is not a readable checkpoint: {err}") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise ValueError(f"{str(path)!r} is not a readable checkpoint (corrupt, truncated or "
                         f"not saved by torch.save): {type(err).__name__}: {err}") from None


def _check_path(path, name: str = "path"):
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(path).__name__}")
    return path


def _model_classes():
    from .autoencoder import Autoencoder
    from .categorical import CategoricalVAE
    from .model import VAE
    from .sparse import SparseAutoencoder
    from .vqvae import VQVAE

    return {cls.__name__: cls for cls in (VAE, Autoencoder, CategoricalVAE, VQVAE, SparseAutoencoder)}


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _is_state_dict(v) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(t, torch.Tensor)
                                       for k, t in v.items())


def _is_generator_state(v) -> bool:
    return isinstance(v, torch.Tensor) and v.dtype == torch.uint8 and v.ndim == 1


#: key -> (test, what it must be) for the entries a saved model must hold.
_MODEL_KEYS = {
    "model_class": (lambda v: isinstance(v, str), "a str"),
    "model_config": (lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v),
                     "a dict of constructor arguments"),
    "model_state": (_is_state_dict, "a dict of tensors"),
}
#: ... and the further entries of a training checkpoint.
_TRAINING_KEYS = {
    **_MODEL_KEYS,
    "optimizer_state": (lambda v: isinstance(v, dict) and "state" in v and "param_groups" in v,
                        "an optimizer state dict"),
    "shuffle_state": (_is_generator_state, "a uint8 generator-state tensor"),
    "noise_state": (_is_generator_state, "a uint8 generator-state tensor"),
    "epoch": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "step": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "history": (lambda v: isinstance(v, dict), "a dict"),
    # -inf before the first validation epoch; NaN or +inf would stop every later epoch from
    # counting as better (early stopping and restore_best would act on garbage)
    "best_value": (lambda v: _is_real(v) and not math.isnan(v) and v != math.inf,
                   "a real number or -inf"),
    "best_state": (lambda v: v is None or _is_state_dict(v), "None or a dict of tensors"),
    "bad_epochs": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "settings": (lambda v: isinstance(v, dict), "a dict"),
}


def _check_keys(payload: dict, schema: dict, path) -> None:
    for key, (test, what) in schema.items():
        if key not in payload:
            raise ValueError(f"{path} is damaged: key {key!r} is missing")
        if not test(payload[key]):
            raise ValueError(f"{path} is damaged: key {key!r} must be {what}, got "
                             f"{type(payload[key]).__name__}")
    for key in _WEIGHT_KEYS:
        if key in schema and payload[key] is not None:
            _check_finite_tensors(payload[key], path, key)


#: Entries holding weights (or optimiser moments) that must be finite.
_WEIGHT_KEYS = ("model_state", "best_state", "optimizer_state")


def _check_finite_tensors(value, path, where: str) -> None:
    """``ValueError`` naming ``path`` and the tensor if a floating tensor inside ``value``
    (nested dicts and lists) holds NaN or inf."""
    if isinstance(value, torch.Tensor):
        if (value.is_floating_point() or value.is_complex()) and value.numel() \
                and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise ValueError(f"{path}: tensor {where} holds {bad} NaN or infinite values (of "
                             f"{value.numel()}); the weights are unusable (did the training "
                             "that saved them diverge?)")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_finite_tensors(v, path, f"{where}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_finite_tensors(v, path, f"{where}[{i}]")


def check_model_payload(payload: dict, path="checkpoint") -> None:
    """``ValueError`` naming ``path`` and the key unless ``payload`` holds a complete saved model."""
    _check_keys(payload, _MODEL_KEYS, path)


def check_training_state(payload: dict, path="checkpoint") -> None:
    """``ValueError`` naming ``path`` and the key unless ``payload`` is a complete training state."""
    _check_keys(payload, _TRAINING_KEYS, path)


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
    classes = tuple(_model_classes().values())
    if not isinstance(model, classes):
        names = ", ".join(c.__name__ for c in classes)
        raise TypeError(f"model must be one of vitoolkit.vae's {names}, got "
                        f"{type(model).__name__}")
    _check_path(path)
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
    if model is not None and not isinstance(model, tuple(_model_classes().values())):
        raise TypeError(f"model must be None or a model of vitoolkit.vae, got "
                        f"{type(model).__name__}")
    payload = load_checkpoint(path)
    where = repr(str(path))
    check_model_payload(payload, where)
    if model is None:
        classes = _model_classes()
        cls = classes.get(payload["model_class"])
        if cls is None:
            raise ValueError(f"{where} holds an unknown model class "
                             f"{payload['model_class']!r}")
        try:
            model = cls(**payload["model_config"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where} is damaged: key 'model_config' does not build a "
                             f"{cls.__name__}: {err}") from None
    check_compatible(model, payload, where)
    try:
        model.load_state_dict(payload["model_state"])
    except RuntimeError as err:
        raise ValueError(f"{where}: key 'model_state' does not load: {err}") from None
    return model
