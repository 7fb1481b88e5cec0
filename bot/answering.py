"""Where questions are matched and answers rendered: in processes beside kefu's own
(`matching.processes`, 1 as shipped), or in threads of kefu's process (0).

Why processes: under the open-loop load (1,000 chats asking every 2 s) the threads that
matched took a third of kefu's CPU time, and every moment one of them held the interpreter
lock, the event loop (sockets, the store's callbacks, greetings) waited for it. In a process
of its own the matching runs beside the loop, on the other core. The hand-over is one
pickled frame each way on a socket pair that the event loop itself reads and writes: an
executor's helper threads would take the lock again for every question. The process reads
the whole message (the handoff rules and small talk too, not only matching), and its reply
names the knowledge base's entries by their place instead of carrying copies: kefu's own
process, where every other step of every customer's message runs, only unpickles a small
frame.

Each process holds a copy of the knowledge base, sent again when it changes (one pickled
copy per reload), and its own copy of the sentence model (loaded before kefu is ready). A
process that dies (killed, out of memory) is replaced, and the questions it held are
answered in a thread meanwhile: no customer waits for it.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import pickle
import signal
import socket
import struct
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from bot.config import Config
from bot.greeting import Greeter
from bot.hours import BusinessHours
from bot.understanding import Intent, Reader, Reading, reader_for
from knowledge_base.base import KnowledgeBase
from knowledge_base.live import process_context
from knowledge_base.loader import Entry
from knowledge_base.templates import AnswerTemplates

log = logging.getLogger(__name__)

Answer = tuple[Reading, str | None]
_LENGTH = struct.Struct("!i")  # frames under 2 GiB, as Connection sends them
_REPLY = struct.Struct("!q?")  # a reply's question number, and whether it was answered


def read_answer(reader: Reader, templates: AnswerTemplates, kb: KnowledgeBase,
                reading: Reading, context: dict[str, object]) -> Answer:
    """Match, and render the answer if there is one: both take CPU time the event loop must
    not wait for."""
    reading = reader.answer(kb, reading)
    decision = reading.decision
    if decision is None or decision.answer is None:
        return reading, None
    return reading, templates.render(decision.answer.entry.answer, context)


class Answering(Protocol):
    async def read(self, kb: KnowledgeBase, text: str, lang: str, received_at: float
                   ) -> Answer:
        """What the bot makes of a customer's message (`lang`: the conversation's language
        so far), and a question's rendered answer if it has one."""

    async def aclose(self) -> None: ...


class InThreads:
    """Matching in a worker thread of kefu's own process; the rules on the event loop, so
    small talk and handoffs take no thread."""

    def __init__(self, reader: Reader, templates: AnswerTemplates, greeter: Greeter) -> None:
        self._reader = reader
        self._templates = templates
        self._greeter = greeter

    async def read(self, kb: KnowledgeBase, text: str, lang: str, received_at: float
                   ) -> Answer:
        reading = self._reader.rules(kb, text, lang)
        if reading.intent is not Intent.QUESTION:
            return reading, None
        context = self._greeter.context(reading.lang, received_at)
        return await asyncio.to_thread(read_answer, self._reader, self._templates, kb, reading,
                                       context)

    async def aclose(self) -> None:
        return None


def read_message(reader: Reader, templates: AnswerTemplates, greeter: Greeter,
                 kb: KnowledgeBase, text: str, lang: str, received_at: float) -> Answer:
    """The whole reading of a message, where it runs in one go (a matching process)."""
    reading = reader.rules(kb, text, lang)
    if reading.intent is not Intent.QUESTION:
        return reading, None
    return read_answer(reader, templates, kb, reading, greeter.context(reading.lang,
                                                                       received_at))


async def answering_for(config: Config, reader: Reader, templates: AnswerTemplates,
                        greeter: Greeter) -> Answering:
    """`matching.processes` processes, each ready with its model; or threads with 0."""
    in_threads = InThreads(reader, templates, greeter)
    if not config.matching.processes:
        return in_threads
    return await InProcesses.start(config, in_threads)


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    stream_in: asyncio.StreamReader
    stream_out: asyncio.StreamWriter
    # a question's answer to come, and the knowledge base it is read in (its entries)
    pending: dict[int, tuple[asyncio.Future[Answer], KnowledgeBase]] = field(
        default_factory=dict)
    kb: KnowledgeBase | None = None  # the one it holds
    listening: asyncio.Task[None] | None = None


class InProcesses:
    def __init__(self, config: Config, fallback: InThreads) -> None:
        self._config = config
        self._fallback = fallback
        self._workers: list[_Worker] = []
        self._turn = itertools.count()
        self._numbers = itertools.count()
        self._sending = asyncio.Lock()
        self._closing = False

    @classmethod
    async def start(cls, config: Config, fallback: InThreads) -> InProcesses:
        processes = cls(config, fallback)
        processes._workers = list(await asyncio.gather(
            *(processes._start_one() for _ in range(config.matching.processes))))
        return processes

    async def _start_one(self) -> _Worker:
        ours, theirs = socket.socketpair()
        process = process_context().Process(target=serve, args=(theirs, self._config),
                                            name="kefu-matching", daemon=True)
        process.start()
        theirs.close()
        stream_in, stream_out = await asyncio.open_connection(sock=ours, limit=2**26)
        worker = _Worker(process, stream_in, stream_out)
        try:
            ready = await asyncio.wait_for(_receive(stream_in),
                                           self._config.matching.process_start_seconds)
        except (TimeoutError, asyncio.IncompleteReadError, OSError) as exc:
            process.kill()
            raise RuntimeError(f"the matching process did not start: {exc!r}") from None
        log.info("matching process %s ready: %s", process.pid, ready[1])
        worker.listening = asyncio.create_task(self._listen(worker),
                                               name=f"matching-{process.pid}")
        return worker

    @property
    def pids(self) -> list[int | None]:
        """The matching processes' ids, those serving now."""
        return [worker.process.pid for worker in self._workers]

    @property
    def in_flight(self) -> int:
        """Questions handed to a process and not answered yet."""
        return sum(len(worker.pending) for worker in self._workers)

    async def read(self, kb: KnowledgeBase, text: str, lang: str, received_at: float
                   ) -> Answer:
        if not self._workers:
            return await self._fallback.read(kb, text, lang, received_at)
        worker = self._workers[next(self._turn) % len(self._workers)]
        number = next(self._numbers)
        answered = asyncio.get_running_loop().create_future()
        worker.pending[number] = answered, kb
        try:
            async with self._sending:  # one frame after another on each socket
                if worker.kb is not kb:
                    frame = await asyncio.to_thread(_frame, ("kb", kb))  # big: off the loop
                    worker.stream_out.write(frame)
                    worker.kb = kb
                worker.stream_out.write(_frame(("read", number, text, lang, received_at)))
                await worker.stream_out.drain()
            return await answered
        except _NotAnswered:
            return await self._fallback.read(kb, text, lang, received_at)
        except (ConnectionError, OSError):  # it died before the question was written
            self._replace(worker)
            return await self._fallback.read(kb, text, lang, received_at)
        finally:
            worker.pending.pop(number, None)

    async def _listen(self, worker: _Worker) -> None:
        """Hand each answer to its question, until the process goes."""
        try:
            while True:
                reply = await _receive_bytes(worker.stream_in)
                number, ok = _REPLY.unpack_from(reply)
                answered, kb = worker.pending.get(number, (None, None))
                if answered is None or kb is None or answered.done():
                    continue  # its question stopped waiting (cancelled)
                try:
                    body = _EntriesFrom(reply[_REPLY.size:], kb).load()
                except Exception as exc:  # that question is answered in a thread instead
                    ok, body = False, f"unreadable reply: {type(exc).__name__}: {exc}"
                if ok:
                    answered.set_result(body)
                else:  # answered in a thread, where the same failure is handled as there
                    log.warning("matching process %s could not answer: %s",
                                worker.process.pid, body)
                    answered.set_exception(_NotAnswered())
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            for answered, _ in worker.pending.values():  # answered in a thread instead
                if not answered.done():
                    answered.set_exception(_NotAnswered())
            self._replace(worker)

    def _replace(self, worker: _Worker) -> None:
        if worker not in self._workers:
            return
        self._workers.remove(worker)
        worker.stream_out.close()
        if self._closing:
            return
        log.warning("matching process %s ended (exit code %s); answering in a thread until "
                    "its replacement is ready", worker.process.pid, worker.process.exitcode)
        asyncio.get_running_loop().create_task(self._start_replacement(),
                                               name="matching-replacement")

    async def _start_replacement(self) -> None:
        try:
            self._workers.append(await self._start_one())
        except RuntimeError:
            log.exception("matching: no replacement process; answering in threads")

    async def aclose(self) -> None:
        self._closing = True
        for worker in self._workers:
            worker.stream_out.close()  # the process ends when its socket closes
            if worker.listening is not None:
                worker.listening.cancel()
            for answered, _ in worker.pending.values():
                if not answered.done():
                    answered.set_exception(_NotAnswered())
        for worker in self._workers:
            await asyncio.to_thread(worker.process.join, 5)
            if worker.process.is_alive():
                worker.process.kill()
        self._workers.clear()


class _NotAnswered(Exception):
    """The matching process ended, or failed, before it answered."""


def _frame(message: tuple[Any, ...]) -> bytes:
    """A message as multiprocessing's Connection frames it (which the processes read):
    a signed 4-byte length, then the pickle."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(body)) + body


async def _receive_bytes(stream: asyncio.StreamReader) -> bytes:
    size, = _LENGTH.unpack(await stream.readexactly(_LENGTH.size))
    return await stream.readexactly(size)


async def _receive(stream: asyncio.StreamReader) -> tuple[Any, ...]:
    message: tuple[Any, ...] = pickle.loads(await _receive_bytes(stream))
    return message


class _EntriesByPlace(pickle.Pickler):
    """Pickles a reply with each of the knowledge base's entries as its place in
    `kb.entries`: kefu's process holds the same knowledge base and puts them back."""

    def __init__(self, file: io.BytesIO, places: dict[int, int]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._places = places

    def persistent_id(self, obj: Any) -> int | None:
        return self._places.get(id(obj)) if type(obj) is Entry else None


class _EntriesFrom(pickle.Unpickler):
    def __init__(self, data: bytes, kb: KnowledgeBase) -> None:
        super().__init__(io.BytesIO(data))
        self._entries = kb.entries

    def persistent_load(self, pid: Any) -> Entry:
        return self._entries[pid]


def _reply(number: int, ok: bool, body: object, places: dict[int, int]) -> bytes:
    out = io.BytesIO()
    out.write(_REPLY.pack(number, ok))
    _EntriesByPlace(out, places).dump(body)
    return out.getvalue()


def serve(sock: socket.socket, config: Config) -> None:
    """A matching process: questions in, answers out, until kefu closes the socket."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # kefu's stop ends it, not the terminal's
    connection = Connection(sock.detach())
    reader = reader_for(config)
    reader.warm()
    templates = AnswerTemplates(config.knowledge_base.answer_templates)
    greeter = Greeter(config, BusinessHours(config.business))
    connection.send(("ready", config.matching.engine))
    kb: KnowledgeBase | None = None
    places: dict[int, int] = {}
    while True:
        try:
            message = connection.recv()
        except EOFError:
            return
        if message[0] == "kb":
            kb = message[1]
            places = {id(entry): place for place, entry in enumerate(kb.entries)}
            continue
        _, number, text, lang, received_at = message
        try:
            assert kb is not None, "no knowledge base sent before the question"
            reply = _reply(number, True, read_message(reader, templates, greeter, kb, text,
                                                      lang, received_at), places)
        except Exception as exc:  # the question is answered in kefu's process instead
            reply = _reply(number, False, f"{type(exc).__name__}: {exc}", places)
        connection.send_bytes(reply)
