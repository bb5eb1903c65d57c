"""Fetching: a manifest in, verified files in the mirror out.

``pool`` runs the process pool (one partition of projects per worker process, a thread pool in
each); ``downloader`` fetches one entry (stream, hash, rotate mirrors); ``part`` is the resumable
``.part`` file; ``retry`` holds the back-off policy and the per-run mirror health board;
``journal`` records verified files in the catalog in durable batches; ``rescue`` finds a file
by name on the indexes' project pages when every listed URL failed; ``lifeline`` ends a worker
whose run is gone; ``results`` is what the parent imports without the HTTP stack.

May import: the leaf modules of ``pypidl`` and ``pypidl.store`` (the catalog and the project
locks it writes through). Never imports ``pypidl.plan``.
"""
