"""The API token setting on its own (the served behaviour is in test_load.py)."""

from __future__ import annotations

import pytest

from service.auth import TOKEN_ENV, TokenSettingError, api_token


def test_no_variable_means_no_token():
    assert api_token({}) is None


def test_a_token_is_read_trimmed():
    assert api_token({TOKEN_ENV: " abc-DEF_123.~+/= \n"}) == b"abc-DEF_123.~+/="


@pytest.mark.parametrize("value", ["", "   ", "\n"])
def test_an_empty_token_is_refused_not_read_as_no_auth(value):
    with pytest.raises(TokenSettingError, match=f"{TOKEN_ENV} is set but empty"):
        api_token({TOKEN_ENV: value})


@pytest.mark.parametrize("value", ["two words", "naïve", "semi;colon", 'quo"te'])
def test_a_token_that_cannot_travel_in_a_header_is_refused(value):
    with pytest.raises(TokenSettingError, match="token_urlsafe"):
        api_token({TOKEN_ENV: value})
