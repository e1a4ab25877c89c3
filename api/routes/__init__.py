"""One router per resource; `ROUTERS` is what the app includes, in this order."""

from . import clients, flows, health, runs, users

ROUTERS = [health.router, clients.router, flows.router, runs.router, users.router]
