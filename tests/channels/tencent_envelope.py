"""Tencent's callback envelope as the platforms make it, written independently of kefu and
of wechatpy, for the WeChat and WeCom stand-ins: SHA-1 signatures over the sorted parts,
AES-256-CBC (IV: the key's first 16 bytes) over 16 random bytes, the 4-byte big-endian
length of the UTF-8 message, the message and the receiver's id (AppID or CorpID), padded
PKCS#7-style to 32 bytes."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import time

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def sha1_sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def new_aes_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()[:43]


def seal(aes_key: str, receiver_id: str, message: str) -> str:
    key = base64.b64decode(aes_key + "=")
    body = message.encode("utf-8")
    plain = os.urandom(16) + struct.pack(">I", len(body)) + body + receiver_id.encode()
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def unseal(aes_key: str, receiver_id: str, sealed: str) -> str:
    key = base64.b64decode(aes_key + "=")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(base64.b64decode(sealed)) + decryptor.finalize()
    plain = plain[:-plain[-1]]
    (length,) = struct.unpack(">I", plain[16:20])
    assert plain[20 + length:].decode() == receiver_id, "sealed for another receiver"
    return plain[20:20 + length].decode("utf-8")


class Clock:
    """The time both kefu and a stand-in see; tests move it forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds
