"""What the WeChat and WeCom channels' settings share."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from bot.settings import ChannelSettings, Seconds


class TencentApiConfig(ChannelSettings):
    """What WeChat and WeCom share: the server API, its token, and the delivery window."""

    api_timeout_seconds: Seconds = 5.0
    token_refresh_margin_seconds: Seconds = 300.0  # refresh the access_token this early
    send_attempts: Annotated[int, Field(ge=1)] = 3  # for system busy (-1) and network errors
    timestamp_tolerance_seconds: Seconds = 300.0  # older signed pushes are replays
    max_body_bytes: Annotated[int, Field(ge=1024)] = 65536
    max_text_bytes: Annotated[int, Field(ge=64)] = 2048  # the limit for one text
    api_base: str = ""
    message_window_seconds: Seconds = 48 * 3600.0  # after a customer message...
    message_window_quota: Annotated[int, Field(ge=0)] = 5  # ...this many API messages
    event_window_seconds: Seconds = 60.0  # after an event (follow, scan, menu click)...
    event_window_quota: Annotated[int, Field(ge=0)] = 3  # ...this many
    automatic_reserve: Annotated[int, Field(ge=0)] = 2  # the last messages kept for people
