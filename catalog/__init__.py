"""The model catalog: versioned PlantAI models, their weights and stages.

Stands on :mod:`herbarium` only; knows no Label Studio, FiftyOne or server. The API is
:class:`catalog.registry.Catalog`; inference loads models through
:func:`catalog.predictors.load_model`. Nothing is imported here, so ``import catalog`` is cheap.
"""
