"""The software a result was produced with: key versions, the lock's hash, and whether they agree.

Every MLflow run carries these as `pkd.env.*` tags and the report shows them, so two runs
that differ in a library release are told apart at a glance. requirements.lock (`make
lock`) pins every package `make setup` installs; `locked` says whether this interpreter's
packages are exactly those.
"""
from __future__ import annotations

import hashlib
import platform
import re
from importlib import metadata
from pathlib import Path

KEY_PACKAGES = ("torch", "transformers", "datasets", "dvc", "mlflow", "onnxruntime")
LOCK_FILE = "requirements.lock"


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_versions() -> dict[str, str]:
    """{normalised distribution name: version} of this interpreter's packages."""
    return {_normal(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}


def locked_versions(lock: Path) -> dict[str, str]:
    """{normalised name: version} of the lock's pins that apply to this interpreter and platform."""
    from packaging.requirements import Requirement

    pins = {}
    for line in lock.read_text().splitlines():
        if not line[:1].isalnum():
            continue  # comments and uv's "# via" lines
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate():
            (spec,) = req.specifier
            pins[_normal(req.name)] = spec.version
    return pins


def lock_mismatches(lock: Path, installed: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """{name: (locked, installed)} for each installed package whose version is not the lock's pin.
    A pin with nothing installed is no mismatch: the CUDA libraries a GPU build of torch needs
    are pinned, and a CPU build never installs them. A local version label (torch's "+cpu",
    "+cu128") names the build, not the release: it matches."""
    installed = installed_versions() if installed is None else installed
    return {name: (version, installed[name]) for name, version in locked_versions(lock).items()
            if name in installed and installed[name].split("+")[0] != version}


def environment(root: Path) -> dict[str, str]:
    """Python and the key packages' versions; `lock`: the sha256 (12 hex) of root/requirements.lock
    ("none" without one); `locked`: "yes" when every applicable pin is installed, else "no (n differ)";
    `id`: a hash of every installed package's version, equal for two runs exactly when their
    environments are."""
    installed = installed_versions()
    env = {"python": platform.python_version()}
    env.update({name: installed.get(name, "not installed") for name in KEY_PACKAGES})
    lock = Path(root) / LOCK_FILE
    if lock.is_file():
        env["lock"] = hashlib.sha256(lock.read_bytes()).hexdigest()[:12]
        differ = lock_mismatches(lock, installed)
        env["locked"] = "yes" if not differ else f"no ({len(differ)} differ)"
    else:
        env["lock"], env["locked"] = "none", "no lock"
    listing = "\n".join(f"{k}=={v}" for k, v in sorted(installed.items()) if k != "pkd")
    env["id"] = hashlib.sha256(f"{env['python']}\n{listing}".encode()).hexdigest()[:12]
    return env


def summary(env: dict[str, str]) -> str:
    """One line for a report: "python 3.11.7, torch 2.13.0+cpu, ...; lock 1a2b3c4d5e6f (installed: yes)"."""
    versions = ", ".join(f"{k} {env[k]}" for k in ("python", *KEY_PACKAGES))
    return f"{versions}; lock {env['lock']} (installed as locked: {env['locked']}); environment id {env['id']}"
