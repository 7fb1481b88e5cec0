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
from typing import Protocol

import jinja2
from markupsafe import Markup

from handoff.report import GREETING_BARS, WAIT_BARS, Report, Spread

FORMATS = ("html", "md", "csv")
COLOURS = ("#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777")
OUTCOMES = {"bot_answered": "answered by the bot", "handed_off": "handed off to a person",
            "unanswered": "no answer (left or declined)"}
# Channels as people call them, on the page (CSV and Markdown keep the config's names).
CHANNEL_NAMES = {"webchat": ("Web chat", "网页"), "wechat": ("WeChat", "微信公众号"),
                 "wecom": ("WeCom", "企业微信"), "qq": ("QQ", "QQ"),
                 "telegram": ("Telegram", "Telegram"), "onebot": ("QQ (OneBot)", "QQ (OneBot)")}
# The Chinese page: each English text (a str.format template) and its translation.
ZH = {
    "median": "中位数", "90th percentile": "90 分位", "99th percentile": "99 分位",
    "longest": "最长", "figure": "指标", "value": "数值", "Summary": "概览",
    "conversations": "会话", "answered by the bot, not handed off": "机器人解决，未转人工",
    "handed off to a person": "转人工", "greeted within {limit}": "{limit} 内问候",
    "customer messages answered within {window}": "{window} 内回复的客户消息",
    "left the queue before an agent came": "排队时离开", "offline messages answered on time":
    "按时答复的留言", "complaints (again within {days} days)": "投诉（{days} 天内再次投诉）",
    "satisfaction": "满意度", "{average} from {rated} ratings": "{average}，共 {rated} 个评分",
    "Conversations by day and channel": "每日各渠道会话", "day": "日期", "total": "合计",
    "conversations begun each day, by channel": "每天开始的会话，按渠道",
    "Bot or person": "机器人还是人工", "outcome": "结果", "share": "占比",
    "Where customers came from": "客户来源", "source": "来源",
    "the payload of the link the customer opened the chat with "
    "(Telegram: t.me/<bot>?start=PAYLOAD)": "客户打开会话所用链接的参数"
    "（Telegram：t.me/<bot>?start=PAYLOAD）",
    "answered by the bot": "机器人解决",
    "no answer (left or declined)": "未解决（离开或拒答）",
    "how conversations went": "会话结果", "Greeting latency": "问候用时", "greeted": "问候用时",
    "greetings": "问候",
    "time from the customer's first message or opening the chat to the greeting":
    "从客户第一条消息或打开聊天到问候的时间",
    "{share} of {count} greetings within {limit}; median {median}, 99th percentile {p99}, "
    "slowest {worst}": "{count} 次问候中 {share} 在 {limit} 内；中位数 {median}，99 分位 {p99}，"
    "最慢 {worst}", "late because of {cause}: {n}": "因 {cause} 而慢：{n}",
    "Replies": "回复", "customer messages": "客户消息", "answered within {window}":
    "{window} 内回复", "agents' first replies": "客服首次回复", "first reply, {k}": "首次回复，{k}",
    "first replies within {window}": "{window} 内首次回复", "Queue": "排队",
    "waits ended (an agent came, or the customer left)": "结束的等待（客服接入或客户离开）",
    "wait, {k}": "等待，{k}", "left before an agent came": "客服接入前离开",
    "still waiting when the report was made": "制表时仍在排队", "waits": "等待",
    "how long customers waited in the queue": "客户排队等了多久",
    "Offline messages (留言)": "留言", "left": "留下", "answered on time": "按时答复",
    "answered late": "超时答复", "open and overdue": "未处理且已超时", "open, not yet due":
    "未处理，未到期", "on time": "按时率", "Complaints": "投诉", "complaints": "投诉",
    "from a customer who complained in the {days} days before": "{days} 天内投诉过的客户再次投诉",
    "Satisfaction": "满意度", "score": "评分", "ratings": "评分数",
    "ratings given at the end of conversations with an agent": "人工会话结束时的评分",
    "average {average}; {rated} ratings for {asked} requests ({share} answered)":
    "平均 {average}；邀请 {asked} 次，收到 {rated} 个评分（{share}）",
    "Agents": "客服", "agent": "客服", "chats": "会话", "replies": "回复",
    "first reply (median)": "首次回复（中位数）", "waited > {window}": "等待超过 {window}",
    "closed": "结束", "Questions the bot could not answer": "机器人答不上的问题", "asked": "次数",
    "question": "问题", "also asked as": "其他问法",
    "similar wordings are counted together; `kefu kb gaps` shows them all with the closest "
    "entry and can draft new entries": "相近的问法合并计数；`kefu kb gaps` 列出全部问法和最接近的"
    "条目，并可起草新条目", "kefu report {first} – {last}": "kefu 报表 {first} – {last}",
    "made {time} ({zone})": "制表于 {time}（{zone}）",
}


class _Tr(Protocol):
    def __call__(self, text: str, **values: object) -> str: ...


def _translator(lang: str) -> _Tr:
    table = ZH if lang == "zh" else {}

    def tr(text: str, **values: object) -> str:
        return table.get(text, text).format(**values)

    return tr


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


def _spread_rows(spread: Spread, tr: _Tr) -> list[tuple[str, ...]]:
    return [(tr("median"), seconds(spread.median)),
            (tr("90th percentile"), seconds(spread.percentile(90))),
            (tr("99th percentile"), seconds(spread.percentile(99))),
            (tr("longest"), seconds(spread.worst))]


def channel_name(channel: str, lang: str) -> str:
    names = CHANNEL_NAMES.get(channel)
    return names[lang == "zh"] if names else channel


def sections(report: Report, lang: str = "en", readable: bool = False) -> list[Section]:
    """The report's tables, in English or (lang="zh") Chinese; `readable` names channels
    as people do (the page), else as the config does (files for other programs)."""
    tr = _translator(lang)
    r = report
    shown = {c: channel_name(c, lang) if readable else c for c in r.channels}
    outcome_total = r.conversations
    rated = sum(r.ratings.values())
    average = "–" if r.average_rating is None else f"{r.average_rating:.2f} / 5"
    limit = seconds(r.greeting_limit_seconds)
    window = seconds(r.reply_window_seconds)
    bot, person = r.outcomes["bot_answered"], r.outcomes["handed_off"]
    outcomes = {k: tr(v) for k, v in OUTCOMES.items()}
    figure_value = (tr("figure"), tr("value"))
    found = [
        Section(tr("Summary"), figure_value, [
            (tr("conversations"), str(outcome_total)),
            (tr("answered by the bot, not handed off"),
             f"{bot} ({percent(_share(bot, outcome_total))})"),
            (tr("handed off to a person"),
             f"{person} ({percent(_share(person, outcome_total))})"),
            (tr("greeted within {limit}", limit=limit), percent(r.greeting_compliance)),
            (tr("customer messages answered within {window}", window=window),
             percent(r.within_minute_share)),
            (tr("left the queue before an agent came"), percent(r.abandonment_share)),
            (tr("offline messages answered on time"), percent(r.tickets.on_time_share)),
            (tr("complaints (again within {days} days)", days=r.repeat_complaint_days),
             f"{r.complaints} ({r.repeat_complaints})"),
            (tr("satisfaction"), tr("{average} from {rated} ratings", average=average,
                                    rated=rated)),
        ]),
    ]
    days = sorted(r.by_day)
    found.append(Section(
        tr("Conversations by day and channel"),
        (tr("day"), *(shown[c] for c in r.channels), tr("total")),
        [(d.isoformat(), *(str(r.by_day[d][c]) for c in r.channels),
          str(sum(r.by_day[d].values()))) for d in days],
        Chart([d.strftime("%m-%d") for d in days],
              {shown[c]: [r.by_day[d][c] for d in days] for c in r.channels},
              tr("conversations begun each day, by channel"))))
    if r.sources:
        found.append(Section(
            tr("Where customers came from"), (tr("source"), tr("conversations"), tr("share")),
            [(source, str(n), percent(_share(n, outcome_total)))
             for source, n in r.sources.most_common()],
            notes=[tr("the payload of the link the customer opened the chat with "
                      "(Telegram: t.me/<bot>?start=PAYLOAD)")]))
    found.append(Section(
        tr("Bot or person"), (tr("outcome"), tr("conversations"), tr("share")),
        [(outcomes[k], str(n), percent(_share(n, outcome_total))) for k, n in r.outcomes.items()],
        Chart([outcomes[k] for k in r.outcomes],
              {tr("conversations"): list(r.outcomes.values())}, tr("how conversations went"))))
    greeting_bars = r.greeting.bars(GREETING_BARS)
    found.append(Section(
        tr("Greeting latency"), (tr("greeted"), tr("conversations")),
        [(label, str(n)) for label, n in greeting_bars],
        Chart([label for label, _ in greeting_bars],
              {tr("greetings"): [n for _, n in greeting_bars]},
              tr("time from the customer's first message or opening the chat to the greeting")),
        notes=[tr("{share} of {count} greetings within {limit}; median {median}, 99th percentile "
                  "{p99}, slowest {worst}", share=percent(r.greeting_compliance),
                  count=r.greeting.count, limit=limit, median=seconds(r.greeting.median),
                  p99=seconds(r.greeting.percentile(99)), worst=seconds(r.greeting.worst)),
               *(tr("late because of {cause}: {n}", cause=cause, n=n) for cause, n in
                 r.greeting_breaches.most_common())]))
    found.append(Section(
        tr("Replies"), figure_value, [
            (tr("customer messages"), str(r.customer_messages)),
            (tr("answered within {window}", window=window),
             f"{r.answered_within_minute} ({percent(r.within_minute_share)})"),
            (tr("agents' first replies"), str(r.first_response.count)),
            *((tr("first reply, {k}", k=k), v) for k, v in _spread_rows(r.first_response, tr)),
            (tr("first replies within {window}", window=window),
             percent(r.first_response.share_within(r.reply_window_seconds))),
        ]))
    wait_bars = r.queue_waits.bars(WAIT_BARS)
    found.append(Section(
        tr("Queue"), figure_value, [
            (tr("waits ended (an agent came, or the customer left)"), str(r.queue_waits.count)),
            *((tr("wait, {k}", k=k), v) for k, v in _spread_rows(r.queue_waits, tr)),
            (tr("left before an agent came"),
             f"{r.abandoned} ({percent(r.abandonment_share)})"),
            (tr("still waiting when the report was made"), str(r.still_queued)),
        ],
        Chart([label for label, _ in wait_bars], {tr("waits"): [n for _, n in wait_bars]},
              tr("how long customers waited in the queue"))))
    t = r.tickets
    found.append(Section(
        tr("Offline messages (留言)"), figure_value, [
            (tr("left"), str(t.left)), (tr("answered on time"), str(t.on_time)),
            (tr("answered late"), str(t.late)), (tr("open and overdue"), str(t.overdue)),
            (tr("open, not yet due"), str(t.waiting)), (tr("on time"), percent(t.on_time_share)),
        ]))
    found.append(Section(
        tr("Complaints"), figure_value, [
            (tr("complaints"), str(r.complaints)),
            (tr("from a customer who complained in the {days} days before",
                days=r.repeat_complaint_days), str(r.repeat_complaints)),
        ]))
    scores = sorted(r.ratings)
    found.append(Section(
        tr("Satisfaction"), (tr("score"), tr("ratings"), tr("share")),
        [(f"{'★' * s}", str(r.ratings[s]), percent(_share(r.ratings[s], rated))) for s in scores],
        Chart([f"{s}★" for s in scores], {tr("ratings"): [r.ratings[s] for s in scores]},
              tr("ratings given at the end of conversations with an agent")),
        notes=[tr("average {average}; {rated} ratings for {asked} requests ({share} answered)",
                  average=average, rated=rated, asked=r.rating_requests,
                  share=percent(_share(rated, r.rating_requests)))]))
    found.append(Section(
        tr("Agents"), (tr("agent"), tr("chats"), tr("replies"), tr("first reply (median)"),
                       tr("waited > {window}", window=window), tr("closed"), tr("satisfaction")),
        [(a.name, str(a.chats), str(a.replies), seconds(a.first_response.median),
          str(a.reply_breaches), str(a.closed),
          "–" if a.average_rating is None else f"{a.average_rating:.2f} ({len(a.ratings)})")
         for a in r.agents]))
    found.append(Section(
        tr("Questions the bot could not answer"),
        (tr("asked"), tr("question"), tr("also asked as")),
        [(str(n), example, " / ".join(others)) for n, example, others in r.unanswered],
        notes=[tr("similar wordings are counted together; `kefu kb gaps` shows them all with "
                  "the closest entry and can draft new entries")]))
    return found


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _title(report: Report, lang: str = "en") -> str:
    p = report.period
    return _translator(lang)("kefu report {first} – {last}", first=p.first.isoformat(),
                             last=p.last.isoformat())


def _made(report: Report, lang: str = "en") -> str:
    """When, in the shop's timezone (business.timezone), as every time in the report."""
    made = datetime.fromtimestamp(report.made_at, report.period.zone)
    return _translator(lang)("made {time} ({zone})", time=f"{made:%Y-%m-%d %H:%M}",
                             zone=report.period.zone.key)


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


FORM_TEXTS = {"zh": {"from": "开始日期", "to": "结束日期", "show": "查看", "other": "English"},
              "en": {"from": "From", "to": "To", "show": "Show", "other": "中文"}}


def as_html(report: Report, period_form: bool = False, lang: str = "en") -> str:
    """The page, in English or Chinese (`lang`); with `period_form`, a form to choose
    another period (the console's)."""
    return _TEMPLATES.get_template("report.html").render(
        title=_title(report, lang), made=_made(report, lang), period_form=period_form,
        lang=lang, first=report.period.first.isoformat(), last=report.period.last.isoformat(),
        other="en" if lang == "zh" else "zh",
        sections=[(s, Markup(bar_chart(s.chart)) if s.chart else None)
                  for s in sections(report, lang, readable=True)],
        form=FORM_TEXTS.get(lang, FORM_TEXTS["en"]))


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
