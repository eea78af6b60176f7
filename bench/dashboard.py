"""Dashboard at scale: the inbox's first page and the reports, on PostgreSQL.

Seeds a throwaway PostgreSQL cluster (fsync on) with one space (Europe/Lisbon, three
channels, eight agents, two teams) holding N conversations, each with its contact and
identity, and M messages spread over the last 365 days (in/out/note, some by agents),
in SQL (`INSERT ... SELECT generate_series`, rows in time order as a live hub writes
them), then `VACUUM ANALYZE`. Times the dashboard's own code: the inbox's first page
(`dashboard.inbox.conversations_page`, target <= 50 ms) under a few filters, and
`bot.workspace.reports.summary` for the last 365 and 30 days (year target <= 500 ms),
first counted live (as before the hub's day book has run), then after the day book has
counted the ended days (timed: the hub does it once, in the background; the year's report
must come out the same both ways, `day_book_same_report`): median and p90
in ms of the runs after one warm-up, each run in its own `db.read()` (a figure stops
repeating after `--budget` seconds: a slow report still gets one run).

Every statement's time is recorded; for a figure over its target, the statements that
took most of its last run are run again under `EXPLAIN (ANALYZE, BUFFERS)` and their
plans printed with each node's own and total ms (summed over loops and workers), then
the node with the most time of its own and the costliest subplan of each.
`--index "CREATE INDEX ..."` (repeatable) adds an index before `ANALYZE`, to try a fix.

    .venv/bin/python bench/dashboard.py [--conversations 100000] [--messages 1000000]
                                        [--runs 20] [--report-runs 5] [--budget 60]
                                        [--index "CREATE INDEX ..."] [--no-explain] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bot.storage.db import Database  # noqa: E402
from bot.storage.migrate import upgrade  # noqa: E402
from bot.workspace import reports  # noqa: E402
from bot.workspace.report_days import DayBook  # noqa: E402
from dashboard.inbox import Filters, conversations_page  # noqa: E402

SPACE, VIEWER, TZ = 1, 1, "Europe/Lisbon"
INBOX_TARGET, YEAR_TARGET = 50.0, 500.0
INBOXES = {
    "default (open)": Filters(),
    "handler=waiting": Filters(handler="waiting"),
    "assignee=mine": Filters(assignee="mine"),
    "status=closed": Filters(status="closed"),
}

SETUP = [
    "INSERT INTO organizations (id, name) VALUES (1, 'Acme')",
    f"INSERT INTO spaces (id, organization_id, name, timezone, is_default, settings) "
    f"VALUES ({SPACE}, 1, 'Main', '{TZ}', 1, '{{}}')",
    "INSERT INTO channels (id, space_id, kind, name, settings) VALUES "
    "('wa', 1, 'whatsapp', 'WhatsApp', '{}'), ('web', 1, 'webchat', 'Web chat', '{}'), "
    "('tg', 1, 'telegram', 'Telegram', '{}')",
    "INSERT INTO users (id, name, email, availability) SELECT g, 'Agent ' || g, "
    "'agent' || g || '@example.com', 'online' FROM generate_series(1, 8) g",
    "INSERT INTO organization_members (organization_id, user_id, role) "
    "SELECT 1, g, CASE WHEN g = 1 THEN 'admin' ELSE 'member' END FROM generate_series(1, 8) g",
    "INSERT INTO space_members (space_id, user_id, role) "
    "SELECT 1, g, CASE WHEN g = 1 THEN 'manager' ELSE 'agent' END FROM generate_series(1, 8) g",
    "INSERT INTO teams (id, space_id, name) VALUES (1, 1, 'Sales'), (2, 1, 'Support')",
    "INSERT INTO team_members (team_id, user_id) SELECT 1 + g % 2, g FROM generate_series(1, 8) g",
]

# One row a conversation: when it opened, how many messages (1..2k-1, k on average) at what
# pace, and its state now. Recent ones are mostly open, older ones mostly closed.
PLAN = """
CREATE TEMP TABLE plan AS
WITH base AS (
  SELECT g AS id, (ARRAY['wa', 'web', 'tg'])[1 + g % 3] AS channel_id,
    now() - interval '365 days' + (g - 1 + random()) * (interval '365 days' / {n}) AS opened,
    1 + (g * 7919) % {spread} AS nmsg, interval '1 minute' * (1 + random() * 30) AS gap,
    random() AS r, random() AS h
  FROM generate_series(1, {n}) g
), timed AS (
  SELECT *, least(now(), opened + (nmsg - 1) * gap) AS last,
    (opened < now() - interval '2 days' AND r < 0.95) OR r < 0.3 AS closed
  FROM base
), handled AS (
  SELECT *, CASE
      WHEN closed THEN CASE WHEN h < 0.6 THEN 'bot' ELSE 'agent' END
      WHEN h < 0.45 THEN 'bot' WHEN h < 0.5 THEN 'flow' WHEN h < 0.7 THEN 'waiting'
      ELSE 'agent' END AS handler
  FROM timed
)
SELECT *, handler IN ('waiting', 'agent') AS person,
  CASE WHEN handler = 'agent' THEN 1 + id % 8 END AS assignee_id,
  CASE WHEN handler IN ('waiting', 'agent') OR h > 0.9 THEN 1 + id % 2 END AS team_id,
  CASE WHEN closed THEN least(now(), last + interval '10 minutes') END AS closed_at
FROM handled
"""
CONTACTS = """
INSERT INTO contacts (id, space_id, name, phone, status, assignee_id, team_id, created_at,
  last_message_at)
SELECT id, 1, 'Contact ' || id, '+3519' || lpad(id::text, 8, '0'),
  CASE WHEN closed THEN 'closed' ELSE 'open' END, assignee_id, team_id, opened, last
FROM plan ORDER BY id
"""
IDENTITIES = """
INSERT INTO identities (id, contact_id, channel_id, external_id)
SELECT id, id, channel_id, 'ext-' || id FROM plan ORDER BY id
"""
CONVERSATIONS = """
INSERT INTO conversations (id, space_id, contact_id, channel_id, identity_id, handler, status,
  assignee_id, created_at, last_message_at, closed_at, team_id, handed_over_at, first_reply_at)
SELECT id, 1, id, channel_id, id, handler, CASE WHEN closed THEN 'closed' ELSE 'open' END,
  assignee_id, opened, last, closed_at, team_id,
  CASE WHEN person THEN least(now(), opened + 2 * gap) END,
  CASE WHEN person AND nmsg >= 4 THEN least(now(), opened + 3 * gap) END
FROM plan ORDER BY id
"""
# Odd messages come in, even ones go out (a person's from the 4th on, if one took over:
# people take part at the 3rd, as `handed_over_at` says, and first write the 4th);
# every 7th of a conversation a person took is a note. Written in time order, as live.
MESSAGES = """
INSERT INTO messages (space_id, conversation_id, channel_id, direction, external_id, parts,
  status, sender_type, sender_user_id, sender_id, created_at)
SELECT 1, p.id, p.channel_id, d.direction,
  CASE WHEN d.direction = 'in' THEN p.id || ':' || k END,
  json_build_array(json_build_object('type', 'text', 'text',
    'Message ' || k || ' about order #' || p.id)),
  CASE d.direction WHEN 'in' THEN 'received' WHEN 'note' THEN 'sent' ELSE 'read' END,
  s.sender_type,
  CASE WHEN s.sender_type = 'user' THEN coalesce(p.assignee_id, 1 + p.id % 8) END,
  CASE s.sender_type WHEN 'bot' THEN 'builtin'
    WHEN 'user' THEN coalesce(p.assignee_id, 1 + p.id % 8)::text END,
  least(now(), p.opened + (k - 1) * p.gap) AS at
FROM plan p
CROSS JOIN LATERAL generate_series(1, p.nmsg) k
CROSS JOIN LATERAL (SELECT CASE WHEN p.person AND k % 7 = 0 THEN 'note'
  WHEN k % 2 = 1 THEN 'in' ELSE 'out' END AS direction) d
CROSS JOIN LATERAL (SELECT CASE WHEN d.direction = 'in' THEN 'contact'
  WHEN d.direction = 'note' OR (p.person AND k >= 4) THEN 'user' ELSE 'bot' END AS sender_type) s
ORDER BY at, p.id, k
"""


async def seed(server: Any, conversations: int, messages: int, indexes: list[str]) -> str:
    import asyncpg

    server.sql("CREATE DATABASE dashboard")
    url = f"{server.url}/dashboard"
    await asyncio.to_thread(upgrade, url)
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{server.port}/dashboard")
    each = max(1, round(messages / conversations))
    plan = PLAN.format(n=conversations, spread=2 * each - 1)
    try:
        async with conn.transaction():
            for statement in [*SETUP, plan, CONTACTS, IDENTITIES, CONVERSATIONS, MESSAGES]:
                await conn.execute(statement)
            for statement in indexes:
                await conn.execute(statement)
        await conn.execute("VACUUM ANALYZE")  # as autovacuum would have by now
        return str(await conn.fetchval("SELECT count(*) FROM messages"))
    finally:
        await conn.close()


class Statements:
    """Each statement the engine runs, with its parameters and ms (results fetched)."""

    def __init__(self, db: Database) -> None:
        self.log: list[tuple[str, Any, float]] = []
        engine = db.engine.sync_engine
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, _cursor: Any, *_: Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        ms = (time.perf_counter() - conn.info.pop("bench_started")) * 1000
        self.log.append((statement, params, ms))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


async def timed(
    db: Database,
    statements: Statements,
    run: Callable[[Any], Awaitable[Any]],
    runs: int,
    budget: float = math.inf,
) -> tuple[list[float], list[float], list[tuple[str, Any, float]]]:
    """ms of each run after one warm-up, ms of its statements (sent, run, rows fetched),
    and the statements of the last run; fewer runs once `budget` seconds have passed."""
    times, sql = [], []
    deadline = time.monotonic() + budget
    for n in range(runs + 1):
        if len(times) and time.monotonic() > deadline:
            break
        async with db.read() as conn:
            statements.log.clear()
            started = time.perf_counter()
            await run(conn)
            if n:
                times.append((time.perf_counter() - started) * 1000)
                sql.append(sum(ms for *_, ms in statements.log))
    return times, sql, list(statements.log)


SUBPLANS = ("InitPlan", "SubPlan")


def walk(node: dict[str, Any], depth: int = 0) -> list[tuple[int, dict[str, Any], float, float]]:
    """The plan's nodes, depth first, with each one's own and total ms, summed over its
    loops and workers (own: less its children's, InitPlans and SubPlans included)."""
    children = node.get("Plans", [])
    total = node.get("Actual Total Time", 0.0) * node.get("Actual Loops", 1)
    own = total - sum(c.get("Actual Total Time", 0.0) * c.get("Actual Loops", 1) for c in children)
    found = [(depth, node, max(0.0, own), total)]
    for child in children:
        found += walk(child, depth + 1)
    return found


def culprits(nodes: list[tuple[int, dict[str, Any], float, float]]) -> list[str]:
    """The node with the most time of its own (not one holding subplans: PostgreSQL does
    not always count their time in it), and the costliest InitPlan or SubPlan, whole."""
    plain = [
        n
        for n in nodes
        if not any(c.get("Parent Relationship") in SUBPLANS for c in n[1].get("Plans", []))
    ]
    worst = max(plain or nodes, key=lambda n: n[2])
    found = [f"slowest node {worst[2]:.0f} ms: {describe(worst[1])[:150]}"]
    subplans = [n for n in nodes if n[1].get("Parent Relationship") in SUBPLANS]
    if subplans:
        heavy = max(subplans, key=lambda n: n[3])
        found.append(f"costliest subplan, {heavy[3]:.0f} ms in all: {describe(heavy[1])[:150]}")
    return found


def describe(node: dict[str, Any]) -> str:
    text = node["Node Type"]
    if "Relation Name" in node:
        text += f" on {node['Relation Name']}"
    if "Index Name" in node:
        text += f" using {node['Index Name']}"
    if "Subplan Name" in node:
        text += f" ({node['Subplan Name']})"
    text += (
        f"  rows={node.get('Actual Rows', 0):.0f} loops={node.get('Actual Loops', 1)}"
        f" hit={node.get('Shared Hit Blocks', 0)} read={node.get('Shared Read Blocks', 0)}"
    )
    for key in ("Sort Key", "Index Cond", "Join Filter", "Filter", "Hash Cond"):
        if key in node:
            value = node[key] if isinstance(node[key], str) else ", ".join(node[key])
            text += f"  {key}: {value[:160]}"
    if "Rows Removed by Filter" in node:
        text += f" (removed {node['Rows Removed by Filter']})"
    if "Sort Method" in node:
        text += f"  [{node['Sort Method']}, {node.get('Sort Space Used')} kB]"
    return text


async def explain(db: Database, name: str, logged: list[tuple[str, Any, float]]) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) the statements that took 80% of a run, slowest first."""
    lines = [f"\n--- {name}: {len(logged)} statements, {sum(ms for *_, ms in logged):.0f} ms"]
    budget = 0.8 * sum(ms for *_, ms in logged)
    summary: list[str] = []
    for statement, params, ms in sorted(logged, key=lambda s: -s[2]):
        if budget <= 0:
            break
        budget -= ms
        async with db.read() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            found = await raw.fetchval(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, *(params or ())
            )
        plan = (json.loads(found) if isinstance(found, str) else found)[0]
        nodes = walk(plan["Plan"])
        found = culprits(nodes)
        text = " ".join(statement.split())
        text = text if len(text) < 900 else f"{text[:450]} ... {text[-450:]}"
        lines.append(f"\n{ms:.0f} ms: {text}")
        lines.append(f"  params: {str(list(params or ()))[:300]}")
        lines.append(f"  execution {plan['Execution Time']:.0f} ms, plan:")
        for depth, node, own, total in nodes:
            lines.append(f"  {'  ' * depth}-> [self {own:.1f}, total {total:.1f}] {describe(node)}")
        summary.append(f"{ms:7.0f} ms: {' '.join(statement.split())[:100]}")
        summary += [f"           {line}" for line in found]
    return [*lines, f"\n{name}, costliest statements:", *summary]


def report_of(days: int) -> Callable[[Any], Awaitable[Any]]:
    async def run(conn: Any) -> Any:
        today = reports.today(TZ)
        period = reports.Period.of((today - timedelta(days=days - 1)).isoformat(), None, TZ, today)
        return await reports.summary(conn, SPACE, period, sqlite=False)

    return run


def inbox_of(filters: Filters) -> Callable[[Any], Awaitable[Any]]:
    async def run(conn: Any) -> Any:
        rows = await conversations_page(conn, SPACE, VIEWER, filters)
        assert rows, f"no conversations for {filters}"
        return rows

    return run


async def measure(url: str, args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    db = Database(url)
    statements = Statements(db)
    rows: list[tuple[str, list[float], list[float], float]] = []
    slow: list[tuple[str, list[tuple[str, Any, float]]]] = []
    try:
        jobs = [
            (f"inbox {name}", inbox_of(f), args.runs, INBOX_TARGET) for name, f in INBOXES.items()
        ]
        jobs += [
            (f"report last {n} days{kind}", report_of(n), args.report_runs, YEAR_TARGET)
            for kind in (" live", "")  # before the day book has run, then after
            for n in (365, 30)
        ]
        for name, run, runs, target in jobs:
            if name == "report last 365 days":
                async with db.read() as conn:
                    live = await run(conn)
                started = time.perf_counter()
                days = await DayBook(db).tick()
                booked = time.perf_counter() - started
                async with db.read() as conn:
                    same = await run(conn) == live  # the book changes the speed only
            times, sql, logged = await timed(db, statements, run, runs, args.budget)
            rows.append((name, times, sql, target))
            if percentile(times, 0.5) > target and "live" not in name:
                slow.append((name, logged))
        async with db.read() as conn:
            counts = (
                await conn.execute(
                    sa.text(
                        "SELECT count(*) FILTER (WHERE status = 'open'),"
                        " count(*) FILTER (WHERE handler = 'waiting' AND status = 'open'),"
                        " count(*) FILTER (WHERE assignee_id = :me AND status = 'open')"
                        " FROM conversations"
                    ),
                    {"me": VIEWER},
                )
            ).one()
        findings = (
            [] if args.no_explain else [ln for n, lg in slow for ln in await explain(db, n, lg)]
        )
    finally:
        await db.close()
    print(
        f"the hub's day book counted {days} ended days in {booked:.1f}s (once, in background); "
        f"the year's report from it {'equals' if same else 'DIFFERS FROM'} the one counted live"
    )
    print(
        f"open conversations {counts[0]:,} (waiting {counts[1]:,}, mine {counts[2]:,}); "
        f"ms of {args.runs} inbox / {args.report_runs} report runs after a warm-up (fewer "
        f"after {args.budget:.0f}s) "
        "(in SQL: its statements sent, run and fetched; the rest is Python)"
    )
    print(
        f"{'query':<30} {'runs':>4} {'median':>8} {'p90':>8} {'min':>8} {'max':>8} {'in SQL':>8} "
        f"{'target':>7}  ok"
    )
    figures: dict[str, Any] = {"day_book_s": round(booked, 1), "day_book_same_report": same}
    for name, times, sql, target in rows:
        median, p90 = statistics.median(times), percentile(times, 0.9)
        ok = median <= target
        print(
            f"{name:<30} {len(times):>4} {median:>8.1f} {p90:>8.1f} {min(times):>8.1f} "
            f"{max(times):>8.1f} {statistics.median(sql):>8.1f} {target:>7.0f}  "
            f"{'yes' if ok else 'NO'}"
        )
        key = "_".join(name.replace("=", " ").replace("(", "").replace(")", "").split())
        figures[f"{key}_ms_median"] = round(median, 1)
        figures[f"{key}_ms_p90"] = round(p90, 1)
        figures[f"{key}_sql_ms_median"] = round(statistics.median(sql), 1)
        if name.startswith("inbox") or name == "report last 365 days":
            figures[f"{key}_ok"] = ok
    return figures, findings


async def main(args: argparse.Namespace) -> None:
    from tests.servers import Postgres

    if missing := Postgres.available():
        sys.exit(f"PostgreSQL: {missing}")
    postgres = Postgres(durable=True)  # benchmarks keep fsync on
    try:
        postgres.start()
        started = time.perf_counter()
        messages = await seed(postgres, args.conversations, args.messages, args.index)
        seeded = time.perf_counter() - started
        print(
            f"PostgreSQL: {args.conversations:,} conversations, {int(messages):,} messages "
            f"over 365 days, seeded in {seeded:.1f}s (schema, rows, VACUUM ANALYZE)"
        )
        for statement in args.index:
            print(f"  with {statement}")
        figures, findings = await measure(f"{postgres.url}/dashboard", args)
    finally:
        postgres.stop()
    for line in findings:
        print(line)
    if args.json:
        print(json.dumps({"seed_s": round(seeded, 1), **figures}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000, help="about this many")
    parser.add_argument("--runs", type=int, default=20, help="timed runs of each inbox page")
    parser.add_argument("--report-runs", type=int, default=5, help="timed runs of each report")
    parser.add_argument(
        "--budget", type=float, default=60, help="seconds of runs per figure, then fewer runs"
    )
    parser.add_argument(
        "--index", action="append", default=[], metavar="DDL", help="add before ANALYZE"
    )
    parser.add_argument("--no-explain", action="store_true", help="no EXPLAIN of slow figures")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    asyncio.run(main(parser.parse_args()))
