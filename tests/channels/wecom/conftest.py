"""The WeCom tests' fixture (tests/channels/wecom/world.py)."""

from tests.channels.wecom.world import wecom_world

__all__ = ["wecom_world"]
