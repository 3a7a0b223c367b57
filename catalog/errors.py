"""Errors the catalog raises: each names the model, version or file it is about."""

from __future__ import annotations


class CatalogError(Exception):
    """Base of every catalog error; the catalog is unchanged when one is raised."""


class CatalogConfigError(CatalogError):
    """The catalog's database URL or home is unusable."""


class UnknownModelError(CatalogError):
    """No model of that name is registered."""


class UnknownVersionError(CatalogError):
    """The model has no such version (or no production version)."""


class DuplicateVersionError(CatalogError):
    """The model already has that version."""


class InvalidVersionError(CatalogError):
    """A version string that is not a semantic version (MAJOR.MINOR.PATCH)."""


class InvalidNameError(CatalogError):
    """A model name the catalog cannot store or reference unambiguously."""


class InvalidTaskError(CatalogError):
    """An unknown task, or one that contradicts the model's registered task or framework."""


class LabelMismatchError(CatalogError):
    """Class names that do not match the model's label set in index order."""


class InvalidWeightsError(CatalogError):
    """A weight file that cannot be loaded for the declared framework and task."""


class InvalidMetricsError(CatalogError):
    """Metrics that are not ``{"dataset": str, <metric>: number, ...}``."""


class StageError(CatalogError):
    """A stage change the catalog refuses (archiving production, nothing to roll back to)."""


class ArtefactError(CatalogError):
    """An artefact operation that does not apply (e.g. exporting twice)."""


class StoreIntegrityError(CatalogError):
    """A stored file is missing or its content no longer matches its sha256: never served."""


class UnknownTrainingRunError(CatalogError):
    """No training run has that id."""


class TrainingBusyError(CatalogError):
    """Another job is already training this model."""


class ConcurrentUpdateError(CatalogError):
    """Another writer kept the catalog busy past the retries."""
