import pytest

from core.attachments import decode_data_uri, sniff_image
from core.errors import FailureKind, InvalidRequest, PayloadTooLarge
from core.fetch import resolve_checked
from core.grok.classify import classify

CF_PAGE = "<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>"


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/x", "http://10.0.0.8/x", "http://192.168.1.1/", "http://169.254.169.254/latest",
    "http://[::1]/x", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/", "http://localhost:8080/a.png",
])
async def test_private_targets_refused(url: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        await resolve_checked(url, allow_private=False, param="image_url")
    assert info.value.param == "image_url"


@pytest.mark.parametrize("url", ["ftp://example.com/a", "file:///etc/passwd", "gopher://x", "http:///nohost"])
async def test_non_http_refused(url: str) -> None:
    with pytest.raises(InvalidRequest):
        await resolve_checked(url, allow_private=True, param="p")


async def test_private_allowed_when_configured() -> None:
    host, ip = await resolve_checked("http://127.0.0.1:9/x", allow_private=True, param="p")
    assert (host, ip) == ("127.0.0.1", "127.0.0.1")


def test_data_uri_rules() -> None:
    assert decode_data_uri("data:image/png;base64,aGk=", max_bytes=10, param="p") == b"hi"
    with pytest.raises(InvalidRequest):
        decode_data_uri("data:image/png,raw", max_bytes=10, param="p")
    with pytest.raises(PayloadTooLarge):
        decode_data_uri("data:image/png;base64," + "A" * 400, max_bytes=100, param="p")
    assert sniff_image(b"\x89PNG\r\n\x1a\n....") == "image/png"
    assert sniff_image(b"<svg>") is None


@pytest.mark.parametrize(("status", "headers", "body", "kind"), [
    (403, {"server": "cloudflare", "content-type": "text/html"}, CF_PAGE, FailureKind.CLOUDFLARE),
    (403, {}, '{"code":7,"message":"User is blocked [WKE=unauthorized:blocked-user]","details":[]}', FailureKind.BLOCKED),
    (403, {}, '{"error":{"code":7,"message":"Request rejected by anti-bot rules.","details":[]}}', FailureKind.ANTI_BOT),
    (401, {}, '{"error":{"code":16,"message":"unauthenticated"}}', FailureKind.UNAUTHORIZED),
    (429, {"retry-after": "30"}, '{"error":{"code":8,"message":"Too many requests","details":[]}}', FailureKind.RATE_LIMITED),
    (503, {}, "upstream connect error", FailureKind.SERVER),
    (400, {}, '{"error":{"message":"Invalid source post id"}}', FailureKind.BAD_REQUEST),
])
def test_classification(status, headers, body, kind) -> None:
    error = classify(status, headers, body)
    assert error.kind is kind
    assert error.upstream_status == status
    if kind is FailureKind.RATE_LIMITED:
        assert error.retry_after == 30 and error.status == 429
    assert "Traceback" not in error.message
