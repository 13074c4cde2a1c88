"""Label Studio as a client: its ML backend protocol, task images, annotations in."""
