"""The `kefu` command: serve, and knowledge-base tools for staff."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from aiohttp import web

from bot.app import create_app
from bot.config import Config, load_config
from bot.errors import ConfigError, KnowledgeBaseError
from bot.text import detect_language
from knowledge_base.base import KnowledgeBase
from knowledge_base.decide import Action, decide
from knowledge_base.matcher import MatchResult

DEFAULT_CONFIG = Path("config.yaml")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kefu", description="kefu customer-service bot")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="configuration file (default: ./config.yaml)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the bot")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    kb = commands.add_parser("kb", help="knowledge-base tools").add_subparsers(
        dest="kb_command", required=True)
    check = kb.add_parser("check", help="validate the FAQ files; exit 1 on problems")
    check.add_argument("path", nargs="?", type=Path, help="FAQ folder (default: from config)")
    ask = kb.add_parser("ask", help="show how the bot would answer a question")
    ask.add_argument("question")
    ask.add_argument("--kb", type=Path, help="FAQ folder (default: from config)")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "serve":
            return _serve(load_config(args.config), args.host, args.port)
        if args.kb_command == "check":
            return _kb_check(args.path or _config_or_default(args.config).knowledge_base.path)
        return _kb_ask(_config_or_default(args.config), args.kb, args.question)
    except ConfigError as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 2
    except KnowledgeBaseError as exc:
        print("kefu: the knowledge base has problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1


def _config_or_default(path: Path) -> Config:
    """kb tools work without a config file too, with the defaults."""
    if path == DEFAULT_CONFIG and not path.exists():
        return Config()
    return load_config(path)


def _serve(config: Config, host: str | None, port: int | None) -> int:
    web.run_app(create_app(config), host=host or config.server.host,
                port=port or config.server.port, print=_print_ready)
    return 0


def _print_ready(text: str) -> None:
    print(text.replace("Running on", "kefu is running on"), flush=True)


def _kb_check(folder: Path) -> int:
    knowledge_base = KnowledgeBase.load(folder)
    questions = sum(len(e.questions) for e in knowledge_base.entries)
    print(f"{folder}: OK, {len(knowledge_base.entries)} entries, {questions} questions")
    return 0


def _kb_ask(config: Config, folder: Path | None, question: str) -> int:
    knowledge_base = KnowledgeBase.load(folder or config.knowledge_base.path)
    result = knowledge_base.matcher.match(question, config.matching.max_clarify_options)
    print(_explain(result, config))
    return 0


def _explain(result: MatchResult, config: Config) -> str:
    lines = [f"question (normalised): {result.query!r}"]
    for rank, c in enumerate(result.candidates, start=1):
        lines.append(f"  {rank}. {c.entry.id:<28} score {c.score:5.1f}  (cosine {c.cosine:.2f}, "
                     f"edit {c.edit:.0f})  via {c.question!r}  [{c.entry.source}]")
    decision = decide(result, config.matching)
    what = {
        Action.ANSWER: f"answer with {decision.answer.entry.id if decision.answer else ''}",
        Action.CLARIFY: "ask which was meant: " + " / ".join(c.question for c in decision.options),
        Action.DECLINE: "decline and offer a person",
    }[decision.action]
    lang = detect_language(result.query, config.business.default_language)
    lines.append(f"the bot would: {what}  ({decision.reason}; language {lang})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
