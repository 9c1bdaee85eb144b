"""MLflow set-up: where runs and registered models go (a tracking server, else SQLite under the home)."""

from __future__ import annotations

from lakehouse.settings import Settings


def configure(settings: Settings, experiment: str) -> str:
    """Point MLflow at the tracking store and the experiment; returns the experiment id.

    With the local SQLite store, artifacts go under LAKEHOUSE_HOME too (MLflow's default would be
    ./mlruns in the working directory). A server decides its own artifact location.
    """
    import mlflow

    uri = settings.tracking_uri
    if uri.startswith("sqlite:"):
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        experiment_id = found.experiment_id
    elif uri.startswith("sqlite:"):
        location = (settings.mlflow_dir / "artifacts").as_uri()
        experiment_id = mlflow.create_experiment(experiment, artifact_location=location)
    else:
        experiment_id = mlflow.create_experiment(experiment)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id
