"""Webhook ingest per channel: signed Telegram, Messenger, WhatsApp and Bot Framework
(Microsoft Teams) webhooks acknowledged per second, against a bare aiohttp handler that
checks the same signature and parses the same JSON, interleaved rounds, median [min-max].

    .venv/bin/python bench/webhooks.py [--clients 32] [--requests 60] [--rounds 3]
                                       [--kinds telegram,botframework] [--json]

The hub runs `serve --no-work`: what is measured is verify -> parse -> durable commit -> 200.
Every response must be a 200 and every hub round must have stored each message once, or
the bench stops with an error.

Bot Framework: a fake of Microsoft's services (tests.fakes.botframework, HTTPS, its own
thread) holds the signing key; each request is a fresh Teams activity with a Bearer JWT
(RS256) signed before the timing, one per client. The hub checks it with Microsoft's SDK;
the bare handler fetches the same JWKS once at start and checks signature, issuer,
audience, endorsement and `serviceurl` with PyJWT. Both get one signed warm-up request
before the timing: the hub fetches the keys on its first request, the bare one at start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import requests
from aiohttp import web
from jwt.algorithms import RSAAlgorithm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.ingest import Process, Result, chancenter, free_port, spread  # noqa: E402
from tests.fakes.botframework import App, FakeBotFramework, teams_activity  # noqa: E402

SECRET = "bench-app-secret"
TG_SECRET = "bench-telegram-secret"
KINDS = ("telegram", "messenger", "whatsapp", "botframework")
BF_APP_ID = "5e1a9b2c-0000-4000-8000-0000000be4c1"
BF_PASSWORD = "bench-bf-client-secret"
BF_ISSUER = "https://api.botframework.com"  # what the Bot Connector's tokens say
WARM_UP = 999_999  # the client number of the warm-up request (clients are fewer)


def payload(kind: str, client: int, n: int, service_url: str = "") -> dict[str, Any]:
    user, mid = 10_000 + client, client * 1_000_000 + n
    if kind == "botframework":  # one user in one personal chat a client
        return teams_activity(
            app_id=BF_APP_ID,
            service_url=service_url,
            text="what are your opening hours?",
            user_id=f"29:bench-user-{user}",
            conversation_id=f"a:bench-chat-{user}",
            activity_id=str(mid),
        )
    if kind == "telegram":
        return {
            "update_id": mid,
            "message": {
                "message_id": n,
                "date": 1767225600,
                "text": "what are your opening hours?",
                "chat": {"id": user, "type": "private"},
                "from": {"id": user, "is_bot": False, "first_name": "Ana"},
            },
        }
    if kind == "messenger":
        return {
            "object": "page",
            "entry": [
                {
                    "id": "1",
                    "time": 1,
                    "messaging": [
                        {
                            "sender": {"id": str(user)},
                            "recipient": {"id": "1"},
                            "timestamp": 1767225600000,
                            "message": {"mid": f"m_{mid}", "text": "what are your opening hours?"},
                        }
                    ],
                }
            ],
        }
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "W",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"phone_number_id": "3"},
                            "contacts": [{"profile": {"name": "Ana"}, "wa_id": str(user)}],
                            "messages": [
                                {
                                    "from": str(user),
                                    "id": f"wamid.{mid}",
                                    "timestamp": "1767225600",
                                    "type": "text",
                                    "text": {"body": "what are your opening hours?"},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }


def headers(kind: str, raw: bytes, token: str = "") -> dict[str, str]:
    if kind == "botframework":
        return {"Authorization": token, "Content-Type": "application/json"}
    if kind == "telegram":
        return {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET, "Content-Type": "application/json"}
    digest = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def signing_keys(openid_url: str) -> dict[str, tuple[Any, list[str]]]:
    """kid -> (RSA public key, endorsed channels), fetched once as the SDK fetches them
    (`requests`, trusting REQUESTS_CA_BUNDLE)."""
    jwks_uri = requests.get(openid_url, timeout=10).json()["jwks_uri"]
    keys = requests.get(jwks_uri, timeout=10).json()["keys"]
    return {k["kid"]: (RSAAlgorithm.from_jwk(k), k.get("endorsements", [])) for k in keys}


def teams_ok(keys: dict[str, tuple[Any, list[str]]], header: str, activity: Any) -> bool:
    """What the SDK checks of a request from the Bot Connector, with PyJWT."""
    scheme, _, token = header.partition(" ")
    if scheme != "Bearer" or not isinstance(activity, dict):
        return False
    try:
        key, endorsements = keys[jwt.get_unverified_header(token).get("kid")]
        claims = jwt.decode(
            token, key, algorithms=["RS256"], audience=BF_APP_ID, issuer=BF_ISSUER, leeway=300
        )
    except (jwt.PyJWTError, KeyError):
        return False
    endorsed = activity.get("channelId") in endorsements
    return endorsed and claims.get("serviceurl") == activity.get("serviceUrl")


def bare_app() -> web.Application:
    openid_url = os.environ.get("BENCH_BOTFRAMEWORK_OPENID_URL")  # set on its rounds only
    keys = signing_keys(openid_url) if openid_url else {}

    async def handler(request: web.Request) -> web.Response:
        raw = await request.read()
        if request.match_info["kind"] == "botframework":
            activity = json.loads(raw)
            if not teams_ok(keys, request.headers.get("Authorization", ""), activity):
                return web.Response(status=401)
            return web.json_response({"ok": True})
        if request.match_info["kind"] == "telegram":
            ok = hmac.compare_digest(
                request.headers.get("X-Telegram-Bot-Api-Secret-Token", ""), TG_SECRET
            )
        else:
            expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
            ok = hmac.compare_digest(request.headers.get("X-Hub-Signature-256", ""), expected)
        if not ok:
            return web.Response(status=401)
        json.loads(raw)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/webhooks/{kind}", handler)
    app.router.add_get("/readyz", lambda _: web.json_response({"status": "ok"}))
    return app


def add_channels(db: Path, secret_key: str) -> None:
    """Channel rows sealed the way `channels add` seals them (no platform to call here)."""
    from bot.workspace.crypto import Vault

    vault = Vault(secret_key.encode())
    meta = {"app_secret": SECRET, "verify_token": "v"}
    creds = {
        "telegram": {"token": "123456:BENCH", "secret_token": TG_SECRET},
        "messenger": {**meta, "page_id": "1", "page_token": "t"},
        "whatsapp": {**meta, "phone_number_id": "3", "access_token": "t"},
        "botframework": {"app_id": BF_APP_ID, "app_password": BF_PASSWORD, "tenant_id": None},
    }
    with sqlite3.connect(db) as conn:
        for kind in KINDS:
            conn.execute(
                "INSERT INTO channels (id, space_id, kind, name, credentials, settings) "
                "VALUES (?, 1, ?, ?, ?, '{}')",
                (kind, kind, kind, vault.seal(creds[kind])),
            )


class NotAcknowledged(RuntimeError):
    """A webhook answered with anything but 200: the bench stops, it does not count it."""


async def post(
    session: aiohttp.ClientSession, url: str, kind: str, raw: bytes, token: str = ""
) -> None:
    async with session.post(url, data=raw, headers=headers(kind, raw, token)) as resp:
        if resp.status != 200:
            body = (await resp.text())[:500]
            raise NotAcknowledged(f"{kind}: POST {url} answered {resp.status}: {body}")


async def load(
    url: str, kind: str, clients: int, requests: int, bf: FakeBotFramework | None = None
) -> Result:
    latencies: list[float] = []
    service_url = bf.service_url if bf else ""
    # test-side cost, before the timing: one token a client (they last an hour)
    tokens = [bf.sign(BF_APP_ID, service_url) if bf else "" for _ in range(clients)]

    async def client(session: aiohttp.ClientSession, c: int) -> None:
        for n in range(requests):
            raw = json.dumps(payload(kind, c, n, service_url)).encode()
            started = time.perf_counter()
            await post(session, url, kind, raw, tokens[c])
            latencies.append(time.perf_counter() - started)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        if bf:  # the keys fetched, by the hub on its first request, by bare at start
            raw = json.dumps(payload(kind, WARM_UP, 0, service_url)).encode()
            await post(session, url, kind, raw, bf.sign(BF_APP_ID, service_url))
        started = time.perf_counter()
        await asyncio.gather(*(client(session, c) for c in range(clients)))
        elapsed = time.perf_counter() - started
    if len(latencies) != clients * requests:
        raise NotAcknowledged(f"{kind}: {len(latencies)} of {clients * requests} answered")
    latencies.sort()
    return Result(
        len(latencies) / elapsed,
        latencies[len(latencies) // 2] * 1000,
        latencies[int(len(latencies) * 0.99)] * 1000,
    )


def stored(db: Path, kind: str) -> int:
    """Inbound messages the hub stored for the channel of `kind`."""
    with sqlite3.connect(db) as conn:
        query = "SELECT count(*) FROM messages WHERE channel_id = ? AND direction = 'in'"
        return int(conn.execute(query, (kind,)).fetchone()[0])


async def round_of(
    server: str, kind: str, clients: int, requests: int, bf: FakeBotFramework | None = None
) -> Result:
    port = free_port()
    bf = bf if kind == "botframework" else None
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "CHANCENTER_PORT": str(port),
            "CHANCENTER_LOG_LEVEL": "WARNING",
            "CHANCENTER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
            "CHANCENTER_DATA_DIR": f"{tmp}/data",
            "CHANCENTER_SECRET_KEY": "bench-key",
        }
        if bf:  # the SDK (and the bare handler) fetch the keys with `requests`
            env["CHANCENTER_BOTFRAMEWORK_OPENID_URL"] = bf.openid_url
            env["BENCH_BOTFRAMEWORK_OPENID_URL"] = bf.openid_url
            env["CHANCENTER_BOTFRAMEWORK_LOGIN_URL"] = bf.login_url
            env["REQUESTS_CA_BUNDLE"] = bf.ca_file
        if server == "bare":
            proc = Process([sys.executable, __file__, "--bare-server", str(port)], env, port)
        else:
            chancenter(env, "db", "upgrade")
            chancenter(env, "init")
            add_channels(Path(tmp) / "bench.db", "bench-key")
            proc = Process([sys.executable, "-m", "bot", "serve", "--no-work"], env, port)
        try:
            await proc.ready()
            result = await load(f"{proc.url}/webhooks/{kind}", kind, clients, requests, bf)
        finally:
            proc.stop()
        expected = clients * requests + (1 if bf else 0)
        if server == "hub" and (got := stored(Path(tmp) / "bench.db", kind)) != expected:
            raise NotAcknowledged(f"{kind}: the hub stored {got} messages of {expected}")
        return result


def pick(results: list[Result], field: str) -> list[float]:
    return [getattr(r, field) for r in results]


async def main(args: argparse.Namespace) -> None:
    kinds: list[str] = args.kinds
    results: dict[tuple[str, str], list[Result]] = {}
    async with contextlib.AsyncExitStack() as stack:
        bf = None
        if "botframework" in kinds:
            fake = FakeBotFramework(apps={BF_APP_ID: App(BF_PASSWORD)})
            bf = await stack.enter_async_context(fake)
        for n in range(args.rounds):
            for kind in kinds:
                for server in ("bare", "hub"):
                    result = await round_of(server, kind, args.clients, args.requests, bf)
                    results.setdefault((kind, server), []).append(result)
                    print(f"round {n + 1} {kind} {server}: {result.rate:.0f}/s", file=sys.stderr)
    print(
        f"\nwebhook ingest (verify, parse, durable commit, 200), {args.clients} clients x "
        f"{args.requests} requests, {args.rounds} interleaved rounds (median [min-max])"
    )
    print(
        f"{'channel':<12} {'server':<6} {'acks/s':>18} {'p50 ms':>16} {'p99 ms':>18} {'ratio':>6}"
    )
    for kind in kinds:
        bare = statistics.median(pick(results[kind, "bare"], "rate"))
        for server in ("bare", "hub"):
            rs = results[kind, server]
            ratio = statistics.median(pick(rs, "rate")) / bare
            print(
                f"{kind:<12} {server:<6} {spread(pick(rs, 'rate')):>18} "
                f"{spread(pick(rs, 'p50'), '{:.1f}'):>16} "
                f"{spread(pick(rs, 'p99'), '{:.1f}'):>18} {ratio:>6.2f}"
            )
    if args.json:
        figures = {
            f"ratio_{kind}": round(
                statistics.median(pick(results[kind, "hub"], "rate"))
                / statistics.median(pick(results[kind, "bare"], "rate")),
                3,
            )
            for kind in kinds
        }
        print(json.dumps(figures))


def kinds_option(value: str) -> list[str]:
    kinds = [k.strip() for k in value.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"choose among {','.join(KINDS)}, not {value!r}")
    return list(dict.fromkeys(kinds))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent senders")
    parser.add_argument("--requests", type=int, default=60, help="webhooks per sender")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions")
    parser.add_argument(
        "--kinds",
        type=kinds_option,
        default=list(KINDS),
        help=f"comma-separated channels to measure (default {','.join(KINDS)})",
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        web.run_app(bare_app(), host="127.0.0.1", port=args.bare_server, print=None)
    else:
        asyncio.run(main(args))
