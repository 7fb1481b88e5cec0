"""The 5-second greeting rule: what the greeting says and how late it was."""

from __future__ import annotations

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from bot.config import Config
from bot.errors import ConfigError
from bot.hours import BusinessHours, describe_hours, time_greeting

_env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


class Greeter:
    """Renders the greeting from templates compiled once at start-up."""

    def __init__(self, config: Config, hours: BusinessHours) -> None:
        self._config = config
        self._hours = hours
        self._templates: dict[str, jinja2.Template] = {}
        # what each language's greeting and answers' context say during the current minute:
        # they read the clock only to the minute (time of day, open or not, when we open)
        self._minute = -1
        self._this_minute: dict[str, str] = {}  # by language
        self._contexts: dict[str, dict[str, object]] = {}  # by language
        for lang, source in config.greeting.templates.items():
            try:
                self._templates[lang] = _env.from_string(source)
            except jinja2.TemplateSyntaxError as exc:
                raise ConfigError(f"greeting.templates.{lang}: {exc.message}") from None
        # Render once now so that a typo stops start-up, not the first customer's greeting.
        for lang in self._templates:
            try:
                self.render(lang, 0.0)
            except jinja2.TemplateError as exc:
                raise ConfigError(f"greeting.templates.{lang}: {exc}") from None

    def _at(self, now: float) -> None:
        minute = int(now // 60)
        if minute != self._minute:
            self._minute, self._this_minute, self._contexts = minute, {}, {}

    def context(self, lang: str, now: float) -> dict[str, object]:
        """What greetings and answers may use (read only: answers share it)."""
        self._at(now)
        context = self._contexts.get(lang)
        if context is None:
            moment = self._hours.local(now)
            context = self._contexts[lang] = {
                "business": self._config.business.name,
                "time_greeting": time_greeting(moment, lang),
                "hour": moment.hour,
                "is_open": self._hours.is_open(moment),
                "back_at": self._hours.describe_opening(moment, lang),
                "hours": describe_hours(self._config.business, lang),
            }
        return context

    def render(self, lang: str, now: float) -> str:
        self._at(now)
        text = self._this_minute.get(lang)
        if text is None:
            default = self._config.business.default_language
            template = self._templates.get(lang) or self._templates[default]
            text = self._this_minute[lang] = template.render(**self.context(lang, now)).strip()
        return text


def breach_cause(phases: dict[str, float]) -> str:
    """Name the slowest phase of a late greeting, e.g. 'store: 5.21 s'."""
    name, seconds = max(phases.items(), key=lambda item: item[1])
    return f"{name}: {seconds:.2f} s"
