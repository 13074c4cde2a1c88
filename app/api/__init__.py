"""HTTP layer: dependencies and thin routers over the services."""
