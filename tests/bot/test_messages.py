"""What every channel shares: splitting long replies and quick replies as text."""

from __future__ import annotations

from bot.messages import (
    Attachment,
    attachments_text,
    render_quick_replies_as_text,
    split_text,
    utf8_size,
)


def test_long_text_splits_at_line_breaks_within_the_limit() -> None:
    text = "第一行\n" + "很长" * 10 + "\n最后"
    parts = split_text(text, 12)
    assert all(len(p) <= 12 for p in parts)
    assert "".join(parts).replace("\n", "") == text.replace("\n", "")
    assert parts[0] == "第一行"


def test_byte_limits_count_utf8_bytes_not_characters() -> None:
    text = "退货" * 700  # 1400 characters, 4200 bytes
    parts = split_text(text, 2048, utf8_size)
    assert all(utf8_size(p) <= 2048 for p in parts)
    assert "".join(parts) == text
    assert len(parts) == 3
    assert split_text("short", 2048, utf8_size) == ["short"]
    assert split_text("", 10) == [""]


def test_quick_replies_become_numbered_lines_where_buttons_are_missing() -> None:
    assert render_quick_replies_as_text("您是想问？", ("可以退货吗", "人工客服")) == \
        "您是想问？\n1. 可以退货吗\n2. 人工客服"
    assert render_quick_replies_as_text("好的", ()) == "好的"
    assert attachments_text((Attachment("image", "http://x/1.jpg"),
                             Attachment("voice", "m1"))) == "[image] [voice]"
