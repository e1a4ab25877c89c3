"""One router per resource; `ROUTERS` is what the app includes, in this order."""

from . import clients, health, users

ROUTERS = [health.router, clients.router, users.router]
