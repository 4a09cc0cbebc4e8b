"""A run's data as an MLflow dataset input (the UI's Datasets column): name, source and digest."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def dataset_input(name: str, source: str | Mapping[str, str], digest: str,
                  context: str = "train") -> Any:
    """MLflow's `DatasetInput` for data read from `source` (a file path or URI) or, for generated
    data, made as a mapping says (`CodeDatasetSource`)."""
    import warnings

    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    with warnings.catch_warnings():  # "can be interpreted in multiple ways": a local file
        warnings.simplefilter("ignore", UserWarning)
        src = (CodeDatasetSource(dict(source)) if isinstance(source, Mapping)
               else resolve_dataset_source(str(source)))
    dataset = MetaDataset(src, name=name, digest=digest[:36])
    return DatasetInput(dataset._to_mlflow_entity(), [InputTag("mlflow.data.context", context)])
