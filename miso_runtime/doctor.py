"""``miso-runtime doctor``: what this machine lacks, in words a person can act on."""

from __future__ import annotations

import ctypes.util
import shutil
import subprocess
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    advice: str


def _command(name: str, purpose: str, install: str) -> Check:
    found = shutil.which(name)
    return Check(name, found is not None, f"{purpose}. Install it: {install}")


#: Oldest Node.js with what the Electron bridge uses (fetch, web streams, node --test).
NODE_MIN_MAJOR = 18


def _node() -> Check:
    install = "apt-get install nodejs (Debian 12 has 18) or brew install node"
    found = shutil.which("node")
    if found is None:
        return Check("node", False, f"Node.js runs the Electron bridge and its tests. Install it: {install}")
    try:
        version = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
        major = int(version.lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return Check("node", False, f"{found} did not say its version; reinstall it: {install}")
    advice = f"this is Node.js {version}; the bridge needs {NODE_MIN_MAJOR}+"
    return Check(f"node>={NODE_MIN_MAJOR}", major >= NODE_MIN_MAJOR, advice)


def _chromium() -> Check:
    """Debian's Chromium: Playwright drives it in the web pages' tests and never downloads a browser."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return Check(
        "chromium",
        found is not None,
        "Chromium runs the browser tests of the web pages (tests/test_web_pages.py). Install it: "
        "apt-get install chromium (Debian; `make test` does this itself when run as root), "
        "elsewhere, put a Chromium binary named chromium on PATH",
    )


def checks() -> list[Check]:
    python_ok = sys.version_info >= (3, 11)
    compilers = [c for c in ("cc", "gcc", "clang") if shutil.which(c)]
    return [
        Check("python>=3.11", python_ok, f"this is Python {sys.version.split()[0]}; install Python 3.11 or newer"),
        _command(
            "git",
            "git is needed for coding-agent workspaces",
            "apt-get install git (Debian/Ubuntu) or brew install git",
        ),
        _command(
            "tmux", "tmux runs coding agents in terminals", "apt-get install tmux (Debian/Ubuntu) or brew install tmux"
        ),
        _command(
            "openssl",
            "openssl makes the test certificate of the dashboard's TLS tests (tests/test_schmux_login.py)",
            "apt-get install openssl (Debian; `make test` does this itself when run as root) or brew install openssl",
        ),
        _command(
            "tesseract",
            "Tesseract reads the text of screenshots (/v1/settings/screenshot/search-text) and its tests",
            "apt-get install tesseract-ocr (Debian; `make test` does this itself when run as root) "
            "or brew install tesseract",
        ),
        _command(
            "Xvfb",
            "Xvfb is the virtual display of the screenshot tests (tests/test_screenshots.py)",
            "apt-get install xvfb (Debian; `make test` does this itself when run as root)",
        ),
        Check(
            "C compiler",
            bool(compilers),
            "a C compiler builds llama-cpp-python; install it: "
            "apt-get install build-essential cmake, or xcode-select --install",
        ),
        _command("cmake", "cmake builds llama-cpp-python", "apt-get install cmake or brew install cmake"),
        Check(
            "OpenMP runtime",
            any(ctypes.util.find_library(name) for name in ("gomp", "omp")),
            "LightGBM, which runs YASA's sleep-staging classifier, needs OpenMP; install it: "
            "apt-get install libgomp1, or brew install libomp",
        ),
        _node(),
        _chromium(),
    ]


def run_doctor(python_only: bool = False) -> int:
    """Print one line per check; exit 1 when something is missing.

    ``python_only`` checks just the interpreter, quietly unless it is too old (the Makefile
    runs that before it creates the virtual environment).
    """
    if python_only:
        check = checks()[0]
        if not check.ok:
            sys.stdout.write(f"MISSING  {check.name}: {check.advice}\n")
        return 0 if check.ok else 1
    missing = 0
    for check in checks():
        if check.ok:
            sys.stdout.write(f"ok       {check.name}\n")
        else:
            missing += 1
            sys.stdout.write(f"MISSING  {check.name}: {check.advice}\n")
    sys.stdout.write("everything is in place\n" if not missing else f"{missing} thing(s) missing\n")
    return 1 if missing else 0


if __name__ == "__main__":
    # Runnable as a plain script (``python miso_runtime/doctor.py``) before anything is installed.
    raise SystemExit(run_doctor(python_only="--python-only" in sys.argv))
