"""Native libraries built just in time and cached per user: one build helper, one trust check.

Both C++ cores (the fused CPU kernel ``kernels/circuit_cpu.cpp`` and the built-in compiler
``constraintc/compile/dnnf_core.cpp``) are plain C-ABI shared libraries built with the system
C++ compiler on first use and loaded with ctypes. Loading a shared library runs its code, so a
cached library is loaded only when all of these hold, checked on an open descriptor (no
check-then-use race on the path):

* the cache directory ``$CONSTRAINTC_CACHE/kernels`` is a real directory owned by the current
  user (it is created 0700, and tightened to 0700 when looser); when it belongs to someone
  else, the library is built in a private temporary directory instead and the cache is unused;
* the library and its record (``NAME-KEY.so.json`` beside it) are regular files owned by the
  current user and writable by nobody else;
* the SHA-256 of the library's bytes equals the digest in its record, and the record names the
  same build key and ABI version;
* after loading, the library's ABI function returns the version the Python side expects.

A library that fails any of these is deleted and rebuilt (a truncated or emptied file, a
library planted under the expected name, a stale record), never loaded. The digest is read
from the very descriptor that is then loaded (``/proc/self/fd/N``), so the bytes checked are
the bytes mapped. Builds of one library are serialised by a lock file, so concurrent first uses
build it once.

>>> lib = NativeLibrary("example", Path("example.cpp"), (("-O2",),), abi_symbol="example_abi", abi=1)
>>> lib.file_name("0123456789abcdef")
'example-0123456789abcdef.so'
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from constraintc.errors import ConstraintcError

RECORD_SUFFIX = ".json"
KEEP_BUILDS = 3  # builds kept per library family (each source change builds a new one)


class NativeBuildError(ConstraintcError):
    """A native library could not be built or failed its checks after a rebuild."""


@dataclass(frozen=True)
class NativeLibrary:
    """A C++ source built into ``NAME-KEY.so``: ``attempts`` are compiler flag sets tried in
    order (the first that compiles wins), ``abi_symbol`` an exported ``int f(void)`` that must
    return ``abi``. ``host_specific`` puts the CPU's feature flags into the key (for
    ``-march=native`` builds)."""

    name: str
    source: Path
    attempts: tuple[tuple[str, ...], ...]
    abi_symbol: str
    abi: int
    host_specific: bool = False

    def file_name(self, key: str) -> str:
        return f"{self.name}-{key}.so"


def compiler() -> str | None:
    """The C++ compiler: ``$CXX``, else ``g++``, ``c++`` or ``clang++`` on PATH."""
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor()


def build_key(lib: NativeLibrary, cxx: str) -> str:
    """Digest of everything that determines the built library's bytes."""
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    parts = [
        lib.source.read_bytes(), cxx.encode(), version.encode(), repr(lib.attempts).encode(),
        platform.machine().encode(), platform.system().encode(), str(lib.abi).encode(),
        _cpu_flags().encode() if lib.host_specific else b"",
    ]
    digest = hashlib.sha256()
    for p in parts:
        digest.update(len(p).to_bytes(8, "little") + p)
    return digest.hexdigest()[:16]


def kernels_dir() -> Path:
    from constraintc.resources import cache_dir

    return cache_dir() / "kernels"


def make_private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents with mode 0700 (an existing one is left as it is)."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            pass
    return path


class Untrusted(Exception):
    """A cache file or directory that must not be used (the message says why)."""


def _check_owned(st: os.stat_result, what: str, kind: str) -> None:
    uid = os.geteuid()
    if kind == "dir" and not stat.S_ISDIR(st.st_mode):
        raise Untrusted(f"{what} is not a directory")
    if kind == "file" and not stat.S_ISREG(st.st_mode):
        raise Untrusted(f"{what} is not a regular file")
    if st.st_uid != uid:
        raise Untrusted(f"{what} is owned by uid {st.st_uid}, not by the current user (uid {uid})")
    if kind == "file" and st.st_mode & 0o022:
        raise Untrusted(f"{what} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})")


def open_private_dir(path: Path) -> int:
    """A descriptor of directory ``path`` (created 0700 when missing), owned by the current user
    and tightened to 0700; raises :class:`Untrusted` when it is not ours (or is a symlink)."""
    make_private_dir(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise Untrusted(f"{path}: cannot open it as a directory ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        _check_owned(st, str(path), "dir")
        if stat.S_IMODE(st.st_mode) & 0o077:
            os.fchmod(fd, 0o700)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_trusted(dir_fd: int, name: str, shown: Path) -> tuple[int, bytes]:
    """``(fd, bytes)`` of file ``name`` in ``dir_fd`` after the ownership/mode checks."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise Untrusted(f"{shown}: cannot open it ({exc.strerror})") from None
    try:
        _check_owned(os.fstat(fd), str(shown), "file")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return fd, b"".join(chunks)
    except BaseException:
        os.close(fd)
        raise


def _verify(dir_fd: int, lib: NativeLibrary, key: str, where: Path) -> int:
    """An open descriptor of the cached library once every check holds; raises
    ``FileNotFoundError`` when it is not there and :class:`Untrusted` when it fails a check."""
    name = lib.file_name(key)
    fd, data = _read_trusted(dir_fd, name, where / name)
    try:
        try:
            rfd, raw = _read_trusted(dir_fd, name + RECORD_SUFFIX, where / (name + RECORD_SUFFIX))
        except FileNotFoundError:
            raise Untrusted(f"{where / name}: no digest record beside it") from None
        os.close(rfd)
        try:
            record = json.loads(raw)
            expected = (record["sha256"], record["size"], record["key"], record["abi"])
        except (ValueError, KeyError, TypeError):
            raise Untrusted(f"{where / name}{RECORD_SUFFIX}: not a valid digest record") from None
        actual = (hashlib.sha256(data).hexdigest(), len(data), key, lib.abi)
        if expected != actual:
            raise Untrusted(
                f"{where / name}: does not match its digest record "
                f"({len(data)} bytes, sha256 {actual[0][:12]}..., record: {expected[1]} bytes, "
                f"sha256 {str(expected[0])[:12]}...; key {expected[2]}, ABI {expected[3]})"
            )
        return fd
    except BaseException:
        os.close(fd)
        raise


def _write_private(dir_fd: int, name: str, data: bytes) -> None:
    """Write ``name`` in ``dir_fd`` atomically (temporary file, fsync, rename), mode 0600."""
    tmp = f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def _remove(dir_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def _compile(lib: NativeLibrary, cxx: str) -> bytes:
    """Build in a private temporary directory; returns the library's bytes."""
    errors = []
    with tempfile.TemporaryDirectory(prefix="constraintc-build-") as tmp:
        out = Path(tmp) / "lib.so"
        for flags in lib.attempts:
            cmd = [cxx, *flags, "-o", str(out), str(lib.source)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode == 0:
                return out.read_bytes()
            errors.append(f"{' '.join(cmd)}:\n{proc.stderr.strip()[-1500:]}")
    raise NativeBuildError(f"error: building {lib.source.name} with {cxx} failed:\n" + "\n".join(errors))


def _install(dir_fd: int, lib: NativeLibrary, key: str, data: bytes) -> None:
    name = lib.file_name(key)
    record = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "key": key,
              "abi": lib.abi, "source": lib.source.name}
    # the library first, then its record: a reader that sees the record sees the library too
    _write_private(dir_fd, name, data)
    _write_private(dir_fd, name + RECORD_SUFFIX, json.dumps(record, sort_keys=True).encode())


_LOADED_FDS: list[int] = []


def _dlopen(fd: int, path: Path) -> ctypes.CDLL:
    """Load through the descriptor, so the bytes mapped are the bytes whose digest was checked.

    The descriptor stays open for the life of the process: the dynamic loader knows a library
    by the name it was opened with, and a reused ``/proc/self/fd/N`` would return the library
    loaded earlier under that name."""
    proc_path = f"/proc/self/fd/{fd}"
    if not os.path.exists(proc_path):
        return ctypes.CDLL(str(path))
    keep = os.dup(fd)
    try:
        handle = ctypes.CDLL(f"/proc/self/fd/{keep}")
    except OSError:
        os.close(keep)
        raise
    _LOADED_FDS.append(keep)
    return handle


def _check_abi(handle: ctypes.CDLL, lib: NativeLibrary, path: Path) -> None:
    try:
        fn = getattr(handle, lib.abi_symbol)
    except AttributeError:
        raise NativeBuildError(f"error: {path}: exports no {lib.abi_symbol}(); not a {lib.name} library") from None
    fn.restype = ctypes.c_int
    fn.argtypes = []
    got = fn()
    if got != lib.abi:
        raise NativeBuildError(f"error: {path}: reports ABI version {got}, this constraintc needs {lib.abi}")


_WARNED: set[str] = set()


def _warn(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        print(f"constraintc: warning: {message}", file=sys.stderr, flush=True)


_TEMP_DIRS: list[tempfile.TemporaryDirectory] = []
_LOCK = threading.Lock()


def load_library(lib: NativeLibrary, directory: Path | None = None) -> ctypes.CDLL:
    """The built and checked library (see the module docstring); raises
    :class:`NativeBuildError` when it cannot be built or keeps failing its checks."""
    cxx = compiler()
    if cxx is None:
        raise NativeBuildError(f"error: no C++ compiler found to build {lib.source.name} (install g++ or set CXX)")
    directory = Path(directory) if directory is not None else kernels_dir()
    with _LOCK:
        key = build_key(lib, cxx)
        try:
            dir_fd = open_private_dir(directory)
        except (Untrusted, OSError) as exc:
            _warn(f"not using the kernel cache: {exc}; building {lib.name} in a private temporary directory")
            tmp = tempfile.TemporaryDirectory(prefix="constraintc-kernels-")
            _TEMP_DIRS.append(tmp)  # kept until exit: the loaded library maps its file
            directory = Path(tmp.name)
            dir_fd = open_private_dir(directory)
        try:
            return _load_in(dir_fd, directory, lib, key, cxx)
        finally:
            os.close(dir_fd)


def _load_in(dir_fd: int, directory: Path, lib: NativeLibrary, key: str, cxx: str) -> ctypes.CDLL:
    name = lib.file_name(key)
    path = directory / name
    try:
        lock_fd = os.open(f".{name}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        raise NativeBuildError(f"error: {directory}: cannot create a lock file there ({exc.strerror})") from None
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # one builder per library; readers wait for it
        for attempt in (0, 1):
            try:
                fd = _verify(dir_fd, lib, key, directory)
            except FileNotFoundError:
                fd = None
            except Untrusted as why:
                _warn(f"{why}: deleted and rebuilt")
                _remove(dir_fd, name)
                _remove(dir_fd, name + RECORD_SUFFIX)
                fd = None
            if fd is None:
                _install(dir_fd, lib, key, _compile(lib, cxx))
                prune_builds(path)
                try:
                    fd = _verify(dir_fd, lib, key, directory)
                except Untrusted as why:
                    raise NativeBuildError(f"error: the library just built fails its checks: {why}") from None
            try:
                handle = _dlopen(fd, path)
            except OSError as exc:
                if attempt:
                    raise NativeBuildError(f"error: {path}: cannot be loaded ({exc})") from None
                _remove(dir_fd, name)
                _remove(dir_fd, name + RECORD_SUFFIX)
                continue
            finally:
                os.close(fd)
            try:
                _check_abi(handle, lib, path)
            except NativeBuildError:
                _remove(dir_fd, name)
                _remove(dir_fd, name + RECORD_SUFFIX)
                if attempt:
                    raise
                continue
            return handle
        raise NativeBuildError(f"error: {path}: still fails its checks after a rebuild")
    except OSError as exc:
        raise NativeBuildError(f"error: {path}: cannot be built or replaced in the cache ({exc})") from None
    finally:
        os.close(lock_fd)


def prune_builds(built: Path, keep: int = KEEP_BUILDS) -> list[Path]:
    """Delete older builds beside ``built`` (same ``name-<key>.so`` family) and their digest
    records, keeping the ``keep`` most recently modified, ``built`` always among them; returns
    the libraries deleted.

    Every change of a C++ core's source (or compiler, or flags) builds a new library under a new
    key; without pruning they accumulate in the cache. A library still loaded by a running
    process is unaffected by the deletion (its mapping keeps the file alive).
    """
    family = built.name.rsplit("-", 1)[0]
    siblings = [p for p in built.parent.glob(f"{family}-*{built.suffix}") if p != built and p.is_file()]
    siblings.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    removed = []
    for old in siblings[max(keep - 1, 0):]:
        try:
            old.unlink()
            removed.append(old)
        except OSError:
            continue  # another process removed it first, or it is not ours to remove
        for extra in (old.with_name(old.name + RECORD_SUFFIX), old.with_name(f".{old.name}.lock")):
            try:
                extra.unlink()
            except OSError:
                pass
    return removed
