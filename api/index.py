"""Deployment entry point: ``app`` is the ASGI application (Vercel serves this file as the one function).

Every other module in ``api/`` starts with an underscore so Vercel does not turn it into a function of its own.
A misconfigured environment does not crash the import: ``app`` then answers 500 with the list of problems.
"""

from adapters.entry import load_app

app = load_app()
