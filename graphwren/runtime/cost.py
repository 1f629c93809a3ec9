"""What a job costs: the price table, and the measured bill of a finished job from its record.

Prices are dollars per unit, AWS us-east-1 list prices (2024): Lambda bills
GB-seconds of duration (rounded up to the millisecond) by architecture and
each invocation; S3 bills PUT/COPY/POST/LIST per request and GET (and HEAD)
per request, DELETE is free; a Redis is the user's own node, billed by the
hour whatever the job does, so its price is the user's to set (0 until set).
``prices`` in the config overrides any entry (``[graphwren.prices]`` in the
config file, ``GRAPHWREN_PRICES='{"s3_get": 4.4e-7}'``, or ``prices={...}``).

``measured(record)`` prices what the job's attempts did: every attempt's
duration (failed, lost and backup copies too: Lambda bills them alike), the
requests every attempt and the driver made, per store, and the Redis node
for the job's duration. On the local backend nothing is billed: it reports
the CPU-seconds the tasks used and what the same attempts would have cost
on Lambda at ``lambda_memory``.
"""
from __future__ import annotations

import dataclasses
import difflib
import math

from ..errors import ConfigError

DEFAULT_PRICES = {
    "lambda_x86_64_gb_s": 0.0000166667,   # $ per GB-second, x86_64
    "lambda_arm64_gb_s": 0.0000133334,    # $ per GB-second, arm64 (Graviton)
    "lambda_request": 0.0000002,          # $ per invocation ($0.20 per million)
    "s3_put": 0.000005,                   # $ per PUT, COPY, POST ($0.005 per 1,000)
    "s3_list": 0.000005,                  # $ per LIST (billed as PUT-class)
    "s3_get": 0.0000004,                  # $ per GET, HEAD ($0.0004 per 1,000)
    "redis_hour": 0.0,                    # $ per hour of your own Redis node (set it: yours to know)
}
ARCHITECTURES = ("x86_64", "arm64")

#: How a store request is billed on S3 (a delete of a prefix LISTs it first; DELETE itself is free).
S3_PRICE_OF = {"get": "s3_get", "exists": "s3_get", "size": "s3_get", "put": "s3_put", "put_if_absent": "s3_put",
               "list": "s3_list", "list_sized": "s3_list", "delete": "s3_list"}


def check_prices(value, where: str) -> dict:
    """A price override as a dict of known names to non-negative numbers, or a ConfigError naming the entry."""
    if not isinstance(value, dict):
        raise ConfigError(f"graphwren setting 'prices' = {value!r} (from {where}) is not a table of prices "
                          f"(e.g. {{\"s3_get\": 4.4e-7}})")
    out = {}
    for name, price in value.items():
        if name not in DEFAULT_PRICES:
            close = difflib.get_close_matches(str(name), DEFAULT_PRICES, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"graphwren setting 'prices' (from {where}) has an unknown price {name!r}{hint}; "
                              f"known: {sorted(DEFAULT_PRICES)}")
        if isinstance(price, bool) or not isinstance(price, (int, float)) or not price >= 0 or math.isinf(price):
            raise ConfigError(f"graphwren setting 'prices' (from {where}): {name} = {price!r} is not a price "
                              f"(a number of dollars, zero or more)")
        out[name] = float(price)
    return out


def price_table(settings: dict) -> dict:
    """The default prices with the configured overrides on top."""
    return {**DEFAULT_PRICES, **(settings.get("prices") or {})}


def lambda_gb_s_price(settings: dict, prices: dict | None = None) -> float:
    prices = prices or price_table(settings)
    return prices[f"lambda_{settings.get('lambda_architecture') or 'x86_64'}_gb_s"]


def billed_seconds(seconds: float) -> float:
    """Lambda's billed duration: rounded up to the next millisecond."""
    return math.ceil(max(seconds, 0.0) * 1000) / 1000


@dataclasses.dataclass
class Line:
    """One item of a bill: what, how many, at what unit price, for how much."""

    item: str
    quantity: float
    unit: str
    price: float

    @property
    def dollars(self) -> float:
        return self.quantity * self.price


@dataclasses.dataclass
class Cost:
    """A job's bill (measured) or a plan's (projected): its lines, their total, and what they assume."""

    lines: list[Line]
    basis: str                 # "measured on lambda", "local run, priced as Lambda", "projected"
    notes: list[str] = dataclasses.field(default_factory=list)
    cpu_seconds: float | None = None

    @property
    def total(self) -> float:
        return sum(line.dollars for line in self.lines)

    def describe(self) -> str:
        head = f"cost ({self.basis}): ${self.total:,.6f}"
        if self.cpu_seconds is not None:
            head += f"; the tasks used {self.cpu_seconds:,.2f} CPU-seconds here"
        rows = [f"    {line.item}: {_qty(line.quantity)} {line.unit} x ${line.price:.10g} = ${line.dollars:,.6f}"
                for line in self.lines if line.quantity]
        return "\n".join([head, *rows, *(f"    note: {n}" for n in self.notes)])

    def to_dict(self) -> dict:
        return {"basis": self.basis, "total": self.total, "cpu_seconds": self.cpu_seconds, "notes": self.notes,
                "lines": [dict(dataclasses.asdict(line), dollars=line.dollars) for line in self.lines]}


def _qty(q: float) -> str:
    return f"{q:,.0f}" if float(q).is_integer() else f"{q:,.3f}"


def attempt_seconds(attempt: dict) -> float | None:
    """How long an attempt ran: measured by its worker when it committed, else as the driver saw it."""
    s = attempt.get("stats")
    if s:
        return s["end"] - s["start"]
    if attempt.get("launched") is not None and attempt.get("ended") is not None:
        return attempt["ended"] - attempt["launched"]
    return None


def requests_by_store(record) -> dict:
    """Every request of the job by store scheme and operation: its attempts' and its driver's."""
    out: dict[str, dict[str, int]] = {}
    for source in [a["stats"]["requests"] for a in record.attempts if a.get("stats")] + [record.driver_requests]:
        for scheme, ops in (source or {}).items():
            mine = out.setdefault(scheme, {})
            for op, n in ops.items():
                mine[op] = mine.get(op, 0) + n
    return out


def request_lines(requests: dict, prices: dict) -> list[Line]:
    """S3's request lines for ``requests`` ({scheme: {op: n}}); other stores bill no request."""
    counts = {"s3_put": 0, "s3_list": 0, "s3_get": 0}
    for op, n in requests.get("s3", {}).items():
        counts[S3_PRICE_OF.get(op, "s3_get")] += n
    names = {"s3_put": "S3 PUT requests", "s3_list": "S3 LIST requests", "s3_get": "S3 GET/HEAD requests"}
    return [Line(names[k], n, "requests", prices[k]) for k, n in counts.items()]


def measured(record) -> Cost:
    """The bill of a finished job, from what its record says every attempt did."""
    settings = record.settings
    prices = price_table(settings)
    memory_gb = (settings.get("lambda_memory") or 2048) / 1024
    arch = settings.get("lambda_architecture") or "x86_64"
    durations = [d for d in map(attempt_seconds, record.attempts) if d is not None]
    unknown = len(record.attempts) - len(durations)
    gb_s = sum(billed_seconds(d) for d in durations) * memory_gb
    local = settings.get("backend", "local") != "lambda"
    lines = [Line(f"Lambda compute ({memory_gb * 1024:.0f} MB, {arch})", round(gb_s, 6), "GB-s",
                  lambda_gb_s_price(settings, prices)),
             Line("Lambda invocations", len(record.attempts), "invocations", prices["lambda_request"])]
    requests = requests_by_store(record)
    lines += request_lines(requests, prices)
    notes = []
    if "redis" in requests or "rediss" in requests:
        hours = (record.duration or 0.0) / 3600
        lines.append(Line("Redis node (your own, for the job's duration)", round(hours, 6), "hours",
                          prices["redis_hour"]))
        if not prices["redis_hour"]:
            notes.append("the Redis node is priced at $0: set prices.redis_hour to your node's $/hour")
    if unknown:
        notes.append(f"{unknown} attempt(s) have no duration (lost before the driver saw them end): not counted")
    cpu = None
    if local:
        cpu = sum(a["stats"]["cpu"] for a in record.attempts if a.get("stats"))
        basis = f"local run; on Lambda the same attempts would cost this at {memory_gb * 1024:.0f} MB"
        notes.append("local task times stand in for Lambda's: a Lambda's CPU share follows its memory")
    else:
        basis = "measured on Lambda"
    return Cost(lines, basis, notes, cpu)
