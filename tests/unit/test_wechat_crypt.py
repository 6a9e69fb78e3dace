"""Security mode's crypto (sms/wechat_crypt.py) against the pusher written from WeChat's
documentation (tests/wechat_fake.py): each opens what the other seals, at every padding
length (1 to 32 bytes: WeChat pads to 32-byte blocks), and nothing else is opened."""

from __future__ import annotations

import doctest

import pytest

from sms import wechat_crypt
from sms.errors import BadPush
from sms.wechat_crypt import aes_key, body_signed, decrypt, encrypt, msg_signature
from tests.wechat_fake import new_encoding_aes_key, wechat_decrypt, wechat_encrypt

APP_ID = "wx0123456789abcdef"


def test_the_modules_examples_hold() -> None:
    assert doctest.testmod(wechat_crypt).failed == 0


@pytest.mark.parametrize("size", range(40, 72))  # 32 consecutive lengths: every padding amount
def test_each_side_opens_what_the_other_seals(size: int) -> None:
    encoding = new_encoding_aes_key()
    xml = ("<xml>" + "x" * (size - 11) + "</xml>").encode()
    assert decrypt(aes_key(encoding), wechat_encrypt(encoding, xml, APP_ID), APP_ID) == xml
    assert wechat_decrypt(encoding, encrypt(aes_key(encoding), xml, APP_ID)) == (xml, APP_ID)


def test_another_account_another_key_or_a_broken_ciphertext_is_refused() -> None:
    encoding = new_encoding_aes_key()
    sealed = wechat_encrypt(encoding, b"<xml>\xe5\x85\xac</xml>", APP_ID)
    with pytest.raises(BadPush, match="appid"):
        decrypt(aes_key(encoding), sealed, "wxSomeoneElse0000")
    with pytest.raises(BadPush):
        decrypt(aes_key(new_encoding_aes_key()), sealed, APP_ID)
    with pytest.raises(BadPush, match="base64"):
        decrypt(aes_key(encoding), sealed[:-3] + "!!!", APP_ID)
    with pytest.raises(BadPush, match="blocks"):
        decrypt(aes_key(encoding), "QUJD", APP_ID)


def test_the_body_signature_is_the_sha1_of_the_four_sorted_strings() -> None:
    import hashlib

    expected = hashlib.sha1("".join(sorted(["tok", "1409304348", "372381329", "CIPHER=="])).encode()).hexdigest()
    assert msg_signature("tok", "1409304348", "372381329", "CIPHER==") == expected
    assert body_signed("tok", "1409304348", "372381329", "CIPHER==", expected.upper())
    assert not body_signed("tok", "1409304348", "372381329", "CIPHER=!", expected)
    assert not body_signed("", "1409304348", "372381329", "CIPHER==", expected)


@pytest.mark.parametrize("bad", ["short", "a" * 44, "!" * 43])
def test_a_key_that_is_no_encoding_aes_key_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        aes_key(bad)
