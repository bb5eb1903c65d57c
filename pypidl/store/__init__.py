"""The mirror on disk: what it holds, what it has verified, and the index built from it.

``catalog`` records verified files per project; ``locks`` keeps two runs off one project;
``leftovers`` finds the temporary files a killed run left behind;
``index_builder`` writes ``simple/`` (PEP 503 HTML, PEP 691 JSON, PEP 658 sidecars);
``verify`` rehashes everything; ``check`` proves offline that every target can install; ``serve``
serves a mirror with content negotiation.

May import: the leaf modules of ``pypidl``. ``check`` alone also imports ``pypidl.plan`` (it runs
the planner's closure over the mirror's own pages). Never imports ``pypidl.fetch``.
"""
