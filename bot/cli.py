"""The `kefu` command: serve; knowledge-base tools, agent accounts, transcripts and reports
for staff."""

from __future__ import annotations

import argparse
import asyncio
import codecs
import errno
import gc
import getpass
import json
import logging
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.app import create_app, open_store
from bot.cluster import LocalLeases
from bot.config import Config, load_config, secrets_in
from bot.errors import ConfigError, KnowledgeBaseError, SheetError
from bot.logs import configure_logging
from bot.masking import MaskingFilter
from bot.messages import ConversationState, split_text, utf8_size
from bot.progress import progress
from bot.store import Agent, AgentRole, Store
from bot.understanding import Intent, Reading, reader_for
from bot.workers import supervise, worker_command
from handoff.auth import hash_password, new_agent, password_problem
from handoff.board import Board
from handoff.customers import CustomerBook, CustomerError
from handoff.export import FORMATS as EXPORT_FORMATS
from handoff.export import KINDS as EXPORT_KINDS
from handoff.export import export
from handoff.privacy import Privacy
from handoff.replies import load_canned_replies, vague_phrases
from handoff.report import Period, make_report
from handoff.report_view import FORMATS, as_csv, as_html, as_markdown
from handoff.retention import Retention
from handoff.transcript import transcript_json, transcript_text
from handoff.webhooks import Webhooks
from knowledge_base import loader
from knowledge_base.base import KnowledgeBase
from knowledge_base.decide import Action
from knowledge_base.gaps import find_gaps, write_draft
from knowledge_base.importer import import_file
from knowledge_base.loader import Entry
from knowledge_base.review import conflicts, load_regressions, near_duplicates, regressions
from knowledge_base.templates import AnswerTemplates

DEFAULT_CONFIG = Path("config.yaml")


def build_parser() -> argparse.ArgumentParser:
    """Every command and option, each with a help line; `--config` goes before or after the
    command, as a user puts it."""
    # Given after the command, --config lands in the same place; SUPPRESS keeps the top
    # level's value (or default) when it is not.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                        help="configuration file (default: ./config.yaml)")
    parser = argparse.ArgumentParser(prog="kefu", description="kefu customer-service bot")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="configuration file (default: ./config.yaml)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the bot", parents=[common])
    serve.add_argument("--host", help="address to listen on (default: server.host)")
    serve.add_argument("--port", type=int, help="port to listen on (default: server.port)")
    serve.add_argument("--workers", type=int, metavar="N", help="processes on this machine, "
                       "one per core (default: server.workers; more than 1 needs store.type: "
                       "redis)")
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    kb = commands.add_parser("kb", help="knowledge-base tools", parents=[common]
                             ).add_subparsers(dest="kb_command", required=True,
                                              metavar="KB_COMMAND")
    check = kb.add_parser("check", help="validate the FAQ files; exit 1 on problems",
                          parents=[common])
    check.add_argument("path", nargs="?", type=Path, help="FAQ folder (default: from config)")
    ask = kb.add_parser("ask", help="show how the bot would answer a question",
                        parents=[common])
    ask.add_argument("question", help="a customer's message, in quotes")
    ask.add_argument("--kb", type=Path, help="FAQ folder (default: from config)")
    ask.add_argument("--lang", choices=("zh", "en"),
                     help="the conversation's language so far (default: business."
                     "default_language); a message in another language changes it")
    gaps = kb.add_parser("gaps", help="what customers asked that the bot could not answer, "
                                      "grouped", parents=[common])
    gaps.add_argument("--days", type=float, default=30.0, help="look this far back (30)")
    gaps.add_argument("--draft", type=Path, help="also write draft entries to this file")
    gaps.add_argument("--top", type=int, default=20, help="groups to show (20)")
    importing = kb.add_parser("import", help="make a knowledge-base file from a CSV or XLSX "
                                             "list of questions and answers", parents=[common])
    importing.add_argument("file", type=Path, help="the .csv or .xlsx file: a question and "
                           "an answer per row")
    importing.add_argument("--name", help="the new file's name in the folder (default: from "
                                          "the file imported)")
    importing.add_argument("--lang", choices=["zh", "en"],
                           help="write it as the file's lang: (default: none)")
    importing.add_argument("--encoding", help="a CSV file's text encoding, e.g. gbk (default: "
                           "UTF-8 or GB18030, told from the file)")
    agent = commands.add_parser("agent", help="agent accounts", parents=[common]
                                ).add_subparsers(dest="agent_command", required=True,
                                                 metavar="AGENT_COMMAND")
    add = agent.add_parser("add", help="create an agent account (asks for the password)",
                           parents=[common])
    add.add_argument("name", help="the name the agent logs in with")
    add.add_argument("--role", choices=[r.value for r in AgentRole], default="agent",
                     help="supervisors see and act on every chat (default: agent)")
    add.add_argument("--max-chats", type=int, help="chats at once (default: from config)")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input (for scripts)")
    agent.add_parser("list", help="list agent accounts", parents=[common])
    passwd = agent.add_parser("passwd", help="set an agent's password (asks for it)",
                              parents=[common])
    passwd.add_argument("name", help="the agent's login name")
    passwd.add_argument("--password-stdin", action="store_true",
                        help="read the password from standard input (for scripts)")
    remove = agent.add_parser("remove", help="delete an agent account; their open chats go "
                              "back to the queue", parents=[common])
    remove.add_argument("name", help="the agent's login name")
    transcript = commands.add_parser("transcript", help="export a conversation's transcript",
                                     parents=[common])
    transcript.add_argument("conversation_id", help="as shown in the console and in exports")
    transcript.add_argument("--format", choices=["text", "json"], default="text",
                            help="text to read, json for other programs (default: text)")
    commands.add_parser("handover", help="what is still open: queue, chats, overdue tickets",
                        parents=[common])
    _period_arguments(commands.add_parser(
        "report", help="service-desk figures for a period, with charts in HTML",
        parents=[common]), FORMATS, "md")
    exporting = commands.add_parser("export", help="customers, cases or conversations of a "
                                                   "period, as CSV, JSON or JSON lines",
                                    parents=[common])
    exporting.add_argument("kind", choices=EXPORT_KINDS, help="what to export")
    _period_arguments(exporting, EXPORT_FORMATS, "csv")
    exporting.add_argument("--unmasked", action="store_true",
                           help="phones, emails, ID-card and bank-card numbers in full "
                           "(recorded in the access trail)")
    customer = commands.add_parser("customer", help="customers' records", parents=[common]
                                   ).add_subparsers(dest="customer_command", required=True,
                                                    metavar="CUSTOMER_COMMAND")
    erase = customer.add_parser("erase", help="delete or anonymise everything kefu keeps of "
                                "one person, on their request", parents=[common])
    erase.add_argument("customer_id", nargs="?", help="the record's id (C...)")
    erase.add_argument("--contact", help="or the person's phone number or email")
    commands.add_parser("purge", help="delete or anonymise now what is older than "
                        "privacy.retention_days (kefu serve does it daily)", parents=[common])
    audit = commands.add_parser("audit", help="the access trail: who opened, exported or "
                                "erased what, when and from where", parents=[common])
    audit.add_argument("--from", dest="first", metavar="DATE",
                       help="first day, YYYY-MM-DD (default: 6 days before --to)")
    audit.add_argument("--to", dest="last", metavar="DATE",
                       help="last day, included (default: today)")
    audit.add_argument("--actor", help="only what this agent (or cli:USER) did")
    audit.add_argument("--action", help="only this: opened_conversation, opened_transcript, "
                       "opened_customer, exported, erased, purged, read_trail")
    audit.add_argument("--subject", help="only about this conversation or customer id")
    audit.add_argument("--format", choices=["text", "json"], default="text",
                       help="text to read, json lines for other programs (default: text)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(MaskingFilter())
    try:
        if args.command == "serve":
            return _serve(args.config, load_config(args.config), args)
        if args.command == "agent":
            config = load_config(args.config)
            if args.agent_command == "add":
                return _with_store(config, lambda store: _agent_add(config, store, args))
            if args.agent_command == "passwd":
                return _with_store(config, lambda store: _agent_passwd(store, args))
            if args.agent_command == "remove":
                return _with_store(config, lambda store: _agent_remove(store, args.name))
            return _with_store(config, _agent_list)
        if args.command in STORE_COMMANDS:
            config = load_config(args.config)
            command = STORE_COMMANDS[args.command]
            return _with_store(config, lambda store: command(config, store, args))
        config = _config_or_default(args.config)
        if args.kb_command == "check":
            return _kb_check(args.path or config.knowledge_base.path, config)
        if args.kb_command == "gaps":
            return _with_store(config, lambda store: _kb_gaps(config, store, args))
        if args.kb_command == "import":
            return _kb_import(config, args)
        return _kb_ask(config, args.kb, args.question, args.lang)
    except ConfigError as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 2
    except SheetError as exc:
        for problem in exc.problems:
            print(f"kefu: {problem}", file=sys.stderr)
        return 1
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


def _serve(path: Path, config: Config, args: argparse.Namespace) -> int:
    configure_logging(config.logging, secrets=secrets_in(config))
    host, port = args.host or config.server.host, args.port or config.server.port
    workers = args.workers or config.server.workers
    if workers < 1:
        raise ConfigError(f"--workers: {workers} is not a number of processes (1 or more)")
    if workers > 1 and config.store.type != "redis":
        raise ConfigError(f"server.workers: {workers} processes need store.type: redis (the "
                          "embedded SQLite store belongs to one process; docs/deploy.md)")
    if not args.reuse_port:  # a worker's supervisor has checked already
        _check_can_listen(host, port)
    if workers > 1:
        return supervise(worker_command(path, host, port), workers)
    gc.set_threshold(*config.server.gc_thresholds)
    web.run_app(create_app(config), host=host, port=port, print=_print_ready,
                reuse_port=args.reuse_port or None, loop=new_event_loop(config.server.event_loop))
    return 0


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """`server.event_loop`: uvloop, or Python's own."""
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def _check_can_listen(host: str, port: int) -> None:
    """Fail with one line before anything starts, not with a traceback after "kefu ready":
    bind each address as aiohttp will (reusing TIME_WAIT ports) and let go at once."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"server.host: cannot listen on {host!r}: {exc.strerror}") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise ConfigError(f"server.port: {host}:{port} is already in use (another "
                                      "kefu?); stop it, or choose another with --port"
                                      ) from None
                raise ConfigError(f"server: cannot listen on {host}:{port}: "
                                  f"{exc.strerror}") from None


def _print_ready(text: str) -> None:
    print(text.replace("Running on", "kefu is running on"), flush=True)


def _kb_check(folder: Path, config: Config) -> int:
    """The FAQ, the canned replies and the regression file: every problem, including
    vague answers, conflicting questions, near-duplicate entries and broken regressions."""
    problems: list[str] = []
    reader = reader_for(config)
    try:
        knowledge_base = reader.load(folder, config.knowledge_base.vocabulary)
    except KnowledgeBaseError as exc:
        problems += exc.problems
        knowledge_base = None
    # What did load is checked too: a broken entry must not hide the others' problems.
    loaded = knowledge_base.entries if knowledge_base else tuple(
        loader.read_entries(folder, AnswerTemplates(config.knowledge_base.answer_templates))[0])
    replies, reply_problems = load_canned_replies(config.desk.quick_replies_path)
    problems += reply_problems
    texts = [(e.source, "answer", e.answer) for e in loaded]
    texts += [(r.source, "quick reply", r.text) for r in replies]
    for source, what, text in texts:
        vague = vague_phrases(text, config.desk)
        if vague:
            problems.append(f"{source}: {what} is vague or curt ({', '.join(vague)}); "
                            "say what will happen and when")
    expectations = []
    try:
        expectations = load_regressions(config.knowledge_base.regressions)
    except KnowledgeBaseError as exc:
        problems += exc.problems
    if knowledge_base is not None:
        findings = (conflicts(knowledge_base, reader)
                    + near_duplicates(knowledge_base, reader)
                    + regressions(knowledge_base, expectations, reader,
                                  config.business.default_language))
        problems += [str(f) for f in findings]
    elif loaded:  # not the regressions: an entry that failed to load would fail them
        partial = KnowledgeBase.build(loaded, vectors=reader.vectors())
        problems += [str(f) for f in conflicts(partial, reader)
                     + near_duplicates(partial, reader)]
        if expectations:
            problems.append(f"{config.knowledge_base.regressions.name}: not run until the "
                            "problems above are fixed")
    if problems or knowledge_base is None:
        raise KnowledgeBaseError(problems)
    for warning in _many_parts(knowledge_base.entries, config):
        print(f"warning: {warning}", file=sys.stderr)
    questions = sum(len(e.questions) for e in knowledge_base.entries)
    print(f"{folder}: OK, {len(knowledge_base.entries)} entries, {questions} questions; "
          f"{len(replies)} quick replies; {len(expectations)} regressions pass")
    return 0


def _many_parts(entries: Sequence[Entry], config: Config) -> list[str]:
    """Answers that WeChat or WeCom would take in more parts than a customer's window leaves
    for people (its quota less the reserve): such an answer uses up the agent's messages."""
    warnings = []
    for name in ("wechat", "wecom"):
        channel = getattr(config.channels, name)
        room = channel.message_window_quota - channel.automatic_reserve
        for entry in entries:
            parts = len(split_text(entry.answer, channel.max_text_bytes, utf8_size))
            if parts > max(1, room):
                warnings.append(
                    f"{entry.source}: answer goes to {name} in {parts} messages of "
                    f"{channel.max_text_bytes} bytes, and a customer's message allows "
                    f"{channel.message_window_quota}; shorten it or link to a page")
    return warnings


async def _kb_gaps(config: Config, store: Store, args: argparse.Namespace) -> int:
    asked = await store.unanswered(since=time.time() - args.days * 86400)
    kb = reader_for(config).load(config.knowledge_base.path, config.knowledge_base.vocabulary)
    gaps = find_gaps([q.text for q in asked], kb)
    print(f"{len(asked)} questions the bot could not answer in the last {args.days:g} days, "
          f"in {len(gaps)} groups; most asked first:")
    for n, gap in enumerate(gaps[:args.top], start=1):
        closest = (f"closest entry: {gap.closest.entry.id} (score {gap.closest.score:g}, "
                   f"{gap.closest.entry.source})" if gap.closest else "no entry is close")
        print(f"{n:>3}. asked {gap.asked}x  {' / '.join(gap.examples)}\n       {closest}")
    if args.draft:
        write_draft(gaps[:args.top], args.draft)
        print(f"draft entries written to {args.draft}")
    return 0


def _kb_import(config: Config, args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise ConfigError(f"{args.file}: " + (
            "a folder; import reads one .csv or .xlsx file" if args.file.is_dir()
            else "no such file"))
    folder = config.knowledge_base.path
    target = folder / f"{args.name or args.file.stem}.yaml"
    if target.exists():
        raise ConfigError(f"{target} already exists; choose another --name")
    if args.encoding:
        try:
            codecs.lookup(args.encoding)
        except LookupError:
            raise ConfigError(f"--encoding {args.encoding}: not an encoding Python knows "
                              "(utf-8, gbk, gb18030, big5...)") from None
    folder.mkdir(parents=True, exist_ok=True)
    result = import_file(args.file, target, args.lang, args.encoding)
    for problem in result.skipped:
        print(f"  {problem}", file=sys.stderr)
    try:
        KnowledgeBase.load(folder, config.knowledge_base.vocabulary,
                           templates=config.knowledge_base.answer_templates)
    except KnowledgeBaseError as exc:
        print(f"{target}: written, but the knowledge base now has problems (fix them before "
              "the bot reloads it):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    read_as = f" (read as {result.encoding})" if result.encoding not in (None, "UTF-8") else ""
    print(f"{target}: {result.entries} entries, {result.questions} questions"
          f"{f'; {len(result.skipped)} rows skipped' if result.skipped else ''}{read_as}")
    return 0


def _period_arguments(command: argparse.ArgumentParser, formats: tuple[str, ...],
                      default: str) -> None:
    command.add_argument("--from", dest="first", metavar="DATE",
                         help="first day, YYYY-MM-DD (default: 6 days before --to)")
    command.add_argument("--to", dest="last", metavar="DATE",
                         help="last day, included (default: today)")
    command.add_argument("--format", choices=formats, help=f"{', '.join(formats)} (default: "
                         f"from --output's suffix, else {default})")
    command.add_argument("-o", "--output", type=Path, help="write here instead of stdout; "
                         f"the suffix (.{', .'.join(formats)}) says the format")


def _period_and_format(config: Config, args: argparse.Namespace, formats: tuple[str, ...],
                       default: str) -> tuple[Period, str]:
    try:
        period = Period.parse(args.first, args.last, ZoneInfo(config.business.timezone),
                              time.time(), config.reports.max_days)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return period, _format(args.output, args.format, formats, default)


def _format(output: Path | None, chosen: str | None, formats: tuple[str, ...],
            default: str) -> str:
    """The output's suffix says the format; a suffix kefu cannot write is refused rather
    than filled with something else. No file, or no suffix: --format, else `default`."""
    suffix = output.suffix.lstrip(".").lower() if output else ""
    suffix = {"htm": "html", "markdown": "md", "ndjson": "jsonl"}.get(suffix, suffix)
    known = ", ".join(formats)
    if suffix and suffix not in formats:
        raise ConfigError(f"{output}: cannot write a .{suffix} file; the formats are {known}"
                          f" (name the file .{', .'.join(formats)})")
    if suffix and chosen and chosen != suffix:
        raise ConfigError(f"{output}: the name says {suffix} but --format says {chosen}")
    return chosen or suffix or default


async def _write(output: Path | None, text: str, said: str) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        await asyncio.to_thread(output.write_text, text, encoding="utf-8")
        print(f"{output}: {said}", file=sys.stderr)


async def _report(config: Config, store: Store, args: argparse.Namespace) -> int:
    period, chosen = _period_and_format(config, args, FORMATS, "md")
    report = await make_report(store, period, config, now=time.time(),
                               progress=lambda items, total:
                               progress(items, total, "reading conversations"))
    text = {"html": as_html, "md": as_markdown, "csv": as_csv}[chosen](report)
    await _write(args.output, text, f"{chosen} report, {report.conversations} conversations "
                 f"from {period.first} to {period.last}")
    return 0


async def _export(config: Config, store: Store, args: argparse.Namespace) -> int:
    period, chosen = _period_and_format(config, args, EXPORT_FORMATS, "csv")
    text, count = await export(store, args.kind, period, chosen, progress=lambda items, total:
                               progress(items, total, f"reading {args.kind}"),
                               unmasked=args.unmasked)
    await _privacy(config, store).record(
        _actor(), "exported", args.kind, LOCAL, first=str(period.first), last=str(period.last),
        format=chosen, records=count, unmasked=args.unmasked)
    await _write(args.output, text, f"{count} {args.kind} from {period.first} to "
                 f"{period.last} ({chosen}{', unmasked' if args.unmasked else ''})")
    return 0


LOCAL = "local"  # where the command line's reads come from, in the trail
ALL_RECORDS = 10**9


def _actor() -> str:
    """Who runs a command, for the access trail."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this user id (a container)
        return "cli:?"


def _privacy(config: Config, store: Store) -> Privacy:
    """The desk's privacy work from the command line; webhooks are sent by `kefu serve`."""
    webhooks = Webhooks(config.webhooks, store, LocalLeases(),
                        masked=config.privacy.mask_webhooks)
    return Privacy(config.privacy, store, CustomerBook(config.crm, store), webhooks,
                   helpdesk=config.handoff.bridge())


async def _erase(config: Config, store: Store, args: argparse.Namespace) -> int:
    privacy = _privacy(config, store)
    if bool(args.customer_id) == bool(args.contact):
        raise ConfigError("name the customer: kefu customer erase ID, or --contact PHONE")
    customer_id = args.customer_id
    if args.contact:
        found = await privacy.find(args.contact)
        if not found:
            raise ConfigError("no customer record holds that contact")
        if len(found) > 1:
            raise ConfigError("several records hold that contact (anyone can type a number):"
                              f" {', '.join(c.id for c in found)}; erase the right one by id")
        customer_id = found[0].id
    try:
        counts = await privacy.erase(customer_id, _actor(), LOCAL)
    except CustomerError as exc:
        raise ConfigError(str(exc)) from None
    print(f"customer {customer_id} erased: "
          + ", ".join(f"{n} {kind}" for kind, n in counts.items()))
    return 0


async def _purge(config: Config, store: Store) -> int:
    counts = await Retention(config, store, LocalLeases()).purge()
    print("removed: " + (", ".join(f"{n} {kind}" for kind, n in counts.items()) or "nothing"))
    return 0


async def _audit(config: Config, store: Store, args: argparse.Namespace) -> int:
    zone = ZoneInfo(config.business.timezone)
    try:
        period = Period.parse(args.first, args.last, zone, time.time(),
                              config.reports.max_days)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    privacy = _privacy(config, store)
    records = await privacy.trail(period.since, period.until, ALL_RECORDS, actor=args.actor,
                                  action=args.action, subject=args.subject)
    for r in records:
        if args.format == "json":
            print(json.dumps(asdict(r), ensure_ascii=False))
            continue
        detail = ", ".join(f"{k}={v}" for k, v in r.detail.items())
        when = datetime.fromtimestamp(r.at, zone).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{when}  {r.actor:<16} {r.action:<20} {r.subject}  from {r.address}"
              + (f"  ({detail})" if detail else ""))
    await privacy.record(_actor(), "read_trail", "trail", LOCAL, first=str(period.first),
                         last=str(period.last))
    return 0


def _with_store(config: Config, work: Callable[[Store], Awaitable[int]]) -> int:
    async def run() -> int:
        store = await open_store(config)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


StoreCommand = Callable[[Config, Store, argparse.Namespace], Awaitable[int]]
# the commands that only need the configuration and the store
STORE_COMMANDS: dict[str, StoreCommand] = {
    "transcript": lambda config, store, args: _transcript(
        config, store, args.conversation_id, args.format),
    "handover": lambda config, store, args: _handover(config, store),
    "report": _report,
    "export": _export,
    "customer": _erase,
    "purge": lambda config, store, args: _purge(config, store),
    "audit": _audit,
}


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():  # getpass would echo it, or fail at the end of the input
        raise ConfigError("standard input is not a terminal: to read the password from it, "
                          "add --password-stdin")
    try:
        password = getpass.getpass("password: ")
        again = getpass.getpass("again: ")
    except (EOFError, KeyboardInterrupt):
        raise ConfigError("no password given; nothing was changed") from None
    if again != password:
        raise ConfigError("the two passwords differ; nothing was changed")
    return password


async def _agent_add(config: Config, store: Store, args: argparse.Namespace) -> int:
    if await store.agent_by_name(args.name) is not None:
        raise ConfigError(f"an agent named {args.name!r} already exists")
    max_chats = args.max_chats or config.desk.default_max_chats
    if max_chats < 1:
        raise ConfigError("--max-chats must be at least 1")
    password = _read_password(args.password_stdin)
    problem = password_problem(password)
    if problem:
        raise ConfigError(problem)
    agent = new_agent(args.name, password, AgentRole(args.role), max_chats, time.time())
    await store.save_agent(agent)
    print(f"agent {agent.name} added ({agent.role.value}, up to {max_chats} chats); "
          f"log in at http://{config.server.host}:{config.server.port}/agent")
    return 0


async def _agent_list(store: Store) -> int:
    for agent in await store.agents():
        print(f"{agent.name:<20} {agent.role.value:<11} max {agent.max_chats} chats  "
              f"{'disabled' if agent.disabled else agent.presence.value}")
    return 0


async def _existing_agent(store: Store, name: str) -> Agent:
    agent = await store.agent_by_name(name)
    if agent is None:
        raise ConfigError(f"no agent named {name!r} (kefu agent list shows them)")
    return agent


async def _agent_passwd(store: Store, args: argparse.Namespace) -> int:
    agent = await _existing_agent(store, args.name)
    password = _read_password(args.password_stdin)
    problem = password_problem(password)
    if problem:
        raise ConfigError(problem)
    await store.update_agent(agent.id, password_hash=hash_password(password))
    await store.end_sessions(agent.id)
    print(f"password of {agent.name} changed; they are logged out everywhere")
    return 0


async def _agent_remove(store: Store, name: str) -> int:
    agent = await _existing_agent(store, name)
    await store.delete_agent(agent.id)
    open_chats = sum(c.agent_id == agent.id
                     for c in await store.conversations_in_state(ConversationState.AGENT))
    print(f"agent {agent.name} removed" + (
        f"; kefu's desk puts their {open_chats} open chat(s) back in the queue within a tick"
        if open_chats else ""))
    return 0


async def _transcript(config: Config, store: Store, conversation_id: str, fmt: str) -> int:
    conversation = await store.get_conversation(conversation_id)
    if conversation is None:
        raise ConfigError(f"no conversation {conversation_id}")
    await _privacy(config, store).record(_actor(), "opened_transcript", conversation_id, LOCAL,
                                         format=fmt)
    messages = await store.messages(conversation_id)
    events = await store.events(conversation_id)
    if fmt == "json":
        print(json.dumps(transcript_json(conversation, messages, events), ensure_ascii=False,
                         indent=2))
    else:
        names = {a.id: a.name for a in await store.agents()}
        print(transcript_text(conversation, messages, events,
                              ZoneInfo(config.business.timezone), names), end="")
    return 0


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


async def _handover(config: Config, store: Store) -> int:
    now = time.time()
    view = await Board(store, config.desk, time.time).handover()
    print(f"Queued ({len(view['queued'])}):")
    for c in view["queued"]:
        print(f"  #{c['position']} {c['id']}  {c['channel']}/{c['user_id']}  waiting "
              f"{_age(c['waited_seconds'])}  ({c['handoff_reason']})  {c['preview']}")
    print(f"In progress ({len(view['in_progress'])}):")
    for c in view["in_progress"]:
        flag = "  NO REPLY " + _age(c["awaiting_seconds"]) if c["flagged"] else ""
        print(f"  {c['id']}  {c['channel']}/{c['user_id']}  with {c['agent_name']}  "
              f"for {_age(now - c['assigned_at'] if c['assigned_at'] else None)}{flag}")
    overdue = view["overdue_tickets"]
    print(f"Overdue offline messages ({len(overdue)} of {view['open_tickets']} open):")
    for t in overdue:
        print(f"  {t['id']}  overdue {_age(now - t['due_at'])}  {t['contact'] or '(no contact)'}"
              f"  {t['question'][:60]}")
    return 0


def _kb_ask(config: Config, folder: Path | None, question: str, lang: str | None) -> int:
    reader = reader_for(config)
    knowledge_base = reader.load(folder or config.knowledge_base.path,
                                 config.knowledge_base.vocabulary)
    reading = reader.read(knowledge_base, question, lang or config.business.default_language)
    print(_explain(reading))
    return 0


def _explain(reading: Reading) -> str:
    """What the live bot would do with a message, and why (bot/understanding.py)."""
    lines = []
    result, decision = reading.result, reading.decision
    if result is not None:
        lines.append(f"question (as matched): {result.query!r}")
        for rank, c in enumerate(result.candidates, start=1):
            lines.append(f"  {rank}. {c.entry.id:<28} score {c.score:5.1f}  rank "
                         f"{c.support:5.1f}  (cosine {c.cosine:.2f}, edit {c.edit:.0f})  via "
                         f"{c.question!r}  [{c.entry.source}]")
    if reading.intent is Intent.HANDOFF and reading.trigger is not None:
        what, why = "hand over to a person", f"a {reading.trigger.value} phrase"
    elif reading.intent is Intent.SMALL_TALK:
        what, why = f"reply to small talk (text smalltalk_{reading.small_talk})", \
            "the message is only small talk"
    elif reading.intent is Intent.NOT_TEXT or decision is None:
        what, why = "say it can only read text", "no text"
    else:
        what = {
            Action.ANSWER: f"answer with {decision.answer.entry.id if decision.answer else ''}",
            Action.CLARIFY: "ask which was meant: "
            + " / ".join(c.question for c in decision.options),
            Action.DECLINE: "decline and offer a person",
        }[decision.action]
        why = decision.reason
    lines.append(f"the bot would: {what}  ({why}; replying in {reading.lang})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
