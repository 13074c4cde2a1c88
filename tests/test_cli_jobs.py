"""`tag2mask jobs`: --url after the subcommand, TAG2MASK_URL, and one clear line when the
API cannot be reached."""

import os
import socket
import subprocess
import sys

import pytest

from app.cli import build_parser


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_jobs(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TAG2MASK_")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "jobs", *args],
        env={**base, "TAG2MASK_API_KEY": "t2m_x", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


class TestUrl:
    @pytest.mark.parametrize(
        "argv",
        [
            ["jobs", "--url", "http://a:1", "watch", "1"],
            ["jobs", "watch", "1", "--url", "http://a:1"],
            ["jobs", "cancel", "--url", "http://a:1", "1"],
            ["jobs", "start", "--project", "1", "--url", "http://a:1"],
        ],
    )
    def test_before_or_after_the_subcommand(self, argv):
        assert build_parser().parse_args(argv).url == "http://a:1"

    def test_after_wins_over_before_and_key_too(self):
        args = build_parser().parse_args(
            ["jobs", "--url", "http://a:1", "--key", "k1", "watch", "1", "--url", "http://b:2"]
        )
        assert (args.url, args.key) == ("http://b:2", "k1")
        args = build_parser().parse_args(["jobs", "watch", "1", "--key", "k2"])
        assert args.key == "k2"

    def test_environment(self, monkeypatch):
        monkeypatch.setenv("TAG2MASK_URL", "http://from-env:9")
        assert build_parser().parse_args(["jobs", "watch", "1"]).url == "http://from-env:9"
        monkeypatch.delenv("TAG2MASK_URL")
        assert build_parser().parse_args(["jobs", "watch", "1"]).url == "http://127.0.0.1:8000"


class TestUnreachable:
    @pytest.mark.parametrize("cmd", [["watch", "1"], ["cancel", "1"], ["start", "--project", "1"]])
    def test_refused_connection_is_one_line(self, cmd):
        url = f"http://127.0.0.1:{free_port()}"
        proc = run_jobs([*cmd, "--url", url])
        assert proc.returncode == 3 and proc.stdout == ""
        lines = proc.stderr.strip().split("\n")
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("error: cannot reach the tag2mask API at " + url)
        assert "Traceback" not in proc.stderr

    def test_url_from_environment(self):
        url = f"http://127.0.0.1:{free_port()}"
        proc = run_jobs(["watch", "7"], TAG2MASK_URL=url)
        assert proc.returncode == 3 and url in proc.stderr
