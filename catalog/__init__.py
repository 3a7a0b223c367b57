"""The model catalog: versioned PlantAI models, their weights and stages.

Stands on :mod:`herbarium` only; knows no Label Studio, FiftyOne or server.
"""
