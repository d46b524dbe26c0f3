"""MLflow tracking and model registry access.

The registry needs a database store, so the default is a sqlite file under the
data dir. Serving resolves a registered model by alias (``champion``) and loads
only the compiled artifact (arrays + JSON), never the pickled estimator.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from server.anomaly.model import ServableModel
from server.config import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

COMPILED_ARTIFACT = "compiled"


class ModelNotFoundError(LookupError):
    """No registered model (or no version at the alias) under that name."""


@dataclass(slots=True)
class RegisteredVersion:
    name: str
    version: str
    aliases: list[str]
    run_id: str
    f1: float | None
    roc_auc: float | None


def connect(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured store and make sure our experiment exists."""
    import mlflow
    from mlflow import MlflowClient

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    uri = settings.tracking_uri
    # mlflow.set_tracking_uri also writes MLFLOW_TRACKING_URI into os.environ; that would make
    # the next Settings in this process (and every child process) silently use this store.
    saved = {key: os.environ.get(key) for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    if client.get_experiment_by_name(settings.mlflow.experiment) is None:
        location = None
        if uri.startswith("sqlite:"):
            settings.artifact_root.mkdir(parents=True, exist_ok=True)
            location = settings.artifact_root.as_uri()
        try:
            client.create_experiment(settings.mlflow.experiment, artifact_location=location)
        except Exception:  # another process created it first
            if client.get_experiment_by_name(settings.mlflow.experiment) is None:
                raise
    mlflow.set_experiment(settings.mlflow.experiment)
    return client


def has_version(client: MlflowClient, name: str, alias: str = "champion") -> bool:
    try:
        client.get_model_version_by_alias(name, alias)
    except Exception:
        return False
    return True


def register(client: MlflowClient, model_uri: str, name: str, promote: bool, alias: str = "champion") -> str:
    """Register a logged model; give it the alias if asked or if no version holds it yet."""
    import mlflow

    first = not has_version(client, name, alias)
    mv = mlflow.register_model(model_uri, name)
    if promote or first:
        client.set_registered_model_alias(name, alias, mv.version)
    return str(mv.version)


def promote(client: MlflowClient, name: str, version: str, alias: str = "champion") -> None:
    """Move ``alias`` to ``version``; raises ModelNotFoundError if either is unknown."""
    try:
        client.get_model_version(name, str(version))
    except Exception as exc:
        raise ModelNotFoundError(f"model {name!r} has no version {version}") from exc
    client.set_registered_model_alias(name, alias, str(version))


def list_versions(client: MlflowClient) -> list[RegisteredVersion]:
    out: list[RegisteredVersion] = []
    for rm in client.search_registered_models():
        # search results leave ModelVersion.aliases empty; the registered model has them
        raw = rm.aliases or {}
        pairs = raw.items() if isinstance(raw, dict) else [(a.alias, a.version) for a in raw]
        by_version: dict[str, list[str]] = {}
        for alias, version in pairs:
            by_version.setdefault(str(version), []).append(alias)
        for mv in client.search_model_versions(f"name='{rm.name}'"):
            metrics = client.get_run(mv.run_id).data.metrics if mv.run_id else {}
            out.append(
                RegisteredVersion(
                    name=rm.name,
                    version=str(mv.version),
                    aliases=sorted(by_version.get(str(mv.version), [])),
                    run_id=mv.run_id or "",
                    f1=metrics.get("test_f1"),
                    roc_auc=metrics.get("test_roc_auc"),
                )
            )
    return sorted(out, key=lambda v: (v.name, int(v.version)))


def load_servable_from_run(client: MlflowClient, run_id: str, backend: str = "auto") -> ServableModel:
    """The compiled artifact of a training run, registered or not (no pickle)."""
    import mlflow

    try:
        client.get_run(run_id)
    except Exception as exc:
        raise ModelNotFoundError(f"no MLflow run {run_id!r}") from exc
    with tempfile.TemporaryDirectory(prefix="stackserve-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=COMPILED_ARTIFACT, dst_path=tmp, tracking_uri=mlflow.get_tracking_uri()
        )
        return _with_feature_view(client, ServableModel.load(Path(local), backend=backend, run_id=run_id))


def _with_feature_view(client: MlflowClient, servable: ServableModel) -> ServableModel:
    """Record on the card the feature view a ``--feature-view`` run was trained from (its
    ``feature_view``/``feature_view_version`` tags): the gateway scores such a model by entity
    key and event time by reading that view's online features, so it must know which."""
    run_id = servable.card.run_id
    tags = client.get_run(run_id).data.tags if run_id else {}
    if tags.get("feature_view"):
        version = tags.get("feature_view_version", "")
        servable.card.feature_view = f"{tags['feature_view']}:{version}" if version else tags["feature_view"]
    return servable


def load_servable(
    client: MlflowClient, name: str, alias: str = "champion", backend: str = "auto", version: str | None = None
) -> ServableModel:
    """Download the compiled artifact of ``name@alias`` (or of ``version``) and load it (no pickle)."""
    import mlflow

    try:
        mv = client.get_model_version(name, str(version)) if version else client.get_model_version_by_alias(name, alias)
    except Exception as exc:
        what = f"version {version}" if version else f"alias {alias!r}"
        raise ModelNotFoundError(f"no registered model {name!r} with {what}") from exc
    with tempfile.TemporaryDirectory(prefix="stackserve-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(
            run_id=mv.run_id, artifact_path=COMPILED_ARTIFACT, dst_path=tmp, tracking_uri=mlflow.get_tracking_uri()
        )
        servable = ServableModel.load(Path(local), backend=backend, version=str(mv.version), run_id=mv.run_id)
    return _with_feature_view(client, servable)


def load_servables(
    client: MlflowClient, names: list[str], alias: str = "champion", backend: str = "auto"
) -> dict[str, ServableModel]:
    """Every registered model of ``names`` at ``alias``; unregistered ones are skipped with a
    warning (a server may serve a subset), but none at all is an error."""
    import logging

    models = {}
    for name in names:
        try:
            models[name] = load_servable(client, name, alias, backend=backend)
        except ModelNotFoundError as exc:
            logging.getLogger("stackserve.anomaly").warning("skipping %s: %s", name, exc)
    if not models:
        raise ModelNotFoundError(
            f"none of {names} is registered with alias {alias!r}: run `stackserve train anomaly`"
        )
    return models
