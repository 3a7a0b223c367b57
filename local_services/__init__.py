"""The local services PlantAI runs on one machine (Label Studio, PostgreSQL, FiftyOne's MongoDB).

One lifecycle for all of them: start, wait until ready, stop by PID. Used by the demo, tests and bench.
"""
