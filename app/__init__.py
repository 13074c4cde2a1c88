"""tag2mask service: REST API, domain tables, blob store and CLI."""
