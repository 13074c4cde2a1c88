"""`tag2mask jobs start|watch|cancel`: a REST client with a live progress bar.

`--url` (default $TAG2MASK_URL, else http://127.0.0.1:8000) and `--key` (default
$TAG2MASK_API_KEY) go before or after the subcommand.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
from tqdm import tqdm

TERMINAL = {"succeeded", "failed", "cancelled"}
DEFAULT_URL = "http://127.0.0.1:8000"


def _client(args: argparse.Namespace) -> httpx.Client:
    key = args.key or os.environ.get("TAG2MASK_API_KEY")
    if not key:
        raise SystemExit("error: pass --key or set TAG2MASK_API_KEY")
    return httpx.Client(base_url=args.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _check(r: httpx.Response) -> Any:
    if r.status_code >= 400:
        try:
            err = r.json()["error"]
            msg = f"{err['code']}: {err['message']}"
        except (ValueError, KeyError):
            msg = r.text
        raise SystemExit(f"error: HTTP {r.status_code} {msg}")
    return r.json()


def _parse_param(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--param needs NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(raw)
    except json.JSONDecodeError:
        return name, raw


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def watch(client: httpx.Client, job_id: int, interval: float, out: Any = sys.stderr) -> dict:
    """Follow a job until it ends: a progress bar with stage and ETA, events as they come."""
    after = 0
    # Asked before the bar is drawn: an unreachable server is one line, not a bar and a line.
    job = _check(client.get(f"/v1/jobs/{job_id}"))
    bar = tqdm(
        total=1000, file=out, unit="‰", bar_format="{desc} |{bar}| {percentage:3.0f}% {postfix}"
    )
    try:
        while True:
            events = _check(client.get(f"/v1/jobs/{job_id}/events", params={"after": after}))
            for ev in events["items"]:
                after = ev["id"]
                bar.write(f"[{ev['ts'][11:19]}] {ev['level']:7s} {ev['message']}", file=out)
            bar.set_description_str(f"job {job_id} {job['status']:9s} {job['stage'] or '':12s}")
            bar.set_postfix_str(f"ETA {_fmt_eta(job.get('eta_seconds'))}")
            bar.n = round(job["progress"] * 1000)
            bar.refresh()
            if job["status"] in TERMINAL:
                return job
            time.sleep(interval)
            job = _check(client.get(f"/v1/jobs/{job_id}"))
    finally:
        bar.close()


def cmd_start(args: argparse.Namespace) -> int:
    params = dict(args.param or [])
    body = {"kind": args.kind, "params": params, "allow_concurrent": args.allow_concurrent}
    with _client(args) as c:
        job = _check(c.post(f"/v1/projects/{args.project}/jobs", json=body))
        print(job["id"])
        if not args.watch:
            return 0
        job = watch(c, job["id"], args.interval)
    return 0 if job["status"] == "succeeded" else 1


def cmd_watch(args: argparse.Namespace) -> int:
    with _client(args) as c:
        job = watch(c, args.job, args.interval)
    print(json.dumps({k: job[k] for k in ("id", "status", "error", "metrics")}, indent=2))
    return 0 if job["status"] == "succeeded" else 1


def cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as c:
        job = _check(c.post(f"/v1/jobs/{args.job}/cancel"))
    print(job["status"])
    return 0


def _unreachable_is_one_line(cmd: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """Run `cmd`; a server that cannot be reached is one line on stderr and exit 3."""

    def run(args: argparse.Namespace) -> int:
        try:
            return cmd(args)
        except httpx.TransportError as e:
            reason = str(e) or type(e).__name__
            print(
                f"error: cannot reach the tag2mask API at {args.url} ({reason}); "
                "is `tag2mask serve` running there? (set --url or TAG2MASK_URL)",
                file=sys.stderr,
            )
            return 3

    return run


def _connection_args(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """--url and --key; on the subcommands without defaults, so they override the parent's."""
    url_default = os.environ.get("TAG2MASK_URL", DEFAULT_URL) if defaults else argparse.SUPPRESS
    parser.add_argument(
        "--url",
        default=url_default,
        help=f"the API's base URL (default: $TAG2MASK_URL, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--key",
        default=None if defaults else argparse.SUPPRESS,
        help="API key (default: $TAG2MASK_API_KEY)",
    )


def add_parser(sub: Any) -> None:
    jobs = sub.add_parser("jobs", help="start, watch and cancel jobs over the REST API")
    _connection_args(jobs, defaults=True)
    jsub = jobs.add_subparsers(dest="jobs_cmd", required=True)
    start = jsub.add_parser("start", help="start a job and print its id")
    start.add_argument("--project", type=int, required=True)
    start.add_argument("--kind", default="pipeline")
    start.add_argument("--param", action="append", type=_parse_param, metavar="NAME=VALUE")
    start.add_argument("--allow-concurrent", action="store_true")
    start.add_argument("--watch", action="store_true", help="follow it with a progress bar")
    start.add_argument("--interval", type=float, default=1.0)
    start.set_defaults(func=_unreachable_is_one_line(cmd_start))
    w = jsub.add_parser("watch", help="live progress bar and events until the job ends")
    w.add_argument("job", type=int)
    w.add_argument("--interval", type=float, default=1.0)
    w.set_defaults(func=_unreachable_is_one_line(cmd_watch))
    c = jsub.add_parser("cancel", help="ask a job to stop")
    c.add_argument("job", type=int)
    c.set_defaults(func=_unreachable_is_one_line(cmd_cancel))
    for p in (start, w, c):
        _connection_args(p, defaults=False)
