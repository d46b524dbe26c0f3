"""Ray Serve deployments: thin wiring of ``server`` objects into Serve."""
