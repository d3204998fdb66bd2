"""vitoolkit.fileio: atomic writes survive errors and ``kill -9``; output folders are checked first."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitoolkit.fileio import atomic_write, check_output_dir, check_output_file, write_bytes, write_text


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# -- atomic_write ----------------------------------------------------------------------------

@settings(max_examples=20)
@given(old=st.text(max_size=200), new=st.text(max_size=200))
def test_write_text_replaces_the_content_and_leaves_no_temporary(tmp_path_factory, old, new):
    folder = tmp_path_factory.mktemp("w")
    target = folder / "out.txt"
    assert write_text(target, old) == target
    assert write_text(target, new) == target
    assert target.read_text(encoding="utf-8") == new
    assert temporaries(folder) == []


def test_write_bytes_round_trip(tmp_path):
    data = bytes(range(256)) * 10
    write_bytes(tmp_path / "b.bin", data)
    assert (tmp_path / "b.bin").read_bytes() == data
    assert temporaries(tmp_path) == []


@pytest.mark.parametrize("mode", ["w", "wb"])
def test_atomic_write_keeps_the_old_content_when_the_body_raises(tmp_path, mode):
    target = tmp_path / "state.json"
    target.write_text('{"version": 1}', encoding="utf-8")

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with atomic_write(target, mode) as fh:
            fh.write('{"version": 2, "half' if mode == "w" else b'{"version": 2, "half')
            fh.flush()
            assert len(temporaries(tmp_path)) == 1  # the new bytes went to a temporary
            raise Boom
    assert target.read_text(encoding="utf-8") == '{"version": 1}'
    assert temporaries(tmp_path) == []


def test_atomic_write_keeps_nothing_when_the_target_did_not_exist(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(tmp_path / "new.txt") as fh:
            fh.write("partial")
            raise KeyboardInterrupt  # BaseException too
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_refusals_name_the_path(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", "a"):
            pass
    with pytest.raises(IsADirectoryError) as err:
        write_text(tmp_path, "x")
    assert str(tmp_path) in str(err.value)
    missing = tmp_path / "no" / "such" / "folder" / "f.txt"
    with pytest.raises(OSError) as err:
        write_text(missing, "x")
    assert str(missing) in str(err.value)
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(OSError) as err:
        write_text(afile / "child.txt", "x")
    assert "child.txt" in str(err.value)


def test_written_files_get_the_usual_permissions_or_keep_the_targets(tmp_path):
    """mkstemp creates 0o600 files; an atomic write must not make every output private."""
    old_umask = os.umask(0o022)
    try:
        write_text(tmp_path / "new.txt", "x")
        assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o644
        os.umask(0o077)
        write_text(tmp_path / "private.txt", "x")
        assert stat.S_IMODE((tmp_path / "private.txt").stat().st_mode) == 0o600
        existing = tmp_path / "shared.txt"
        existing.write_text("old")
        existing.chmod(0o664)
        write_text(existing, "new")
        assert stat.S_IMODE(existing.stat().st_mode) == 0o664 and existing.read_text() == "new"
    finally:
        os.umask(old_umask)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporaries_of_dead_writers_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "ckpt.pt"
    dead = tmp_path / f".ckpt.pt.{_dead_pid()}.abc123.tmp"
    dead.write_bytes(b"half a checkpoint")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = tmp_path / f".ckpt.pt.{sleeper.pid}.def456.tmp"  # a writer still at work
        alive.write_bytes(b"in progress")
        other = tmp_path / f".other.pt.{_dead_pid()}.x.tmp"  # another target's: not ours to remove
        other.write_bytes(b"x")
        write_bytes(target, b"new")
        assert not dead.exists()
        assert alive.exists() and other.exists()
        assert target.read_bytes() == b"new"
    finally:
        sleeper.kill()
        sleeper.wait()


_WRITER = textwrap.dedent("""
    import json, sys
    from vitoolkit.fileio import write_text
    target, size, naive = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "naive"
    version = 0
    print("ready", flush=True)
    while True:
        version += 1
        text = json.dumps({"version": version, "payload": str(version % 10) * size})
        if naive:  # the control: writing in place
            with open(target, "w", encoding="utf-8") as fh:
                fh.write(text)
        else:
            write_text(target, text)
""")


def _kill_loop(folder: Path, size: int, how: str, *, kills: int, enough, most: int = 30):
    """Start a writer, SIGKILL it after a varying delay, inspect the target; at least ``kills``
    times and until ``enough(versions, torn, left_behind)`` holds (at most ``most`` times).

    Returns (versions seen complete, number of torn targets, kills that left a temporary).
    """
    target = folder / "state.json"
    script = folder / "writer.py"
    script.write_text(_WRITER, encoding="utf-8")
    versions, torn, left_behind = [], 0, 0
    for i in range(most):
        if i >= kills and enough(versions, torn, left_behind):
            break
        proc = subprocess.Popen([sys.executable, str(script), str(target), str(size), how],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.05 + 0.06 * (i % 7))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        if target.exists():
            try:
                body = json.loads(target.read_text(encoding="utf-8"))
                complete = body["payload"] == str(body["version"] % 10) * size
            except ValueError:
                complete = False
            if complete:
                versions.append(body["version"])
            torn += not complete
        stale = temporaries(folder)
        left_behind += bool(stale)
        if stale and how == "atomic":
            # The next write (from this process, a complete version 0) clears what the dead
            # writer left.
            write_text(target, json.dumps({"version": 0, "payload": "0" * size}))
            assert temporaries(folder) == []
    return versions, torn, left_behind


def test_kill_9_of_a_writer_never_leaves_a_torn_target(tmp_path):
    """A real SIGKILL at varying moments of a loop of 2 MB writes: the target always parses as one
    complete version, and the temporary a killed writer leaves is removed by the next write."""
    versions, torn, left_behind = _kill_loop(
        tmp_path, 2 * 2**20, "atomic", kills=12, enough=lambda v, t, left: any(v) and left >= 1)
    assert torn == 0
    assert any(versions), "the writer never completed a write; the test proved nothing"
    assert left_behind >= 1  # some kills landed in the middle of a write


def test_kill_9_control_writing_in_place_does_tear(tmp_path):
    """The same kills against an in-place writer leave torn files: the check above can fail."""
    _versions, torn, _left = _kill_loop(tmp_path, 2 * 2**20, "naive", kills=1,
                                        enough=lambda v, t, left: t >= 1)
    assert torn >= 1


# -- output folders --------------------------------------------------------------------------

def test_check_output_dir_creates_nested_folders(tmp_path):
    out = check_output_dir(tmp_path / "a" / "b", "out")
    assert out == tmp_path / "a" / "b" and out.is_dir()
    assert list(out.iterdir()) == []  # the write probe is gone
    assert check_output_dir(str(out)) == out


def test_check_output_dir_on_a_file_or_under_a_file_names_the_path(tmp_path):
    afile = tmp_path / "report.txt"
    afile.write_text("x")
    with pytest.raises(NotADirectoryError) as err:
        check_output_dir(afile, "out")
    assert str(afile) in str(err.value) and "out" in str(err.value)
    below = afile / "sub"
    with pytest.raises(OSError) as err:
        check_output_dir(below, "out")
    assert str(below) in str(err.value) and "out" in str(err.value)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc (unwritable even as root)")
def test_check_output_dir_unwritable_names_the_path():
    for path in (Path("/proc"), Path("/proc/vitoolkit-out")):
        with pytest.raises(OSError) as err:
            check_output_dir(path, "out")
        assert str(path) in str(err.value)


@pytest.mark.parametrize("value", [None, 1, True, 2.5, b"bytes-path", ["a"]])
def test_check_output_dir_and_file_refuse_non_paths(value):
    with pytest.raises(TypeError, match="out"):
        check_output_dir(value, "out")
    with pytest.raises(TypeError, match="checkpoint"):
        check_output_file(value, "checkpoint")


def test_check_output_file(tmp_path):
    target = tmp_path / "new" / "ckpt.pt"
    assert check_output_file(target, "checkpoint") == target
    assert target.parent.is_dir() and not target.exists()
    with pytest.raises(IsADirectoryError) as err:
        check_output_file(tmp_path, "checkpoint")
    assert str(tmp_path) in str(err.value) and "checkpoint" in str(err.value)
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(OSError) as err:
        check_output_file(afile / "ckpt.pt", "checkpoint")
    assert str(afile) in str(err.value)
