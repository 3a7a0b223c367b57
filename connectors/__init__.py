"""Connectors: specimens in, Label Studio projects and FiftyOne datasets in sync, exports out."""
