"""Metric families written straight to Prometheus text, byte for byte as prometheus_client does.

Why: at 10,000 services a scrape is ~700,000 lines. prometheus_client builds a `Sample` (with a
labels dict) per line, then formats each one, sorting and escaping its labels: ~5 s of CPU per
scrape, in a thread that competes with the event loop for the GIL. A `Family` keeps its rows as
plain tuples, escapes each distinct label value once per render and formats each value once.
The same family still becomes a prometheus_client `Metric` for the registry's other readers
(`get_sample_value`, `generate_latest` in tests), so there is one definition of every family;
a test renders both ways and compares the bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

Kind = Literal["gauge", "counter", "histogram"]
Buckets = Sequence[tuple[str, float]]


class Family:
    """One metric family: its rows, then either `metric()` or `text()`."""

    __slots__ = ("doc", "kind", "labels", "name", "rows")

    def __init__(self, name: str, doc: str, kind: Kind, labels: Sequence[str]) -> None:
        self.name = name
        self.doc = doc
        self.kind = kind
        self.labels = tuple(labels)
        self.rows: list[tuple[tuple[str, ...], float, Buckets | None]] = []

    def add(self, values: Sequence[str], value: float) -> None:
        self.rows.append((tuple(values), value, None))

    def add_histogram(self, values: Sequence[str], buckets: Buckets, total: float) -> None:
        """`buckets`: cumulative (le, count) pairs ending with ("+Inf", count)."""
        self.rows.append((tuple(values), total, buckets))

    def metric(self) -> Metric:
        """The family as prometheus_client sees it (for the registry's readers)."""
        if self.kind == "histogram":
            histogram = HistogramMetricFamily(self.name, self.doc, labels=self.labels)
            for values, total, buckets in self.rows:
                assert buckets is not None
                histogram.add_metric(list(values), list(buckets), total)
            return histogram
        family: GaugeMetricFamily | CounterMetricFamily
        if self.kind == "counter":
            family = CounterMetricFamily(self.name, self.doc, labels=self.labels)
        else:
            family = GaugeMetricFamily(self.name, self.doc, labels=self.labels)
        for values, value, _ in self.rows:
            family.add_metric(list(values), value)
        return family

    def text(self, out: list[str], cache: TextCache) -> None:
        """Append the exposition lines (header and samples) to `out`."""
        name = self.name
        shown = f"{name}_total" if self.kind == "counter" else name
        doc = self.doc.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {shown} {doc}\n# TYPE {shown} {self.kind}\n")
        if self.kind == "histogram":
            self._histogram_text(out, cache)
            return
        order = _order(self.labels)
        labels = self.labels
        value_text = cache.value
        escape = cache.escape
        for values, value, _ in self.rows:
            if values:
                inner = ",".join(f'{labels[i]}="{escape(values[i])}"' for i in order)
                out.append(f"{shown}{{{inner}}} {value_text(value)}\n")
            else:
                out.append(f"{shown} {value_text(value)}\n")

    def _histogram_text(self, out: list[str], cache: TextCache) -> None:
        name, labels = self.name, self.labels
        with_le = (*labels, "le")
        order, bucket_order = _order(labels), _order(with_le)
        escape, value_text = cache.escape, cache.value
        for values, total, buckets in self.rows:
            assert buckets is not None
            escaped = [f'{labels[i]}="{escape(values[i])}"' for i in range(len(labels))]
            plain = ",".join(escaped[i] for i in order)
            for le, count in buckets:
                escaped.append(f'le="{escape(le)}"')
                inner = ",".join(escaped[i] for i in bucket_order)
                escaped.pop()
                out.append(f"{name}_bucket{{{inner}}} {value_text(count)}\n")
            count = buckets[-1][1]
            if plain:
                out.append(f"{name}_count{{{plain}}} {value_text(count)}\n")
                out.append(f"{name}_sum{{{plain}}} {value_text(total)}\n")
            else:
                out.append(f"{name}_count {value_text(count)}\n{name}_sum {value_text(total)}\n")


class TextCache:
    """Escaped label values and formatted numbers, shared by the families of one render:
    service and target names recur in every family, values are mostly 0, 1 and -1."""

    __slots__ = ("_escaped", "_values")

    def __init__(self) -> None:
        self._escaped: dict[str, str] = {}
        self._values: dict[float, str] = {}

    def escape(self, text: str) -> str:
        found = self._escaped.get(text)
        if found is None:
            found = text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
            self._escaped[text] = found
        return found

    def value(self, number: float) -> str:
        found = self._values.get(number)
        if found is None:
            found = floatToGoString(number)  # type: ignore[no-untyped-call]
            if len(self._values) < 4096:  # durations and sums are rarely seen twice
                self._values[number] = found
        return found


def _order(names: Sequence[str]) -> list[int]:
    """prometheus_client writes labels sorted by name."""
    return sorted(range(len(names)), key=lambda i: names[i])
