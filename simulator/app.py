"""The simulator's ASGI app: grok.com at the root, assets.grok.com under ``/__assets``, imagine-public under
``/__imagine-public``, the two WebSockets, and the ``/__sim`` control API."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp

from simulator import account_api, assets, chat, control, imagine, media_api, mgw, uploads
from simulator.config import SimConfig
from simulator.recorder import RequestRecorder
from simulator.responses import json_response, not_found
from simulator.state import SimState
from simulator.stream import install_log_filter


async def _rest_not_found(request: Request) -> Response:
    return not_found()


async def _internal_error(request: Request, exc: Exception) -> Response:
    return json_response({"code": 13, "message": "Internal error"}, 500)


def create_app(config: SimConfig | None = None, *, state: SimState | None = None) -> ASGIApp:
    """Build the simulator. Pass ``state`` to share one ``SimState`` with the caller (``SimulatorServer``)."""
    state = state or SimState(config)
    install_log_filter()
    routes = [
        Route("/rest/app-chat/conversations/new", chat.new_conversation, methods=["POST"]),
        Route("/rest/app-chat/conversations/{conversation_id}/responses", chat.continue_conversation,
              methods=["POST"]),
        Route("/rest/app-chat/upload-file", uploads.upload_legacy, methods=["POST"]),
        Route("/http/upload-file-v2/direct", uploads.upload_v2, methods=["POST"]),
        Route("/rest/rate-limits", account_api.rate_limits, methods=["POST"]),
        Route("/rest/media/imagine/quota_info", account_api.quota_info, methods=["POST"]),
        Route("/rest/modes", account_api.modes, methods=["GET", "POST"]),
        Route("/rest/assets", account_api.list_assets, methods=["GET"]),
        Route("/rest/assets-metadata/{asset_id}", account_api.delete_asset, methods=["DELETE"]),
        Route("/rest/media/post/create", media_api.create_post, methods=["POST"]),
        Route("/rest/media/post/create-link", media_api.create_link, methods=["POST"]),
        Route("/rest/media/video/upscale", media_api.upscale, methods=["POST"]),
        Route("/api/auth/session", account_api.auth_session, methods=["GET"]),
        Route("/grok_api_v2.GrokBuildBilling/GetGrokCreditsConfig", account_api.weekly_credits, methods=["POST"]),
        Route("/rest/{rest:path}", _rest_not_found, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route("/__assets/{path:path}", assets.private_asset, methods=["GET", "HEAD"]),
        Route("/__imagine-public/{path:path}", assets.public_asset, methods=["GET", "HEAD"]),
        WebSocketRoute("/ws/mgw/", mgw.endpoint),
        WebSocketRoute("/ws/mgw", mgw.endpoint),
        WebSocketRoute("/ws/imagine/listen", imagine.endpoint),
        *control.routes,
    ]
    app = Starlette(routes=routes, exception_handlers={500: _internal_error})
    app.state.sim = state
    return RequestRecorder(app, state)
