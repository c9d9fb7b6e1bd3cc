"""OpenBao secrets-engine plugin for langsmith-bridge."""
