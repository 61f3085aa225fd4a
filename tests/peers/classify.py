"""Classification of peer-suite failures (tests/peers/run_peers.py): each rule matches a failing test by its
name and its failure message; the first match wins. A failure no rule matches is ``unclassified``."""

from __future__ import annotations

import re
from typing import Any

CLASSES = {
    "declined feature": "an endpoint or operation the gateway deliberately does not offer (stored objects, batches, ...)",
    "cannot honour": "a parameter or value Grok cannot honour, refused with a clear 4xx",
    "mock fixture": "the test expects the API mock's canned data (fixed ids, example values), not a behaviour",
    "gateway bug": "the gateway answers wrongly: reported to the lead",
    "unclassified": "a failure no rule explains yet: look at it",
}
BLOCKING = {"gateway bug", "unclassified"}

DECLINED, HONOUR, FIXTURE = "declined feature", "cannot honour", "mock fixture"

# (class, reason, "file::Class::test" regex, failure-message regex). Checked by hand 2026-12-01: for each
# with_all_params request the refused parameters were removed one at a time until it answered 200 (see results.md).
RULES: list[tuple[str, str, str, str]] = [
    # openai: chat completions
    (DECLINED, "stored chat completions (`GET`/`POST`/`DELETE /v1/chat/completions/{id}`, `GET /v1/chat/completions`):"
               " the gateway keeps no chat completions",
     r"chat/test_completions\.py::.*_(retrieve|update|list|list_with_all_params|delete)\[",
     r"Error code: (404 - Unknown path|405 - Method Not Allowed)"),
    (DECLINED, "messages of a stored chat completion (`GET /v1/chat/completions/{id}/messages`)",
     r"chat/completions/test_messages\.py::.*_list", r"Error code: 404 - Unknown path"),
    (FIXTURE, "the example's `max_tokens=0` / `max_completion_tokens=0` (a zero-token answer) is refused (must be "
              "≥ 1); with 1 the request answers 200 once `functions` is dropped (`tools` and the legacy `functions` "
              "together are refused); every other parameter is accepted",
     r"chat/test_completions\.py::.*with_all_params", r"invalid `max(_completion)?_tokens`"),
    # openai: responses
    (HONOUR, "`background: true` is refused (also refused in the same request: `conversation`, `prompt` templates; "
             "its `previous_response_id` names no stored response); without those it answers 200",
     r"test_responses\.py::.*create_with_all_params", r"background responses are not supported"),
    (HONOUR, "no `model` (the SDK's minimal call `responses.create()` / `input_tokens.count()`): the gateway has no "
             "default model",
     r"(test_responses|test_input_tokens)\.py::", r"`model` is required"),
    (FIXTURE, "retrieve/delete a fixed example id no response of this gateway has (the 404 is right)",
     r"test_responses\.py::.*_(retrieve|delete)", r"404 - Response with id 'resp_[0-9a-f]+' not found"),
    (DECLINED, "`POST /v1/responses/{id}/cancel` (for background responses, which are refused)",
     r"test_responses\.py::.*_cancel", r"404 - Unknown path POST /v1/responses/[^ ]+/cancel"),
    (DECLINED, "`POST /v1/responses/compact` (context compaction)",
     r"test_responses\.py::.*_compact", r"Error code: 405"),
    (FIXTURE, "input items of the example id `response_id`, which no response has (the 404 is right)",
     r"responses/test_input_items\.py::", r"404 - Response with id 'response_id' not found"),
    (FIXTURE, "the example's `limit=0`, outside the API's documented range 1–100",
     r"responses/test_input_items\.py::.*with_all_params", r"invalid `query\.limit`"),
    (FIXTURE, "`previous_response_id: resp_123`, an example id no response has (the 404 is right)",
     r"responses/test_input_tokens\.py::.*with_all_params", r"Previous response with id 'resp_123' not found"),
    # openai: images (checked by hand 2026-12-01 against the simulator: the refused parameters removed one at a
    # time, each call then answered 200, with a real JPEG for the edits)
    (DECLINED, "image variations (`POST /v1/images/variations`, dall-e-2 only and deprecated by the SDK): Grok "
               "Imagine has no variation operation",
     r"test_images\.py::.*_create_variation", r"404 - Unknown path POST /v1/images/variations"),
    (FIXTURE, "the example's image is the bytes `Example data`, not an image (JPEG/PNG/WebP/GIF are sniffed); with "
              "a real JPEG the same call answers 200",
     r"test_images\.py::.*_edit_overload_1", r"image #0: not a JPEG, PNG, WebP or GIF image"),
    (HONOUR, "`stream: true` on `/v1/images/edits` is refused (400: the gateway streams generations only, see README "
             "Images API); the same call without `stream` answers 200",
     r"test_images\.py::.*_edit_overload_2", r"`stream` is not supported for image edits"),
    (HONOUR, "`mask` is refused (Grok edits the whole image from the prompt); also refused in the same request: "
             "`background: transparent`, `output_format: png` (Grok returns opaque JPEG), and `model: gpt-image-1.5` "
             "is no image model here (404; `MODEL_ALIASES` cannot name image models); without those it answers 200 "
             "(the unknown `complexity`, `frame_count`, `svg`, `markup`, ... are ignored)",
     r"test_images\.py::.*_edit_with_all_params_overload_[12]", r"`mask` is not supported"),
    (HONOUR, "`background: transparent` is refused (Grok Imagine images are opaque JPEG); also refused in the same "
             "request: `output_format: png`, `model: gpt-image-2.5-flare` (no image model here: 404), and in the "
             "streamed overload `response_format: url` (a streamed answer is `b64_json`); without those it answers "
             "200 (`moderation`, `quality`, `style`, `user` are accepted without effect)",
     r"test_images\.py::.*_generate_with_all_params_overload_[12]", r"`background`: Grok Imagine images are opaque"),
    # openai: videos (checked by hand 2026-12-01 against the simulator, VIDEO_DRIVE=inline)
    ("cannot honour", "a job created without `size` gets Grok's default render size `480x854` (480p: the video "
                      "product every plan has; Basic accounts have no 720p quota), which OpenAI's `Video.size` enum "
                      "(`720x1280`, `1280x720`, `1024x1792`, `1792x1024`) does not list, so the SDK's strict response "
                      "validation rejects the minimal `videos.create(prompt=...)` and `videos.list()`; with "
                      "`size: 720x1280` (an account with 720p quota) the same calls pass",
     r"test_videos\.py::.*_(create|list)\[", r"480x854"),
    (FIXTURE, "the example's `input_reference` is the bytes `Example data`, not an image; with a real JPEG the same "
              "call (`model: sora-2`, `seconds: 4`, `size: 720x1280`) answers 200 `completed`",
     r"test_videos\.py::.*_create_with_all_params", r"input_reference: not a JPEG, PNG, WebP or GIF image"),
    (FIXTURE, "retrieve/delete the example id `video_123`, which no job has (the 404 is right)",
     r"test_videos\.py::.*_(retrieve|delete)\[", r"404 - no video job 'video_123'"),
    (FIXTURE, "the example's `limit=0`, outside the API's documented range 1–100",
     r"test_videos\.py::.*_list_with_all_params", r"invalid `query\.limit`"),
    (DECLINED, "video remix (`POST /v1/videos/{id}/remix`): Grok Imagine has no remix of a finished video",
     r"test_videos\.py::.*_remix", r"404 - Unknown path POST /v1/videos/[^ ]+/remix"),
    (DECLINED, "video characters (`POST /v1/videos/characters`, `GET /v1/videos/characters/{id}`): not offered (the "
               "POST meets the `/v1/videos/{id}` route: 405)",
     r"test_videos\.py::.*_(create|get)_character", r"Error code: (405|404 - Unknown path GET /v1/videos/characters)"),
    (DECLINED, "video edits and extensions (`POST /v1/videos/edits`, `POST /v1/videos/extensions`): not offered (they "
               "meet the `/v1/videos/{id}` route: 405)",
     r"test_videos\.py::.*_(edit|extend)\[", r"Error code: 405"),
    # anthropic
    (FIXTURE, "the example tool's `input_schema` is not JSON Schema (`properties: {location: \"bar\"}`); with a valid "
              "schema the same request (every other parameter) answers 200",
     r"test_messages\.py::.*_with_all_params", r"not a valid JSON Schema at properties/"),
    (DECLINED, "Message Batches (`/v1/messages/batches`): not offered",
     r"messages/test_batches\.py::", r"404 - .*Unknown path [A-Z]+ /v1/messages/batches"),
]


def classify(case: Any) -> tuple[str, str]:
    for klass, reason, name, message in RULES:
        text = f"{case.message}\n{getattr(case, 'details', '')}"
        if re.search(name, f"{case.file}::{case.name}") and re.search(message, text, re.S):
            return klass, reason
    return "unclassified", (case.message or "").splitlines()[0][:160] if case.message else "no message"
