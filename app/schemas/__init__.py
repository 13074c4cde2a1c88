"""Pydantic request and response types of the REST contract."""
