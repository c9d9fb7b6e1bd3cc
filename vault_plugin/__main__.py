"""``python -m vault_plugin``: the plugin executable OpenBao runs (with the engine's router)."""

from vault_plugin.serve import main

raise SystemExit(main())
