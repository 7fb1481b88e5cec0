"""The knowledge base the bot serves from, swapped whole when the folder changes."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from bot.errors import KnowledgeBaseError
from knowledge_base.base import KnowledgeBase
from knowledge_base.loader import faq_files
from knowledge_base.review import load_checked

if TYPE_CHECKING:
    from bot.understanding import Reader

log = logging.getLogger(__name__)


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
    """Load in a process of its own: parsing YAML and indexing thousands of questions in a
    thread would hold the GIL and slow every answer meanwhile; in another process they only
    cost the moment the finished index is handed over. The process ends with the load, so
    it takes no memory between edits."""
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    try:
        return await asyncio.get_running_loop().run_in_executor(
            pool, load_checked, folder, vocabulary, regressions, reader, lang)
    finally:
        await asyncio.to_thread(pool.shutdown)


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
        while True:
            await asyncio.sleep(interval)
            await self.reload_if_changed()
