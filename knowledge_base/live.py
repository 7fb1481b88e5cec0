"""The knowledge base the bot serves from, swapped whole when the folder changes."""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import multiprocessing.context
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from bot.errors import KnowledgeBaseError
from knowledge_base.base import KnowledgeBase
from knowledge_base.loader import faq_files
from knowledge_base.review import check

if TYPE_CHECKING:
    from bot.understanding import Reader

log = logging.getLogger(__name__)
LOOKS_PER_INTERVAL = 4


@functools.cache
def process_context() -> (multiprocessing.context.ForkServerContext
                          | multiprocessing.context.SpawnContext):
    """How a load's process (and a matching process, bot/answering.py) starts: forked from
    a server process that imported the loader and kefu's CLI once (forkserver; about 100 MB
    while kefu runs, holding no knowledge base), so a reload costs a fork and the load
    itself (0.1-0.3 s for the sample). A spawned process imported the loader again, and
    the whole CLI with it, since the `kefu` script is the main module that a spawned child
    re-imports: 1.7 s, on top of waiting up to the whole interval for the next look. Spawn
    where there is no forkserver."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["knowledge_base.review", "bot.cli"])
    return context


async def warm_up() -> None:
    """Start the forkserver now, so that the first edit is not the one that waits for it."""
    pool = ProcessPoolExecutor(max_workers=1, mp_context=process_context())
    try:
        await asyncio.get_running_loop().run_in_executor(pool, os.getpid)
    finally:
        await asyncio.to_thread(pool.shutdown)


def folder_signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and modification times: changes when any FAQ file is edited."""
    signature = []
    for path in faq_files(folder) if folder.is_dir() else []:
        try:
            stat = path.stat()
        except OSError:
            continue
        signature.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(signature)


async def load_elsewhere(folder: Path, vocabulary: Path, regressions: Path, reader: Reader,
                         lang: str) -> KnowledgeBase:
    """Parse and index in a process of its own: parsing YAML and indexing thousands of
    questions in a thread would hold the GIL and slow every answer meanwhile; in another
    process they only cost the moment the finished index is handed over. The process ends
    with the load, so the index takes no memory between edits.

    The meaning is added here, where the model is already loaded: the vectors of known
    questions come from the cache, and the few an edit adds are embedded (the model's work
    is numpy's, which leaves the interpreter to the answers). Then the regressions decide."""
    pool = ProcessPoolExecutor(max_workers=1, mp_context=process_context())
    try:
        lexical = await asyncio.get_running_loop().run_in_executor(
            pool, KnowledgeBase.load, folder, vocabulary, None, reader.templates)
    finally:
        await asyncio.to_thread(pool.shutdown)
    return await asyncio.to_thread(check, reader.with_meaning(lexical), regressions, reader,
                                   lang)


class LiveKnowledgeBase:
    """Serves the last good knowledge base and reloads it when the folder changes.

    A broken edit, or one that breaks a regression (a question whose answer must not
    change), is logged with every problem and the previous knowledge base keeps answering;
    `last_problems` tells what is wrong until the next good load.
    """

    def __init__(self, folder: Path, current: KnowledgeBase, *, vocabulary: Path,
                 regressions: Path, reader: Reader, lang: str,
                 problems: list[str] | None = None) -> None:
        self.folder = folder
        self.current = current
        self.last_problems: list[str] = problems or []
        self._vocabulary = vocabulary
        self._regressions = regressions
        self._reader = reader
        self._lang = lang
        self._signature = self._signatures()

    def _signatures(self) -> tuple[tuple[str, int, int], ...]:
        """The folder's, the vocabulary's and the regression file's: an edit to any is
        checked again."""
        files = list(folder_signature(self.folder))
        for path in (self._vocabulary, self._regressions):
            try:
                stat = path.stat()
            except OSError:
                continue
            files.append((str(path), stat.st_size, stat.st_mtime_ns))
        return tuple(files)

    async def reload_if_changed(self) -> bool:
        signature = await asyncio.to_thread(self._signatures)
        if signature == self._signature:
            return False
        self._signature = signature
        try:
            loaded = await load_elsewhere(self.folder, self._vocabulary, self._regressions,
                                          self._reader, self._lang)
        except KnowledgeBaseError as exc:
            self.last_problems = exc.problems
            log.error("knowledge base edit rejected, still serving the last good one:\n  %s",
                      "\n  ".join(exc.problems))
            return False
        self.current = loaded
        self.last_problems = []
        log.info("knowledge base reloaded: %d entries", len(loaded.entries))
        return True

    async def watch(self, interval: float) -> None:
        """Serve an edit within `interval` of it: the folder is looked at four times in
        that time (a few stat calls), which leaves most of it for the load."""
        await warm_up()
        while True:
            await asyncio.sleep(interval / LOOKS_PER_INTERVAL)
            await self.reload_if_changed()
