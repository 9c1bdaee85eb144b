"""The recommendations API and its pages: gold tables read with delta-rs into one in-memory snapshot, served by FastAPI.

No pyspark anywhere on this path (tests/unit/serving/test_imports.py): the service starts in seconds and
holds no JVM. Pure modules (tokens, rate limits, the snapshot and its queries, the model's health by week,
chart geometry, metrics) sit under `serve_flow.py`, which reads the tables and the registry and swaps
snapshots, `app.py`, the API's routes, and `pages.py`, the pages' routes, sign-in and templates/.
"""
