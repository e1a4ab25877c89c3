"""One router per resource; `ROUTERS` is what the app includes, in this order."""

from . import clients, flows, health, knowledge, proposals, runs, users

ROUTERS = [health.router, clients.router, knowledge.router, proposals.router, flows.router, runs.router,
           users.router]
