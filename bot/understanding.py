"""What the bot makes of one customer message, decided in one place.

The router acts on a `Reading`; `kefu kb ask` prints one; `kefu kb check` holds the
regressions to one. So what staff see for a question is what customers get:

    a person asked for, or a complaint  ->  handoff (bot/rules.py)
    nothing but small talk              ->  a polite reply in kind (knowledge_base/vocabulary.py)
    otherwise a question                ->  match the knowledge base in the message's language,
                                            then answer, clarify or decline (decide.py)

The first two are cheap and run on the event loop (`rules`); matching may be slow and runs
wherever the caller puts it (`answer`).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from bot.config import AnswerTemplateLimits, Config, HandoffConfig, MatchingConfig
from bot.rules import HandoffTrigger, detect_handoff
from bot.text import message_language, normalize
from bot.texts import Texts
from knowledge_base.base import KnowledgeBase
from knowledge_base.decide import Action, Decision, decide
from knowledge_base.matcher import MatchResult
from knowledge_base.semantic import Embedder, VectorCache, load_embedder

log = logging.getLogger(__name__)


class Intent(StrEnum):
    HANDOFF = "handoff"  # asked for a person, or complained
    SMALL_TALK = "small_talk"  # hello, thanks, goodbye, 在吗, 好的
    QUESTION = "question"  # for the knowledge base
    NOT_TEXT = "not_text"  # a picture, a voice message, a sticker


@dataclass(frozen=True, slots=True)
class Reading:
    text: str
    lang: str  # what the bot replies in: the message's language
    intent: Intent
    trigger: HandoffTrigger | None = None  # with HANDOFF
    small_talk: str | None = None  # with SMALL_TALK: its kind
    result: MatchResult | None = None  # with QUESTION
    decision: Decision | None = None  # with QUESTION

    @property
    def outcome(self) -> str:
        """In the words of the regression file: an entry's id, `decline` (clarified or
        declined), `handoff` or `small_talk`."""
        if self.intent is Intent.QUESTION and self.decision is not None:
            answer = self.decision.answer
            return answer.entry.id if self.decision.action is Action.ANSWER and answer \
                else "decline"
        return {Intent.HANDOFF: "handoff", Intent.SMALL_TALK: "small_talk"}.get(
            self.intent, "decline")


class Reader:
    """Reads messages for the bot, with the model (if any) loaded once per process."""

    def __init__(self, handoff: HandoffConfig, matching: MatchingConfig,
                 languages: frozenset[str], embedder: Embedder | None = None,
                 human_options: frozenset[str] = frozenset(),
                 templates: AnswerTemplateLimits | None = None) -> None:
        self._handoff = handoff
        self.templates = templates or AnswerTemplateLimits()
        self._matching = matching
        self._languages = languages  # those the bot has texts in
        self.embedder = embedder  # None: lexical matching only
        # The "talk to a person" button of every language, tapped or typed.
        self._human_options = frozenset(normalize(o) for o in human_options)

    def vectors(self) -> VectorCache | None:
        """Where a knowledge base's question vectors come from (None without a model)."""
        if self.embedder is None:
            return None
        return VectorCache(self._matching.vector_cache, self.embedder)

    def warm(self) -> None:
        """Load the model now, before customers ask: loaded on the first question instead,
        it kept every answer of a busy start waiting (2 s on an idle core, 18 s beside
        1,000 chats that also want the interpreter)."""
        if self.embedder is not None:
            started = time.monotonic()
            self.embedder.embed(["你好 hello"])
            log.info("sentence model %s ready in %.1f s", self.embedder.name,
                     time.monotonic() - started)

    def load(self, folder: Path, vocabulary_file: Path | None) -> KnowledgeBase:
        return KnowledgeBase.load(folder, vocabulary_file, self.vectors(), self.templates)

    def with_meaning(self, kb: KnowledgeBase) -> KnowledgeBase:
        """A knowledge base loaded by its words, with the model's vectors added."""
        vectors = self.vectors()
        return kb if vectors is None else kb.with_vectors(vectors)

    def rules(self, kb: KnowledgeBase, text: str, lang: str) -> Reading:
        """Everything but matching: a handoff, small talk, or a question still to match.
        `lang` is the conversation's language so far; a message in another one changes it."""
        urgent = self.urgent(text, lang)
        if urgent is not None:
            return urgent
        kind = kb.vocabulary.small_talk_kind(normalize(text))
        if kind is not None:
            return Reading(text, self._reply_lang(text, lang), Intent.SMALL_TALK,
                           small_talk=kind)
        return Reading(text, self._reply_lang(text, lang), Intent.QUESTION)

    def urgent(self, text: str, lang: str) -> Reading | None:
        """A request for a person, a complaint, or no text at all: what must not wait its
        turn behind other customers' questions (about 10 us; small talk takes longer)."""
        if not text.strip():
            return Reading(text, self._reply_lang(text, lang), Intent.NOT_TEXT)
        trigger = HandoffTrigger.REQUEST if normalize(text) in self._human_options \
            else detect_handoff(text, self._handoff)
        if trigger is not None:
            return Reading(text, self._reply_lang(text, lang), Intent.HANDOFF, trigger=trigger)
        return None

    def _reply_lang(self, text: str, lang: str) -> str:
        reply_lang = message_language(text, lang)
        return reply_lang if reply_lang in self._languages else lang

    def answer(self, kb: KnowledgeBase, reading: Reading, vectors: VectorCache | None = None
               ) -> Reading:
        """Match a question and decide what to do with it (may take milliseconds)."""
        if reading.intent is not Intent.QUESTION:
            return reading
        result = self.match(kb, reading.text, reading.lang, vectors=vectors)
        return Reading(reading.text, reading.lang, Intent.QUESTION, result=result,
                       decision=decide(result, self._matching))

    @property
    def matching(self) -> MatchingConfig:
        return self._matching

    def match(self, kb: KnowledgeBase, text: str, lang: str | None,
              exclude_self: bool = False, vectors: VectorCache | None = None,
              lexical_first: bool = True) -> MatchResult:
        """The knowledge base's best entries for `text`, by words and (with a model) meaning;
        `vectors` may already know the text's vector (an example question's)."""
        embedder = self.embedder

        def vector() -> np.ndarray | None:
            if vectors is not None:
                return vectors.vectors([text])[0]
            return query_vector(embedder, text) if embedder is not None else None

        return kb.matcher.match(text, self._matching.max_clarify_options, exclude_self,
                                lang, query_vector=vector, lexical_first=lexical_first)

    def read(self, kb: KnowledgeBase, text: str, lang: str, vectors: VectorCache | None = None
             ) -> Reading:
        """`vectors`: where the text's vector may already be (questions asked again and
        again, such as regressions)."""
        return self.answer(kb, self.rules(kb, text, lang), vectors)


@functools.lru_cache(maxsize=4096)
def query_vector(embedder: Embedder, text: str) -> np.ndarray:
    """A question's vector; customers ask the same few things again and again."""
    vector: np.ndarray = embedder.embed([text])[0]
    return vector


def reader_for(config: Config) -> Reader:
    matching = config.matching
    embedder = load_embedder(matching.model, matching.model_threads) \
        if matching.engine == "hybrid" else None
    texts = Texts(config)
    return Reader(config.handoff, matching, frozenset(texts.languages), embedder,
                  frozenset(texts.get(lang, "human_option") for lang in texts.languages),
                  config.knowledge_base.answer_templates)
