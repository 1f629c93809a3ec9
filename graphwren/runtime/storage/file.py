"""FileStore: the embedded default store, a directory tree on a local filesystem.

A key 'a/b/c' is the file <root>/a/b/c. Writes go to a temp file in the
destination directory and are published atomically:

- put:            temp file + os.replace(tmp, final)          (readers never see a partial value)
- put_if_absent:  temp file + os.link(tmp, final) + unlink    (atomic and exclusive across processes)

Temp files are named '.gwtmp-...'; no key component may start with that
marker, and list() never returns them. Because a key is a file, a key cannot
also be a "directory" of other keys ('a' and 'a/b' cannot both exist).

Deleting a whole directory of keys (a finished job) renames it to a temp
name, which hides every key at once, and unlinks the files in a background
thread: on filesystems mounted with ``discard`` unlinking a GB of shuffle
files takes seconds, which the caller should not wait for. Python joins
that thread at exit, so the files are gone when the process is.

Interrupted deletions (a process killed before its background unlinks ended)
leave '.gwtmp-trash-*' directories at the root; sweep_trash removes those old
enough that no deleter can still be at work on them (`graphwren clean` calls it).

Files are created 0600 and directories 0700 whatever the umask, since task
data is the user's alone, and a store root owned by another user or writable
by group or others is refused: whoever can write there could plant the
pickles this user's workers load.

Values are not fsync'ed: the store survives process crashes (the page cache
is the kernel's), not power loss. That is the right trade for intermediate
task data on the hot path.

``view`` maps a value of MAP_MIN bytes or more (read-only, populated up
front) instead of copying it out of the page cache: a 32 MB array block's
copy was 12% of a blocked matmul's worker CPU. Safe because no value is
ever changed in place: every write is a new file renamed over the old, and
a mapping keeps the file it mapped (deleted or replaced) until it goes. A
program outside graphwren that truncated a mapped file in place would kill
the reading worker (SIGBUS), which the driver retries as a lost task; one
that rewrote it in place between a tag's check and the decode would get
past the check, which is why only the store's owner may write here (above).
"""
from __future__ import annotations

import concurrent.futures
import itertools
import mmap
import os
import shutil
import stat
import threading
import time

from ...errors import MissingKey, StorageError
from .base import Store

TMP_MARKER = ".gwtmp-"
TRASH = TMP_MARKER + "trash-"
TRASH_AGE = 60.0     # seconds after which a trash directory nobody touches counts as abandoned
FILE_MODE = 0o600    # os.open and mkdir modes: the umask can only narrow them
DIR_MODE = 0o700
_trash = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gw-trash")

_O_WRITE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_O_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
_counter = itertools.count()
MAP_MIN = 1 << 20    # bytes from which ``view`` maps a value rather than reading it (a mapping costs ~10 us)
_MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)   # Linux: map every page now (in the reading thread), not on the decoder's first touch


def _write_all(fd: int, data) -> None:
    view = memoryview(data)
    n = len(view)
    done = os.write(fd, view) if n else 0
    while done < n:
        done += os.write(fd, view[done:])


def _mapped(fd: int, start: int, stop: int) -> memoryview:
    """Bytes [start, stop) of the file, mapped read-only (the mapping lives as long as the view)."""
    base = start - start % mmap.ALLOCATIONGRANULARITY
    whole = mmap.mmap(fd, stop - base, flags=_MAP_FLAGS, prot=mmap.PROT_READ, offset=base)
    return memoryview(whole)[start - base:]


def _read_all(fd: int, offset: int, n: int) -> bytes:
    """n bytes (fewer at end of file) from offset, in as few preads as possible."""
    if n <= 0:
        return b""
    first = os.pread(fd, n, offset)
    if len(first) == n or not first:
        return first
    parts = [first]
    got = len(first)
    while got < n:
        chunk = os.pread(fd, n - got, offset + got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


class FileStore(Store):
    """A store in a local directory: keys are paths under it; put_if_absent by an exclusive link."""

    def __init__(self, root: str, url: str | None = None):
        root = os.path.abspath(os.path.expanduser(root))
        try:
            os.makedirs(root, mode=DIR_MODE, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create store directory {root!r}: {e}") from e
        if not os.path.isdir(root):
            raise StorageError(f"store root {root!r} is not a directory")
        _check_root(root)
        if not os.access(root, os.W_OK | os.X_OK):
            raise StorageError(f"store directory {root!r} is not writable")
        self.root = root
        self.url = url or f"file://{root}"
        self._dirs: set[str] = {root}  # directories known to exist (saves a mkdir per put)
        self._lock = threading.Lock()
        self.closed = False

    # -- key -> path ---------------------------------------------------------

    def _path(self, key: str) -> str:
        if not key or key[0] == "/" or key[-1] == "/" or "//" in key or "\0" in key:
            raise ValueError(f"invalid storage key {key!r}")
        if "." in key:
            for part in key.split("/"):
                if part in (".", "..") or part.startswith(TMP_MARKER):
                    raise ValueError(f"invalid storage key {key!r}")
        return f"{self.root}/{key}"

    def _tmp_in(self, directory: str) -> tuple[str, int]:
        """Create and open a fresh temp file in directory (creating it if needed)."""
        if directory not in self._dirs:
            self._makedirs(directory)
        name = f"{directory}/{TMP_MARKER}{os.getpid()}-{threading.get_ident()}-{next(_counter)}"
        try:
            return name, os.open(name, _O_WRITE, FILE_MODE)
        except FileNotFoundError:
            # The directory went away (delete() prunes empty directories): recreate once.
            self._dirs.discard(directory)
            self._makedirs(directory)
            return name, os.open(name, _O_WRITE, FILE_MODE)

    def _makedirs(self, directory: str) -> None:
        # Not os.makedirs: it gives its mode to the last directory only, the rest get 0777 - umask.
        try:
            try:
                os.mkdir(directory, DIR_MODE)
            except FileNotFoundError:
                parent = directory.rpartition("/")[0]
                if len(parent) <= len(self.root):
                    raise StorageError(f"store root {self.root!r} is gone") from None
                self._makedirs(parent)
                os.mkdir(directory, DIR_MODE)
        except FileExistsError as e:
            if not os.path.isdir(directory):
                raise self._in_the_way(directory) from e
        except NotADirectoryError as e:
            raise self._in_the_way(directory) from e
        self._dirs.add(directory)

    @staticmethod
    def _in_the_way(directory: str) -> StorageError:
        return StorageError(f"cannot create {directory!r}: a key is in the way (a key cannot be both "
                            f"a value and a prefix of other keys in a file store)")

    def _write_tmp(self, path: str, data: bytes) -> str:
        directory = path.rpartition("/")[0]
        tmp, fd = self._tmp_in(directory)
        try:
            _write_all(fd, data)
        except BaseException:
            os.close(fd)
            _unlink_quiet(tmp)
            raise
        os.close(fd)
        return tmp

    # -- Store ---------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._write_tmp(path, data)
        try:
            os.replace(tmp, path)
        except OSError as e:
            _unlink_quiet(tmp)
            if isinstance(e, IsADirectoryError):
                raise StorageError(f"cannot put {key!r}: it is a prefix of other keys") from e
            raise

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        tmp = self._write_tmp(path, data)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            _unlink_quiet(tmp)

    def get(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        return self._read(key, start, end, False)

    def view(self, key: str, start: int | None = None, end: int | None = None):
        return self._read(key, start, end, True)

    def _read(self, key: str, start: int | None, end: int | None, mapped: bool):
        if start is not None and end is not None and end <= start:
            return b""  # empty range: no I/O (same on every store)
        if (start is not None and start < 0) or (end is not None and end < 0):
            raise ValueError(f"negative byte range [{start}, {end}) for {key!r}")
        path = self._path(key)
        try:
            fd = os.open(path, _O_READ)
        except (FileNotFoundError, NotADirectoryError):
            raise MissingKey(f"missing key {key!r} in {self.url}") from None
        try:
            if mapped:
                size = os.fstat(fd).st_size
                stop = size if end is None else min(end, size)
                first = min(start or 0, stop)
                if stop - first >= MAP_MIN:
                    return _mapped(fd, first, stop)
            if start is None and end is None:
                with os.fdopen(fd, "rb", buffering=0, closefd=False) as f:
                    return f.readall()
            start = start or 0
            if end is None:
                end = os.fstat(fd).st_size
            return _read_all(fd, start, end - start)
        except IsADirectoryError:
            raise MissingKey(f"missing key {key!r} in {self.url}") from None
        finally:
            os.close(fd)

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))

    def size(self, key: str) -> int:
        path = self._path(key)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise MissingKey(f"missing key {key!r} in {self.url}") from None
        if not _isreg(st):
            raise MissingKey(f"missing key {key!r} in {self.url}")
        return st.st_size

    def list(self, prefix: str) -> list[str]:
        return sorted(self._iter(prefix))

    def _iter(self, prefix: str):
        dir_part, _, name_part = prefix.rpartition("/")
        if dir_part and (
            dir_part.startswith("/") or "//" in dir_part or "\0" in dir_part
            or any(p in (".", "..") for p in dir_part.split("/"))
        ):
            return  # no key can live there (and never look outside the root)
        base = f"{self.root}/{dir_part}" if dir_part else self.root
        rel = f"{dir_part}/" if dir_part else ""
        try:
            it = os.scandir(base)
        except (FileNotFoundError, NotADirectoryError):
            return
        stack = []
        with it:
            for entry in it:
                name = entry.name
                if not name.startswith(name_part) or name.startswith(TMP_MARKER):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, f"{rel}{name}/"))
                elif entry.is_file():
                    yield rel + name
        while stack:
            path, rel = stack.pop()
            try:
                it = os.scandir(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            with it:
                for entry in it:
                    name = entry.name
                    if name.startswith(TMP_MARKER):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((entry.path, f"{rel}{name}/"))
                    elif entry.is_file():
                        yield rel + name

    def delete(self, prefix: str) -> int:
        if prefix.endswith("/") and prefix.count("/") == 1 and not prefix.startswith(TMP_MARKER):
            count = self._delete_dir(prefix[:-1])
            if count is not None:
                return count
        count = 0
        dirs = set()
        for key in self._iter(prefix):
            try:
                os.unlink(f"{self.root}/{key}")
                count += 1
            except FileNotFoundError:
                continue
            d = key.rpartition("/")[0]
            while d and d not in dirs:
                dirs.add(d)
                d = d.rpartition("/")[0]
        # Prune directories left empty, deepest first (best effort: another writer may race in).
        for d in sorted(dirs, key=lambda s: s.count("/"), reverse=True):
            try:
                os.rmdir(f"{self.root}/{d}")
            except OSError:
                pass
        if dirs:
            with self._lock:
                self._dirs = {self.root}
        return count

    def _delete_dir(self, name: str) -> int | None:
        """Hide a top-level directory of keys at once, remove its files in the background."""
        count = sum(1 for _ in self._iter(name + "/"))
        trash = f"{self.root}/{TRASH}{name}-{os.getpid()}-{next(_counter)}"
        try:
            os.rename(f"{self.root}/{name}", trash)
        except OSError:
            return None
        with self._lock:
            self._dirs = {self.root}
        _trash.submit(shutil.rmtree, trash, True)
        return count

    def sweep_trash(self, older_than: float = TRASH_AGE, now: float | None = None) -> list[tuple[str, float]]:
        """Remove interrupted deletions untouched for older_than seconds: [(name, age)]."""
        now = time.time() if now is None else now
        swept = []
        with os.scandir(self.root) as it:
            entries = [e for e in it if e.name.startswith(TRASH) and e.is_dir(follow_symlinks=False)]
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # its deleter just finished
            # rename sets ctime, unlinks inside set mtime: a deleter at work keeps it young. Two
            # rmtrees of one tree are harmless (both ignore errors); waiting only saves the work.
            age = now - max(st.st_mtime, st.st_ctime)
            if age > older_than:
                shutil.rmtree(entry.path, ignore_errors=True)
                swept.append((entry.name, age))
        return swept

    def close(self) -> None:
        self.closed = True


def _check_root(root: str) -> None:
    """Refuse a root another user owns or others may write: they could plant our pickles."""
    st = os.stat(root)
    uid = os.geteuid()
    if st.st_uid != uid:
        raise StorageError(f"store root {root!r} is owned by {_user(st.st_uid)}, not by you, "
                           f"{_user(uid)}: refusing to use it (its owner could plant data "
                           f"your tasks would load); choose a directory of your own")
    writers = [who for bit, who in ((stat.S_IWGRP, "group"), (stat.S_IWOTH, "others")) if st.st_mode & bit]
    if writers:
        raise StorageError(f"store root {root!r} has mode {stat.S_IMODE(st.st_mode):04o}, writable by "
                           f"{' and '.join(writers)}: refusing to use it (they could plant data your "
                           f"tasks would load); run chmod go-w {root!r} or choose another directory")


def _user(uid: int) -> str:
    try:
        import pwd

        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _isreg(st) -> bool:
    return stat.S_ISREG(st.st_mode)


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
