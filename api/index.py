"""Deployment entry point: ``app`` is the ASGI application (Vercel serves this file as the one function).

Every other module in ``api/`` starts with an underscore so Vercel does not turn it into a function of its own.
"""

from api._app import create_app

app = create_app()
