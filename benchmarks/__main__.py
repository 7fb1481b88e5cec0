"""`python -m benchmarks [DATA_FOLDER] [--loads 100,1000,5000]`: answer quality, matching
speed and web chat load, with progress on stderr, results in benchmarks/RESULTS.md (and on
stdout). `python -m benchmarks quality|speed|load` runs one of them;
`python -m benchmarks soak [--customers 200,1000]` the soak (minutes; benchmarks/soak/).
Each part rewrites only its own sections of RESULTS.md.

DATA_FOLDER holds BANKING77, CLINC150 and xSID (default: ../shared/data next to the
project); the data is read in place and never copied into kefu.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import (
    answer_quality,
    calibrate,
    matcher_speed,
    openloop,
    plot,
    soak,
    store_ceiling,
    webchat_load,
)
from benchmarks.cpu import MATCHING, SERVING
from bot.progress import note

PROJECT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
PARTS = ("all", "quality", "speed", "load", "soak", "calibrate")


def pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total_kb = int(meminfo.read_text().split()[1])
        memory = f", {total_kb / 1024 / 1024:.0f} GiB"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT,
                            capture_output=True, text=True).stdout.strip() or "?"
    return (f"{cpu}, {os.cpu_count()} cores{memory}; {platform.system()} "
            f"{platform.release()}; Python {platform.python_version()}; kefu {commit}")


def quality_section(reports: list[answer_quality.Report]) -> list[str]:
    lines = [
        "## Answer quality", "",
        "What customers get, as shares of all test questions: answered right / answered wrong "
        "/ clarified (the bot asked which was meant; in brackets, how often the right entry "
        "was among the options) / declined (said it could not answer, or handed over). "
        "Out-of-scope: the share of questions the knowledge base does not cover that were "
        "answered (should be 0). Top-1, the right entry ranked first, is a diagnostic. One "
        "configuration for every set: " + (reports[0].configuration if reports else "") + ".",
        "",
        "Beside it in the same run: kefu's lexical engine alone (`matching.engine: lexical`), "
        f"and a plain baseline (nearest example by `fuzz.WRatio`, answering at "
        f"{answer_quality.BASELINE_CUTOFF:g} or more).", "",
        "| data | knowledge base | questions | kefu: right / wrong / clarified (right among "
        "options) / declined | out-of-scope answered | top-1 | lexical: right / wrong | "
        "baseline: right / wrong |",
        "| --- | --- | ---: | --- | ---: | ---: | --- | --- |",
    ]
    for r in reports:
        k, w, b = r.kefu, r.lexical, r.baseline
        oos = pct(k.out_of_scope_answered / k.out_of_scope) if k.out_of_scope else "-"
        lines.append(
            f"| {r.data.name} | {r.data.kb} | {r.data.questions} | {pct(k.share(k.right))} / "
            f"{pct(k.share(k.wrong))} / {pct(k.share(k.clarified))} "
            f"({pct(k.clarified_with_right / max(k.clarified, 1))}) / "
            f"{pct(k.share(k.declined))} | {oos} | {pct(k.top1 / max(k.in_scope, 1))} | "
            f"{pct(w.share(w.right))} / {pct(w.share(w.wrong))} | {pct(b.share(b.right))} / "
            f"{pct(b.share(b.wrong))} |")
    lines += ["", "Targets (one shipped configuration for every set):", ""]
    by_name = {(r.data.name, r.data.kb): r for r in reports}

    def target(key: tuple[str, str], text: str, right: float, wrong: float,
               in_scope: bool = False, oos: float | None = None) -> None:
        r = by_name.get(key)
        if r is None:
            return
        k = r.kefu
        got_right = k.in_scope_right / max(k.in_scope, 1) if in_scope else k.share(k.right)
        got_wrong = k.share(k.wrong)
        ok = got_right >= right and got_wrong <= wrong
        shown = f"{pct(got_right)} right, {pct(got_wrong)} wrong"
        if oos is not None:
            declined = 1 - k.out_of_scope_answered / max(k.out_of_scope, 1)
            ok = ok and declined >= oos
            shown += f", {pct(declined)} of out-of-scope not answered"
        lines.append(f"- {text}: {shown}, {verdict(ok)}")

    target(("BANKING77", "full training set"), "BANKING77 full: >= 70% answered right, <= 2% "
           "wrong", .70, .02)
    target(("BANKING77", f"{answer_quality.SHOTS} per intent"), "BANKING77 10 per intent: "
           ">= 45% right, <= 2% wrong", .45, .02)
    target(("CLINC150", "full training set"), "CLINC150: >= 60% of in-scope answered right, "
           "<= 3% of all answered wrong, >= 90% of out-of-scope not answered", .60, .03,
           in_scope=True, oos=.90)
    target(("xSID zh", "validation split"), "xSID zh: >= 70% right, <= 1% wrong", .70, .01)
    lines.append("")
    return lines


def speed_section(rows: list[matcher_speed.SpeedRow], reload: matcher_speed.ReloadRow
                  ) -> list[str]:
    lines = ["## Matching speed", "",
             "kefu lexical: the words alone (`matching.engine: lexical`). kefu shipped: what "
             "config.yaml as shipped does with a question (the words, then the model's vector "
             "of the question unless the words are already sure, then the decision); "
             "\"model asked\": the share of questions that needed the model. Hybrid builds: "
             "first with every question to embed, then with every vector in the cache (a "
             "restart, a reload).", "",
             "| questions | lexical build | lexical p50 | p99 | hybrid build (cold / warm) | "
             "shipped p50 | p99 | model asked | baseline p50 | p99 | lexical p99 / baseline "
             "p99 |",
             "|" + " ---: |" * 11]
    for r in rows:
        lines.append(f"| {r.questions} | {ms(r.build_seconds)} | {ms(r.p50)} | {ms(r.p99)} | "
                     f"{ms(r.hybrid_cold_build)} / {ms(r.hybrid_warm_build)} | "
                     f"{ms(r.hybrid_p50)} | {ms(r.hybrid_p99)} | {pct(r.model_share)} | "
                     f"{ms(r.baseline_p50)} | {ms(r.baseline_p99)} | "
                     f"{pct(r.p99 / r.baseline_p99)} |")
    largest = rows[-1]
    lines += ["", f"Targets at 10,000 questions: lexical p99 < 2 ms: {ms(largest.p99)}, "
              f"{verdict(largest.p99 < .002)}; with the semantic engine, answer p99 <= 60 ms: "
              f"{ms(largest.hybrid_p99)}, {verdict(largest.hybrid_p99 <= .060)}.", "",
              f"Reload of {reload.questions} questions while answering (shipped config): the "
              f"reload took {ms(reload.reload_seconds)}; {reload.answered_during} answers "
              f"during it, p50 {ms(reload.during_p50)}, p99 {ms(reload.during_p99)}, max "
              f"{ms(reload.during_max)} (without a reload: p50 {ms(reload.idle_p50)}, p99 "
              f"{ms(reload.idle_p99)}).", ""]
    return lines


def evening_lines(row: webchat_load.OpenLoopRow) -> list[str]:
    window = row.interval + row.seconds
    lines = ["", f"A busy evening (open loop, benchmarks/openloop.py): {row.chats} live chats "
             f"open over {row.interval:g} s, then each asks a question every {row.interval:g} s "
             f"for {row.seconds:g} s whether or not the last was answered, "
             f"{row.offered_per_second:.0f} questions/s offered. Answered: within "
             f"{openloop.DRAIN_SECONDS:g} s of the last question. Cores used: the "
             "server's processes' CPU time per second of the run.", "",
             "| server | questions offered | answered | answered/s | greeting p99 | answer p50 "
             "| p99 | failures | cores used |", "| --- |" + " ---: |" * 8]
    for name, side in (("kefu", row.kefu), ("echo server", row.echo)):
        lines.append(f"| {name} | {side.offered} | {pct(side.answered / max(side.offered, 1))} "
                     f"| {side.answered / window:.0f} | {ms(side.greeting_p99)} | "
                     f"{ms(side.answer_p50)} | {ms(side.answer_p99)} | {side.failures} | "
                     f"{side.cores:.2f} |")
    k = row.kefu
    answered = k.answered / max(k.offered, 1)
    lines += ["", f"Targets: greeting p99 < 100 ms: {ms(k.greeting_p99)}, "
              f"{verdict(k.greeting_p99 < .1)}; answer p99 < 1 s: {ms(k.answer_p99)}, "
              f"{verdict(k.answer_p99 < 1)}; >= 95% of what is offered answered: "
              f"{pct(answered)}, {verdict(answered >= .95)}."]
    return lines


LATENCY_SVG = Path(__file__).resolve().parent / "latency.svg"


def sweep_lines(rows: list[webchat_load.OpenLoopRow]) -> list[str]:
    """The table of latency against load, and the chart drawn beside RESULTS.md."""
    def side(pick: Callable[[webchat_load.OpenLoopRow], float]) -> list[tuple[float, float]]:
        return [(r.offered_per_second, pick(r)) for r in rows]

    LATENCY_SVG.write_text(plot.line_chart(
        [plot.Series("kefu answer p99", side(lambda r: r.kefu.answer_p99)),
         plot.Series("kefu greeting p99", side(lambda r: r.kefu.greeting_p99)),
         plot.Series("kefu answer p50", side(lambda r: r.kefu.answer_p50), dashed=True),
         plot.Series("echo answer p99", side(lambda r: r.echo.answer_p99))],
        "Web chat latency against load (one kefu process, shipped config)",
        "questions per second offered (open loop, 2 s between a chat's questions)",
        "latency", targets=[(1.0, "answer target"), (0.1, "greeting target")]),
        encoding="utf-8")
    lines = ["", f"Latency against load: the same open loop for {rows[0].seconds:g} s at each "
             "offered rate, on kefu and then on the echo server.", "",
             "![latency against load](latency.svg)", "",
             "| offered/s | chats | kefu answered | greeting p99 | answer p50 | p99 | "
             "echo answered | echo answer p99 |", "|" + " ---: |" * 8]
    for r in rows:
        k, e = r.kefu, r.echo
        lines.append(f"| {r.offered_per_second:.0f} | {r.chats} | "
                     f"{pct(k.answered / max(k.offered, 1))} | {ms(k.greeting_p99)} | "
                     f"{ms(k.answer_p50)} | {ms(k.answer_p99)} | "
                     f"{pct(e.answered / max(e.offered, 1))} | {ms(e.answer_p99)} |")
    return lines


def cores_lines(rows: list[webchat_load.LoadRow]) -> list[str]:
    """Where the machine's cores went while the customers asked, and what that leaves."""
    lines = ["", f"Where the {webchat_load.CORES} cores went while the customers asked "
             "(benchmarks/cpu.py: CPU time of kefu's processes, read from /proc; the load "
             "generator's own): \"serving\" is kefu's process with its event loop and "
             "store thread, \"matching\" its matching process. The ceiling is the answers/s "
             "that CPU time per answer allows with every core busy, whatever the number of "
             "processes.", "",
             "| customers | machine busy | CPU per answer: serving | matching | load generator "
             "| all | ceiling | kefu's answers/s | ceiling / kefu |", "|" + " ---: |" * 9]
    for r in rows:
        c = r.cores
        lines.append(
            f"| {r.connections} | {pct(c.busy)} | {c.ms_per_answer(SERVING):.2f} ms | "
            f"{c.ms_per_answer(MATCHING):.2f} ms | "
            f"{c.ms_per_answer(webchat_load.LOAD_GENERATOR):.2f} ms | "
            f"{c.ms_per_answer():.2f} ms | {c.ceiling:.0f}/s | {r.answers_per_second:.0f} | "
            f"{c.ceiling / r.answers_per_second:.2f}x |")
    at_1000 = next((r for r in rows if r.connections == 1000), rows[-1])
    c = at_1000.cores
    budget = webchat_load.CORES * 1000 / (0.3 * at_1000.echo_per_second)
    others = c.ms_per_answer(MATCHING, webchat_load.LOAD_GENERATOR)
    left = budget - others
    serving_now = c.ms_per_answer(SERVING)
    lines += ["", f"30% of the echo server's {at_1000.echo_per_second:.0f} answers/s at "
              f"{at_1000.connections} customers allows {budget:.2f} ms of CPU per answer for "
              f"everything on this machine. The matching process and the load generator "
              f"alone use {others:.2f} ms, which leaves "
              + (f"{left:.2f} ms for kefu's serving process ({serving_now / left:.0f} times "
                 f"less than the {serving_now:.2f} ms it took)" if left > 0 else
                 f"nothing for kefu's serving process (it took {serving_now:.2f} ms)") +
              f"; the echo server's process took {at_1000.echo_cores.ms_per_answer(SERVING):.2f}"
              " ms per answer."]
    return lines


def workers_lines(row: webchat_load.WorkersRow | None) -> list[str]:
    if row is None:
        return ["", "Both cores (`kefu serve --workers 2`, which needs Redis): not measured, "
                "no Redis at 127.0.0.1:6379."]
    rounds = ", ".join(f"{one:.0f} vs {many:.0f}" for one, many in zip(row.one, row.many,
                                                                      strict=True))
    busy = ", ".join(f"{pct(one.busy)} vs {pct(many.busy)}" for one, many in
                     zip(row.one_cores, row.many_cores, strict=True))
    redis = [c.ms_per_answer(webchat_load.REDIS_SERVER) for c in row.one_cores]
    ceilings = [c.ceiling / answers for c, answers in zip(row.one_cores, row.one, strict=True)]
    return ["", f"Both cores: the same burst ({row.connections} customers) on kefu on Redis, "
            f"one process against `kefu serve --workers {row.workers}`, in turn "
            f"({len(row.one)} rounds; answers/s, one vs {row.workers}): {rounds}. "
            f"{row.workers} workers give {row.ratio:.2f}x one process's answers/s. "
            f"Target >= 1.7x: {verdict(row.ratio >= 1.7)}. The load generator and "
            f"redis-server run on the same cores: the machine was busy "
            f"{busy} of the time (one process vs {row.workers}), redis-server taking "
            + ", ".join(f"{x:.2f}" for x in redis) + " ms of CPU per answer. At one "
            "process's CPU time per answer, every core busy would give at most "
            + ", ".join(f"{x:.2f}x" for x in ceilings) + " its answers/s: the ceiling on "
            "what more processes can bring here."]


def load_section(rows: list[webchat_load.LoadRow], memory: webchat_load.MemoryRow,
                 ceiling: float, lexical: webchat_load.LoadRow,
                 evening: webchat_load.OpenLoopRow,
                 against_load: list[webchat_load.OpenLoopRow],
                 scaling: webchat_load.WorkersRow | None) -> list[str]:
    lines = ["## Web chat under load", "",
             f"Each customer opens the chat, then asks {webchat_load.QUESTIONS_EACH} questions "
             "one after another; 50 more customers arrive while the others ask (\"late\"). "
             "The load generator is a separate process on the same machine.", "",
             "The echo server answers every frame at once and stores nothing: its greeting p99 "
             "is what the load generator measures when the server costs nothing.", "",
             "| customers | greeting p50 | p99 | max | echo greeting p99 | late greeting p99 | "
             "max | answer p50 | p99 | answers/s kefu | echo server | kefu / echo | failures |",
             "|" + " ---: |" * 13]
    for r in rows:
        lines.append(
            f"| {r.connections} | {ms(r.greeting_p50)} | {ms(r.greeting_p99)} | "
            f"{ms(r.greeting_max)} | {ms(r.echo_greeting_p99)} | {ms(r.late_greeting_p99)} | "
            f"{ms(r.late_greeting_max)} | "
            f"{ms(r.answer_p50)} | {ms(r.answer_p99)} | {r.answers_per_second:.0f} | "
            f"{r.echo_per_second:.0f} | {pct(r.answers_per_second / r.echo_per_second)} | "
            f"{r.failures} |")
    worst = max(max(r.greeting_max, r.late_greeting_max) for r in rows)
    at_1000 = next((r for r in rows if r.connections == 1000), None)
    lines += ["", "Targets:", "",
              f"- every greeting within 5 s at every load: slowest {ms(worst)}, "
              f"{verdict(worst < 5)}"]
    if at_1000 is not None:
        lines.append(f"- p99 greeting < 100 ms at 1,000 customers: {ms(at_1000.greeting_p99)}"
                     f" (all opening at once; the echo server: "
                     f"{ms(at_1000.echo_greeting_p99)}), {verdict(at_1000.greeting_p99 < .1)}; "
                     f"late arrivals while the others ask: {ms(at_1000.late_greeting_p99)}, "
                     f"{verdict(at_1000.late_greeting_p99 < .1)}")
    ratios = [r.answers_per_second / r.echo_per_second for r in rows]
    fastest_echo = max(r.echo_per_second for r in rows)
    lines += [f"- throughput >= 30% of the echo server: {', '.join(pct(x) for x in ratios)}, "
              f"{verdict(min(ratios) >= .3)}. The embedded store alone (benchmarks/"
              f"store_ceiling.py: the four store operations of a question, "
              f"{store_ceiling.CUSTOMERS} customers at once, nothing else) takes "
              f"{ceiling:.0f} questions/s, {pct(ceiling / fastest_echo)} of the echo server's "
              f"best {fastest_echo:.0f}/s: alone it is not the limit; inside kefu its thread "
              "shares one interpreter lock with the event loop's sockets, JSON and matching",
              "- greetings do not queue behind answers: late greeting p99 vs answer p99 at "
              "each load: " + ", ".join(f"{ms(r.late_greeting_p99)} vs {ms(r.answer_p99)}"
                                          for r in rows),
              f"- no greeting waits for the model: at {lexical.connections} customers, "
              f"greeting p99 {ms(rows[0].greeting_p99)} with the shipped (hybrid) engine, "
              f"{ms(lexical.greeting_p99)} with the lexical engine in the same run (late "
              f"arrivals {ms(rows[0].late_greeting_p99)} vs {ms(lexical.late_greeting_p99)}; "
              f"answer p99 {ms(rows[0].answer_p99)} vs {ms(lexical.answer_p99)})",
              *cores_lines(rows), *evening_lines(evening), *sweep_lines(against_load),
              *workers_lines(scaling), "",
              "## Memory", "",
              f"Resident memory grown per additional idle customer (chat open and greeted), "
              f"between {memory.first} and {memory.first + memory.more} of them: kefu "
              f"{memory.kefu_kb:.1f} KB, the bare echo server {memory.echo_kb:.1f} KB. Target "
              f"<= 20 KB: {verdict(memory.kefu_kb <= 20)}.", ""]
    return lines


def write_sections(lines: list[str]) -> None:
    """Replace, in RESULTS.md, the `## ` sections that `lines` holds (the header too, when
    `lines` begins with it), keeping every other section as it was."""
    def split(text: str) -> tuple[list[str], dict[str, list[str]]]:
        head: list[str] = []
        sections: dict[str, list[str]] = {}
        current = head
        for line in text.splitlines():
            if line.startswith("## "):
                current = sections.setdefault(line, [])
            current.append(line)
        return head, sections

    old_head, old = split(RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "")
    new_head, new = split("\n".join(lines))
    merged = {**old, **new}
    order = list(old) + [name for name in new if name not in old]
    head = new_head if any(line.strip() for line in new_head) else old_head
    RESULTS.write_text("\n".join([*head, *(line for name in order for line in merged[name])])
                       + "\n", encoding="utf-8")


def stamped(lines: list[str], part: str, started: float) -> list[str]:
    """`lines` with, under each `## ` heading, when, where and by which command it was
    measured: each part rewrites only its own sections, so they may come from different
    runs."""
    stamp = (f"_Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))} in "
             f"{(time.time() - started) / 60:.0f} min by `python -m benchmarks {part}` on "
             f"{machine()}._")
    out: list[str] = []
    for line in lines:
        out.append(line)
        if line.startswith("## "):
            out += ["", stamp]
    return out


HEADER = ["# Benchmark results", "",
          "`python -m benchmarks [DATA_FOLDER]` runs quality, speed and load; `python -m "
          "benchmarks soak` the soak (faults, longer); `python -m benchmarks PART` reruns one "
          "part. Each rewrites only its own sections, and each section says when, by which "
          "command and on which commit its figures were measured; every figure in a section "
          "comes from that one run.", ""]


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="every benchmark, written to "
        "benchmarks/RESULTS.md; or one part, rewriting only its sections: `quality` (answer "
        "quality; printed only with --sets), `speed` (matching), `load` (web chat under load "
        "and memory), `soak` (faults), or `calibrate` (fit the confidence in "
        "knowledge_base/decide.py)")
    parser.add_argument("part", nargs="?", choices=PARTS, default="all")
    parser.add_argument("data", nargs="?", type=Path,
                        default=PROJECT.parent / "shared" / "data",
                        help="BANKING77, CLINC150 and xSID (default: ../shared/data)")
    parser.add_argument("--loads", default="100,1000,5000",
                        help="web chat loads, customers at once (default 100,1000,5000)")
    parser.add_argument("--sets", type=Path, action="append", default=[],
                        help="a folder of more answer-quality sets in benchmarks/sets/ form "
                        "(held-out ones, kept outside the repository: their figures are "
                        "printed, never written); repeatable")
    parser.add_argument("--customers", default="200,1000",
                        help="soak: customers at once (default 200,1000)")
    argv = sys.argv[1:]
    if argv and not argv[0].startswith("-") and argv[0] not in PARTS:
        argv = ["all", *argv]  # the documented `python -m benchmarks DATA_FOLDER`
    args = parser.parse_args(argv)
    needs_data = args.part in ("all", "quality", "speed", "calibrate")
    if needs_data and not (args.data / "banking77").is_dir():
        print(f"benchmarks: no data sets in {args.data} (BANKING77, CLINC150, xSID)",
              file=sys.stderr)
        return 2
    if args.part == "calibrate":
        return calibrate.main(args.data)
    lines = list(HEADER) if args.part == "all" else []
    kept = True
    if args.part in ("all", "quality"):
        started = time.time()
        note("answer quality")
        quality = quality_section(answer_quality.run_all(args.data, args.sets))
        if args.sets:
            print("\n".join(quality))
            return 0
        lines += stamped(quality, "quality", started)
    if args.part in ("all", "speed"):
        started = time.time()
        note("matching speed")
        speed = matcher_speed.speed(args.data)
        reload = matcher_speed.reload_while_answering(args.data)
        lines += stamped(speed_section(speed, reload), "speed", started)
    if args.part in ("all", "load"):
        started = time.time()
        loads = tuple(int(n) for n in args.loads.split(","))
        load = webchat_load.run(loads)
        lexical_load = webchat_load.run((loads[0],), {"KEFU_MATCHING__ENGINE": "lexical"})
        evening = webchat_load.open_loop()
        against_load = webchat_load.sweep()
        scaling = webchat_load.workers()
        memory = webchat_load.memory()
        note("the embedded store alone")
        ceiling = store_ceiling.questions_per_second()
        lines += stamped(load_section(load, memory, ceiling, lexical_load[0], evening,
                                      against_load, scaling), "load", started)
    if args.part == "soak":  # its section is written after every scenario, too
        started, where = time.time(), machine()
        rows = soak.run_all(tuple(int(n) for n in args.customers.split(",")),
                            lambda so_far: write_sections(
                                stamped(soak.section(so_far, where), "soak", started)))
        lines += stamped(soak.section(rows, where), "soak", started)
        kept = all(r.kept for r in rows)
    write_sections(lines)
    print("\n".join(lines))
    return 0 if kept else 1


if __name__ == "__main__":
    sys.exit(main())
