"""Planning: requirements and targets in, a manifest out.

``requirements`` and ``targets`` parse what the user asked for; ``pages`` reads project pages
(PEP 691 JSON, PEP 503 HTML) into :class:`~pypidl.plan.pages.RemoteFile` objects; ``metadata``
reads core metadata without downloading whole distributions where it can; ``closure`` is the
per-target resolvelib closure; ``build_deps`` adds what builds the sdists the mirror keeps (their
``[build-system]``, read from the sdist); ``pip_compile`` is the optional host resolution by pip-tools;
``planner`` turns all of that into a :class:`~pypidl.manifest.Manifest`.

May import: the leaf modules of ``pypidl`` (errors, _fs, hashing, config, sources, session,
manifest, dists). Never imports ``pypidl.fetch`` or ``pypidl.store``.
"""
