"""The tenant-free toolkit: API plumbing, task helpers, the database router, cache helpers, bulk SQL.

Not a Django app and no models: nothing here knows about organisations, devices or the catalogue, and
nothing here imports ``fleet``, ``updates``, ``devices``, ``alerts``, ``demo`` or ``config``.
"""
