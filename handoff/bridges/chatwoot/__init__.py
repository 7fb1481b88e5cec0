"""The Chatwoot bridge: settings, the API client and the bridge (docs/bridges/chatwoot.md)."""
