"""The ground floor of PlantAI suite: label model, taxonomy, image reading, synthetic sheets.

Every other package (catalog, ml_backends, connectors, fiftyone_plugins) imports this one;
this one imports none of them.
"""

__version__ = "0.1.0"
