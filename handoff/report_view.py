"""A report as tables (with bar charts), and those tables as HTML, Markdown or CSV.

All three formats print the same `sections`, so they never disagree. The HTML page needs
nothing from outside: its charts are inline SVG and its style is in the page, so it can be
mailed or opened offline.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from importlib.resources import files

import jinja2
from markupsafe import Markup

from handoff.report import GREETING_BARS, WAIT_BARS, Report, Spread

FORMATS = ("html", "md", "csv")
COLOURS = ("#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777")
OUTCOMES = {"bot_answered": "answered by the bot", "handed_off": "handed off to a person",
            "unanswered": "no answer (left or declined)"}
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FunctionLoader(
        lambda name: (files("handoff") / "templates" / name).read_text(encoding="utf-8")),
    autoescape=True, undefined=jinja2.StrictUndefined)


@dataclass(frozen=True, slots=True)
class Chart:
    """Bars, one per label; several series stack."""

    labels: list[str]
    series: dict[str, list[int]]
    caption: str


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]
    chart: Chart | None = None
    notes: list[str] = field(default_factory=list)


def percent(share: float | None) -> str:
    return "–" if share is None else f"{share * 100:.1f}%"


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.3g} s"
    return f"{value / 60:.3g} min"


def _spread_rows(spread: Spread) -> list[tuple[str, ...]]:
    return [("median", seconds(spread.median)), ("90th percentile", seconds(spread.percentile(90))),
            ("99th percentile", seconds(spread.percentile(99))), ("longest", seconds(spread.worst))]


def sections(report: Report) -> list[Section]:
    r = report
    outcome_total = r.conversations
    rated = sum(r.ratings.values())
    average = "–" if r.average_rating is None else f"{r.average_rating:.2f} / 5"
    limit = seconds(r.greeting_limit_seconds)
    window = seconds(r.reply_window_seconds)
    bot, person = r.outcomes["bot_answered"], r.outcomes["handed_off"]
    found = [
        Section("Summary", ("figure", "value"), [
            ("conversations", str(outcome_total)),
            ("answered by the bot, not handed off",
             f"{bot} ({percent(_share(bot, outcome_total))})"),
            ("handed off to a person", f"{person} ({percent(_share(person, outcome_total))})"),
            (f"greeted within {limit}", percent(r.greeting_compliance)),
            (f"customer messages answered within {window}", percent(r.within_minute_share)),
            ("left the queue before an agent came", percent(r.abandonment_share)),
            ("offline messages answered on time", percent(r.tickets.on_time_share)),
            (f"complaints (again within {r.repeat_complaint_days} days)",
             f"{r.complaints} ({r.repeat_complaints})"),
            ("satisfaction", f"{average} from {rated} ratings"),
        ]),
    ]
    days = sorted(r.by_day)
    found.append(Section(
        "Conversations by day and channel", ("day", *r.channels, "total"),
        [(d.isoformat(), *(str(r.by_day[d][c]) for c in r.channels),
          str(sum(r.by_day[d].values()))) for d in days],
        Chart([d.strftime("%m-%d") for d in days],
              {c: [r.by_day[d][c] for d in days] for c in r.channels},
              "conversations begun each day, by channel")))
    if r.sources:
        found.append(Section(
            "Where customers came from", ("source", "conversations", "share"),
            [(source, str(n), percent(_share(n, outcome_total)))
             for source, n in r.sources.most_common()],
            notes=["the payload of the link the customer opened the chat with "
                   "(Telegram: t.me/<bot>?start=PAYLOAD)"]))
    found.append(Section(
        "Bot or person", ("outcome", "conversations", "share"),
        [(OUTCOMES[k], str(n), percent(_share(n, outcome_total))) for k, n in r.outcomes.items()],
        Chart([OUTCOMES[k] for k in r.outcomes], {"conversations": list(r.outcomes.values())},
              "how conversations went")))
    greeting_bars = r.greeting.bars(GREETING_BARS)
    found.append(Section(
        "Greeting latency", ("greeted", "conversations"),
        [(label, str(n)) for label, n in greeting_bars],
        Chart([label for label, _ in greeting_bars],
              {"greetings": [n for _, n in greeting_bars]},
              "time from the customer's first message or opening the chat to the greeting"),
        notes=[f"{percent(r.greeting_compliance)} of {r.greeting.count} greetings within "
               f"{limit}; median {seconds(r.greeting.median)}, 99th percentile "
               f"{seconds(r.greeting.percentile(99))}, slowest {seconds(r.greeting.worst)}",
               *(f"late because of {cause}: {n}" for cause, n in
                 r.greeting_breaches.most_common())]))
    found.append(Section(
        "Replies", ("figure", "value"), [
            ("customer messages", str(r.customer_messages)),
            (f"answered within {window}",
             f"{r.answered_within_minute} ({percent(r.within_minute_share)})"),
            ("agents' first replies", str(r.first_response.count)),
            *((f"first reply, {k}", v) for k, v in _spread_rows(r.first_response)),
            (f"first replies within {window}",
             percent(r.first_response.share_within(r.reply_window_seconds))),
        ]))
    wait_bars = r.queue_waits.bars(WAIT_BARS)
    found.append(Section(
        "Queue", ("figure", "value"), [
            ("waits ended (an agent came, or the customer left)", str(r.queue_waits.count)),
            *((f"wait, {k}", v) for k, v in _spread_rows(r.queue_waits)),
            ("left before an agent came", f"{r.abandoned} ({percent(r.abandonment_share)})"),
            ("still waiting when the report was made", str(r.still_queued)),
        ],
        Chart([label for label, _ in wait_bars], {"waits": [n for _, n in wait_bars]},
              "how long customers waited in the queue")))
    t = r.tickets
    found.append(Section(
        "Offline messages (留言)", ("figure", "value"), [
            ("left", str(t.left)), ("answered on time", str(t.on_time)),
            ("answered late", str(t.late)), ("open and overdue", str(t.overdue)),
            ("open, not yet due", str(t.waiting)), ("on time", percent(t.on_time_share)),
        ]))
    found.append(Section(
        "Complaints", ("figure", "value"), [
            ("complaints", str(r.complaints)),
            (f"from a customer who complained in the {r.repeat_complaint_days} days before",
             str(r.repeat_complaints)),
        ]))
    scores = sorted(r.ratings)
    found.append(Section(
        "Satisfaction", ("score", "ratings", "share"),
        [(f"{'★' * s}", str(r.ratings[s]), percent(_share(r.ratings[s], rated))) for s in scores],
        Chart([f"{s}★" for s in scores], {"ratings": [r.ratings[s] for s in scores]},
              "ratings given at the end of conversations with an agent"),
        notes=[f"average {average}; {rated} ratings for {r.rating_requests} requests "
               f"({percent(_share(rated, r.rating_requests))} answered)"]))
    found.append(Section(
        "Agents", ("agent", "chats", "replies", "first reply (median)", f"waited > {window}",
                   "closed", "satisfaction"),
        [(a.name, str(a.chats), str(a.replies), seconds(a.first_response.median),
          str(a.reply_breaches), str(a.closed),
          "–" if a.average_rating is None else f"{a.average_rating:.2f} ({len(a.ratings)})")
         for a in r.agents]))
    found.append(Section(
        "Questions the bot could not answer", ("asked", "question", "also asked as"),
        [(str(n), example, " / ".join(others)) for n, example, others in r.unanswered],
        notes=["similar wordings are counted together; `kefu kb gaps` shows them all with "
               "the closest entry and can draft new entries"]))
    return found


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _title(report: Report) -> str:
    p = report.period
    return f"kefu report {p.first.isoformat()} – {p.last.isoformat()}"


def _made(report: Report) -> str:
    made = datetime.fromtimestamp(report.made_at, report.period.zone)
    return f"made {made:%Y-%m-%d %H:%M} ({report.period.zone.key})"


def as_csv(report: Report) -> str:
    """One value per line: section, row, column, value (ready for a pivot table)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("section", "row", "column", "value"))
    for section in sections(report):
        for row in section.rows:
            for column, value in zip(section.headers[1:], row[1:], strict=True):
                writer.writerow((section.title, row[0], column, value))
    return out.getvalue()


def as_markdown(report: Report) -> str:
    lines = [f"# {_title(report)}", "", f"_{_made(report)}_", ""]
    for section in sections(report):
        lines += [f"## {section.title}", ""]
        lines += [_md_row(section.headers), _md_row(("---",) * len(section.headers))]
        lines += [_md_row(row) for row in section.rows]
        lines += ["", *(f"{note}  " for note in section.notes)]
        lines.append("")
    return "\n".join(lines)


def _md_row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def as_html(report: Report, period_form: bool = False) -> str:
    """The page; with `period_form`, a form to choose another period (the console's)."""
    return _TEMPLATES.get_template("report.html").render(
        title=_title(report), made=_made(report), period_form=period_form,
        first=report.period.first.isoformat(), last=report.period.last.isoformat(),
        sections=[(s, Markup(bar_chart(s.chart)) if s.chart else None)
                  for s in sections(report)])


def bar_chart(chart: Chart, width: int = 640, height: int = 220) -> str:
    """An SVG bar chart: a bar per label, series stacked, values written above the bars."""
    left, bottom, top = 40, 40, 16
    plot_w, plot_h = width - left - 10, height - bottom - top
    totals = [sum(s[i] for s in chart.series.values()) for i in range(len(chart.labels))]
    highest = max([*totals, 1])
    slot = plot_w / max(len(chart.labels), 1)
    bar_w = max(2.0, slot * 0.7)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
             f'height="{height + 20 * (len(chart.series) > 1)}" '
             f'viewBox="0 0 {width} {height + 20 * (len(chart.series) > 1)}">',
             f"<title>{escape(chart.caption)}</title>",
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" '
             f'stroke="#999"/>',
             f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" class="axis">{highest}</text>',
             f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" class="axis">0</text>']
    show_every = max(1, len(chart.labels) // 16)  # labels stay readable over long periods
    for i, label in enumerate(chart.labels):
        x = left + i * slot + (slot - bar_w) / 2
        y: float = top + plot_h
        for (name, values), colour in zip(chart.series.items(), COLOURS * 4, strict=False):
            h = values[i] / highest * plot_h
            if h:
                y -= h
                parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                             f'height="{h:.1f}" fill="{colour}"><title>{escape(label)} '
                             f'{escape(name)}: {values[i]}</title></rect>')
        if totals[i]:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" '
                         f'class="value">{totals[i]}</text>')
        if i % show_every == 0:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 16}" '
                         f'text-anchor="middle" class="axis">{escape(label)}</text>')
    if len(chart.series) > 1:
        for j, (name, colour) in enumerate(zip(chart.series, COLOURS * 4, strict=False)):
            key_x = left + j * 120
            parts.append(f'<rect x="{key_x}" y="{height - 2}" width="12" height="12" '
                         f'fill="{colour}"/><text x="{key_x + 16}" y="{height + 8}" '
                         f'class="axis">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
