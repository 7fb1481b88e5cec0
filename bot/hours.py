"""Business hours: is anyone on duty now, and when are they back.

A day's hours are its weekday's, except on holidays (none) and on make-up working days
(调休: a Saturday or Sunday that is worked in exchange for a longer holiday), which have a
working day's; `business.calendar: china` knows China's from the chinese-calendar package.
"""

from __future__ import annotations

import functools
import logging
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.config import WEEKDAYS, BusinessConfig, TimeRange

log = logging.getLogger(__name__)

_WEEKDAY_NAMES = {
    "zh": ("周一", "周二", "周三", "周四", "周五", "周六", "周日"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_TIME_GREETINGS = {
    # (from hour, greeting): the last entry whose hour has passed applies.
    # From midnight to 5 neither evening nor morning fits: a plain hello.
    "zh": ((0, "您好"), (5, "早上好"), (11, "中午好"), (13, "下午好"), (18, "晚上好")),
    "en": ((0, "Hello"), (5, "Good morning"), (12, "Good afternoon"), (18, "Good evening")),
}


class BusinessHours:
    def __init__(self, config: BusinessConfig) -> None:
        self._config = config
        self.zone = ZoneInfo(config.timezone)
        self._holidays = frozenset(config.holidays)
        self._workdays = frozenset(config.workdays)
        self._workday_hours = config.workday_hours if config.workday_hours is not None else \
            next((config.hours[d] for d in WEEKDAYS[:5] if config.hours.get(d)), [])
        self._calendar = china_calendar if config.calendar == "china" else None

    def local(self, ts: float) -> datetime:
        return datetime.fromtimestamp(ts, self.zone)

    def hours_on(self, day: date) -> list[TimeRange]:
        """The staffed hours of one day: none on a holiday, a working day's on a make-up
        working day (调休), else its weekday's."""
        if day in self._workdays:
            return self._workday_hours
        if day in self._holidays:
            return []
        kind = self._calendar(day) if self._calendar is not None else None
        if kind == "workday":
            return self._workday_hours
        if kind == "holiday":
            return []
        return self._config.hours.get(WEEKDAYS[day.weekday()], [])

    def is_open(self, moment: datetime) -> bool:
        now = moment.timetz().replace(tzinfo=None)
        return any(r.start <= now < r.end for r in self.hours_on(moment.date()))

    def next_opening(self, moment: datetime) -> datetime | None:
        """The next time the desk opens after `moment`, or None if it never does."""
        for offset in range(0, 60):
            day = (moment + timedelta(days=offset)).date()
            for r in sorted(self.hours_on(day), key=lambda r: r.start):
                start = datetime.combine(day, r.start, tzinfo=self.zone)
                if start > moment:
                    return start
        return None

    def describe_opening(self, moment: datetime, lang: str) -> str:
        """'今天 09:00', '明天 09:00', '周一 09:00' / 'tomorrow at 09:00'."""
        opening = self.next_opening(moment)
        if opening is None:
            return "稍后" if lang == "zh" else "later"
        return describe_moment(opening, moment, lang)


def china_calendar(day: date) -> str | None:
    """"holiday" for a public holiday in China, "workday" for a make-up working day, None
    for an ordinary day or a year the chinese-calendar package has no data for yet."""
    import chinese_calendar  # optional: business.calendar "china" checks it is installed

    try:
        day_off, festival = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:
        _warn_no_data(day.year)
        return None
    if festival is None:
        return None  # an ordinary weekday or weekend
    return "holiday" if day_off else "workday"


@functools.cache
def _warn_no_data(year: int) -> None:
    log.warning("business.calendar china: chinese-calendar has no data for %d yet (update "
                "the package); the weekly hours, holidays and workdays apply", year)


def describe_moment(target: datetime, now: datetime, lang: str) -> str:
    """A time in the coming days as a customer says it: '明天 10:00', 'Monday at 09:00'."""
    days = (target.date() - now.date()).days
    clock = target.strftime("%H:%M")
    if lang == "zh":
        day = {0: "今天", 1: "明天"}.get(days, _WEEKDAY_NAMES["zh"][target.weekday()])
        return f"{day} {clock}"
    day = {0: "today", 1: "tomorrow"}.get(days, _WEEKDAY_NAMES["en"][target.weekday()])
    return f"{day} at {clock}"


def time_greeting(moment: datetime, lang: str) -> str:
    table = _TIME_GREETINGS.get(lang, _TIME_GREETINGS["en"])
    greeting = table[0][1]
    for hour, text in table:
        if moment.hour >= hour:
            greeting = text
    return greeting


def describe_hours(config: BusinessConfig, lang: str) -> str:
    """'周一至周五 09:00-18:00，周六 10:00-16:00' / 'Monday to Friday 09:00-18:00; ...'."""
    names = _WEEKDAY_NAMES.get(lang, _WEEKDAY_NAMES["en"])
    groups: list[tuple[int, int, str]] = []  # first day, last day, ranges
    for index, day in enumerate(WEEKDAYS):
        ranges = config.hours.get(day, [])
        if not ranges:
            continue
        text = ", ".join(f"{r.start:%H:%M}-{r.end:%H:%M}" for r in ranges)
        if groups and groups[-1][1] == index - 1 and groups[-1][2] == text:
            groups[-1] = (groups[-1][0], index, text)
        else:
            groups.append((index, index, text))
    if not groups:
        return "暂无人工服务时间" if lang == "zh" else "no staffed hours"
    joiner, to = ("，", "至") if lang == "zh" else ("; ", " to ")
    return joiner.join(
        f"{names[a]}{to + names[b] if b > a else ''} {text}" for a, b, text in groups
    )
