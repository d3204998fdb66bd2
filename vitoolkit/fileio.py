"""Writing files so that a crash never leaves a half-written one, and checking output folders.

- :func:`atomic_write`: write to a uniquely named temporary file in the target's
  folder, flush and ``fsync`` it, ``os.replace`` it over the target, then
  ``fsync`` the folder, so after a crash or ``kill -9`` the target holds either
  its old content or the new one, never a mix. Temporary files left by a
  process that was killed mid-write (their names carry the writer's pid) are
  removed by the next write to the same target.
- :func:`check_output_dir`: create an output folder if needed and prove it is a
  writable directory *before* any work starts; the ``OSError`` names the path.
- Reading files a user hands in (untrusted): :func:`refuse_declared_size` refuses, before
  allocating, data a file *declares* beyond the memory limit, and
  :func:`check_zip_members` does so for every member of a zip archive (an ``.npz``, a
  ``torch.save`` file) from its central directory, before anything is inflated.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "pid_alive", "write_text", "write_bytes", "check_output_dir", "check_output_file",
           "output_error_message", "MAX_DEFLATE_RATIO", "refuse_declared_size", "check_zip_members"]

#: Deflate cannot expand data by more than 1032:1 (a 258-byte match in two 1-bit codes): a
#: compressed stream declaring more data bytes per compressed byte cannot hold them.
MAX_DEFLATE_RATIO = 1032


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (used to tell a dead writer's leftovers from a live one's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process
        return True
    return True


def _remove_stale(path: Path) -> None:
    """Remove ``.<name>.<pid>.*.tmp`` files in ``path``'s folder whose writer has died."""
    prefix = f".{path.name}."
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid_text = name[len(prefix):].split(".", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not pid_alive(int(pid_text)):
            with contextlib.suppress(OSError):
                entry.unlink()


def _new_file_mode(path: Path) -> int:
    """The permission bits ``open(path, "w")`` would give: the target's own if it exists, else
    0o666 minus the umask (``mkstemp`` alone would leave every written file private, 0o600)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        pass
    umask = None
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    umask = int(line.split()[1], 8)
    if umask is None:  # pragma: no cover - no /proc: read it the classic (racy) way
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be opened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(path, mode: str = "w", *, encoding: str | None = "utf-8"):
    """Context manager yielding a file object whose content replaces ``path`` on success.

    ``mode`` is ``"w"`` (text) or ``"wb"`` (bytes). On an exception the
    temporary file is removed and ``path`` is untouched. The parent folder must
    exist; an ``OSError`` names ``path`` if it cannot be written.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "cannot write a file over a directory", str(path))
    _remove_stale(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                                   dir=path.parent)
    except OSError as err:
        raise OSError(err.errno, f"cannot write {str(path)!r}: {err.strerror}",
                      str(path)) from None
    with contextlib.suppress(OSError):  # not fatal: the file would only stay private
        os.fchmod(fd, _new_file_mode(path))
    try:
        kwargs = {"encoding": encoding} if mode == "w" else {}
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def write_text(path, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return Path(path)


def write_bytes(path, data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def output_error_message(err: OSError, option: str = "--out") -> str:
    """One line for an ``OSError`` from :func:`check_output_dir` / :func:`check_output_file`,
    naming the command-line ``option`` and the path (``vitoolkit.course.arguments.out_error``)."""
    reason = err.strerror or str(err)
    if option not in reason:
        reason = f"{option}: {reason}"
    return f"{reason}: {err.filename}" if err.filename else reason


def check_output_dir(path, name: str = "out") -> Path:
    """Create folder ``path`` (and parents) if missing and prove it is writable.

    Raises ``NotADirectoryError``/``PermissionError``/``OSError`` whose message
    names ``name`` and the path, before any work is done.
    """
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(path).__name__}")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{name} must be a directory, but it is a file",
                                 str(path))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise type(err)(err.errno, f"cannot create {name} directory: {err.strerror}",
                        str(path)) from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=path)
    except OSError as err:
        raise type(err)(err.errno, f"{name} directory is not writable: {err.strerror}",
                        str(path)) from None
    os.close(fd)
    os.unlink(probe)
    return path


def check_output_file(path, name: str = "path") -> Path:
    """Check that a file can be (re)written at ``path``: not a directory, parent a writable folder.

    Creates missing parent folders. Use it before a long computation whose
    result will be saved there.
    """
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(path).__name__}")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"{name} must be a file path, but it is a directory",
                                str(path))
    check_output_dir(path.parent, f"{name}'s parent")
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(errno.EACCES, f"{name} is not writable", str(path))
    return path


# -- reading untrusted files ----------------------------------------------------------------


def refuse_declared_size(path, nbytes: int, what: str) -> None:
    """Refuse, before allocating, ``nbytes`` (a Python int) of data that ``path`` declares.

    Raises :class:`~vitoolkit.exceptions.ResourceLimitError` naming the file and ``what``
    when ``nbytes`` exceeds :func:`vitoolkit.validation.memory_limit`.
    """
    from .exceptions import ResourceLimitError
    from .validation import format_bytes, memory_limit

    limit = memory_limit()
    if nbytes > limit:
        raise ResourceLimitError(
            f"{path}: {what} would need {format_bytes(nbytes)}, more than the limit of "
            f"{format_bytes(limit)} (half the RAM, or $VITOOLKIT_MAX_MEMORY); refusing to read it")


def check_zip_members(archive, path) -> int:
    """The total inflated size of an open :class:`zipfile.ZipFile`, checked before reading it.

    Every member's declared size comes from the central directory (nothing is inflated):
    a member declaring more than :data:`MAX_DEFLATE_RATIO` bytes per compressed byte is
    corrupt (:class:`~vitoolkit.exceptions.FileFormatError`), and a total beyond the memory
    limit is refused (:func:`refuse_declared_size`), so a small file that would inflate to
    gigabytes is refused after reading its directory.
    """
    from .exceptions import FileFormatError

    total = 0
    for info in archive.infolist():
        if info.compress_type != 0 and info.file_size > MAX_DEFLATE_RATIO * max(info.compress_size, 1):
            raise FileFormatError(
                f"{path}: member {info.filename!r} declares {info.file_size} bytes from "
                f"{info.compress_size} compressed bytes, more than compression can produce")
        total += info.file_size
    refuse_declared_size(path, total, f"the {len(archive.infolist())} members of the archive, "
                                      f"inflated")
    return total
