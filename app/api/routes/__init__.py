"""Routers of the REST contract."""
