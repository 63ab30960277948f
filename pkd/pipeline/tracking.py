"""The one place that talks to MLflow. Each stage wraps its work in :func:`stage_run`::

    with stage_run("distill", params=cfg, tags={"task": t, "strategy": s, "depth": d}) as run:
        run.log_history(history)  # one point per epoch; run.log_metrics(m); run.log_artifact(p)

Where: ``MLFLOW_TRACKING_URI``, else ``sqlite:///<repo root>/mlflow.db`` where the repo root
is ``DVC_ROOT`` when DVC sets it (under ``dvc queue`` the main workspace, not the deleted
temp copy), else the nearest dir at or above the cwd holding dvc.yaml, else the cwd.
Experiment ``PKD_MLFLOW_EXPERIMENT`` (default "pkd"); local artifacts: <repo root>/mlartifacts.

Environment: every run is tagged ``pkd.env.<python|torch|transformers|...>``, ``pkd.env.lock``
(the hash of requirements.lock), ``pkd.env.locked`` and ``pkd.env.id`` (pkd/pipeline/environment.py).

Grouping: one ``dvc repro`` is one group, id ``PKD_RUN_GROUP`` or a short hash of (git HEAD,
params.yaml); uncommitted code edits keep the id. Stage runs nest under a parent run
``repro-<id>`` tagged ``pkd.role=group``. Two stages starting at once may both miss the
parent and each create one; tolerated on purpose (no cross-process lock): all runs carry
``pkd.run_group``, which finds the whole group, and later stages join the oldest parent.

Failure policy: the stages' metrics JSON files are the source of truth; MLflow gets a copy.
So by default a tracking failure (unreachable server, broken or locked store) never stops a
stage: ONE warning line naming the URI and the error goes to stderr, and every later call on
that run is a no-op. ``PKD_TRACKING_STRICT=1`` raises :class:`TrackingError` naming the URI
instead. ``PKD_TRACKING=off`` disables tracking (mlflow is not even imported). A server that
refuses connections is caught by a quick ``/health`` probe; a slow one is retried per MLflow's
``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` / ``MLFLOW_HTTP_REQUEST_TIMEOUT`` (default: minutes).

Parallel writers (``pkd repro --jobs 2``, ``dvc queue start -j 2``): the first stage to open a new
SQLite store creates it while the others wait (a file lock, ``mlflow.db.lock``); after that SQLite
takes one writer at a time. With many writers, runs can be lost to "database is locked": use a
tracking server instead::

    mlflow server --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000
    export MLFLOW_TRACKING_URI=http://127.0.0.1:5000
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pkd.errors import TrackingError

# mlflow.utils.validation.MAX_PARAM_VAL_LENGTH, copied so mlflow stays a lazy import.
MAX_PARAM_VALUE_LENGTH = 6000
_OFF, _ON = {"off", "0", "false", "no"}, {"1", "true", "yes", "on"}


def find_repo_root() -> Path:
    here = Path.cwd().resolve()
    return next((d for d in (here, *here.parents) if (d / "dvc.yaml").is_file()), here)


def _store_root() -> Path:
    return Path(os.environ.get("DVC_ROOT") or find_repo_root()).resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{_store_root() / 'mlflow.db'}"


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):  # no git binary, hung git
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def run_group_id(root: Path, commit: str) -> str:
    if os.environ.get("PKD_RUN_GROUP"):
        return os.environ["PKD_RUN_GROUP"]
    params = root / "params.yaml"
    digest = hashlib.sha1(commit.encode() + b"\0")
    digest.update(params.read_bytes() if params.is_file() else b"")
    return digest.hexdigest()[:12]


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; MLflow params and metrics are flat."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(flatten(v, key + ".") if isinstance(v, Mapping) else {key: v})
    return out


def _param_name(key: str) -> str:
    """`key` as a name MLflow takes: it refuses any but alphanumerics, _ - . : / and spaces, and with
    them the whole run, so a display name ("seed (teacher, data)") loses the rest ("seed teacher data")."""
    return " ".join(re.sub(r"[^\w\-.:/ ]", " ", key).split())


def _numeric(d: Mapping[str, Any]) -> dict[str, float]:
    # Metrics JSON files also hold strings (task names, ...); only numbers are metrics.
    return {k: float(v) for k, v in flatten(d).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _fail(uri: str, stage: str, exc: BaseException) -> None:
    if os.environ.get("PKD_TRACKING_STRICT", "").lower() in _ON:
        raise TrackingError(f"MLflow tracking at {uri} failed: {exc}") from exc
    detail = " ".join(str(exc).split())[:300]  # one line, however chatty the error
    print(f"pkd.pipeline.tracking: WARNING: MLflow tracking at {uri} failed for stage {stage!r} "
          f"({type(exc).__name__}: {detail}); continuing without tracking "
          "(the metrics JSON files are unaffected)", file=sys.stderr, flush=True)


class StageRun:
    """Handle yielded by :func:`stage_run`; after a tracking failure every method is a no-op."""

    def __init__(self, stage: str, uri: str = "", client: Any = None,
                 run_id: str | None = None, parent_id: str | None = None):
        self.stage, self.uri, self.run_id, self.parent_id = stage, uri, run_id, parent_id
        self._client = client

    @property
    def active(self) -> bool:
        return self._client is not None

    def _call(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self._client is None:
            return
        try:
            getattr(self._client, method)(*args, **kwargs)
        except Exception as exc:
            self._client = None  # disable first: one warning per run, not one per call
            _fail(self.uri, self.stage, exc)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        self._log([(k, v, step or 0) for k, v in _numeric(metrics).items()])

    def log_history(self, records: list[Mapping[str, Any]], step_key: str = "epoch") -> None:
        """One point per record and numeric field, at step int(record[step_key])."""
        rows = []
        for i, rec in enumerate(records):
            step = int(rec.get(step_key, i))
            rows += [(k, v, step) for k, v in _numeric(rec).items() if k != step_key]
        self._log(rows)

    def _log(self, rows: list[tuple[str, float, int]]) -> None:
        if not self.active or not rows:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, s) for k, v, s in rows]
        self._call("log_batch", self.run_id, metrics=metrics)  # client splits big batches

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        p = Path(path)
        if p.is_dir():  # keep the directory's name instead of spilling its files at the root
            self._call("log_artifacts", self.run_id, str(p), artifact_path or p.name)
        else:
            self._call("log_artifact", self.run_id, str(p), artifact_path)

    def log_model(self, export_dir: str | os.PathLike, input_example: Any,
                  name: str = "model") -> str | None:
        """Log an export directory as a text-in, labels-out pyfunc model (pkd.deploy.serving).

        The signature is inferred from `input_example` (a DataFrame with text_a[, text_b])
        and the model's own output on it. Returns the model URI, None when not tracking.
        """
        if not self.active:
            return None
        try:
            uri = _log_text_model(self.uri, self.run_id, Path(export_dir), input_example, name)
        except Exception as exc:
            self._client = None
            _fail(self.uri, self.stage, exc)
            return None
        self._call("set_tag", self.run_id, "pkd.model_uri", uri)
        return uri

    def find_model(self, tags: Mapping[str, Any]) -> str | None:
        """The model URI of the newest run with these pkd.* tags that logged a model."""
        if not self.active:
            return None
        try:
            exp = self._client.get_run(self.run_id).info.experiment_id
            query = " and ".join([f"tags.`pkd.{k}` = '{v}'" for k, v in tags.items()]
                                 + ["tags.`pkd.model_uri` != ''"])
            runs = self._client.search_runs([exp], query, order_by=["attributes.start_time DESC"],
                                            max_results=1)
        except Exception as exc:
            self._client = None
            _fail(self.uri, self.stage, exc)
            return None
        return runs[0].data.tags["pkd.model_uri"] if runs else None

    def register_model(self, model_uri: str, name: str,
                       tags: Mapping[str, Any] | None = None) -> str | None:
        """A new version of registered model `name` from `model_uri`; returns the version."""
        if not self.active:
            return None
        try:
            import mlflow

            mlflow.set_tracking_uri(self.uri)
            version = mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in (tags or {}).items()})
        except Exception as exc:
            self._client = None
            _fail(self.uri, self.stage, exc)
            return None
        self._call("set_tag", self.run_id, "pkd.registered", f"{name}/{version.version}")
        return str(version.version)

    def _end(self, status: str) -> None:
        self._call("set_terminated", self.run_id, status)
        # Nobody knows when a group spanning processes ends; each stage moves its end time.
        self._call("set_terminated", self.parent_id, "FINISHED")


def _log_text_model(uri: str, run_id: str, export_dir: Path, example: Any, name: str) -> str:
    import types

    import mlflow
    from mlflow.models import infer_signature

    from pkd.deploy.serving import ARTIFACT, TextClassifierModel

    local = TextClassifierModel()  # its output on the example gives the signature
    local.load_context(types.SimpleNamespace(artifacts={ARTIFACT: str(export_dir)}, model_config={}))
    signature = infer_signature(example, local.predict(None, example))
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name=name, python_model=TextClassifierModel(), artifacts={ARTIFACT: str(export_dir)},
            signature=signature, input_example=example,
            # Listed, not inferred: inference loads the model again in a subprocess.
            pip_requirements=["pkd", "onnxruntime", "transformers", "pandas"],
        )
    return info.model_uri


# MLflow 3's UI opens an experiment without this tag on its GenAI (traces) page; these are
# model-training runs, for its runs table.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def _experiment_id(client: Any, uri: str) -> str:
    from mlflow.exceptions import MlflowException

    name = os.environ.get("PKD_MLFLOW_EXPERIMENT", "pkd")
    if (exp := client.get_experiment_by_name(name)) is not None:
        return exp.experiment_id
    # A local store defaults to ./mlruns under the cwd, a temp dir under `dvc queue`.
    remote = uri.startswith(("http://", "https://", "databricks"))
    location = None if remote else (_store_root() / "mlartifacts").as_uri()
    try:
        return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
    except MlflowException:  # another stage created it meanwhile
        if (exp := client.get_experiment_by_name(name)) is None:
            raise
        return exp.experiment_id


def _store_creation_lock(uri: str):
    """One process at a time opens a local SQLite store. The first to open it creates its tables
    (MLflow's schema migrations), and a second opening it meanwhile fails half-way (`table
    _alembic_tmp_... already exists`): two stages starting together on a fresh clone (`pkd repro
    --jobs 2`, `dvc queue start -j 2`) would lose one stage's run."""
    if not uri.startswith("sqlite:///"):
        return contextlib.nullcontext()
    from filelock import FileLock

    return FileLock(uri.removeprefix("sqlite:///") + ".lock", timeout=300)


def _group_parent(client: Any, exp_id: str, group: str, commit: str) -> str:
    found = client.search_runs(
        [exp_id], f"tags.`pkd.run_group` = '{group}' and tags.`pkd.role` = 'group'",
        order_by=["attributes.start_time ASC"], max_results=1)
    if found:
        return found[0].info.run_id
    # Racy by design (see module docstring): a concurrent stage may create a second parent.
    tags = {"pkd.role": "group", "pkd.run_group": group, "pkd.git_commit": commit}
    return client.create_run(exp_id, run_name=f"repro-{group}", tags=tags).info.run_id


def _start(stage: str, params: Mapping[str, Any], tags: dict[str, Any], uri: str) -> StageRun:
    if uri.startswith(("http://", "https://")):
        import requests

        # Fail in seconds, not after MLflow's ~4 minutes of retries against a closed port.
        with contextlib.suppress(requests.exceptions.ReadTimeout):
            requests.get(uri.rstrip("/") + "/health", timeout=(5, 30))
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    with _store_creation_lock(uri):  # the client opens (and, the first time, creates) the store
        client = MlflowClient(tracking_uri=uri)
        exp_id = _experiment_id(client, uri)
    root = find_repo_root()
    commit = git_commit(root)
    group = run_group_id(root, commit)
    tags = {k: v for k, v in tags.items() if v is not None}
    explicit = tags.pop("dvc_stage", None)
    dvc_stage = os.environ.get("DVC_STAGE") or explicit  # DVC's own name for the stage wins
    run_tags = {f"pkd.{k}": str(v) for k, v in tags.items()}
    run_tags.update({"pkd.stage": stage, "pkd.git_commit": commit, "pkd.run_group": group})
    from pkd.pipeline.environment import environment

    # The versions it ran with: runs whose pkd.env.id differ ran on different installs.
    run_tags.update({f"pkd.env.{k}": v for k, v in environment(root).items()})
    if dvc_stage:
        run_tags["pkd.dvc_stage"] = str(dvc_stage)
    if os.environ.get("DVC_EXP_NAME"):
        run_tags["pkd.dvc_exp"] = os.environ["DVC_EXP_NAME"]
    parent = _group_parent(client, exp_id, group, commit)
    run_tags["mlflow.parentRunId"] = parent
    label = "-".join(str(tags[k]) for k in ("task", "strategy", "depth") if k in tags)
    if "seed" in tags:
        label += f"-s{tags['seed']}"
    run = client.create_run(exp_id, run_name=f"{stage}@{label}" if label else stage,
                            tags=run_tags)
    handle = StageRun(stage, uri, client, run.info.run_id, parent)
    client.log_batch(handle.run_id, params=[Param(_param_name(k), str(v)[:MAX_PARAM_VALUE_LENGTH])
                                            for k, v in flatten(params).items()])
    return handle


@contextlib.contextmanager
def stage_run(stage: str, *, params: Mapping[str, Any],
              tags: Mapping[str, Any] | None = None) -> Iterator[StageRun]:
    """Track one stage as an MLflow run nested under its ``dvc repro`` group."""
    # Under torchrun only rank 0 tracks, so one stage is one run whatever the world size.
    if os.environ.get("PKD_TRACKING", "").lower() in _OFF or os.environ.get("RANK", "0") != "0":
        yield StageRun(stage)
        return
    uri = tracking_uri()
    try:
        run = _start(stage, params, dict(tags or {}), uri)
    except Exception as exc:
        _fail(uri, stage, exc)
        run = StageRun(stage, uri)
    try:
        yield run
    except BaseException as exc:
        with contextlib.suppress(TrackingError):  # never mask the stage's own error
            run._end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    run._end("FINISHED")
