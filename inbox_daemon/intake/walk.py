"""The files an import path stands for, opened without trusting the filesystem.

Every file and folder below a path given to ``import`` is opened relative to its parent
folder's descriptor with ``O_NOFOLLOW`` (openat), so nothing is reached through a symbolic
link: a Maildir whose ``new/`` links to ``/etc`` or whose message links to ``/etc/shadow``
gives nothing but a ``NotTaken``, and a folder swapped for a link while it is walked is refused
by the open itself, not by an earlier check. Only regular files are read (a FIFO would block,
a device could be endless). The path given on the command line is opened the same way: its
last component must not be a link either; the folders leading to it are the operator's.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BufferedReader

__all__ = ["Found", "NotTaken", "walk"]

_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO does not hang the open
_MAILDIR = ("new", "cur")  # tmp/ holds unfinished deliveries


@dataclass(frozen=True)
class Found:
    """A regular file, open for reading; the caller closes ``file``."""

    path: str
    file: BufferedReader
    size: int
    only_mail: bool  # found by a folder walk: taken only when it is ``.eml`` or an mbox


@dataclass(frozen=True)
class NotTaken:
    path: str
    why: str


def walk(given: str) -> Iterator[Found | NotTaken]:
    """Maildir messages, files of a folder tree, or the one file ``given`` names."""
    opened = _open(given, None, given)
    if isinstance(opened, NotTaken):
        yield opened
        return
    fd, mode = opened
    if stat.S_ISDIR(mode):
        try:
            yield from _folder(fd, given)
        finally:
            os.close(fd)
        return
    yield _file(fd, mode, given, only_mail=False)


def _open(name: str, dir_fd: int | None, path: str) -> tuple[int, int] | NotTaken:
    """(descriptor, mode) of ``name``, never through a symbolic link."""
    try:
        fd = os.open(name, _FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return NotTaken(path, "a symbolic link, not followed")
        return NotTaken(path, exc.strerror or str(exc))
    return fd, os.fstat(fd).st_mode


def _file(fd: int, mode: int, path: str, *, only_mail: bool) -> Found | NotTaken:
    if not stat.S_ISREG(mode):
        os.close(fd)
        return NotTaken(path, "not a regular file")
    size = os.fstat(fd).st_size
    return Found(path, os.fdopen(fd, "rb"), size, only_mail)


def _entries(dir_fd: int) -> list[tuple[str, int]]:
    """(name, lstat mode) of a folder's entries, sorted by name."""
    found = []
    for name in sorted(os.listdir(dir_fd)):
        try:
            found.append((name, os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode))
        except FileNotFoundError:
            continue  # gone meanwhile
    return found


def _folder(dir_fd: int, path: str) -> Iterator[Found | NotTaken]:
    """A Maildir (with its Maildir++ ``.Folder`` subfolders), or a tree to walk for mail."""
    entries = _entries(dir_fd)
    if any(name in _MAILDIR and (stat.S_ISDIR(m) or stat.S_ISLNK(m)) for name, m in entries):
        yield from _maildir(dir_fd, path, entries)
        for name, mode in entries:
            if name.startswith(".") and name not in (".", "..") and (stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                yield from _sub(dir_fd, name, path, maildir_only=True)
        return
    for name, mode in entries:
        if stat.S_ISDIR(mode) or stat.S_ISLNK(mode):
            yield from _sub(dir_fd, name, path, maildir_only=False)
        else:
            child = f"{path}/{name}"
            opened = _open(name, dir_fd, child)
            yield opened if isinstance(opened, NotTaken) else _file(*opened, child, only_mail=True)


def _sub(dir_fd: int, name: str, path: str, *, maildir_only: bool) -> Iterator[Found | NotTaken]:
    return _within(dir_fd, name, path, _maildir_folder if maildir_only else _folder)


def _within(
    dir_fd: int, name: str, path: str, inside: Callable[[int, str], Iterator[Found | NotTaken]]
) -> Iterator[Found | NotTaken]:
    """``inside`` over the subfolder ``name``, opened without following a link (a link or an
    error: one NotTaken; not a folder: nothing)."""
    child = f"{path}/{name}"
    opened = _open(name, dir_fd, child)
    if isinstance(opened, NotTaken):
        yield opened
        return
    fd, mode = opened
    try:
        if stat.S_ISDIR(mode):
            yield from inside(fd, child)
    finally:
        os.close(fd)


def _maildir_folder(dir_fd: int, path: str) -> Iterator[Found | NotTaken]:
    """A Maildir++ subfolder: taken when it is a Maildir itself."""
    entries = _entries(dir_fd)
    if any(name in _MAILDIR for name, _ in entries):
        yield from _maildir(dir_fd, path, entries)


def _maildir(dir_fd: int, path: str, entries: list[tuple[str, int]]) -> Iterator[Found | NotTaken]:
    """The messages of one Maildir: ``new`` then ``cur``."""
    present = {name for name, _ in entries}
    for sub in _MAILDIR:
        if sub in present:
            yield from _within(dir_fd, sub, path, _messages)


def _messages(dir_fd: int, path: str) -> Iterator[Found | NotTaken]:
    """The files of a Maildir's ``new`` or ``cur``, dot files left out."""
    for name, kind in _entries(dir_fd):
        if name.startswith(".") or stat.S_ISDIR(kind):
            continue
        child = f"{path}/{name}"
        found = _open(name, dir_fd, child)
        yield found if isinstance(found, NotTaken) else _file(*found, child, only_mail=False)
