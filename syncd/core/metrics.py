"""A small in-process metrics registry rendered in the Prometheus text format.

A handful of counters, gauges and one histogram do not justify a dependency; this keeps the
exposition format exact and the daemon's footprint small. Label values are always fixed
vocabularies (reasons, statuses, sheet titles), never request data or secrets.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable

LabelKey = tuple[str, ...]


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labels: Iterable[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(labels)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> LabelKey:
        if set(labels) != set(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}, got {tuple(labels)}")
        return tuple(str(labels[name]) for name in self.label_names)

    def _label_text(self, key: LabelKey, extra: str = "") -> str:
        pairs = [f'{n}="{_escape(v)}"' for n, v in zip(self.label_names, key, strict=True)]
        if extra:
            pairs.append(extra)
        return "{" + ",".join(pairs) + "}" if pairs else ""

    def samples(self) -> list[str]:
        raise NotImplementedError

    def render(self) -> list[str]:
        return [
            f"# HELP {self.name} {self.help}",
            f"# TYPE {self.name} {self.kind}",
            *self.samples(),
        ]


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Iterable[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self._values: dict[LabelKey, float] = {}

    def inc(self, amount: float = 1, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(self._key(labels), 0)

    def samples(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{self._label_text(k)} {_number(v)}" for k, v in items]


class Gauge(_Metric):
    """A current value; set from a fresh reading right before each scrape."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str) -> None:
        super().__init__(name, help_text)
        self._value: float | None = None

    def set(self, value: float | None) -> None:
        self._value = value

    def samples(self) -> list[str]:
        value = self._value
        return [] if value is None else [f"{self.name} {_number(value)}"]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Iterable[float]) -> None:
        super().__init__(name, help_text)
        self.buckets = tuple(sorted(buckets))
        self._counts = [0] * len(self.buckets)
        self._sum = 0.0
        self._count = 0

    def observe(self, value: float) -> None:
        with self._lock:
            self._sum += value
            self._count += 1
            for index, bound in enumerate(self.buckets):
                if value <= bound:
                    self._counts[index] += 1

    def samples(self) -> list[str]:
        with self._lock:
            counts, total, count = list(self._counts), self._sum, self._count
        lines = [
            f'{self.name}_bucket{{le="{_number(b)}"}} {c}'
            for b, c in zip(self.buckets, counts, strict=True)
        ]
        lines.append(f'{self.name}_bucket{{le="+Inf"}} {count}')
        lines.append(f"{self.name}_sum {_number(total)}")
        lines.append(f"{self.name}_count {count}")
        return lines


class Metrics:
    """Every metric the daemon exports, in one place so names stay consistent."""

    def __init__(self) -> None:
        self.webhooks_received = Counter(
            "syncd_webhooks_received_total", "Webhooks accepted and stored, by event.", ["event"]
        )
        self.webhooks_rejected = Counter(
            "syncd_webhooks_rejected_total", "Webhooks refused, by reason.", ["reason"]
        )
        self.events_processed = Counter(
            "syncd_events_processed_total", "Events whose rows were written.", ["sheet"]
        )
        self.events_failed = Counter(
            "syncd_events_failed_total",
            "Event attempts that failed and will be retried.",
            ["stage"],
        )
        self.events_dead_lettered = Counter(
            "syncd_events_dead_lettered_total", "Events given up after max_attempts."
        )
        self.cobot_requests = Counter(
            "syncd_cobot_requests_total", "Requests sent to Cobot, by HTTP status.", ["status"]
        )
        self.sheets_requests = Counter(
            "syncd_sheets_requests_total",
            "Requests sent to Google Sheets, by kind and status.",
            ["kind", "status"],
        )
        self.rows_written = Counter(
            "syncd_rows_written_total", "Rows written to worksheets, by sheet.", ["sheet"]
        )
        self.write_latency = Histogram(
            "syncd_sheet_write_seconds",
            "Duration of one worksheet flush.",
            [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
        )
        self.inbox_pending = Gauge("syncd_inbox_pending", "Events waiting to be written.")
        self.inbox_dead = Gauge("syncd_inbox_dead_letters", "Events given up (replayable).")
        self.oldest_pending_age = Gauge(
            "syncd_oldest_pending_age_seconds", "Age of the oldest waiting event."
        )
        self.paused = Gauge(
            "syncd_paused", "Things held for a person (Cobot, worksheets); see /healthz."
        )

    def render(self) -> str:
        metrics: list[_Metric] = [
            self.webhooks_received,
            self.webhooks_rejected,
            self.events_processed,
            self.events_failed,
            self.events_dead_lettered,
            self.cobot_requests,
            self.sheets_requests,
            self.rows_written,
            self.write_latency,
            self.inbox_pending,
            self.inbox_dead,
            self.oldest_pending_age,
            self.paused,
        ]
        return "\n".join(line for metric in metrics for line in metric.render()) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))
