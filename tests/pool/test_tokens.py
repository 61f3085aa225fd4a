"""Token normalisation, import parsing, ids, masking and encryption at rest (pure, no store)."""

from __future__ import annotations

import json

import pytest

from core.pool import TokenCipher, TokenDecryptError, account_id, check_token, mask, normalize_token
from core.pool.tokens import parse_token_import
from tests.pool.conftest import fake_token

TOKEN = fake_token(1)


@pytest.mark.parametrize(
    "raw",
    [
        TOKEN,
        f"  {TOKEN}\n",
        f"sso={TOKEN}",
        f"sso={TOKEN}; sso-rw={TOKEN}",
        f"sso-rw={TOKEN};sso={TOKEN}",  # PY-2025-12 stored form
        f"cf_clearance=abc; sso={TOKEN}; x-userid=1",
        f"{TOKEN[:20]}\n{TOKEN[20:]}",  # wrapped by a text editor
        f"\ufeff{TOKEN}\x00",
    ],
)
def test_normalize_accepts_what_users_paste(raw: str) -> None:
    assert normalize_token(raw) == TOKEN


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   \t\n", "empty"),
        ("sso=", "empty after"),
        ("sso=abc", "too short"),
        ("x" * 9000, "too long"),
        ("<html>not a token at all</html>", "characters"),
        (None, "not a string"),
        (12345, "not a string"),
    ],
)
def test_normalize_rejects_garbage_with_a_reason(raw: object, reason: str) -> None:
    token, problem = check_token(raw)
    assert token is None and normalize_token(raw) is None
    assert problem is not None and reason in problem


def test_import_text_lines_comments_commas_and_duplicates() -> None:
    text = f"# my accounts\n{fake_token(1)}\n\nsso={fake_token(2)}, {fake_token(3)}\n{fake_token(1)}\nnope\n"
    items = parse_token_import(text)
    assert [i.token for i in items[:3]] == [fake_token(1), fake_token(2), fake_token(3)]
    assert [i.problem for i in items[:3]] == [None, None, None]
    assert items[3].problem == "duplicate within this import" and items[3].account_id == account_id(
        fake_token(1)
    )
    assert items[4].token is None and "too short" in (items[4].problem or "")


def test_import_json_shapes() -> None:
    as_list = parse_token_import(json.dumps([fake_token(1), f"sso={fake_token(2)}"]))
    assert [i.token for i in as_list] == [fake_token(1), fake_token(2)]

    wrapped = parse_token_import(
        json.dumps(
            {"tokens": [{"token": fake_token(3), "tags": ["a", " b ", "a"], "note": " team "}, fake_token(4)]}
        )
    )
    assert wrapped[0].token == fake_token(3) and wrapped[0].tags == ("a", "b") and wrapped[0].note == "team"
    assert wrapped[1].token == fake_token(4)

    objects = parse_token_import([{"sso": fake_token(5)}, {"token": None}])
    assert objects[0].token == fake_token(5)
    assert objects[1].problem == "not a string (NoneType)"


def test_account_id_is_stable_short_and_not_the_token() -> None:
    assert account_id(TOKEN) == account_id(TOKEN) != account_id(fake_token(2))
    assert len(account_id(TOKEN)) == 12 and account_id(TOKEN) not in TOKEN


@pytest.mark.parametrize("token", [TOKEN, "a" * 16, "abcdefghijklmnopqrstuvwxyz", "abc", ""])
def test_mask_never_shows_the_whole_token(token: str) -> None:
    masked = mask(token)
    if token:
        assert token not in masked
        assert sum(c != "…" for c in masked) <= max(len(token) // 3, 0)
    assert mask(TOKEN) == f"{TOKEN[:4]}…{TOKEN[-4:]}"


def test_encryption_round_trip_bound_to_the_account() -> None:
    cipher = TokenCipher("correct horse battery staple")
    stored = cipher.encrypt(TOKEN, "acct1")
    assert TOKEN not in stored and stored.startswith("v1.")
    assert cipher.encrypt(TOKEN, "acct1") != stored  # fresh nonce each time
    assert cipher.decrypt(stored, "aesgcm", "acct1") == TOKEN
    with pytest.raises(TokenDecryptError, match="acct2"):
        cipher.decrypt(stored, "aesgcm", "acct2")  # copied onto another account


def test_wrong_or_missing_key_is_a_clear_error() -> None:
    stored = TokenCipher("key one").encrypt(TOKEN, "a")
    with pytest.raises(TokenDecryptError, match="differs from the one it was stored with"):
        TokenCipher("key two").decrypt(stored, "aesgcm", "a")
    with pytest.raises(TokenDecryptError, match="ENCRYPTION_KEY is not set"):
        TokenCipher(None).decrypt(stored, "aesgcm", "a")


def test_without_a_key_tokens_are_plaintext_and_say_so() -> None:
    cipher = TokenCipher(None)
    assert cipher.scheme == "none"
    assert cipher.encrypt(TOKEN, "a") == TOKEN
    assert TokenCipher("k").decrypt(TOKEN, "none", "a") == TOKEN  # added before a key was configured
