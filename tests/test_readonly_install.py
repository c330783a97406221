"""A read-only install: the predict CLI, the server and the Lambda handler as user nobody.

Each test runs on a copy of scratchnet/ and server/ (and of the tests it runs) made read-only
with chmod -R a-w, as user nobody (setpriv), with HOME=/nonexistent and an empty environment:
the AWS Lambda situation. This machine's Python lives under /root, which nobody may not search,
so the processes keep one capability, CAP_DAC_READ_SEARCH: they may read every file, and write
only where nobody may write.

Two cases:
- only a temporary folder is writable (TMPDIR, owned by nobody): Numba's cache goes there;
- nothing is writable: TMPDIR is read-only, and /tmp and /var/tmp are remounted read-only in a
  private mount namespace (unshare), since Python's tempfile falls back to them when TMPDIR is
  not writable. scratchnet then compiles its kernels at every start, with one warning line.

The tests need root (to become nobody); they skip elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import free_port, stop
from tests.server.conftest import draw_digit

REPO = Path(__file__).resolve().parents[1]
NOBODY = 65534
AS_NOBODY = [
    "setpriv",
    f"--reuid={NOBODY}",
    f"--regid={NOBODY}",
    "--clear-groups",
    "--inh-caps=+dac_read_search",
    "--ambient-caps=+dac_read_search",
]
# Run inside a private mount namespace: /tmp and /var/tmp become read-only for this process
# tree only, and the command then runs as nobody.
READ_ONLY_TMP = [
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    'for d in /tmp /var/tmp; do mount --bind "$d" "$d" && mount -o remount,bind,ro "$d" '
    '|| exit 97; done; exec "$@"',
    "sh",
]
COLD_START_SECONDS = 120  # compiling every kernel takes ~6 s alone, more on a loaded machine


def _works(command: list[str]) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _skip_unless_nobody_is_possible() -> None:
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("needs Linux and root, to run as user nobody")
    if shutil.which("setpriv") is None or not _works([*AS_NOBODY, sys.executable, "-c", ""]):
        pytest.skip("setpriv cannot run Python as nobody here")


def _make_read_only(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)


def _make_writable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A read-only copy of the package, the server, the tests that run here, and an image."""
    _skip_unless_nobody_is_possible()
    root = tmp_path_factory.mktemp("readonly-install")
    no_caches = shutil.ignore_patterns("__pycache__", ".pytest_cache")
    for folder in ("scratchnet", "server"):
        shutil.copytree(REPO / folder, root / folder, ignore=no_caches)
    (root / "tests" / "server").mkdir(parents=True)
    for name in ("__init__.py", "conftest.py", "processes.py"):
        shutil.copy(REPO / "tests" / name, root / "tests" / name)
    shutil.copytree(REPO / "tests" / "server", root / "tests" / "server", dirs_exist_ok=True)
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    (root / "seven.png").write_bytes(draw_digit(7))
    _make_read_only(root)
    yield root
    _make_writable(root)  # so that pytest can delete it


def _environment(install: Path, tmpdir: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": "/nonexistent",
        "PYTHONPATH": str(install),
        "TMPDIR": str(tmpdir),
        "PYTHONDONTWRITEBYTECODE": "1",
        **extra,
    }


@pytest.fixture(scope="module")
def writable_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one folder nobody may write to (shared by this module's tests: a warm cache)."""
    tmpdir = tmp_path_factory.mktemp("nobody-tmp")
    os.chown(tmpdir, NOBODY, NOBODY)
    return tmpdir


@pytest.fixture
def nothing_writable(tmp_path: Path) -> list[str]:
    """The command prefix that leaves nothing writable: read-only TMPDIR, /tmp and /var/tmp."""
    if shutil.which("unshare") is None or not _works([*READ_ONLY_TMP, "true"]):
        pytest.skip("cannot remount /tmp read-only in a private mount namespace here")
    read_only = tmp_path / "read-only-tmp"
    read_only.mkdir()
    read_only.chmod(0o555)
    return [*READ_ONLY_TMP, *AS_NOBODY]


def run_as_nobody(
    install: Path, tmpdir: Path, args: list[str], prefix: list[str] = AS_NOBODY, **env: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*prefix, sys.executable, *args],
        cwd=install,
        env=_environment(install, tmpdir, **env),
        capture_output=True,
        text=True,
        timeout=COLD_START_SECONDS,
    )


def predict_seven(install: Path, tmpdir: Path, prefix: list[str] = AS_NOBODY) -> str:
    """`python -m scratchnet.predict seven.png --json`; returns its stderr."""
    result = run_as_nobody(
        install, tmpdir, ["-m", "scratchnet.predict", "seven.png", "--json"], prefix
    )
    assert result.returncode == 0, result.stderr
    [prediction] = json.loads(result.stdout)["results"]
    assert prediction["prediction"] == 7, prediction
    return result.stderr


def multipart(png: bytes) -> tuple[bytes, str]:
    boundary = "scratchnetboundary"
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="seven.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    )
    body = head.encode() + png + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def serve_health_and_predict(install: Path, tmpdir: Path, prefix: list[str] = AS_NOBODY) -> None:
    """Start `python -m server` as nobody, then ask /health and one /predict."""
    port = free_port()
    command = [sys.executable, "-m", "server", "--port", str(port), "--no-access-log"]
    process = subprocess.Popen(
        [*prefix, *command],
        cwd=install,
        env=_environment(install, tmpdir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + COLD_START_SECONDS
        while True:
            assert process.poll() is None, process.stderr.read()
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
                    health = json.load(response)
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not answer /health"
                time.sleep(0.2)
        assert health["status"] == "healthy", health
        body, content_type = multipart((install / "seven.png").read_bytes())
        request = urllib.request.Request(
            f"{base}/predict?model_type=cnn", body, {"Content-Type": content_type}
        )
        with urllib.request.urlopen(request, timeout=COLD_START_SECONDS) as response:
            assert response.status == 200
            prediction = json.load(response)
        assert len(prediction["probabilities"]) == 10
    finally:
        stop(process)


def test_predict_with_only_a_temp_folder_writable(install: Path, writable_tmp: Path) -> None:
    assert predict_seven(install, writable_tmp) == ""
    cache = writable_tmp / f"scratchnet-numba-{NOBODY}"
    assert list(cache.rglob("*.nbi")), "Numba's cache was not written to the temp folder"
    assert (cache.stat().st_mode & 0o777) == 0o700  # others may not plant compiled code there


def cache_dir_after_import(install: Path, tmpdir: Path, code: str = "", **env: str) -> str:
    """NUMBA_CACHE_DIR after `code` and `import scratchnet` (decorates kernels, compiles none)."""
    program = f"{code}\nimport os, scratchnet\nprint(os.environ.get('NUMBA_CACHE_DIR'))"
    result = run_as_nobody(install, tmpdir, ["-c", program], **env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return result.stdout.strip()


def test_a_writable_user_cache_folder_comes_first(
    install: Path, writable_tmp: Path, tmp_path: Path
) -> None:
    xdg = tmp_path / "xdg-cache"
    xdg.mkdir()
    os.chown(xdg, NOBODY, NOBODY)
    cache_dir = cache_dir_after_import(install, writable_tmp, XDG_CACHE_HOME=str(xdg))
    assert cache_dir == str(xdg / "scratchnet" / "numba")


def test_numba_imported_first_still_sees_the_cache_folder(
    install: Path, writable_tmp: Path
) -> None:
    """Numba reads NUMBA_CACHE_DIR when it is imported: startup makes it read it again."""
    code = "import numba"
    cache_dir = cache_dir_after_import(install, writable_tmp, code)
    assert cache_dir == str(writable_tmp / f"scratchnet-numba-{NOBODY}")


def test_someone_elses_temp_folder_is_not_used(install: Path, tmp_path: Path) -> None:
    """A folder under our name that others can write to could hold planted compiled code."""
    tmpdir = tmp_path / "shared-tmp"
    tmpdir.mkdir()
    tmpdir.chmod(0o1777)
    planted = tmpdir / f"scratchnet-numba-{NOBODY}"
    planted.mkdir()
    planted.chmod(0o777)
    cache_dir = cache_dir_after_import(install, tmpdir)
    assert cache_dir.startswith(str(tmpdir / "scratchnet-numba-")) and cache_dir != str(planted)
    assert not Path(cache_dir).exists()  # a fresh folder for one process, removed at exit


def test_server_with_only_a_temp_folder_writable(install: Path, writable_tmp: Path) -> None:
    serve_health_and_predict(install, writable_tmp)


def test_lambda_handler_with_only_a_temp_folder_writable(install: Path, writable_tmp: Path) -> None:
    """tests/server/test_server_lambda.py, run by pytest as nobody on the read-only copy."""
    test_file = "tests/server/test_server_lambda.py"
    args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", test_file]
    result = run_as_nobody(install, writable_tmp, args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout


def test_nothing_is_writable_in_these_conditions(
    install: Path, tmp_path: Path, nothing_writable: list[str]
) -> None:
    """The conditions below are what they claim: Python finds no temporary folder at all."""
    code = "import tempfile; tempfile.gettempdir()"
    result = run_as_nobody(install, tmp_path / "read-only-tmp", ["-c", code], nothing_writable)
    assert "No usable temporary directory found" in result.stderr, result.stderr


def test_predict_with_nothing_writable(
    install: Path, tmp_path: Path, nothing_writable: list[str]
) -> None:
    stderr = predict_seven(install, tmp_path / "read-only-tmp", nothing_writable)
    [warning] = stderr.splitlines()
    assert "NUMBA_CACHE_DIR" in warning


def test_server_with_nothing_writable(
    install: Path, tmp_path: Path, nothing_writable: list[str]
) -> None:
    serve_health_and_predict(install, tmp_path / "read-only-tmp", nothing_writable)
