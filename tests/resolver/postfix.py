"""A private Postfix instance for the end-to-end tests: its own config directory, loopback only.

Postfix resolves MX hosts with the C library's resolver, which asks the nameservers of
``/etc/resolv.conf`` on port 53 and nothing else (no per-instance setting exists). So the
instance runs in a private mount namespace (``unshare --mount``) in which a bind mount puts a
``resolv.conf`` naming the lab's nameserver over ``/etc/resolv.conf``: every Postfix process
(master and the daemons it forks) sees the lab's DNS, nothing else on the machine does, and
Postfix does its real MX selection through real DNS. The lab therefore listens on port 53
(DNS) and 25 (SMTP), as a Postfix that was not told otherwise expects.

No chroot (every master.cf service has ``chroot = n``), no local delivery, no syslog: the
instance writes its log to ``maillog`` in its directory (``maillog_file``, Postfix >= 3.4), which
the tests read for Postfix's own account of each delivery (``Verified TLS connection ...``,
``dsn=4.7.5``). Mail is submitted over SMTP to the instance's smtpd on 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["PostfixInstance", "free_port", "missing_postfix", "wait_for"]

_T = TypeVar("_T")
_COMMANDS = ("postfix", "postconf", "postmap", "postqueue", "unshare", "mount")

MASTER_CF = """\
# service     type  private unpriv  chroot  wakeup  maxproc command
{smtpd}       inet  n       -       n       -       -       smtpd
pickup        unix  n       -       n       60      1       pickup
cleanup       unix  n       -       n       -       0       cleanup
qmgr          unix  n       -       n       300     1       qmgr
tlsmgr        unix  -       -       n       1000?   1       tlsmgr
rewrite       unix  -       -       n       -       -       trivial-rewrite
bounce        unix  -       -       n       -       0       bounce
defer         unix  -       -       n       -       0       bounce
trace         unix  -       -       n       -       0       bounce
verify        unix  -       -       n       -       1       verify
flush         unix  n       -       n       1000?   0       flush
proxymap      unix  -       -       n       -       -       proxymap
smtp          unix  -       -       n       -       -       smtp
relay         unix  -       -       n       -       -       smtp
showq         unix  n       -       n       -       -       showq
error         unix  -       -       n       -       -       error
retry         unix  -       -       n       -       -       error
discard       unix  -       -       n       -       -       discard
anvil         unix  -       -       n       -       1       anvil
scache        unix  -       -       n       -       1       scache
postlog       unix-dgram n  -       n       -       1       postlogd
"""


def missing_postfix() -> str | None:
    """Why the end-to-end tests cannot run here, or ``None`` when they can."""
    missing = [name for name in _COMMANDS if shutil.which(name) is None]
    if missing:
        return f"Postfix end to end needs {', '.join(missing)} (apt-get install postfix util-linux mount)"
    probe = ["unshare", "--mount", "--propagation", "private", "true"]
    if subprocess.run(probe, capture_output=True, check=False).returncode != 0:
        return "Postfix end to end needs a private mount namespace (unshare --mount: run as root)"
    return None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(check: Callable[[], _T | None], *, timeout: float, what: str, interval: float = 0.2) -> _T:
    """Poll ``check`` until it returns something other than ``None`` (a deadline, not a sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class PostfixInstance:
    """A Postfix instance in a fresh directory, started by :meth:`start`, removed by :meth:`stop`."""

    def __init__(
        self, *, nameserver: str, ca_pem: bytes, policy_maps: str, extra: dict[str, str] | None = None
    ) -> None:
        # not under pytest's tmp_path: those directories are mode 0700, and Postfix's daemons
        # (user postfix) read the CA file, the data directory and the log through this path
        self.directory = Path(tempfile.mkdtemp(prefix="mtasts-postfix-"))
        self.directory.chmod(0o755)
        self.smtpd_port = free_port()
        self.nameserver = nameserver
        self.config = self.directory / "etc"  # apart from the queue: postfix check scans it all
        self.config.mkdir(mode=0o755)
        (self.directory / "queue").mkdir(mode=0o755)
        (self.directory / "data").mkdir(mode=0o700)
        shutil.chown(self.directory / "data", "postfix", "postfix")
        (self.directory / "ca.pem").write_bytes(ca_pem)
        (self.directory / "resolv.conf").write_text(f"nameserver {nameserver}\noptions attempts:2 timeout:2\n")
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.directory / "queue"),
            "data_directory": str(self.directory / "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "sender.postfix.test",
            "mydomain": "postfix.test",
            "myorigin": "$myhostname",
            "mydestination": "",
            "relay_domains": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "smtpd_peername_lookup": "no",
            "maillog_file": str(self.directory / "maillog"),
            "maillog_file_prefixes": str(self.directory),
            "smtp_host_lookup": "dns",
            "smtp_connect_timeout": "5s",
            "smtp_tls_security_level": "may",
            "smtp_tls_policy_maps": policy_maps,
            "smtp_tls_CAfile": str(self.directory / "ca.pem"),
            "smtp_tls_loglevel": "1",
            "smtp_connection_cache_on_demand": "no",
            # retry at once when a test flushes, and never bounce while a test runs
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "queue_run_delay": "1s",
            "maximal_queue_lifetime": "1d",
            "bounce_queue_lifetime": "1d",
            **(extra or {}),
        }
        (self.config / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        (self.config / "master.cf").write_text(MASTER_CF.format(smtpd=f"127.0.0.1:{self.smtpd_port}"))
        self.started = False

    # --- lifecycle ---------------------------------------------------------------------------

    def _postfix(self, *arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["postfix", "-c", str(self.config), *arguments], capture_output=True, text=True, check=check
        )

    def start(self) -> None:
        """``postfix start`` inside a mount namespace whose /etc/resolv.conf names the lab."""
        self._postfix("check")
        mount = 'mount --bind "$0" /etc/resolv.conf && exec postfix -c "$1" start'
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount]
        started = subprocess.run(
            [*command, str(self.directory / "resolv.conf"), str(self.config)],
            capture_output=True,
            text=True,
            check=False,
        )
        if started.returncode != 0:
            raise RuntimeError(f"postfix start failed: {started.stdout}{started.stderr}{self.log()}")
        self.started = True
        wait_for(self._accepting, timeout=20, what="the Postfix instance's smtpd")

    def _accepting(self) -> bool | None:
        try:
            with socket.create_connection(("127.0.0.1", self.smtpd_port), timeout=1):
                return True
        except OSError:
            return None

    def stop(self) -> None:
        """``postfix stop``, wait for the master to exit, remove the directory."""
        if self.started:
            pid_file = self.directory / "queue" / "pid" / "master.pid"
            self._postfix("stop", check=False)
            wait_for(lambda: None if _alive(pid_file) else True, timeout=20, what="the Postfix master to exit")
            self.started = False
        shutil.rmtree(self.directory, ignore_errors=True)

    # --- using it ----------------------------------------------------------------------------

    def submit(self, recipient: str, subject: str) -> str:
        """Send one message to ``recipient`` through the instance; its queue id."""
        message = EmailMessage()
        message["From"] = "sender@sender.postfix.test"
        message["To"] = recipient
        message["Subject"] = subject
        message.set_content(f"{subject}\n")
        with smtplib.SMTP("127.0.0.1", self.smtpd_port, timeout=10) as client:
            client.ehlo("tests.postfix.test")
            client.mail("sender@sender.postfix.test")
            code, text = client.rcpt(recipient)
            assert code == 250, (code, text)
            code, text = client.data(message.as_bytes())
            assert code == 250, (code, text)
        return text.decode().rsplit(" ", 1)[-1]  # "2.0.0 Ok: queued as 4Qx..."

    def queue(self) -> list[dict[str, Any]]:
        """``postqueue -j``: one document per queued message."""
        shown = subprocess.run(["postqueue", "-c", str(self.config), "-j"], capture_output=True, text=True, check=True)
        return [json.loads(line) for line in shown.stdout.splitlines() if line.strip()]

    def queued(self, queue_id: str) -> dict[str, Any] | None:
        return next((m for m in self.queue() if m.get("queue_id") == queue_id), None)

    def flush(self) -> None:
        """``postqueue -f``: retry every deferred message now."""
        subprocess.run(["postqueue", "-c", str(self.config), "-f"], capture_output=True, check=True)

    def postmap_query(self, key: str, table: str) -> subprocess.CompletedProcess[str]:
        """``postmap -q KEY TABLE`` (exit status 0: found, 1: not found)."""
        return subprocess.run(
            ["postmap", "-c", str(self.config), "-q", key, table], capture_output=True, text=True, check=False
        )

    def log(self) -> str:
        path = self.directory / "maillog"
        return path.read_text("utf-8", "replace") if path.exists() else ""

    def log_lines(self, queue_id: str) -> list[str]:
        """The log lines of one message (its queue id)."""
        return [line for line in self.log().splitlines() if f" {queue_id}: " in line]


def _alive(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return Path(f"/proc/{pid}").exists()
