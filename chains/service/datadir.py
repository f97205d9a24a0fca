"""One process per data dir: an exclusive lock that dies with its process.

Two processes on one SQLite store both start, both serve, and one fails at its next
block (``UNIQUE constraint failed``) after both signed and published. Each process that
owns a data dir (a chain node, the relayer daemon) takes :class:`DataDirLock` first and
refuses to start if another holds it. The lock is an ``flock`` on a small file in the
dir: the kernel releases it when the process dies, even by ``kill -9``, so a crash never
leaves a stale lock behind; the file keeps the holder's pid for an operator to read.

Errors::

    InterlockError
    └── ConfigError
        └── DataDirLocked     another process holds the lock
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Self

from chains.errors import ConfigError

__all__ = ["DataDirLock", "DataDirLocked"]


class DataDirLocked(ConfigError):
    """Another process holds the data dir (or this lock name in it)."""

    code = "data_dir_locked"

    def __init__(self, path: Path, holder: str = "") -> None:
        self.path, self.holder = path, holder
        who = f" (pid {holder})" if holder else ""
        super().__init__(f"{path}: another interlock process{who} is using this data dir")


class DataDirLock:
    """An exclusive lock on ``data_dir / name`` for the life of this object (``with``).

    ``name`` lets several owners share one dir without sharing a lock (a chain node
    locks ``<chain_id>.lock``, so two chains may live in one dir, one chain twice not).
    """

    def __init__(self, data_dir: Path, name: str = "interlock.lock") -> None:
        self.path = Path(data_dir) / name
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock now, or raise :class:`DataDirLocked` (or ``ConfigError`` when
        the dir cannot be made or the file opened); never waits."""
        if self._fd is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot open the lock file: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            with contextlib.suppress(OSError, UnicodeDecodeError):
                holder = os.pread(fd, 32, 0).decode().strip()
            os.close(fd)
            raise DataDirLocked(self.path.parent, holder if holder.isdigit() else "") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            with contextlib.suppress(OSError):
                os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
