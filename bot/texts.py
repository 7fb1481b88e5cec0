"""What the bot says in each language, overridable per key under `texts:` in config.yaml."""

from __future__ import annotations

from bot.config import Config
from bot.errors import ConfigError

DEFAULT_TEXTS: dict[str, dict[str, str]] = {
    "zh": {
        "clarify": "您是想问下面哪一个问题？请点选，或换个说法告诉我。",
        "fallback": "抱歉，这个问题我暂时回答不了。"
        "您可以换个说法，或回复“人工”联系人工客服。",
        "handoff_request": "好的，正在为您转接人工客服，请稍候。",
        "handoff_complaint": "非常抱歉给您带来不好的体验，正在为您转接人工客服专门处理。",
        "handoff_misses": "抱歉没能帮到您，正在为您转接人工客服。",
        "handoff_closed": "现在是非工作时间，人工客服{back_at}上班，"
        "您的消息都会保留，上班后第一时间回复您。",
        "holding": "您的消息已收到，人工客服接入后会第一时间回复您。您前面还有 {ahead} 位。",
        "rating_thanks": "感谢您的评价！",
        "human_option": "人工客服",
        "none_of_these": "都不是",
        "error": "抱歉，系统出了点问题，您的消息已保存，我们会尽快处理。",
    },
    "en": {
        "clarify": "Did you mean one of these? Pick one, or put it another way.",
        "fallback": "Sorry, I don't have an answer to that. You can rephrase it, or type "
        "\"agent\" to talk to a person.",
        "handoff_request": "Sure, I'm passing you to a colleague now. Please hold on.",
        "handoff_complaint": "We're very sorry about this. I'm passing you to a colleague who "
        "will look into it.",
        "handoff_misses": "Sorry I couldn't help. I'm passing you to a colleague.",
        "handoff_closed": "We're closed right now and back {back_at}. Your messages are kept "
        "and we'll reply as soon as we're in.",
        "holding": "Got your message; a colleague will reply as soon as they join. "
        "{ahead} customer(s) ahead of you.",
        "rating_thanks": "Thank you for your rating!",
        "human_option": "Talk to a person",
        "none_of_these": "None of these",
        "error": "Sorry, something went wrong on our side. Your message is saved and we'll "
        "get back to you.",
    },
}


class Texts:
    def __init__(self, config: Config) -> None:
        self._texts = {lang: dict(texts) for lang, texts in DEFAULT_TEXTS.items()}
        for lang, overrides in config.texts.items():
            base = self._texts.setdefault(lang, dict(DEFAULT_TEXTS["en"]))
            for key, value in overrides.items():
                if key not in DEFAULT_TEXTS["en"]:
                    raise ConfigError(f"texts.{lang}.{key}: unknown text key; known keys: "
                                      + ", ".join(DEFAULT_TEXTS["en"]))
                base[key] = value
        self._default = config.business.default_language

    def get(self, lang: str, key: str, **values: object) -> str:
        texts = self._texts.get(lang) or self._texts[self._default]
        return texts[key].format(**values) if values else texts[key]
