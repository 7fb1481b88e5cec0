"""`python -m benchmarks [DATA_FOLDER] [--loads 100,1000,5000]`: every benchmark, with
progress on stderr, results in benchmarks/RESULTS.md (and on stdout).

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
from pathlib import Path

from benchmarks import answer_quality, matcher_speed, store_ceiling, webchat_load
from bot.progress import note

PROJECT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


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
        "Top-1: the right entry ranked first. Outcomes (shares of all test queries): answered "
        "correctly / answered wrongly / declined (clarify or hand off). Baseline: nearest "
        "example by `fuzz.WRatio` with `process.extractOne`.", "",
        "| data | knowledge base | questions | top-1 kefu | top-1 baseline | kefu: correct / "
        "wrong / declined | baseline: correct / wrong / declined | out-of-scope recall kefu "
        "/ baseline | thresholds |",
        "| --- | --- | ---: | ---: | ---: | --- | --- | --- | --- |",
    ]
    for r in reports:
        k, b = r.kefu, r.baseline
        oos = (f"{pct(k.out_of_scope_declined / k.out_of_scope)} / "
               f"{pct(b.out_of_scope_declined / b.out_of_scope)}") if k.out_of_scope else "-"
        lines.append(
            f"| {r.data} | {r.kb} | {r.questions} | {pct(r.top1)} | {pct(r.baseline_top1)} | "
            f"{pct(k.share(k.correct))} / {pct(k.share(k.wrong))} / {pct(k.share(k.declined))}"
            f" | {pct(b.share(b.correct))} / {pct(b.share(b.wrong))} / "
            f"{pct(b.share(b.declined))} | {oos} | {r.thresholds} |")
    full, shots, clinc, _, xsid = reports[0], reports[1], reports[2], reports[3], reports[4]
    in_scope = clinc.kefu.in_scope_answered / clinc.kefu.in_scope
    lines += ["", "Targets (default matcher, no machine-learning model):", "",
              f"- BANKING77 top-1 >= 85% full: {pct(full.top1)}, {verdict(full.top1 >= .85)}",
              f"- BANKING77 top-1 >= 70% with 10 per intent: {pct(shots.top1)}, "
              f"{verdict(shots.top1 >= .70)}",
              f"- CLINC150 wrong answers <= 5% of all test queries while answering >= 60% of "
              f"in-scope ones: {pct(clinc.kefu.share(clinc.kefu.wrong))} wrong, "
              f"{pct(in_scope)} answered, "
              f"{verdict(clinc.kefu.share(clinc.kefu.wrong) <= .05 and in_scope >= .6)}",
              f"- xSID Chinese top-1 >= 90%: {pct(xsid.top1)}, {verdict(xsid.top1 >= .90)}", ""]
    return lines


def speed_section(rows: list[matcher_speed.SpeedRow], reload: matcher_speed.ReloadRow
                  ) -> list[str]:
    lines = ["## Matching speed", "",
             "| questions | index build | kefu p50 | kefu p99 | baseline p50 | baseline p99 | "
             "kefu's p99 as a share of the baseline's |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r.questions} | {ms(r.build_seconds)} | {ms(r.p50)} | {ms(r.p99)} | "
                     f"{ms(r.baseline_p50)} | {ms(r.baseline_p99)} | "
                     f"{pct(r.p99 / r.baseline_p99)} |")
    largest = rows[-1]
    lines += ["", f"Target p99 < 2 ms at 10,000 questions: {ms(largest.p99)}, "
              f"{verdict(largest.p99 < .002)}.", "",
              f"Reload of {reload.questions} questions while answering: the reload took "
              f"{ms(reload.reload_seconds)}; {reload.answered_during} answers during it, p50 "
              f"{ms(reload.during_p50)}, p99 {ms(reload.during_p99)}, max "
              f"{ms(reload.during_max)} (without a reload: p50 {ms(reload.idle_p50)}, p99 "
              f"{ms(reload.idle_p99)}).", ""]
    return lines


def load_section(rows: list[webchat_load.LoadRow], memory: webchat_load.MemoryRow,
                 ceiling: float) -> list[str]:
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
              f"store_ceiling.py: the five store operations of a question, "
              f"{store_ceiling.CUSTOMERS} customers at once, nothing else) takes "
              f"{ceiling:.0f} questions/s, {pct(ceiling / fastest_echo)} of the echo server's "
              f"best {fastest_echo:.0f}/s: alone it is not the limit; inside kefu its thread "
              "shares one interpreter lock with the event loop's sockets, JSON and matching",
              "- greetings do not queue behind answers: late greeting p99 vs answer p99 at "
              "each load: " + ", ".join(f"{ms(r.late_greeting_p99)} vs {ms(r.answer_p99)}"
                                          for r in rows), "",
              "## Memory", "",
              f"Resident memory grown per additional idle customer (chat open and greeted), "
              f"between {memory.first} and {memory.first + memory.more} of them: kefu "
              f"{memory.kefu_kb:.1f} KB, the bare echo server {memory.echo_kb:.1f} KB. Target "
              f"<= 20 KB: {verdict(memory.kefu_kb <= 20)}.", ""]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("data", nargs="?", type=Path,
                        default=PROJECT.parent / "shared" / "data")
    parser.add_argument("--loads", default="100,1000,5000",
                        help="web chat loads, customers at once (default 100,1000,5000)")
    args = parser.parse_args()
    if not (args.data / "banking77").is_dir():
        print(f"benchmarks: no data sets in {args.data} (BANKING77, CLINC150, xSID)",
              file=sys.stderr)
        return 2
    started = time.time()
    note("answer quality")
    quality = answer_quality.run_all(args.data)
    note("matching speed")
    speed = matcher_speed.speed(args.data)
    reload = matcher_speed.reload_while_answering(args.data)
    loads = tuple(int(n) for n in args.loads.split(","))
    load = webchat_load.run(loads)
    memory = webchat_load.memory()
    note("the embedded store alone")
    ceiling = store_ceiling.questions_per_second()
    lines = ["# Benchmark results", "",
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
             f"{(time.time() - started) / 60:.0f} min. Machine: {machine()}.", "",
             "Run them all with `python -m benchmarks [DATA_FOLDER]` (see "
             "benchmarks/__init__.py); every figure below comes from that one run.", "",
             *quality_section(quality), *speed_section(speed, reload),
             *load_section(load, memory, ceiling)]
    text = "\n".join(lines)
    RESULTS.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
