"""`handoff.chatwoot` in config.yaml: which Chatwoot account and API inbox kefu serves.

Read by bot/config.py before the rest of kefu is imported, so this imports nothing of the
bridge itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

from pydantic import Field, model_validator

from bot.settings import BridgeSettings, Seconds

if TYPE_CHECKING:
    from bot.store import Store
    from handoff.bridges import BridgeServices, DeskBridge


class ChatwootSettings(BridgeSettings):
    base_url: str = ""  # https://chatwoot.example.com
    account_id: Annotated[int, Field(ge=0)] = 0  # the number in the dashboard's URLs
    inbox_id: Annotated[int, Field(ge=0)] = 0  # the API channel inbox kefu's customers use
    # A user's access token (Profile settings): agent-bot tokens cannot use the contacts
    # endpoints. KEFU_HANDOFF__CHATWOOT__ACCESS_TOKEN; never logged.
    access_token: str = ""
    webhook_secret: str = ""  # the API inbox's secret (Chatwoot 4.13 and later sign with it)
    url_secret: str = ""  # older installs: the webhook URL ends /bridges/chatwoot/<this>
    timestamp_max_age_seconds: Seconds = 300.0  # an older signed webhook is refused
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1_048_576
    timeout_seconds: Seconds = 10.0  # one API call
    sync_seconds: Seconds = 5.0  # every open handoff is looked at this often, at least
    catch_up_seconds: Seconds = 30.0  # Chatwoot's messages read back (webhooks not retried)
    first_retry_seconds: Seconds = 2.0  # a failed call waits this, doubling each time...
    max_retry_seconds: Seconds = 300.0  # ...up to this
    hours_cache_seconds: Seconds = 300.0  # the inbox's business hours are read this often

    def missing(self) -> list[str]:
        """The settings a handoff to Chatwoot cannot do without."""
        needed = [k for k in ("base_url", "account_id", "inbox_id", "access_token")
                  if not getattr(self, k)]
        if not (self.webhook_secret or self.url_secret):
            needed.append("webhook_secret (or url_secret)")
        return needed

    def build(self, kefu: BridgeServices) -> DeskBridge:
        from handoff.bridges.chatwoot.bridge import ChatwootBridge

        return ChatwootBridge(self, kefu.store, kefu.speaker, kefu.customers, kefu.leases,
                              kefu.news, kefu.clock)

    async def forget(self, store: Store, conversation_ids: Sequence[str]) -> int:
        from handoff.bridges.chatwoot.bridge import forget

        return await forget(store, conversation_ids)

    @model_validator(mode="after")
    def _url_secret_long_enough(self) -> ChatwootSettings:
        if self.url_secret and len(self.url_secret) < 16:
            raise ValueError("url_secret: use at least 16 characters (it is all that "
                             "guards the webhook on an install that does not sign)")
        return self
