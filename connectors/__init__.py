"""Connectors: specimens in, Label Studio projects and FiftyOne datasets in sync.

Also the launchers of the local services PlantAI runs on one machine (tests, demo).
"""
