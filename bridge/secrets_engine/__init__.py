"""The LangSmith secrets engine's semantics, independent of any transport: what
``langsmith/config``, ``roles/``, ``creds/`` and the host's periodic ``rollback`` do, on a
storage port (``storage.EngineStorage``). The OpenBao plugin (``vault_plugin``) speaks the
host's protocol and calls in here; the unit tests call in with a dict for storage.

Modules: ``models`` (what is stored), ``storage`` (the port), ``creds`` (dynamic keys under
leases), ``errors``.
"""
