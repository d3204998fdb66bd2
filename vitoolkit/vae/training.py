r"""Mini-batch training of every model in :mod:`vitoolkit.vae`.

The models: :class:`~vitoolkit.vae.VAE` (objectives ``"elbo"``, ``"iwae"``,
``"wake_sleep"``, ``"rws"``), :class:`~vitoolkit.vae.Autoencoder`,
:class:`~vitoolkit.vae.CategoricalVAE` (its ``estimator`` chooses the encoder
gradient; ``"vimco"`` trains ``objective="iwae"``), :class:`~vitoolkit.vae.VQVAE`
and :class:`~vitoolkit.vae.SparseAutoencoder` (their own losses).

One loop, seeded end to end: a local ``torch.Generator`` shuffles the data and
another draws the reparameterisation noise, so a run is a deterministic function
of ``seed`` and a checkpointed run resumes exactly where it stopped (model,
optimiser and both generator states, epoch, step, history and the early-stopping
state are saved after every epoch, atomically).

Per epoch the :class:`History` records the training averages of the ELBO, its
reconstruction and KL terms, the KL of each latent dimension, and the number of
active units (Burda et al. 2015, section 5.2: unit u is active when
Cov_x(E_q(u|x)[u]) > 0.01), plus the same on the validation data when given.
The training-set figures are averaged over the epoch's mini-batches as the
parameters move (the usual running average); the validation figures are exact
at the end of the epoch and use the same noise every epoch, so epochs compare
fairly for early stopping.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from ..exceptions import DivergedError
from ..fileio import check_output_file
from ..progress import progress_bar
from ..validation import check_bool, check_int, check_memory, check_real, check_seed
from .annealing import Schedule, as_schedule
from .autoencoder import Autoencoder
from .categorical import CategoricalVAE
from .checkpoint import check_compatible, check_training_state, load_checkpoint, save_checkpoint
from .importance import check_draws, check_num_samples
from .model import OBJECTIVES, VAE
from .sparse import SparseAutoencoder
from .vqvae import VQVAE
from .wake_sleep import WAKE_SLEEP_OBJECTIVES, rws_loss, wake_sleep_loss

__all__ = ["History", "TrainingDivergedError", "train", "ACTIVE_UNIT_THRESHOLD", "TRAIN_OBJECTIVES",
           "TRAINABLE_MODELS"]

#: The objectives :func:`train` accepts (``"wake_sleep"`` and ``"rws"`` for a VAE only).
TRAIN_OBJECTIVES = (*OBJECTIVES, *WAKE_SLEEP_OBJECTIVES)
#: The model classes :func:`train` fits.
TRAINABLE_MODELS = (VAE, Autoencoder, CategoricalVAE, VQVAE, SparseAutoencoder)

#: Burda et al. (2015), section 5.2.
ACTIVE_UNIT_THRESHOLD = 0.01

_FLOAT32_MAX = float(torch.finfo(torch.float32).max)


#: The training loss became NaN or inf: :class:`vitoolkit.exceptions.DivergedError`
#: (a ``ValueError``: the fix is another lr or scale; and a ``FloatingPointError``).
TrainingDivergedError = DivergedError


@dataclass
class History:
    """Per-epoch record of a training run (lists indexed by epoch).

    ELBO, reconstruction (E_q log p(x|z)) and KL are nats per example;
    ``*_kl_per_dim`` holds one list of ``latent_dim`` values per epoch;
    ``*_active_units`` counts units with Cov_x(E_q[u]) > 0.01; ``time`` is the
    cumulative training time in seconds. An :class:`Autoencoder` fills only
    ``train_loss`` / ``val_loss`` and the active-unit counts of its codes.
    """

    epoch: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    train_elbo: list = field(default_factory=list)
    train_recon: list = field(default_factory=list)
    train_kl: list = field(default_factory=list)
    train_kl_per_dim: list = field(default_factory=list)
    train_active_units: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_elbo: list = field(default_factory=list)
    val_recon: list = field(default_factory=list)
    val_kl: list = field(default_factory=list)
    val_kl_per_dim: list = field(default_factory=list)
    val_active_units: list = field(default_factory=list)
    beta: list = field(default_factory=list)
    time: list = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False

    def __len__(self) -> int:
        return len(self.epoch)

    def as_dict(self) -> dict:
        """Plain Python lists and numbers (JSON- and checkpoint-safe)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> History:
        names = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or set(data) - names:
            unknown = sorted(set(data) - names) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"not a training history: unexpected {unknown}")
        for key, value in data.items():
            if key == "best_epoch":
                ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
            elif key == "stopped_early":
                ok = isinstance(value, bool)
            else:
                ok = isinstance(value, list)
            if not ok:
                raise ValueError(f"not a training history: {key!r} is a {type(value).__name__}")
        return cls(**data)


def _describe(schedule) -> str:
    # A stable description (a lambda's repr holds its address, which changes per process).
    if isinstance(schedule, Schedule):
        return repr(schedule)
    return getattr(schedule, "__qualname__", type(schedule).__name__)


def resolve_device(device) -> torch.device:
    """The torch device to train on; ``ValueError`` naming ``device`` if it cannot work here.

    ``None`` picks CUDA when available, else the CPU. Strings such as ``"cuda"``
    without a CUDA build or GPU, ``"mps"`` off Apple silicon, or ``"foo"`` are
    refused before anything runs (instead of failing deep inside torch).
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, (str, torch.device)) or isinstance(device, bool):
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"device={device!r} is not a device torch knows ({err})") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device={device!r}: CUDA is not available on this machine "
                             "(torch has no CUDA build or sees no GPU); use device='cpu'")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device={device!r}: only {count} CUDA device(s) here")
        return dev
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device={device!r}: Apple's MPS backend is not available on this "
                             "machine; use device='cpu'")
        return dev
    raise ValueError(f"device={device!r} is not supported for training; use 'cpu', 'cuda' "
                     "or 'mps'")


@contextlib.contextmanager
def intra_op_threads(num_threads: int | None):
    """Run the block with ``torch.set_num_threads(num_threads)``; restore the setting after.

    ``None`` leaves torch's current setting alone.
    """
    if num_threads is None:
        yield
        return
    before = torch.get_num_threads()
    if before != num_threads:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _check_beta_value(value, schedule, epoch: int, step: int) -> float:
    """A schedule's beta at ``step``: a finite real number >= 0, else a ValueError saying where."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = math.isfinite(value) and value >= 0
    if not ok:
        raise ValueError(f"beta schedule {_describe(schedule)} returned {value!r} at epoch "
                         f"{epoch + 1}, step {step}; beta must be a finite real number >= 0")
    return value


def _summarise(batches: list, is_vae: bool) -> dict:
    """Epoch averages from the per-batch statistics of ``model._loss`` (collected, not
    summed, during the epoch so that the training step itself does no extra work)."""
    sizes = torch.tensor([b["loc"].shape[0] for b in batches], dtype=torch.float64)
    n = float(sizes.sum())
    losses = torch.stack([b["loss"] for b in batches]).double().cpu()
    loc = torch.cat([b["loc"] for b in batches]).double()
    out = {"loss": float((losses * sizes).sum()) / n,
           # Burda et al. (2015), section 5.2: Cov_x(E_q[u]) > 0.01.
           "active_units": int((loc.var(0) > ACTIVE_UNIT_THRESHOLD).sum())
           if loc.shape[0] > 1 else 0}
    if is_vae:
        kl_per_dim = torch.cat([b["kl_dims"] for b in batches]).double().mean(0)
        recon = float(torch.stack([b["recon"] for b in batches]).double().sum()) / n
        kl = float(kl_per_dim.sum())
        out.update(elbo=recon - kl, recon=recon, kl=kl, kl_per_dim=kl_per_dim.tolist())
    return out


def _split_validation(validation):
    if validation is None:
        return None, None
    if isinstance(validation, (tuple, list)):
        if len(validation) != 2:
            raise ValueError("validation must be X or a pair (X, labels)")
        return validation[0], validation[1]
    return validation, None


def _step_loss(model, objective):
    """The function (x, y, beta, free_bits, num_samples, generator) -> (loss, stats) of a step."""
    if objective == "wake_sleep":
        return lambda x, y, b, fb, k, g: wake_sleep_loss(model, x, y, num_samples=k, generator=g)
    if objective == "rws":
        return lambda x, y, b, fb, k, g: rws_loss(model, x, y, num_samples=k, generator=g)
    return lambda x, y, b, fb, k, g: model._loss(x, y, beta=b, free_bits=fb, objective=objective,
                                                 num_samples=k, generator=g)


def _evaluate(model, X, Y, batch_size, objective, num_samples, seed, is_vae):
    """Exact end-of-epoch statistics on held-out data, with fixed noise (seed).

    Wake-sleep and RWS have no bound of their own: they are evaluated by the ELBO.
    """
    if objective in WAKE_SLEEP_OBJECTIVES:
        objective, num_samples = "elbo", 1
    gen = torch.Generator(device=X.device).manual_seed(seed)
    batches = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for s in range(0, X.shape[0], batch_size):
            yb = None if Y is None else Y[s:s + batch_size]
            _, stats = model._loss(X[s:s + batch_size], yb, beta=1.0, free_bits=0.0,
                                   objective=objective, num_samples=num_samples,
                                   generator=gen)
            batches.append(stats)
    model.train(was_training)
    return _summarise(batches, is_vae)


def train(model, data, *, epochs: int, batch_size: int, lr: float = 1e-3, beta=1.0,
          free_bits: float = 0.0, objective: str = "elbo", num_samples: int = 1, labels=None,
          validation=None, patience: int | None = None, seed: int = 0, checkpoint=None,
          resume: bool = False, progress: bool = True, device=None,
          restore_best: bool = True, num_threads: int | None = 1) -> History:
    r"""Fit a model of :mod:`vitoolkit.vae` by mini-batch Adam.

    For a :class:`VAE`, each step minimises the batch mean of

    .. math::

        -\Big[E_{q(z \mid x)} \log p(x \mid z) - \beta \, \mathrm{KL}\big(q(z \mid x) \,\|\, p(z)\big)\Big]

    (Kingma & Welling 2013, Algorithm 1 with eq. (10)), or of :math:`-\mathcal L_k`,

    .. math::

        \mathcal L_k = E\Big[\log \frac1k \sum_{j=1}^k \frac{p(x, z_j)}{q(z_j \mid x)}\Big],
        \qquad z_j \sim q(z \mid x),

    for ``objective="iwae"`` (Burda et al. 2015, eq. (8)). With ``free_bits`` =
    :math:`\lambda` the KL penalty is :math:`\sum_j \max(\lambda, \overline{\mathrm{KL}}_j)`,
    :math:`\overline{\mathrm{KL}}_j` the batch mean of latent dimension j's KL
    (Kingma et al. 2016, Appendix C.8). ``objective="wake_sleep"`` (Hinton et al.
    1995) and ``"rws"`` (reweighted wake-sleep, Bornschein & Bengio 2015; Le et al.
    2019) train the encoder by the forward :math:`\mathrm{KL}(p(z \mid x) \,\|\, q(z \mid x))`
    instead; see
    :mod:`vitoolkit.vae.wake_sleep`. Their history records the ELBO (the encoder
    is still a q), and validation and early stopping use the ELBO.

    A :class:`CategoricalVAE` trains the ELBO with its ``estimator``
    (``"vimco"``: ``objective="iwae"``, ``num_samples >= 2``); a :class:`VQVAE`
    its reconstruction + codebook + commitment loss (the history's ELBO is
    :math:`\log p(x \mid z_q) - L \log K`); a :class:`SparseAutoencoder` its penalised
    reconstruction loss.

    Parameters
    ----------
    model : VAE, Autoencoder, CategoricalVAE, VQVAE or SparseAutoencoder
    data : Tensor or array of shape (n, data_dim)
        Training data, checked once (shape, NaN, likelihood support) and detached:
        no gradient ever flows back into the caller's tensor.
    epochs : int
        Total number of epochs (a resumed run continues up to this number).
    batch_size : int
    lr : float
        Adam learning rate.
    beta : float or callable
        KL weight, constant or a schedule ``beta(step)`` (see
        :mod:`vitoolkit.vae.annealing`); ELBO objective only (with another objective, or a
        model trained by its own loss, anything but the constant 1 is refused). A schedule that
        returns a negative, NaN or non-numeric value raises a ``ValueError`` naming
        the schedule, the epoch, the step and the value.
    free_bits : float >= 0
        Nats per latent dimension not penalised (ELBO objective only).
    objective : {"elbo", "iwae", "wake_sleep", "rws"}
    num_samples : int >= 1
        k of the IWAE objective; K samples of q per example for wake-sleep's wake
        phase and for RWS's importance weights; draws per example of a
        :class:`CategoricalVAE`'s estimator (K of VIMCO). Where it would be ignored (a
        VAE's ELBO, the Autoencoder, VQVAE and SparseAutoencoder) anything but 1 is
        refused, as are ``objective``, ``beta`` and ``free_bits`` for those three.
    labels : Tensor of shape (n,) or (n, conditional_dim), optional
        Class labels of a conditional VAE.
    validation : Tensor, or pair (X_val, labels_val), optional
        Held-out data for the validation ELBO, early stopping and ``restore_best``.
    patience : int, optional
        Stop after this many epochs without a better validation ELBO (needs
        ``validation``).
    seed : int
        Seeds the shuffling and noise generators (the model's initial weights
        come from its own ``seed``).
    checkpoint : str or Path, optional
        File written atomically after every epoch. Checked before training starts
        (an ``OSError`` naming the path if it is a directory, or its folder cannot
        be created or written), so a bad path never costs an epoch.
    resume : bool
        Continue from ``checkpoint`` if it exists (the settings must match).
    progress : bool
        Show progress over epochs (:func:`vitoolkit.progress.progress_bar`): a tqdm
        bar on a terminal or in Jupyter, one plain line per epoch in a log.
    device : str or torch.device, optional
        Default: CUDA when available, else CPU. A device that cannot work here
        (``"cuda"`` without CUDA, ``"mps"`` off Apple silicon, ``"foo"``) raises a
        ``ValueError`` before anything runs.
    restore_best : bool
        With ``validation``, end with the parameters of the best validation epoch.
    num_threads : int or None, default 1
        Torch intra-op threads while training, restored afterwards. The default, one
        thread, is the fast choice for the small networks of the tutorials: on a
        2-core machine torch's default thread count made ``train`` about three times
        slower (``benchmarks/bench_vae.py`` measures both). ``None`` keeps torch's
        current setting (``torch.get_num_threads()``).

    Returns
    -------
    History
    """
    if not isinstance(model, TRAINABLE_MODELS):
        names = ", ".join(c.__name__ for c in TRAINABLE_MODELS)
        raise TypeError(f"model must be one of vitoolkit.vae's {names}, "
                        f"got {type(model).__name__}")
    epochs = check_int(epochs, "epochs", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    # (Bounded by float32's range: the parameters and Adam's state are float32.)
    lr = check_real(lr, "lr", minimum=0.0, strict_minimum=True, maximum=_FLOAT32_MAX)
    num_samples = check_num_samples(num_samples)
    seed = check_seed(seed)
    resume = check_bool(resume, "resume")
    progress = check_bool(progress, "progress")
    restore_best = check_bool(restore_best, "restore_best")
    if num_threads is not None:
        num_threads = check_int(num_threads, "num_threads", minimum=1,
                                maximum=max(1024, os.cpu_count() or 1))
    if objective not in TRAIN_OBJECTIVES:
        raise ValueError(f"objective must be one of {TRAIN_OBJECTIVES}, got {objective!r}")
    if objective in WAKE_SLEEP_OBJECTIVES and not isinstance(model, VAE):
        raise ValueError(f"objective={objective!r} trains a VAE's encoder by the forward KL; "
                         f"it needs a vitoolkit.vae.VAE, got {type(model).__name__}")
    free_bits = check_real(free_bits, "free_bits", minimum=0.0, maximum=_FLOAT32_MAX)
    schedule = as_schedule(beta)
    beta_value = schedule.end if isinstance(schedule, Schedule) and schedule.kind == "constant" \
        else None
    _check_beta_value(schedule(0), schedule, 0, 0)
    _refuse_unused(model, objective, beta_value, free_bits, num_samples)
    if patience is not None:
        patience = check_int(patience, "patience", minimum=1)
        if validation is None:
            raise ValueError("patience (early stopping) needs validation data")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs a checkpoint path")
    dev = resolve_device(device)
    if checkpoint is not None:
        # Before anything changes the model: a bad path fails now, not after an epoch.
        checkpoint = check_output_file(checkpoint, "checkpoint")
    with intra_op_threads(num_threads):
        return _fit(model, data, epochs=epochs, batch_size=batch_size, lr=lr,
                    schedule=schedule, beta_value=beta_value, free_bits=free_bits,
                    objective=objective, num_samples=num_samples, labels=labels,
                    validation=validation, patience=patience, seed=seed,
                    checkpoint=checkpoint, resume=resume, progress=progress, dev=dev,
                    restore_best=restore_best)


#: Models trained by their own loss: objective, beta, free_bits and num_samples do not apply.
_OWN_LOSS = (Autoencoder, SparseAutoencoder, VQVAE)


def _refuse_unused(model, objective, beta_value, free_bits, num_samples) -> None:
    """Refuse a training option the model's loss would ignore (``ValueError`` naming it).

    ``beta_value`` is the constant beta (None for a schedule); the defaults (objective
    "elbo", beta 1, free_bits 0, num_samples 1) are what an option that does not apply
    must be left at.
    """
    name = type(model).__name__
    if isinstance(model, _OWN_LOSS):
        given = [f"{k}={v!r}" for k, v, default in (
            ("objective", objective, objective == "elbo"),
            ("beta", "a schedule" if beta_value is None else beta_value, beta_value == 1.0),
            ("free_bits", free_bits, free_bits == 0),
            ("num_samples", num_samples, num_samples == 1)) if not default]
        if given:
            raise ValueError(f"{name} trains its own loss; {', '.join(given)} would be ignored: "
                             "leave objective, beta, free_bits and num_samples at their defaults")
        return
    if objective != "elbo" and (free_bits > 0 or beta_value != 1.0):
        raise ValueError(f"beta and free_bits apply to objective='elbo' only; "
                         f"objective={objective!r} is trained as is (beta=1, free_bits=0)")
    if isinstance(model, VAE) and objective == "elbo" and num_samples != 1:
        raise ValueError(f"num_samples={num_samples} would be ignored: a VAE's objective='elbo' "
                         "uses one draw of z per example; num_samples is the k of "
                         "objective='iwae' and the K of 'wake_sleep' and 'rws'")


def _detached(t):
    return t.detach() if isinstance(t, torch.Tensor) and t.requires_grad else t


def _restore(model, optimizer, shuffle_gen, noise_gen, state, settings, checkpoint):
    """Load a training checkpoint into the run's objects; ValueError naming file and key."""
    where = repr(str(checkpoint))
    check_training_state(state, where)
    check_compatible(model, state, where)
    diffs = {k: (state["settings"].get(k), v) for k, v in settings.items()
             if state["settings"].get(k) != v}
    if diffs:
        raise ValueError(f"cannot resume {where}: settings differ (checkpoint, now): {diffs}")
    steps = [
        ("model_state", lambda: model.load_state_dict(state["model_state"])),
        ("optimizer_state", lambda: optimizer.load_state_dict(state["optimizer_state"])),
        ("shuffle_state", lambda: shuffle_gen.set_state(state["shuffle_state"])),
        ("noise_state", lambda: noise_gen.set_state(
            state["noise_state"].to(noise_gen.get_state().device))),
    ]
    best = state["best_state"]
    own = model.state_dict()
    if best is not None and (set(best) != set(own) or any(
            tuple(best[k].shape) != tuple(own[k].shape) for k in own)):
        raise ValueError(f"{where}: key 'best_state' does not match the model's parameters")
    for key, load in steps:
        try:
            load()
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as err:
            raise ValueError(f"{where}: key {key!r} cannot be restored: "
                             f"{type(err).__name__}: {err}") from None
    try:
        return History.from_dict(state["history"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: key 'history' is not a training history: {err}") from None


def _fit(model, data, *, epochs, batch_size, lr, schedule, beta_value, free_bits, objective,
         num_samples, labels, validation, patience, seed, checkpoint, resume, progress, dev,
         restore_best) -> History:
    is_vae = bool(getattr(model, "_reports_elbo", isinstance(model, VAE)))
    model.to(dev)
    X = _detached(model._check_x(_detached(data), "data"))
    Y = _detached(model._check_y(_detached(labels), X.shape[0], "labels"))
    Xv, Yv = _split_validation(validation)
    if Xv is not None:
        Xv = _detached(model._check_x(_detached(Xv), "validation"))
        Yv = _detached(model._check_y(_detached(Yv), Xv.shape[0], "validation labels"))
    n = X.shape[0]
    batch = min(batch_size, n)
    check_draws(num_samples, batch)
    width = getattr(model, "_decoder_width", getattr(model, "data_dim", 1))
    check_memory(num_samples * batch * 16 * width, "num_samples", num_samples,
                 f"the activations of {num_samples} draws for a batch of {batch}")

    step_loss = _step_loss(model, objective)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    shuffle_gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator(device=dev).manual_seed(seed + 1)
    settings = {"batch_size": batch_size, "lr": lr, "seed": int(seed), "objective": objective,
                "num_samples": num_samples, "free_bits": float(free_bits),
                "beta": _describe(schedule), "n": n}
    history = History()
    start_epoch, step, best_value, best_state, bad_epochs = 0, 0, -math.inf, None, 0

    if resume and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint)
        if state.get("kind") != "training":
            raise ValueError(f"{str(checkpoint)!r} is a saved model, not a training checkpoint")
        history = _restore(model, optimizer, shuffle_gen, noise_gen, state, settings, checkpoint)
        start_epoch, step = state["epoch"], state["step"]
        best_value, bad_epochs = state["best_value"], state["bad_epochs"]
        best_state = state["best_state"]
        if history.stopped_early:
            start_epoch = epochs

    elapsed = history.time[-1] if history.time else 0.0
    # A tqdm bar on a terminal or in Jupyter; one plain line per epoch in a log (vitoolkit.progress).
    bar = progress_bar(range(start_epoch, epochs), enabled=progress, desc="train", unit="epoch",
                       initial=start_epoch, total=epochs)
    model.train()
    for epoch in bar:
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=shuffle_gen).to(dev)
        # One gather per epoch; the mini-batches are then contiguous views (same batches
        # as indexing X[perm[s:s + batch_size]] each step, without the per-step copy).
        Xp = X[perm]
        Yp = None if Y is None else Y[perm]
        batches = []
        for s in range(0, n, batch_size):
            b = beta_value if beta_value is not None else \
                _check_beta_value(schedule(step), schedule, epoch, step)
            loss, stats = step_loss(Xp[s:s + batch_size],
                                    None if Yp is None else Yp[s:s + batch_size], b,
                                    free_bits, num_samples, noise_gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            batches.append(stats)
            step += 1
        tr = _summarise(batches, is_vae)
        if not math.isfinite(tr["loss"]):
            raise TrainingDivergedError(
                f"training diverged in epoch {epoch + 1}: the loss became {tr['loss']}; "
                f"lower lr (now {lr!r}), or check the likelihood's scale (e.g. min_scale)")
        elapsed += time.perf_counter() - t0
        history.epoch.append(epoch + 1)
        history.beta.append(b)
        history.time.append(elapsed)
        for key, value in tr.items():
            getattr(history, f"train_{key}").append(value)
        postfix = {"loss": f"{tr['loss']:.2f}"}
        if Xv is not None:
            va = _evaluate(model, Xv, Yv, batch_size, objective, num_samples, seed + 2, is_vae)
            for key, value in va.items():
                getattr(history, f"val_{key}").append(value)
            score = va["elbo"] if is_vae else -va["loss"]
            postfix["val"] = f"{score:.2f}"
            if score > best_value:
                best_value, bad_epochs = score, 0
                history.best_epoch = epoch + 1
                best_state = {k: v.detach().clone().cpu() for k, v in model.state_dict().items()}
            else:
                bad_epochs += 1
            if patience is not None and bad_epochs >= patience:
                history.stopped_early = True
        if progress:
            bar.set_postfix(postfix)
        if checkpoint is not None:
            save_checkpoint(checkpoint, {
                "kind": "training", "model_class": type(model).__name__,
                "model_config": dict(model.config),
                "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer_state": optimizer.state_dict(),
                "shuffle_state": shuffle_gen.get_state(),
                "noise_state": noise_gen.get_state().cpu(),
                "epoch": epoch + 1, "step": step, "history": history.as_dict(),
                "best_value": best_value, "best_state": best_state, "bad_epochs": bad_epochs,
                "settings": settings,
            })
        if history.stopped_early:
            break
    bar.close()
    if restore_best and best_state is not None:
        model.load_state_dict(best_state)
    return history
