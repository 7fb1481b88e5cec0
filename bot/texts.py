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
        "holding": "非常抱歉让您久等，您前面还有 {ahead} 位，人工客服接入后会第一时间回复您。",
        "holding_next": "非常抱歉让您久等，您是下一位，人工客服接入后会第一时间回复您。",
        "wait_estimate": "预计还需等待约 {minutes} 分钟。",
        "agent_joined": "客服{agent}已接入，正在查看您之前的消息，请稍候。",
        "agent_holding": "正在为您查询，请稍候。",
        "transferred": "正在为您转接客服{agent}，请稍候。",
        "requeued": "原客服暂时不能继续接待，正在为您转接其他客服，请稍候。",
        "handed_back": "已为您转回智能客服，有问题随时问我；需要人工请回复“人工”。",
        "rating_request": "本次服务已结束，感谢您的耐心。请为本次服务打分：",
        "rating_options": "5 非常满意|4 满意|3 一般|2 不满意|1 非常不满意",
        "offline_prompt": "{why}请留言：描述您的问题并留下手机号或邮箱，"
        "我们会在{due}前回复您。",
        "offline_closed": "现在是非工作时间（人工客服{back_at}上班）。",
        "offline_nobody": "现在暂时没有客服在线。",
        "offline_ask_contact": "收到。请再留下您的手机号或邮箱，方便我们联系您"
        "（不方便留的话回复“跳过”，我们会在这里回复您）。",
        "offline_received": "您的留言已收到（编号 {ticket}），我们会在{due}前回复您{how}。",
        "offline_by_contact": "，联系方式：{contact}",
        "offline_here": "，回复会发在这里",
        "offline_cancelled": "好的，不留言了。还有问题随时问我。",
        "rating_thanks": "感谢您的评价！",
        "human_option": "人工客服",
        "none_of_these": "都不是",
        "error": "抱歉，系统出了点问题，您的消息已保存，我们会尽快处理。",
        "unsupported": "抱歉，我暂时只能看懂文字消息。请用文字描述您的问题，"
        "或回复“人工”联系人工客服。",
        "smalltalk_greeting": "您好！请问有什么可以帮您？",
        "smalltalk_presence": "在的，请问有什么可以帮您？",
        "smalltalk_thanks": "不客气！还有其他问题随时问我。",
        "smalltalk_goodbye": "感谢您的咨询，祝您生活愉快，再见！",
        "smalltalk_acknowledge": "好的。还有其他需要帮忙的，随时告诉我。",
    },
    "en": {
        "clarify": "Did you mean one of these? Pick one, or put it another way.",
        "fallback": "Sorry, I don't have an answer to that. You can rephrase it, or type "
        "\"agent\" to talk to a person.",
        "handoff_request": "Sure, I'm passing you to a colleague now. Please hold on.",
        "handoff_complaint": "We're very sorry about this. I'm passing you to a colleague who "
        "will look into it.",
        "handoff_misses": "Sorry I couldn't help. I'm passing you to a colleague.",
        "holding": "Sorry for the wait: {ahead} customer(s) ahead of you. A colleague will "
        "reply as soon as they join.",
        "holding_next": "Sorry for the wait: you are next. A colleague will reply as soon as "
        "they join.",
        "wait_estimate": "The wait should be about {minutes} min.",
        "agent_joined": "{agent} has joined and is reading your messages; one moment please.",
        "agent_holding": "I'm checking this for you; one moment please.",
        "transferred": "I'm passing you to my colleague {agent}; one moment please.",
        "requeued": "Your colleague can no longer continue; I'm finding you another one, "
        "one moment please.",
        "handed_back": "You're back with the virtual assistant; ask me anything, or type "
        "\"agent\" for a person.",
        "rating_request": "This chat has ended; thank you for your patience. How did we do?",
        "rating_options": "5 Excellent|4 Good|3 OK|2 Poor|1 Very poor",
        "offline_prompt": "{why}Please leave a message: describe your question and leave a "
        "phone number or email, and we'll reply by {due}.",
        "offline_closed": "We're closed right now (back {back_at}). ",
        "offline_nobody": "No colleague is available right now. ",
        "offline_ask_contact": "Thanks. Please also leave a phone number or email so we can "
        "reach you (or reply \"skip\" and we'll answer here).",
        "offline_received": "We've got your message (ref. {ticket}) and will reply by "
        "{due}{how}.",
        "offline_by_contact": " at {contact}",
        "offline_here": " here",
        "offline_cancelled": "All right, no message left. Ask me anything any time.",
        "rating_thanks": "Thank you for your rating!",
        "human_option": "Talk to a person",
        "none_of_these": "None of these",
        "error": "Sorry, something went wrong on our side. Your message is saved and we'll "
        "get back to you.",
        "unsupported": "Sorry, I can only read text for now. Please describe your question "
        "in words, or type \"agent\" for a person.",
        "smalltalk_greeting": "Hello! How can I help you?",
        "smalltalk_presence": "Yes, I'm here. How can I help you?",
        "smalltalk_thanks": "You're welcome! Ask me anything else any time.",
        "smalltalk_goodbye": "Thank you for getting in touch. Goodbye, and have a nice day!",
        "smalltalk_acknowledge": "All right. Let me know if there's anything else I can help "
        "with.",
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

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self._texts)

    def get(self, lang: str, key: str, **values: object) -> str:
        texts = self._texts.get(lang) or self._texts[self._default]
        return texts[key].format(**values) if values else texts[key]
