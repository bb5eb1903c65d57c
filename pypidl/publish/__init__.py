"""Publishing: a mirror's verified files put into the artifact repository a network runs.

``forms`` turns a distribution into the legacy upload API's form (its core metadata fields) and
streams that form as the request body; ``repository`` finds the repository's simple index and
reads what it holds; ``publisher`` decides what to upload, uploads concurrently with retries, and
reads the index back to check every file is served with the right sha256.

May import: the leaf modules of ``pypidl`` (the page reader ``_simple`` among them),
``pypidl.store.catalog`` (what the mirror holds) and ``pypidl.fetch.retry`` (the engine's back-off
policy, a module without the HTTP stack). Never imports the rest of ``pypidl.fetch``, nor
``pypidl.plan``.
"""
