"""Benchmark: the toolkit's default VAE against a plain hand-written VAE, same process.

Both models have the same size (64 -> 256 -> 128 -> 2 x 8 encoder, mirrored
decoder, ReLU, Bernoulli likelihood), the same optimiser (Adam, lr 1e-3),
batch size and number of epochs, on binarised scikit-learn digits (1,257
training / 270 validation / 270 test images). The reference is the usual
minimal PyTorch VAE loop (exp(logvar / 2) scale, summed BCE, closed-form KL),
trained on the training images with nothing else, from the same initial
weights as the toolkit model and with the same mini-batch order and noise
(seeds are paired, so differences come from the implementations, not luck). The toolkit is run twice: as
the reference is (training data only), and with ``validation=X_val`` (whose
default ``restore_best=True`` keeps the best validation-ELBO epoch). 150
epochs by default; ``--long`` adds 300 (past the point where the validation
ELBO starts to fall).

Reported:

1. Quality: test ELBO, IWAE bound (k = 50) and importance-sampled log p(x)
   (k = 1000; Burda et al. 2015, section 5), mean over seeds with the standard
   error across seeds. Every number of both models is computed by the *same*
   hand-written evaluator below (and the toolkit's own ``log_likelihood`` is
   printed next to it as a cross-check). The issue asks the toolkit's log p(x)
   to be at least the reference's.
2. Speed: training examples per second of ``vitoolkit.vae.train`` and of the
   reference loop (same architecture and batch size, no validation), timed
   alternately; ratio toolkit / reference (the issue asks >= 0.95).

3. Threads: epochs per second of ``train`` at the tutorials' model sizes with its
   default ``num_threads=1`` against ``num_threads=None`` (torch's default intra-op
   thread count, the machine's cores), CPU and wall time, alternating, with the
   load average printed. ``--threads`` runs only this part.

Parts 1-2 run single-threaded (``torch.set_num_threads(1)``): for networks this
small, intra-op threads cost more than they give, and on a shared machine they
make timings erratic. Run: ``python benchmarks/bench_vae.py [--quick] [--threads]``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from vitoolkit.datasets import load_digits
from vitoolkit.vae import VAE, train

LATENT, HIDDEN, LR = 8, (256, 128), 1e-3


class ReferenceVAE(nn.Module):
    """The textbook minimal VAE (Kingma & Welling 2013, eq. 10), written out by hand."""

    def __init__(self, seed: int):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1000)
            self.enc = nn.Sequential(nn.Linear(64, HIDDEN[0]), nn.ReLU(),
                                     nn.Linear(HIDDEN[0], HIDDEN[1]), nn.ReLU(),
                                     nn.Linear(HIDDEN[1], 2 * LATENT))
            self.dec = nn.Sequential(nn.Linear(LATENT, HIDDEN[1]), nn.ReLU(),
                                     nn.Linear(HIDDEN[1], HIDDEN[0]), nn.ReLU(),
                                     nn.Linear(HIDDEN[0], 64))

    def loc_scale(self, x):
        mu, logvar = self.enc(x).chunk(2, dim=-1)
        return mu, torch.exp(0.5 * logvar)

    def logits(self, z):
        return self.dec(z)


def train_reference(model, X, epochs, batch_size, seed):
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    # Two generators seeded like vitoolkit.vae.train's, so a paired run sees the same
    # mini-batches and the same noise.
    shuffle = torch.Generator().manual_seed(seed)
    noise = torch.Generator().manual_seed(seed + 1)
    n = X.shape[0]
    for _ in range(epochs):
        perm = torch.randperm(n, generator=shuffle)
        for s in range(0, n, batch_size):
            x = X[perm[s:s + batch_size]]
            mu, logvar = model.enc(x).chunk(2, dim=-1)
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=noise)
            rec = F.binary_cross_entropy_with_logits(model.dec(z), x, reduction="sum")
            kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            loss = (rec + kl) / x.shape[0]
            opt.zero_grad()
            loss.backward()
            opt.step()


class ToolkitView:
    """Expose a toolkit VAE through the evaluator's two functions."""

    def __init__(self, vae: VAE):
        self.vae = vae

    def loc_scale(self, x):
        q = self.vae.encode(x)
        return q.base_dist.loc, q.base_dist.scale

    def logits(self, z):
        return self.vae.decoder(z)


@torch.no_grad()
def evaluate(model, X, k: int, gen, chunk: int = 100):
    """Hand-written IWAE evaluator: L_k = logmeanexp_j [log p(x|z_j) + log p(z_j) - log q(z_j|x)].

    Returns per-example ELBO (analytic KL, one sample) and L_k, shape (n,).
    """
    mu, sigma = model.loc_scale(X)
    eps = torch.randn(mu.shape, generator=gen)
    rec = -F.binary_cross_entropy_with_logits(model.logits(mu + sigma * eps), X,
                                              reduction="none").sum(-1)
    kl = 0.5 * (mu.pow(2) + sigma.pow(2) - 1 - 2 * sigma.log()).sum(-1)
    elbo = rec - kl
    parts = []
    for s in range(0, k, chunk):
        kc = min(chunk, k - s)
        e = torch.randn((kc, *mu.shape), generator=gen)
        z = mu + sigma * e
        log_px = -F.binary_cross_entropy_with_logits(model.logits(z), X.expand(kc, *X.shape),
                                                     reduction="none").sum(-1)
        log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
        log_qz = (-0.5 * e.pow(2) - sigma.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
        parts.append(log_px + log_pz - log_qz)
    log_w = torch.cat(parts)
    return elbo, torch.logsumexp(log_w, 0) - math.log(k)


def mean_se(values):
    m = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return m, se


def quality(epochs, seeds, k_ll, batch, X, Xv, Xt):
    """Train the three runs per seed for ``epochs``; print ELBO, IWAE and log p(x).

    Runs: the toolkit's default VAE trained by ``train`` exactly as the reference
    is (training data only); the same with ``validation=`` (its default
    ``restore_best=True`` keeps the best validation-ELBO epoch); the reference,
    started from the toolkit model's initial weights so that seeds are paired.
    """
    print(f"# quality: {epochs} epochs, batch {batch}, seeds {seeds}, log p(x) with k={k_ll}")
    names = ("toolkit", "toolkit+val", "reference")
    rows = {name: {"elbo": [], "iwae50": [], "ll": []} for name in names}
    own = []
    for seed in seeds:
        vae = VAE(64, LATENT, HIDDEN, seed=seed)
        ref = ReferenceVAE(seed)
        ref.enc.load_state_dict(vae.encoder.state_dict())  # same initial weights
        ref.dec.load_state_dict(vae.decoder.state_dict())
        vae_es = VAE(64, LATENT, HIDDEN, seed=seed)
        train(vae, X, epochs=epochs, batch_size=batch, lr=LR, seed=seed, progress=False)
        hist = train(vae_es, X, epochs=epochs, batch_size=batch, lr=LR, validation=Xv,
                     seed=seed, progress=False)
        train_reference(ref, X, epochs, batch, seed)
        for name, model in zip(names, (ToolkitView(vae), ToolkitView(vae_es), ref), strict=True):
            elbo, iwae = evaluate(model, Xt, 50, torch.Generator().manual_seed(100 + seed))
            _, ll = evaluate(model, Xt, k_ll, torch.Generator().manual_seed(200 + seed))
            rows[name]["elbo"].append(float(elbo.mean()))
            rows[name]["iwae50"].append(float(iwae.mean()))
            rows[name]["ll"].append(float(ll.mean()))
        own.append(float(vae.log_likelihood(
            Xt, k_ll, generator=torch.Generator().manual_seed(300 + seed)).mean()))
        print(f"seed {seed}: log p(x) toolkit {rows['toolkit']['ll'][-1]:.3f} (its own "
              f"estimator {own[-1]:.3f}), toolkit+val {rows['toolkit+val']['ll'][-1]:.3f} "
              f"(restored epoch {hist.best_epoch}), reference {rows['reference']['ll'][-1]:.3f}",
              flush=True)
    print(f"\n{'model':<12} {'ELBO':>16} {'IWAE k=50':>16} {f'log p(x) k={k_ll}':>18}")
    for name, r in rows.items():
        cells = [f"{m:8.3f} +- {s:5.3f}" for m, s in (mean_se(r[key])
                                                        for key in ("elbo", "iwae50", "ll"))]
        print(f"{name:<12} {cells[0]:>16} {cells[1]:>16} {cells[2]:>18}")
    for name in names[:2]:
        diff = [a - b for a, b in zip(rows[name]["ll"], rows["reference"]["ll"], strict=True)]
        m, se = mean_se(diff)
        verdict = "PASS" if m >= 0 else ("within 2 se" if m >= -2 * se else "FAIL")
        print(f"log p(x) {name} - reference (paired by seed): {m:+.3f} +- {se:.3f} nats per "
              f"image ({verdict}: toolkit at least as good)")
    print(flush=True)


#: The tutorials' training set-ups: (label, VAE arguments, data dim, batch size, validation).
TUTORIAL_SIZES = [
    ("05: VAE(64, 8), (256, 128), batch 64", dict(data_dim=64, latent_dim=8), 64, False),
    ("05: VAE(64, 2), (256, 128), batch 64", dict(data_dim=64, latent_dim=2), 64, False),
    ("06: VAE(64, 16), (128, 64), batch 128, val", dict(data_dim=64, latent_dim=16,
                                                        hidden_dims=(128, 64)), 128, True),
]


def thread_speed(epochs: int, reps: int, X, Xv):
    """Epochs/s of ``train`` with ``num_threads=1`` (the default) and torch's default count."""
    default = torch.get_num_threads()
    print(f"\n# threads: train(num_threads=1) vs num_threads=None (torch's default, "
          f"{default} threads); {epochs} epochs x {X.shape[0]} examples, {reps} alternating "
          f"repetitions; load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'set-up':<44} {'1 thread ep/s (CPU, wall)':>27} {'default ep/s (CPU, wall)':>26} "
          f"{'ratio CPU':>9} {'ratio wall':>10}")
    for label, kwargs, batch, with_val in TUTORIAL_SIZES:
        rates = {1: ([], []), None: ([], [])}
        for r in range(reps):
            for threads in ((1, None) if r % 2 == 0 else (None, 1)):
                model = VAE(**kwargs, seed=r)
                t0, c0 = time.perf_counter(), time.process_time()
                train(model, X, epochs=epochs, batch_size=batch, lr=2e-3, seed=r,
                      validation=Xv if with_val else None, progress=False, num_threads=threads)
                cpu, wall = time.process_time() - c0, time.perf_counter() - t0
                rates[threads][0].append(epochs / cpu)
                rates[threads][1].append(epochs / wall)
        one = [statistics.median(v) for v in rates[1]]
        many = [statistics.median(v) for v in rates[None]]
        print(f"{label:<44} {one[0]:>13.2f}, {one[1]:>11.2f} {many[0]:>12.2f}, {many[1]:>11.2f} "
              f"{one[0] / many[0]:>9.2f} {one[1] / many[1]:>10.2f}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}; torch threads restored: "
          f"{torch.get_num_threads() == default}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--long", action="store_true", help="also a 300-epoch budget")
    parser.add_argument("--threads", action="store_true", help="only the threads comparison")
    args = parser.parse_args()
    if args.threads:
        X, _ = load_digits(binarize=True, split="train")
        Xv, _ = load_digits(binarize=True, split="val")
        thread_speed(3 if args.quick else 5, 3 if args.quick else 5, X, Xv)
        return
    X, _ = load_digits(binarize=True, split="train")
    Xv, _ = load_digits(binarize=True, split="val")
    thread_speed(3 if args.quick else 5, 3 if args.quick else 5, X, Xv)
    torch.set_num_threads(1)
    budgets = [30] if args.quick else ([150, 300] if args.long else [150])
    seeds = [0, 1] if args.quick else [0, 1, 2, 3, 4]
    k_ll = 200 if args.quick else 1000
    batch = 64
    Xt, _ = load_digits(binarize=True, split="test")

    for budget in budgets:
        quality(budget, seeds, k_ll, batch, X, Xv, Xt)

    speed_epochs = 5 if args.quick else 20
    reps = 5 if args.quick else 9
    print(f"\n# throughput: {speed_epochs} epochs x {X.shape[0]} examples, {reps} alternating "
          f"repetitions per batch size, single thread")
    print(f"{'batch':>5} {'toolkit ex/s':>13} {'reference ex/s':>15} {'ratio (CPU time)':>17} "
          f"{'ratio (wall)':>13}")
    for bs in (64, 128):
        cpu_ratio, wall_ratio, tk_rate, ref_rate = [], [], [], []
        for r in range(reps):
            times = {}
            for name in (("toolkit", "reference") if r % 2 == 0 else ("reference", "toolkit")):
                t0, c0 = time.perf_counter(), time.process_time()
                if name == "toolkit":
                    train(VAE(64, LATENT, HIDDEN, seed=r), X, epochs=speed_epochs,
                          batch_size=bs, lr=LR, seed=r, progress=False)
                else:
                    train_reference(ReferenceVAE(r), X, speed_epochs, bs, r)
                times[name] = (time.perf_counter() - t0, time.process_time() - c0)
            cpu_ratio.append(times["reference"][1] / times["toolkit"][1])
            wall_ratio.append(times["reference"][0] / times["toolkit"][0])
            tk_rate.append(speed_epochs * X.shape[0] / times["toolkit"][1])
            ref_rate.append(speed_epochs * X.shape[0] / times["reference"][1])
        ratio = statistics.median(cpu_ratio)
        print(f"{bs:>5} {statistics.median(tk_rate):>13.0f} {statistics.median(ref_rate):>15.0f} "
              f"{ratio:>17.3f} {statistics.median(wall_ratio):>13.3f}  "
              f"({'PASS' if ratio >= 0.95 else 'FAIL'}: >= 0.95)", flush=True)


if __name__ == "__main__":
    main()
