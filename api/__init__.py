"""The FastAPI service: routes per resource, only through the core."""
