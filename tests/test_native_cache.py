"""The native-library cache as an attacker or an accident leaves it: planted, loosened, foreign,
truncated and emptied libraries. A library runs only after passing its checks; anything else is
rebuilt (or, in a directory that is not ours, built elsewhere) and never loaded."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from constraintc.native import NativeBuildError, NativeLibrary, build_key, compiler, load_library

CXX = compiler()
pytestmark = pytest.mark.skipif(CXX is None, reason="no C++ compiler")

PROBE = """
extern "C" int probe_abi() { return 7; }
extern "C" int probe_answer() { return 42; }
"""

# what an attacker plants: code that runs as soon as the library is loaded
PLANTED = """
#include <cstdio>
__attribute__((constructor)) static void planted() {
  std::FILE* f = std::fopen("%s", "w");
  if (f) std::fclose(f);
}
extern "C" int probe_abi() { return 7; }
extern "C" int probe_answer() { return 666; }
"""

FLAGS = (("-O0", "-shared", "-fPIC"),)


def _probe(tmp_path: Path, source: str = PROBE, abi: int = 7) -> NativeLibrary:
    src = tmp_path / "probe.cpp"
    src.write_text(source)
    return NativeLibrary("probe", src, FLAGS, abi_symbol="probe_abi", abi=abi)


def _planted(tmp_path: Path, marker: Path) -> bytes:
    src = tmp_path / "planted.cpp"
    src.write_text(PLANTED % marker)
    out = tmp_path / "planted.so"
    subprocess.run([CXX, *FLAGS[0], "-o", str(out), str(src)], check=True)
    return out.read_bytes()


def _forge_record(lib_path: Path, key: str) -> None:
    data = lib_path.read_bytes()
    record = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "key": key, "abi": 7}
    Path(str(lib_path) + ".json").write_text(json.dumps(record))


def _assert_clean_build(lib_path: Path) -> None:
    data = lib_path.read_bytes()
    record = json.loads(Path(str(lib_path) + ".json").read_text())
    assert record["sha256"] == hashlib.sha256(data).hexdigest() and record["size"] == len(data)
    st = lib_path.stat()
    assert st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) == 0o600


def test_fresh_cache_is_private_and_every_library_has_a_digest(tmp_path):
    cache = tmp_path / "cache" / "kernels"
    lib = _probe(tmp_path)
    handle = load_library(lib, cache)
    assert handle.probe_answer() == 42
    for d in (tmp_path / "cache", cache):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    built = cache / lib.file_name(build_key(lib, CXX))
    _assert_clean_build(built)


def _owned_by_someone_else(path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("changing a file's owner needs root")
    os.chown(path, 65534, 65534, follow_symlinks=False)


@pytest.mark.parametrize("attack", ["no_record", "stale_record", "writable_by_others", "other_owner", "symlink"])
def test_a_planted_library_never_runs(tmp_path, attack, capfd):
    cache = tmp_path / "cache"
    lib = _probe(tmp_path)
    assert load_library(lib, cache).probe_answer() == 42  # a good build, with its record
    key = build_key(lib, CXX)
    path = cache / lib.file_name(key)
    marker = tmp_path / "PWNED"
    planted = _planted(tmp_path, marker)
    if attack == "symlink":
        elsewhere = tmp_path / "elsewhere.so"
        elsewhere.write_bytes(planted)
        path.unlink()
        path.symlink_to(elsewhere)
        _forge_record(elsewhere, key)
        shutil.move(str(elsewhere) + ".json", str(path) + ".json")
    else:
        # a new file in its place (keeping the good build's record unless forged below): writing
        # into the loaded library's own inode would change this process's mapping of it, and the
        # dynamic loader reads that mapping again at exit
        path.unlink()
        path.write_bytes(planted)
    if attack == "no_record":
        Path(str(path) + ".json").unlink()
    elif attack == "writable_by_others":
        _forge_record(path, key)
        path.chmod(0o666)
    elif attack == "other_owner":
        _forge_record(path, key)
        _owned_by_someone_else(path)
    handle = load_library(lib, cache)
    assert handle.probe_answer() == 42
    assert not marker.exists(), "the planted library's code ran"
    assert not path.is_symlink()
    _assert_clean_build(path)
    err = capfd.readouterr().err
    assert "deleted and rebuilt" in err and str(path) in err


def test_a_directory_owned_by_someone_else_is_not_used(tmp_path, capfd):
    cache = tmp_path / "shared"
    lib = _probe(tmp_path)
    key = build_key(lib, CXX)
    marker = tmp_path / "PWNED"
    cache.mkdir(mode=0o777)
    path = cache / lib.file_name(key)
    path.write_bytes(_planted(tmp_path, marker))
    _forge_record(path, key)
    for p in (path, Path(str(path) + ".json"), cache):
        _owned_by_someone_else(p)
    before = path.read_bytes()
    handle = load_library(lib, cache)
    assert handle.probe_answer() == 42 and not marker.exists()
    assert path.read_bytes() == before  # their directory is left alone
    assert "not using the kernel cache" in capfd.readouterr().err


def test_a_loosened_cache_directory_is_tightened(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o777)
    assert load_library(_probe(tmp_path), cache).probe_answer() == 42
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700


def test_an_abi_mismatch_is_refused_and_not_left_in_the_cache(tmp_path):
    cache = tmp_path / "cache"
    lib = _probe(tmp_path, abi=8)  # the source says 7
    with pytest.raises(NativeBuildError, match="reports ABI version 7, this constraintc needs 8"):
        load_library(lib, cache)
    assert not list(cache.glob("probe-*.so"))


def test_a_build_failure_is_a_clear_error(tmp_path):
    lib = _probe(tmp_path, source="this is not C++")
    with pytest.raises(NativeBuildError, match="building probe.cpp with .* failed"):
        load_library(lib, tmp_path / "cache")


def test_concurrent_first_uses_build_once(tmp_path):
    cache = tmp_path / "cache"
    lib = _probe(tmp_path)
    code = textwrap.dedent(f"""
        from pathlib import Path
        from constraintc.native import NativeLibrary, load_library
        lib = NativeLibrary("probe", Path({str(lib.source)!r}), {FLAGS!r}, abi_symbol="probe_abi", abi=7)
        print(load_library(lib, Path({str(cache)!r})).probe_answer())
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1] for o in outs]
    assert [o[0].strip() for o in outs] == ["42"] * 3
    assert all("rebuilt" not in o[1] for o in outs)  # no process saw another's half-written build
    assert len(list(cache.glob("probe-*.so"))) == 1


def test_damaged_libraries_are_rebuilt_by_the_next_process(tmp_path):
    """A truncated library killed every later process with SIGBUS at load time; an emptied one
    failed to load and left every later process on a slow path (or without the built-in
    compiler) for good. Here the CPU kernel is truncated and the compiler core emptied."""
    from constraintc.circuit import cpu_kernel
    from constraintc.compile import dnnf
    from constraintc.native import kernels_dir

    assert cpu_kernel.available(), cpu_kernel.unavailable_reason()
    assert dnnf.available()
    cache = tmp_path / "cache"
    (cache / "kernels").mkdir(parents=True, mode=0o700)
    targets = []
    for lib, damage in ((cpu_kernel.native_library(), "truncated"), (dnnf.native_library(), "emptied")):
        name = lib.file_name(build_key(lib, CXX))
        for suffix in ("", ".json"):  # start from this session's good build
            shutil.copy(kernels_dir() / (name + suffix), cache / "kernels" / (name + suffix))
        target = cache / "kernels" / name
        os.truncate(target, target.stat().st_size // 2 if damage == "truncated" else 0)
        targets.append(target)
    code = textwrap.dedent("""
        import torch
        from constraintc.circuit import Circuit, cpu_kernel
        from constraintc.compile import compile_cnf
        from constraintc.logic.cnf import CNF
        assert cpu_kernel.available(), cpu_kernel.unavailable_reason()
        ir = compile_cnf(CNF(2, [(1,), (-2,)]), backend="builtin").ir
        c = Circuit.from_ir(ir, backend="cpu")
        print(round(float(c.log_wmc(torch.tensor([[0.2, 0.7]], dtype=torch.float64)).exp()), 12))
    """)
    env = dict(os.environ, CONSTRAINTC_CACHE=str(cache))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])  # -7 would be SIGBUS
    assert proc.stdout.strip() == "0.06"  # 0.2 * (1 - 0.7), by the built-in compiler and the kernel
    assert proc.stderr.count("deleted and rebuilt") == 2
    for target in targets:
        assert target.stat().st_size > 0
        _assert_clean_build(target)


def test_both_native_libraries_go_through_the_one_helper(monkeypatch):
    """The CPU kernel and the compiler core are described to, and loaded by, constraintc.native."""
    import constraintc.native as native
    from constraintc.circuit import cpu_kernel
    from constraintc.compile import dnnf

    seen = []
    real = native.load_library

    def spy(lib, directory=None):
        seen.append(lib.name)
        return real(lib, directory)

    monkeypatch.setattr(native, "load_library", spy)
    monkeypatch.setattr(cpu_kernel, "_LIB", None)
    monkeypatch.setattr(cpu_kernel, "_ERROR", None)
    monkeypatch.setattr(dnnf, "_LIB", None)
    monkeypatch.setattr(dnnf, "_BUILD_ERROR", None)
    assert cpu_kernel.load() is not None and dnnf._load() is not None
    assert seen == ["circuit_cpu", "libdnnf_core"]
    for module in (cpu_kernel, dnnf):
        text = Path(module.__file__).read_text()
        assert "subprocess" not in text and "CDLL(" not in text, module.__name__
