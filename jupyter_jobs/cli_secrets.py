"""``jupyter jobs secret set|list|delete``: the user's secrets, from a terminal.

A value is read from stdin (a prompt that does not echo on a terminal), never from the command
line, where other users' ``ps`` and the shell's history would see it.
"""
from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from pathlib import Path
from typing import Any

from .errors import JobsError


def add_parser(sub: Any) -> None:
    secret = sub.add_parser("secret", help="secrets jobs get as environment variables ({secret: NAME} in env.vars)")
    actions = secret.add_subparsers(dest="secret_command", required=True, metavar="ACTION")
    put = actions.add_parser("set", help="set a secret; its value is read from stdin (one trailing newline dropped)")
    put.add_argument("name", help="letters, digits, '_', '.' and '-', e.g. API_KEY")
    lst = actions.add_parser("list", help="your secrets' names and when each was set (never their values)")
    lst.add_argument("--json", action="store_true")
    delete = actions.add_parser("delete", help="remove a secret (jobs that use it then fail to start, saying so)")
    delete.add_argument("name")


def read_value(stream: Any = None) -> str:
    """The value from stdin: a prompt without echo on a terminal, else all of it, less one trailing newline."""
    stream = stream or sys.stdin
    if stream.isatty():
        return getpass.getpass("value (not shown): ")
    value = stream.read()
    return value[:-2] if value.endswith("\r\n") else value[:-1] if value.endswith("\n") else value


async def cmd_set(client: Any, args: argparse.Namespace, _: Path) -> int:
    value = read_value()
    if not value:
        raise JobsError("no value on stdin; pipe it in, e.g. `printf %s \"$TOKEN\" | jupyter jobs secret set NAME`")
    entry = await client.set_secret(args.name, value)
    print(f"secret {entry['name']} set", file=sys.stderr)
    return 0


async def cmd_list(client: Any, args: argparse.Namespace, _: Path) -> int:
    secrets = (await client.secrets())["secrets"]
    if args.json:
        print(json.dumps(secrets, indent=2))
        return 0
    if not secrets:
        print("no secrets; set one with `jupyter jobs secret set NAME` (the value is read from stdin)")
    for entry in secrets:
        print(f"{entry['name']:<32} set {time.strftime('%Y-%m-%d %H:%M', time.localtime(entry['updated_at']))}")
    return 0


async def cmd_delete(client: Any, args: argparse.Namespace, _: Path) -> int:
    await client.delete_secret(args.name)
    print(f"secret {args.name} deleted", file=sys.stderr)
    return 0


COMMANDS = {"secret set": cmd_set, "secret list": cmd_list, "secret delete": cmd_delete}
