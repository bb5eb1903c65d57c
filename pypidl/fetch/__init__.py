"""Fetching: a manifest in, verified files in the mirror out.

``pool`` runs the process pool (one partition of projects per worker process, a thread pool in
each); ``downloader`` fetches one entry (stream, hash, rotate mirrors); ``part`` is the resumable
``.part`` file; ``retry`` holds the back-off policy and the per-run mirror health board.

May import: the leaf modules of ``pypidl`` and ``pypidl.store`` (the catalog and the project
locks it writes through). Never imports ``pypidl.plan``.
"""
