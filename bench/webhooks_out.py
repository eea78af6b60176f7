"""Outgoing webhooks: events delivered per second to a local receiver, and what the relay
costs web-chat ingest.

A receiver (an aiohttp app in this process) answers every POST with 204 at once and notes
when each arrived. Each variant gets a fresh hub (`chancenter serve` on SQLite, with the
worker and the built-in bot running, `CHANCENTER_WEBHOOKS_ALLOW_PRIVATE=true`) with 0, 1
or 20 subscriptions to `message.received`, each with its own URL (/hook/N), made through
`POST /api/v1/webhooks`; web-chat visitors then send messages, each as soon as the last
was acked (bench/ingest.py's load). Figures:

- ack rate: web-chat messages acknowledged per second, with 20 subscriptions against none
  (target: at least 0.9x);
- events/s: deliveries received / (the load's start -> last delivery received), with 1
  and 20 subscriptions (and, with 20, the rate of those received after the load ended),
  and the lag from an event's `timestamp` to its arrival (p50/p99);
- lost: deliveries owed (messages x subscriptions) not received within --timeout of the
  load's end (also: duplicates, and the first delivery per subscription whose
  signature does not verify).

Rounds are interleaved and each figure is the median of the rounds (min-max in brackets).
Each hub's standard error (its log, WARNING and up) is kept in --logs.

With `--before DIR` (a checkout of earlier code: `git worktree add DIR REV`), each
variant also runs as that code, interleaved in the same rounds.

    .venv/bin/python bench/webhooks_out.py [--clients 50] [--messages 40] [--rounds 3]
                                           [--timeout 120] [--logs DIR] [--before DIR]
                                           [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiohttp
from aiohttp import web
from standardwebhooks import Webhook

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.ingest import (  # noqa: E402
    Process,
    before_option,
    free_port,
    load,
    spread,
    webchat_channel,
)

VARIANTS = (0, 1, 20)  # subscriptions
SIGNED = ("webhook-id", "webhook-timestamp", "webhook-signature")


# --- the receiver: notes each POST, answers 204 at once ------------------------------


@dataclass(frozen=True)
class Arrival:
    hook: int  # the subscription (its URL's N)
    at: float  # wall clock, as the event's timestamp is
    headers: dict[str, str]
    body: bytes


class Receiver:
    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self.distinct: set[tuple[int, str]] = set()  # (subscription, webhook-id)
        self.owed = 0
        self.complete = asyncio.Event()  # set once `owed` distinct deliveries arrived
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: request.headers.get(k, "") for k in SIGNED}
        hook = int(request.match_info["n"])
        self.arrivals.append(Arrival(hook, time.time(), headers, body))
        self.distinct.add((hook, headers["webhook-id"]))
        if len(self.distinct) >= self.owed:
            self.complete.set()
        return web.Response(status=204)

    def expect(self, owed: int) -> None:
        self.arrivals, self.distinct, self.owed = [], set(), owed
        self.complete.clear()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook/{n:\\d+}", self._hook)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


# --- the hub: init (for an admin token), then serve, its log kept ---------------------


class Hub(Process):
    """`chancenter serve` on a fresh SQLite database in `workdir`; stderr goes to `log`."""

    def __init__(self, workdir: Path, log: Path, root: Path = ROOT) -> None:
        port = free_port()
        env = {
            **os.environ,
            "CHANCENTER_PORT": str(port),
            "CHANCENTER_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
            "CHANCENTER_DATA_DIR": str(workdir / "data"),
            "CHANCENTER_LOG_LEVEL": "WARNING",
            "CHANCENTER_WEBHOOKS_ALLOW_PRIVATE": "true",
        }
        self._log = log.open("ab")
        init = subprocess.run(
            [sys.executable, "-m", "bot", "init", "--json"],
            env=env,
            cwd=root,
            check=True,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self.token: str = json.loads(init.stdout)["token"]
        self.url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "bot", "serve"]
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=self._log
        )

    def cpu(self) -> float:
        """Seconds of CPU the hub has used (Linux; 0 elsewhere)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self._log.close()

    async def subscribe(self, receiver: str, n: int) -> list[str]:
        """`n` subscriptions to `message.received` at /hook/0.. ; their secrets."""
        secrets = []
        auth = {"Authorization": f"Bearer {self.token}"}
        async with aiohttp.ClientSession(headers=auth) as s:
            for i in range(n):
                hook = {"url": f"{receiver}/hook/{i}", "events": ["message.received"]}
                async with s.post(f"{self.url}/api/v1/webhooks", json=hook) as r:
                    answer = await r.json()
                    assert r.status == 201, f"POST /api/v1/webhooks: {r.status} {answer}"
                    secrets.append(answer["secret"])
        return secrets


# --- a round --------------------------------------------------------------------------


@dataclass
class Outcome:
    acks: float  # web-chat messages acked per second
    ack_p99: float  # ms
    events: float = 0.0  # deliveries per second, the load's start -> last delivery
    lag_p50: float = 0.0  # ms, event timestamp -> arrival
    lag_p99: float = 0.0
    lost: int = 0
    duplicates: int = 0
    bad_signatures: int = 0
    behind: int = 0  # deliveries still owed when the load ended
    drain: float = 0.0  # s from the load's end to the last delivery
    after: float = 0.0  # deliveries per second from the load's end to the last delivery
    hub_cpu: float = 0.0  # share of a core during the load
    bench_cpu: float = 0.0  # this process's (load generator and receiver)


def pct(values: list[float], q: float) -> float:
    return values[min(int(len(values) * q), len(values) - 1)] if values else float("nan")


def verify(arrivals: list[Arrival], secrets: list[str]) -> int:
    """The first delivery of each subscription whose signature does not check out."""
    first: dict[int, Arrival] = {}
    for a in arrivals:
        first.setdefault(a.hook, a)
    bad = 0
    for hook, a in first.items():  # the secrets are in the order of the hooks
        try:
            Webhook(secrets[hook]).verify(a.body, a.headers)
        except Exception:
            bad += 1
    return bad


async def round_of(
    subs: int, args: argparse.Namespace, receiver: Receiver, log: Path, root: Path = ROOT
) -> Outcome:
    with tempfile.TemporaryDirectory() as tmp:
        hub = Hub(Path(tmp), log, root)
        try:
            await hub.ready()
            secrets = await hub.subscribe(receiver.url, subs)
            url = f"{hub.url}/webchat/ws?channel={await webchat_channel(hub.url)}"
            owed = args.clients * args.messages * subs
            receiver.expect(owed)
            started, cpu, hub_cpu = time.time(), time.process_time(), hub.cpu()
            result = await load(url, args.clients, args.messages)
            ended = time.time()
            outcome = Outcome(result.rate, result.p99)
            outcome.bench_cpu = (time.process_time() - cpu) / (ended - started)
            outcome.hub_cpu = (hub.cpu() - hub_cpu) / (ended - started)
            outcome.behind = owed - len(receiver.distinct)
            if len(receiver.distinct) < owed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(receiver.complete.wait(), args.timeout)
            seen = list(receiver.arrivals)
        finally:
            hub.stop()
    distinct = {(a.hook, a.headers["webhook-id"]) for a in seen}
    outcome.lost = owed - len(distinct)
    outcome.duplicates = len(seen) - len(distinct)
    if seen:
        last = max(a.at for a in seen)
        outcome.events = len(distinct) / (last - started)
        outcome.drain = max(0.0, last - ended)
        if outcome.drain > 0:
            outcome.after = (outcome.behind - outcome.lost) / outcome.drain
        lags = sorted(
            (a.at - datetime.fromisoformat(json.loads(a.body)["timestamp"]).timestamp()) * 1000
            for a in seen
        )
        outcome.lag_p50, outcome.lag_p99 = pct(lags, 0.5), pct(lags, 0.99)
        outcome.bad_signatures = verify(seen, secrets)
    return outcome


def label(subs: int) -> str:
    return "no subscriptions" if subs == 0 else f"{subs} subscription{'s' * (subs > 1)}"


Results = dict[int, list[Outcome]]


async def main(args: argparse.Namespace) -> None:
    logs: Path = args.logs
    print(f"hub logs in {logs}", file=sys.stderr)
    roots = {"after": ROOT, **({"before": args.before.resolve()} if args.before else {})}
    receiver = Receiver()
    await receiver.start()
    results: dict[str, Results] = {who: {subs: [] for subs in VARIANTS} for who in roots}
    try:
        for n in range(args.rounds):
            for subs in VARIANTS:  # interleaved: drift on the machine hits all alike
                for who, root in roots.items():
                    log = logs / f"round{n + 1}-{who}-{subs}.log"
                    o = await round_of(subs, args, receiver, log, root)
                    results[who][subs].append(o)
                    line = f"round {n + 1} {who} {label(subs)}: {o.acks:.0f} acks/s"
                    if subs:
                        line += f", {o.events:.0f} events/s, lost {o.lost}"
                    print(line, file=sys.stderr)
    finally:
        await receiver.stop()
    print(
        f"\noutgoing webhooks (message.received) to a receiver answering 204, web chat "
        f"{args.clients} clients x {args.messages} messages, {args.rounds} interleaved rounds "
        "(median [min-max])"
    )
    figures = {who: report(who, rs) for who, rs in results.items()}
    if args.json:
        after = figures.pop("after")
        print(json.dumps(after | ({"before": figures["before"]} if figures else {})))


def report(who: str, results: Results) -> dict[str, float]:
    """Print one checkout's table; its figures."""

    def median(subs: int, field: str) -> float:
        return statistics.median(getattr(o, field) for o in results[subs])

    def col(subs: int, field: str, fmt: str = "{:.0f}") -> str:
        return spread([getattr(o, field) for o in results[subs]], fmt)

    none = median(0, "acks")
    print(
        f"\n{who:<17} {'acks/s':>16} {'ratio':>5} {'ack p99 ms':>16} {'events/s':>16} "
        f"{'lag p50 ms':>16} {'lag p99 ms':>18} {'hub CPU':>14} {'bench CPU':>14}"
    )
    for subs in VARIANTS:
        delivered = [
            col(subs, f, fmt) if subs else "-"
            for f, fmt in (("events", "{:.0f}"), ("lag_p50", "{:.0f}"), ("lag_p99", "{:.0f}"))
        ]
        print(
            f"{label(subs):<17} {col(subs, 'acks'):>16} {median(subs, 'acks') / none:>5.2f} "
            f"{col(subs, 'ack_p99', '{:.1f}'):>16} {delivered[0]:>16} {delivered[1]:>16} "
            f"{delivered[2]:>18} {col(subs, 'hub_cpu', '{:.2f}'):>14} "
            f"{col(subs, 'bench_cpu', '{:.2f}'):>14}"
        )
    for subs in VARIANTS[1:]:
        rs = results[subs]
        print(
            f"{label(subs)}: owed at the load's end {col(subs, 'behind')}, drained in "
            f"{col(subs, 'drain', '{:.1f}')} s ({col(subs, 'after')} events/s); "
            f"lost {sum(o.lost for o in rs)}, duplicates {sum(o.duplicates for o in rs)}, "
            f"bad signatures {sum(o.bad_signatures for o in rs)}"
        )
    return {
        "events_per_s_1_subscription": round(median(1, "events"), 1),
        "events_per_s_20_subscriptions": round(median(20, "events"), 1),
        "events_per_s_20_subscriptions_after_load": round(median(20, "after"), 1),
        "ack_rate_none": round(none, 1),
        "ack_rate_1_subscription": round(median(1, "acks"), 1),
        "ack_rate_20_subscriptions": round(median(20, "acks"), 1),
        "ack_ratio_20_vs_none": round(median(20, "acks") / none, 3),
        "delivery_lag_p50_ms": round(median(20, "lag_p50"), 1),
        "delivery_lag_p99_ms": round(median(20, "lag_p99"), 1),
        "lost": sum(o.lost for rs in results.values() for o in rs),
        "duplicates": sum(o.duplicates for rs in results.values() for o in rs),
        "bad_signatures": sum(o.bad_signatures for rs in results.values() for o in rs),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent visitors")
    parser.add_argument("--messages", type=int, default=40, help="messages per visitor")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions")
    parser.add_argument(
        "--timeout", type=float, default=120, help="seconds after the load to await deliveries"
    )
    parser.add_argument(
        "--logs", type=Path, help="where the hubs' logs go (default: a new tmp dir)"
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    before_option(parser)
    args = parser.parse_args()
    args.logs = args.logs or Path(tempfile.mkdtemp(prefix="webhooks_out-logs-"))
    args.logs.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(args))
