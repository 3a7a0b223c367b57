"""FiftyOne plugins of PlantAI (a thin face over :mod:`connectors` and :mod:`catalog`)."""
