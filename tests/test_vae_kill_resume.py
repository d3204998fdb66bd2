"""A training run killed with SIGKILL at any moment resumes to the bit-identical result.

Each case starts ``vitoolkit.vae.train`` with a checkpoint in a subprocess, kills it with
``kill -9`` at a chosen moment (before the first checkpoint, inside a save while the
temporary file is half written, right as a save completes, in the middle of an epoch),
resumes the run in this process from whatever the checkpoint holds, and compares the
result with an uninterrupted run: every parameter and every history entry (but the wall
time) must be equal bit for bit. The temporary file left by the killed writer must be
gone after the resumed run's first save.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import torch

from vitoolkit.datasets import load_digits
from vitoolkit.vae import VAE, annealing, load_checkpoint, train

EPOCHS = 6
N = 200

# The child: the same run as _run() below; its torch.save announces each checkpoint and,
# in "block" mode, stops half-way through writing the one of epoch BLOCK (and waits to be
# killed there). Lines on stdout: START, then "SAVING <epoch>" as each save's bytes are
# written (before the file is renamed over the checkpoint), and "STEP 35" as that step begins.
CHILD = textwrap.dedent("""
    import sys, time
    import torch
    from vitoolkit.vae import VAE, annealing, train

    path, block, data = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    X, Xv = torch.load(data, weights_only=True)  # (no scikit-learn import: a faster start)
    real_save = torch.save

    def announcing_save(obj, f, *args, **kwargs):
        epoch = obj.get("epoch")
        if epoch == block:
            f.write(b"half a checkpoint")
            f.flush()
            print("BLOCKED", flush=True)
            time.sleep(600)
        real_save(obj, f, *args, **kwargs)
        print(f"SAVING {epoch}", flush=True)

    torch.save = announcing_save

    import vitoolkit.vae.training as training
    real_check = training._check_beta_value

    def announcing_check(value, schedule, epoch, step):
        if step == MID_STEP:
            print(f"STEP {step}", flush=True)
        return real_check(value, schedule, epoch, step)

    training._check_beta_value = announcing_check
    print("START", flush=True)
    train(VAE(64, 4, hidden_dims=(32, 16), seed=0), X[:%d], epochs=%d, batch_size=20,
          lr=2e-3, beta=annealing.linear_warmup(25), validation=Xv[:60], patience=50,
          seed=7, checkpoint=path, progress=False)
    print("DONE", flush=True)
""".replace("MID_STEP", "35") % (N, EPOCHS))


def _data():
    X, _ = load_digits(binarize=True, split="train")
    Xv, _ = load_digits(binarize=True, split="val")
    return X, Xv


def _run(checkpoint=None, resume=False):
    X, Xv = _data()
    model = VAE(64, 4, hidden_dims=(32, 16), seed=0)
    hist = train(model, X[:N], epochs=EPOCHS, batch_size=20, lr=2e-3,
                 beta=annealing.linear_warmup(25), validation=Xv[:60], patience=50, seed=7,
                 checkpoint=checkpoint, resume=resume, progress=False)
    return model, hist


CASES = {
    # id: (line that triggers the kill, delay after it, epoch whose save blocks, epochs the
    # checkpoint may hold afterwards; None = no checkpoint yet)
    "before-first-save": ("START", 0.0, -1, None),
    "inside-a-save": ("BLOCKED", 0.0, 3, (2,)),  # temporary of epoch 3 half written
    "at-rename": ("SAVING 2", 0.0, -1, (1, 2)),  # as epoch 2's file is renamed into place
    # At step 35, in the middle of epoch 4 (10 steps per epoch); on a busy machine the
    # child may get a little further before the signal lands.
    "mid-epoch": ("STEP 35", 0.0, -1, (3, 4, 5)),
}


def _kill_when(proc, trigger: str, delay: float) -> str:
    """SIGKILL ``proc`` ``delay`` seconds after it prints ``trigger``; '' or what went wrong."""
    try:
        deadline = time.monotonic() + 300
        for line in proc.stdout:
            if line.strip() == trigger:
                break
            if time.monotonic() > deadline:
                return "child too slow"
        else:
            return f"child ended before {trigger!r}"
        if delay:
            time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        if proc.wait(timeout=60) != -signal.SIGKILL:
            return "the child finished before the kill"
        return ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """Run the four children at once (their start-up, mostly importing torch, dominates),
    kill each at its moment; meanwhile compute the uninterrupted reference run here."""
    runs, threads, errors = {}, [], {}
    data = tmp_path_factory.mktemp("data") / "digits.pt"
    torch.save(_data(), data)
    for name, (trigger, delay, block, _) in CASES.items():
        folder = tmp_path_factory.mktemp(name)
        ckpt = folder / "run.pt"
        err = (folder / "child.err").open("w")
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(ckpt), str(block), str(data)],
                                stdout=subprocess.PIPE, stderr=err, text=True)
        err.close()

        def work(name=name, proc=proc, trigger=trigger, delay=delay):
            errors[name] = _kill_when(proc, trigger, delay)

        thread = threading.Thread(target=work)
        thread.start()
        threads.append(thread)
        runs[name] = ckpt
    ref = _run()
    for thread in threads:
        thread.join()
    for name, ckpt in runs.items():
        if errors[name]:
            errors[name] += ": " + (ckpt.parent / "child.err").read_text()[-2000:]
    return runs, errors, ref


def _assert_identical(resumed, reference):
    (model, hist), (ref_model, ref_hist) = resumed, reference
    ref_state = ref_model.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, ref_state[key]), key
    a, b = hist.as_dict(), ref_hist.as_dict()
    a.pop("time"), b.pop("time")
    assert a == b


@pytest.mark.parametrize("name", list(CASES))
def test_kill_9_then_resume_is_bit_identical(killed, name):
    runs, errors, reference = killed
    assert not errors[name], errors[name]
    ckpt = runs[name]
    trigger, _, _, saved = CASES[name]
    if saved is None:
        assert not ckpt.exists()
    else:
        state = load_checkpoint(ckpt)  # whatever the moment, the file is a whole checkpoint
        assert state["epoch"] in saved and state["epoch"] < EPOCHS
    folder = ckpt.parent
    leftovers = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    if trigger == "BLOCKED":
        assert len(leftovers) == 1  # the killed writer's temporary file
    _assert_identical(_run(ckpt, resume=True), reference)
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert load_checkpoint(ckpt)["epoch"] == EPOCHS
