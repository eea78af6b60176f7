"""Run one `bot.cli.commands` command: its REST call, in-process over a private Unix socket.

The hub's components start without working and listen only on a socket in a private
directory; a token minted in memory makes the call as the space's admin. A USER given
as an email is resolved to its id through the API's own list of people first, so the
email means the same person the API would show.
"""

from __future__ import annotations

import argparse
import codecs
import re
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

from bot.api.auth import Principal, hash_token
from bot.cli.args import USER, Call
from bot.cli.hub import hub
from bot.cli.output import emit
from bot.errors import ChanCenterError
from bot.keys import DEFAULT_SPACE, LOCAL_PRINCIPALS
from bot.settings import Settings


def arguments(call: Call, args: argparse.Namespace) -> dict[str, Any]:
    """The values given for the call's arguments (`--clear X` becomes `X: null`)."""
    names = [options.get("dest", flag.lstrip("-").replace("-", "_")) for flag, options in call.args]
    values = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    for name in values.pop("clear", None) or ():
        if name in values:
            raise ChanCenterError(f"--clear {name} and a new value for it: choose one")
        values[name] = None
    return values


def url(call: Call, values: dict[str, Any]) -> str:
    """The call's URL, its `{name}` segments taken out of `values`."""
    return "/api/v1" + re.sub(r"{(\w+)}", lambda m: str(values.pop(m.group(1))), call.path)


async def run(settings: Settings, args: argparse.Namespace) -> int:
    call: Call = args.call
    values = arguments(call, args)
    token = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory() as private:
        sock = Path(private) / "hub.sock"
        async with hub(settings, sock) as app:
            space_id = args.space or app[DEFAULT_SPACE]
            app[LOCAL_PRINCIPALS][hash_token(token)] = Principal(0, space_id, None, "admin")
            async with aiohttp.ClientSession(
                "http://hub",
                connector=aiohttp.UnixConnector(path=str(sock)),
                headers={"Authorization": f"Bearer {token}"},
            ) as http:
                for name in _user_args(call):
                    if isinstance(values.get(name), str):
                        values[name] = await _user_id(http, call, values[name])
                path = url(call, values)
                payload = values.pop(call.body) if call.body else values
                if call.shape is not None:
                    payload = call.shape(payload)
                if getattr(args, "csv", False):
                    await _csv(http, path + ".csv", {**call.query, **payload})
                    return 0
                if getattr(args, "watch", False):
                    from bot.cli.watch import watch

                    status, body = 200, await watch(lambda: _answer(http, call, path, payload))
                else:
                    status, body = await _request(http, call, path, payload)
    if status >= 400:
        raise _error(status, body)
    emit(body, args.json)
    return 0


async def _request(
    http: aiohttp.ClientSession, call: Call, path: str, payload: Any
) -> tuple[int, Any]:
    get = call.method == "GET"
    async with http.request(
        call.method,
        path,
        params={**call.query, **payload} if get else None,
        json=None if get or call.method == "DELETE" else payload,
    ) as response:
        return response.status, await _body(response)


async def _answer(http: aiohttp.ClientSession, call: Call, path: str, payload: Any) -> Any:
    """The call's answer, or its error raised."""
    status, body = await _request(http, call, path, payload)
    if status >= 400:
        raise _error(status, body)
    return body


async def _csv(http: aiohttp.ClientSession, path: str, params: dict[str, Any]) -> None:
    """The CSV to standard output as it arrives: a long one never sits in memory."""
    async with http.get(path, params=params) as response:
        if response.status >= 400:
            raise _error(response.status, await _body(response))
        text = codecs.getincrementaldecoder("utf-8")()
        async for chunk in response.content.iter_chunked(65536):
            sys.stdout.write(text.decode(chunk))
        sys.stdout.write(text.decode(b"", final=True))


async def _body(response: aiohttp.ClientResponse) -> Any:
    """The answer's JSON (problem documents included); None for a 204 or plain text."""
    return await response.json() if response.content_type.endswith("json") else None


def _error(status: int, body: Any) -> ChanCenterError:
    detail = body.get("detail") if isinstance(body, dict) else None
    return ChanCenterError(detail or f"HTTP {status}")


def _user_args(call: Call) -> list[str]:
    return [
        options.get("dest", flag.lstrip("-").replace("-", "_"))
        for flag, options in call.args
        if options.get("type") is USER["type"]
    ]


async def _user_id(http: aiohttp.ClientSession, call: Call, email: str) -> int:
    """The id of the person with this email, among the organization's members or the
    space's users (the people the call may name)."""
    organization = call.people == "/organization"
    status, body = await _request(http, Call("GET", call.people, ""), f"/api/v1{call.people}", {})
    if status >= 400:
        raise _error(status, body)
    people = body["members"] if organization else body["items"]
    for person in people:
        if str(person.get("email", "")).casefold() == email.casefold():
            return int(person["user_id" if organization else "id"])
    if organization:
        raise ChanCenterError(
            f"no member {email} in this organization: "
            f"`chancenter orgs add-member {email} --name NAME` adds them"
        )
    raise ChanCenterError(
        f"no user {email} in this space: `chancenter users add {email} --name NAME` adds them"
    )
