"""A run's summary: its wall time, the measured sequential time, the speedup, the tokens its
LLM calls used and what they cost.

Summed in SQL from the stored rows, for one run or a page of runs at once: nothing here reads
one row per item into Python, so a 10,000-item run costs three aggregate queries. An ended
run's sums never change while its `last_seq` stays the same, so they are kept in the cache
under that; dollars are worked out on every read from the current price table
(`engine.config.price_table`), so configuring prices later prices earlier runs too.

The sequential time is what the run would have taken one thing after another: the durations
of its top-level items (an outer item of nested loops includes its inner items) plus those of
its top-level steps other than loops (a loop's step lasts as long as all its items together),
each less the seconds its steps waited for a provider (`waited`: a paused breaker, a
concurrency slot, a rate grant). Waiting is not work: 200 items that waited out the same
20-second outage side by side did not each do 20 seconds of work (one after another, the run
would have waited it out once), so counting it made the speedup up. The speedup is then the
work done per second of wall time, below 1 when the run mostly waited; `waited_seconds` is
the waiting left out (summed over items, so items waiting side by side each count). A row's
waits are summed over its steps, so steps that waited side by side can add up past its
duration: it then counts 0, never less.

Everything counts only what the run itself did. A retry records the steps and items it took
from the run it repeats without making them: those steps' rows have `cache` "reused", no
`usage` of their own and what the retried run's calls used as `saved_usage`; those items keep
their times from that run, so they started before the retry did. They are summed apart, as
`reused` (what was not spent again), and never in the retry's tokens, dollars, calls or time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, F, Q, Sum, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from engine.config import price_table
from engine.core.memo import REUSED
from engine.core.prices import MAX_TOKENS, PriceTable, Tokens, model_name, tally
from engine.models import ItemRun, Run, StepRun

MODELS_SHOWN = 20  # a summary lists the models that used most tokens, the rest are summed
CACHE_SECONDS = 24 * 3600


def summaries(runs: Sequence[Run]) -> dict[Any, dict[str, Any]]:
    """Each run's summary by its pk (a page of runs: a fixed number of queries in all)."""
    prices = price_table()
    known: dict[Any, dict[str, Any]] = {}
    for run in runs:
        if run.is_final and (found := cache.get(_cache_key(run))) is not None:
            known[run.pk] = found
    missing = [run for run in runs if run.pk not in known]
    for run in missing:
        known[run.pk] = {
            "sequential": 0.0,
            "waited": 0.0,
            "items": 0,
            "models": {},
            "saved_models": {},
            "hits": 0,
            "misses": 0,
            "reused_models": {},
            "reused_steps": 0,
            "reused_items": 0,
            "reused_seconds": 0.0,
        }
    if missing:
        _add_sequential(missing, known)
        _add_usage(missing, known)
        for run in missing:
            if run.is_final:
                cache.set(_cache_key(run), known[run.pk], CACHE_SECONDS)
    return {run.pk: _summary(run, known[run.pk], prices) for run in runs}


def summary(run: Run) -> dict[str, Any]:
    found = summaries([run])[run.pk]
    if (run.options or {}).get("sample_items"):
        found["estimate"] = estimate(run)
    return found


# The estimate's error bar: about 95 % of runs over the same kind of items land inside it.
Z_95 = 1.96


def estimate(run: Run) -> dict[str, Any]:
    """What the whole batch would cost, from a run of its first items (`sample_items`):
    the steps outside loops as they cost, plus, per top-level loop, its item count times
    the sampled items' mean cost (an item's own steps and its inner loops' items), with
    an error bar of 1.96 standard errors of that mean, times the item count. Reads the
    sample's rows, which are few."""
    prices = price_table()
    steps = StepRun.objects.filter(run=run).values_list("item_key", "usage")
    fixed: list[Any] = []
    per_item: dict[str, list[Any]] = {}
    for item_key, usage in steps.iterator():
        if not item_key:
            fixed.append(usage)
        else:
            per_item.setdefault(item_key.split("/", 1)[0], []).append(usage)
    fixed_usd = usage_cost(fixed, prices)["cost_usd"] or 0.0
    loops: dict[str, dict[str, Any]] = {}
    rows = ItemRun.objects.filter(run=run, parent_key="").values_list("loop_block", "key", "status")
    for loop_block, key, status in rows.iterator():
        entry = loops.setdefault(loop_block, {"total": 0, "costs": []})
        entry["total"] += 1
        if status in ("succeeded", "failed"):
            entry["costs"].append(usage_cost(per_item.get(key, []), prices)["cost_usd"] or 0.0)
    total_usd, variance = fixed_usd, 0.0
    listed = []
    for loop_block, entry in sorted(loops.items()):
        costs, count = entry["costs"], entry["total"]
        mean = sum(costs) / len(costs) if costs else 0.0
        spread = (
            (sum((c - mean) ** 2 for c in costs) / (len(costs) - 1)) ** 0.5
            if len(costs) > 1
            else 0.0
        )
        error = Z_95 * spread / len(costs) ** 0.5 * count if costs else 0.0
        total_usd += mean * count
        variance += error**2
        listed.append(
            {
                "loop": loop_block,
                "sampled": len(costs),
                "items": count,
                "per_item_usd": mean,
                "estimated_usd": mean * count,
                "error_usd": error,
            }
        )
    return {
        "sample_items": int((run.options or {}).get("sample_items") or 0),
        "fixed_usd": fixed_usd,
        "estimated_usd": total_usd,
        "error_usd": variance**0.5,
        "loops": listed,
    }


def _cache_key(run: Run) -> str:
    return f"klyntos:run-sums:3:{run.pk}:{run.last_seq}"


def _loop_ids(run: Run) -> set[str]:
    blocks = (run.version.graph or {}).get("blocks") or []
    return {b["id"] for b in blocks if isinstance(b, dict) and b.get("type") == "loop"}


# A retry's item that succeeded in the run it repeats: recorded with that run's times
# (memo.DoneItem), so it started before the retry did; the retry never ran it.
CARRIED_ITEM = Q(run__retry_of__isnull=False, started_at__lt=F("run__started_at"))
RAN_ITEM = Q(run__retry_of__isnull=True) | Q(started_at__gte=F("run__started_at"))
# A row's working seconds: its duration less its waits, never below 0 (NULL while it runs).
WORKED = Greatest(F("duration") - F("waited"), Value(0.0))


def _add_sequential(runs: list[Run], known: dict[Any, dict[str, Any]]) -> None:
    ids = [run.pk for run in runs]
    items = (
        ItemRun.objects.filter(run_id__in=ids, parent_key="")
        .values("run_id")
        .annotate(
            seconds=Sum(WORKED, filter=RAN_ITEM),
            waits=Sum("waited", filter=RAN_ITEM),  # named apart: WORKED reads the column
            measured=Count("duration", filter=RAN_ITEM),
            carried=Count("pk", filter=CARRIED_ITEM),
            carried_seconds=Sum(WORKED, filter=CARRIED_ITEM),
        )
        .order_by()
    )
    for row in items:
        sums = known[row["run_id"]]
        sums["sequential"] += row["seconds"] or 0.0
        sums["waited"] += row["waits"] or 0.0
        sums["items"] = row["measured"]
        sums["reused_items"] = row["carried"]
        sums["reused_seconds"] += row["carried_seconds"] or 0.0
    loops = {run.pk: _loop_ids(run) for run in runs}
    steps = StepRun.objects.filter(run_id__in=ids, item_key="", duration__isnull=False)
    for run_id, block_id, seconds, waited, kept in steps.annotate(seconds=WORKED).values_list(
        "run_id", "block_id", "seconds", "waited", "cache"
    ):
        if block_id in loops[run_id]:
            continue
        sums = known[run_id]
        if kept == REUSED:
            sums["reused_seconds"] += seconds
        else:
            sums["sequential"] += seconds
            sums["waited"] += waited


# Token counts of every usage entry of the runs' steps, by run and model, in the database
# (steps without LLM calls, most of them, are skipped before their JSON is read).
# A count that is not a JSON number is 0, and each is held to [0, MAX_TOKENS], as
# engine/core/prices.tally does for a single step.
_POSTGRES = """
SELECT {kind}s.run_id, u.value ->> 'model', SUM({prompt}), SUM({completion}), SUM({total}), COUNT(*)
FROM {steps} s
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(s.{column}) = 'array' THEN s.{column} ELSE '[]'::jsonb END
) u
WHERE s.run_id IN ({ids}) AND s.{column} <> '[]'::jsonb AND jsonb_typeof(u.value) = 'object'
GROUP BY {group}
"""
_POSTGRES_COUNT = (
    "CASE WHEN jsonb_typeof(u.value -> '{field}') = 'number' "
    "THEN TRUNC(LEAST(GREATEST((u.value ->> '{field}')::numeric, 0), {cap})) ELSE 0 END"
)
_SQLITE = """
SELECT {kind}s.run_id, json_extract(u.value, '$.model'), SUM({prompt}), SUM({completion}),
    SUM({total}), COUNT(*)
FROM {steps} s,
    json_each(CASE WHEN json_type(s.{column}) = 'array' THEN s.{column} ELSE '[]' END) u
WHERE s.run_id IN ({ids}) AND s.{column} <> '[]' AND u.type = 'object'
GROUP BY {group}
"""
_SQLITE_COUNT = (
    "CASE WHEN json_type(u.value, '$.{field}') IN ('integer', 'real') "
    "THEN CAST(MIN(MAX(json_extract(u.value, '$.{field}'), 0), {cap}) AS INTEGER) ELSE 0 END"
)


# The result cache's steps per run: hits and misses, and a retry's reused steps (`kind` is
# the step's `cache`).
_CACHE_COUNTS = """
SELECT s.cache, s.run_id, NULL, 0, 0, 0, COUNT(*)
FROM {steps} s
WHERE s.run_id IN ({ids}) AND s.cache IN ('hit', 'miss', 'reused')
GROUP BY 1, 2
"""
# A step's `saved_usage` is what a cache hit saved, or what a reused step's calls used in the
# run a retry repeats.
_SAVED_KIND = "CASE WHEN s.cache = 'reused' THEN 'reused_usage' ELSE 'saved' END, "


def sums_sql(vendor: str, count: int) -> str:
    """One statement for `count` runs: their usage by model (`usage`), what the cache's hits
    saved by model (`saved`), what a retry's reused steps used in the run it repeats by
    model (`reused_usage`), and their hit, miss and reused counts; rows of (kind, run id, model,
    prompt, completion, total, calls). Takes the run ids three times."""
    parts = (
        usage_sql(vendor, count, "usage", kind="usage"),
        usage_sql(vendor, count, "saved_usage", kind="saved"),
        _CACHE_COUNTS.format(steps=StepRun._meta.db_table, ids=", ".join(["%s"] * count)),
    )
    return "UNION ALL".join(parts)


def usage_sql(vendor: str, count: int, column: str = "usage", kind: str = "") -> str:
    """The query summing `count` runs' usage on `vendor`'s database (postgresql or sqlite);
    `column` "saved_usage" sums what the result cache's hits saved instead (and, with
    `kind` "saved", names a retry's reused steps' rows "reused_usage"); `kind` names the rows in a
    first column (for `sums_sql`)."""
    if column not in ("usage", "saved_usage") or kind not in ("", "usage", "saved"):
        raise ValueError(f"not a usage column: {column} ({kind})")
    postgres = vendor == "postgresql"
    template, counted = (_POSTGRES, _POSTGRES_COUNT) if postgres else (_SQLITE, _SQLITE_COUNT)

    def field(name: str) -> str:
        return counted.format(field=name, cap=MAX_TOKENS)

    total = counted.replace("ELSE 0 END", "ELSE ({prompt}) + ({completion}) END").format(
        field="total_tokens",
        cap=MAX_TOKENS,
        prompt=field("prompt_tokens"),
        completion=field("completion_tokens"),
    )
    return template.format(
        prompt=field("prompt_tokens"),
        completion=field("completion_tokens"),
        total=total,
        steps=StepRun._meta.db_table,
        ids=", ".join(["%s"] * count),
        column=column,
        kind=_SAVED_KIND if kind == "saved" else f"'{kind}', " if kind else "",
        group="1, 2, 3" if kind == "saved" else "2, 3" if kind else "1, 2",
    )


# The rows of `sums_sql` by kind, under the name their sums are kept: step counts (the kind
# is the steps' `cache`) and tokens by model.
COUNTED = {"hit": "hits", "miss": "misses", REUSED: "reused_steps"}
SUMMED = {"usage": "models", "saved": "saved_models", "reused_usage": "reused_models"}


def _add_usage(runs: list[Run], known: dict[Any, dict[str, Any]]) -> None:
    pk_field = Run._meta.get_field("id")
    # As the database holds them (SQLite: hex text), which is what its rows hand back.
    ids = [pk_field.get_db_prep_value(run.pk, connection) for run in runs]
    by_db_id = {db_id: run.pk for db_id, run in zip(ids, runs, strict=True)}
    with connection.cursor() as cursor:
        cursor.execute(sums_sql(connection.vendor, len(ids)), ids * 3)
        for kind, run_id, model, prompt, completion, total, calls in cursor.fetchall():
            sums = known[by_db_id[run_id]]
            if kind in COUNTED:
                sums[COUNTED[kind]] += int(calls or 0)
                continue
            models = sums[SUMMED[kind]]
            tokens = models.setdefault(model_name(model), [0, 0, 0, 0])
            for i, value in enumerate((prompt, completion, total, calls)):
                tokens[i] += int(value or 0)


def _cache_line(sums: dict[str, Any], prices: PriceTable) -> dict[str, Any]:
    saved = costs(
        {name: Tokens(*counts) for name, counts in sums.get("saved_models", {}).items()}, prices
    )
    return {
        "hits": sums.get("hits", 0),
        "misses": sums.get("misses", 0),
        "calls_saved": sums.get("hits", 0),
        "llm_calls_saved": saved["llm_calls"],
        "tokens_saved": saved["tokens"]["total"],
        "saved_usd": saved["cost_usd"],
    }


def _summary(run: Run, sums: dict[str, Any], prices: PriceTable) -> dict[str, Any]:
    end = run.finished_at or (timezone.now() if run.started_at else None)
    wall = (end - run.started_at).total_seconds() if run.started_at and end else None
    sequential = float(sums["sequential"])
    models = {name: Tokens(*counts) for name, counts in sums["models"].items()}
    return {
        "wall_seconds": wall,
        "sequential_seconds": sequential,
        "waited_seconds": float(sums.get("waited", 0.0)),
        "items_measured": sums["items"],
        "speedup": sequential / wall if wall and wall > 0 and sequential > 0 else None,
        **costs(models, prices),
        "cache": _cache_line(sums, prices),
        "reused": _reused_line(sums, prices),
    }


def _reused_line(sums: dict[str, Any], prices: PriceTable) -> dict[str, Any]:
    """What a retry took from the run it repeats instead of doing it again: the items and
    steps, their measured time and what their calls used then (not spent again)."""
    models = {name: Tokens(*counts) for name, counts in sums.get("reused_models", {}).items()}
    found = costs(models, prices)
    return {
        "items": sums.get("reused_items", 0),
        "steps": sums.get("reused_steps", 0),
        "seconds": float(sums.get("reused_seconds", 0.0)),
        "llm_calls": found["llm_calls"],
        "tokens": found["tokens"]["total"],
        "cost_usd": found["cost_usd"],
    }


def costs(models: dict[str, Tokens], prices: PriceTable) -> dict[str, Any]:
    """Tokens and dollars over some calls (a run's, an item's, a step's): `cost_usd` sums
    the priced models (None when tokens were used and no model has a price);
    `unpriced_models` names the rest."""
    total = Tokens()
    cost: float | None = None
    unpriced: list[str] = []
    listed: list[dict[str, Any]] = []
    for name, tokens in sorted(models.items(), key=lambda pair: -pair[1].total):
        total.add(tokens)
        price = prices.price(name)
        spent = None if price is None else price.cost(tokens.prompt, tokens.completion)
        if spent is None:
            unpriced.append(name)
        else:
            cost = (cost or 0.0) + spent
        if len(listed) < MODELS_SHOWN:
            listed.append(
                {
                    "model": name,
                    "prompt_tokens": tokens.prompt,
                    "completion_tokens": tokens.completion,
                    "total_tokens": tokens.total,
                    "calls": tokens.calls,
                    "price": None if price is None else price.as_dict(),
                    "cost_usd": spent,
                }
            )
    return {
        "tokens": {"prompt": total.prompt, "completion": total.completion, "total": total.total},
        "llm_calls": total.calls,
        "cost_usd": 0.0 if not models else cost,
        "unpriced_models": unpriced[:MODELS_SHOWN],
        "models": listed,
    }


def usage_cost(usage_lists: Iterable[Any], prices: PriceTable | None = None) -> dict[str, Any]:
    """Tokens and dollars of some steps' stored `usage` (an item's steps, or one step)."""
    models: dict[str, Tokens] = {}
    for usage in usage_lists:
        tally(usage, models)
    found = costs(models, prices or price_table())
    return {"tokens": found["tokens"]["total"], "cost_usd": found["cost_usd"]}


def item_costs(run: Run, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Tokens and dollars of each listed item's own steps (an inner loop's items are rows of
    their own). One query, bounded by the keys given (a page of items)."""
    usages: dict[str, list[Any]] = {key: [] for key in keys}
    rows = StepRun.objects.filter(run_id=run.pk, item_key__in=list(keys)).values_list(
        "item_key", "usage"
    )
    for key, usage in rows:
        usages[key].append(usage)
    prices = price_table()
    return {key: usage_cost(found, prices) for key, found in usages.items()}
