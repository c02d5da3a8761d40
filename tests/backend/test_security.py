"""The token check and the generated token file, without a broker."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from backend.security import generate_token, token_matches, write_token_file


def test_token_matches_only_the_exact_token() -> None:
    """Only the exact token passes; prefixes, empty and missing tokens do not."""
    expected = b"s3cret-token-value"

    assert token_matches("s3cret-token-value", expected)
    assert not token_matches("s3cret-token-valu", expected)
    assert not token_matches("", expected)
    assert not token_matches(None, expected)
    assert not token_matches("s3cret-token-valué", expected)


def test_generated_tokens_are_long_and_distinct() -> None:
    """Each generated token is fresh and at least 40 characters."""
    tokens = {generate_token() for _ in range(50)}

    assert len(tokens) == 50
    assert min(len(t) for t in tokens) >= 40


def test_token_file_is_owner_only_and_never_overwritten(tmp_path: Path) -> None:
    """The token file is created 0600; an existing file is left alone."""
    path = tmp_path / "nested" / "api-token"

    write_token_file(path, "first-token-123456")
    with pytest.raises(FileExistsError):
        write_token_file(path, "second-token-123456")

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text(encoding="ascii") == "first-token-123456\n"
