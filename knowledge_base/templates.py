"""Answer templates that cannot stall kefu: jinja2's sandbox, with bounds on what it may do.

jinja2's sandbox stops a template from reaching Python's internals, not from working for
ever: `{{ 9 ** 9 ** 9 }}`, `{{ 'x' * 10 ** 9 }}` or three nested loops over `range(100000)`
pass it. So arithmetic that would build a huge number or string is refused, `range` is
short, and every template is rendered at load time under a budget of CPU time (checked per line
of the compiled template, which jinja2 names "<template>"), with both `is_open` values; one
over the budget fails the load with its file and line, so the answers being served stay.
At run time answers are rendered in the matcher's worker thread, never on the event loop,
and their output is cut at `output_chars`.
"""

from __future__ import annotations

import functools
import math
import operator
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from bot.config import AnswerTemplateLimits

# What an answer template may use; rendering at load time with these catches typos early.
SAMPLE_CONTEXT = {"business": "示例商店", "is_open": True, "back_at": "明天 09:00", "hours": ""}
MAX_NUMBER_BITS = 4096  # about 1,200 digits: more than any answer needs
TEMPLATE_FILENAME = "<template>"


class TemplateTooHeavy(jinja2.TemplateError):
    """A template that would take too long or build too much."""


class BoundedSandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"**", "*"})

    def __init__(self, limits: AnswerTemplateLimits) -> None:
        super().__init__(undefined=jinja2.StrictUndefined, autoescape=False)
        self.limits = limits
        self.globals["range"] = self._range

    def call_binop(self, context: jinja2.runtime.Context, operator_: str, left: Any,
                   right: Any) -> Any:
        if operator_ == "**":
            self._check_power(left, right)
            return operator.pow(left, right)
        self._check_product(left, right)
        return operator.mul(left, right)

    def _check_power(self, base: Any, exponent: Any) -> None:
        if isinstance(base, int | float) and isinstance(exponent, int | float) \
                and abs(base) > 1 and exponent * math.log2(abs(base)) > MAX_NUMBER_BITS:
            raise TemplateTooHeavy(f"{base} ** {exponent} is too large a number")

    def _check_product(self, left: Any, right: Any) -> None:
        for sized, times in ((left, right), (right, left)):
            if isinstance(sized, str | list | tuple) and isinstance(times, int) \
                    and len(sized) * times > self.limits.output_chars:
                raise TemplateTooHeavy(
                    f"repeating {len(sized)} items {times} times is more than "
                    f"{self.limits.output_chars}")
        if isinstance(left, int) and isinstance(right, int) \
                and left.bit_length() + right.bit_length() > MAX_NUMBER_BITS:
            raise TemplateTooHeavy("too large a number")

    def _range(self, *args: int) -> range:
        numbers = range(*args)
        if len(numbers) > self.limits.loop_items:
            raise TemplateTooHeavy(f"range() of more than {self.limits.loop_items} numbers")
        return numbers


class AnswerTemplates:
    """Compiles, checks and renders answers under one set of limits."""

    def __init__(self, limits: AnswerTemplateLimits) -> None:
        self.limits = limits
        self._env = BoundedSandbox(limits)
        self.compiled: Callable[[str], jinja2.Template] = functools.lru_cache(maxsize=4096)(
            self._env.from_string)

    def render(self, answer: str, context: dict[str, Any]) -> str:
        pieces, length = [], 0
        for piece in self.compiled(answer).generate(**context):
            pieces.append(piece)
            length += len(piece)
            if length > self.limits.output_chars:
                break
        return "".join(pieces)[:self.limits.output_chars].strip()

    def problem(self, answer: str) -> str | None:
        """What is wrong with an answer's template, for staff to fix; None when it is fine."""
        try:
            template = self._env.from_string(answer)
            for is_open in (True, False):
                self._render_within_budget(template, {**SAMPLE_CONTEXT, "is_open": is_open})
        except jinja2.TemplateSyntaxError as exc:
            return f"{exc.message} (template line {exc.lineno})"
        except jinja2.UndefinedError as exc:
            return f"{exc.message}; answers may use {', '.join(SAMPLE_CONTEXT)}"
        except jinja2.TemplateError as exc:
            return str(exc)
        return None

    def _render_within_budget(self, template: jinja2.Template, context: dict[str, Any]
                              ) -> None:
        budget_ms = self.limits.render_ms
        # CPU time of this thread: a loaded machine that leaves the load waiting for a core
        # must not fail a template that is not heavy
        deadline = time.thread_time() + budget_ms / 1000

        def each_line(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "line" and time.thread_time() > deadline:
                raise TemplateTooHeavy(
                    f"takes more than {budget_ms:g} ms to render "
                    "(knowledge_base.answer_templates.render_ms)")
            return each_line

        def each_call(frame: FrameType, event: str, arg: Any) -> Any:
            return each_line if frame.f_code.co_filename == TEMPLATE_FILENAME else None

        before = sys.gettrace()
        sys.settrace(each_call)
        try:
            length = 0
            for piece in template.generate(**context):
                length += len(piece)
                if length > self.limits.output_chars:
                    raise TemplateTooHeavy(
                        f"renders more than {self.limits.output_chars} characters "
                        "(knowledge_base.answer_templates.output_chars)")
        finally:
            sys.settrace(before)
