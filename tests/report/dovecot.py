"""A real Dovecot IMAP server for tests: its own config in a temp dir, TLS on a loopback port."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

USER, PASSWORD = "reports", "s3cret"


def dovecot_binary() -> str:
    found = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
    if found is None:
        pytest.skip("dovecot is not installed (Debian: apt-get install dovecot-imapd)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Dovecot:
    root: Path
    port: int
    process: subprocess.Popen[bytes]
    ca_file: Path

    @property
    def url(self) -> str:
        return f"imaps://{USER}:{PASSWORD}@localhost:{self.port}/INBOX"

    @property
    def plain_url(self) -> str:
        """``imap://`` (no TLS) to the TLS-only port: a classic misconfiguration."""
        return f"imap://{USER}:{PASSWORD}@localhost:{self.port}/INBOX"

    def signal_all(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the master (by its PID) and every process it started (its process
        group: the login process holding the TLS session and the IMAP process). Freezing only
        the master would leave the connection served."""
        os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        self.signal_all(signal.SIGKILL)
        self.process.wait()

    def restart(self, ca: trustme.CA) -> None:
        """Start Dovecot again on the same port and mail store (after :meth:`kill`)."""
        self.process = start_dovecot(self.root, ca, port=self.port).process

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.signal_all(signal.SIGCONT)  # a frozen server cannot act on SIGTERM
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.signal_all(signal.SIGKILL)
            self.process.wait()


def start_dovecot(root: Path, ca: trustme.CA, *, port: int | None = None) -> Dovecot:
    binary = dovecot_binary()
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    for sub in ("run", "state", "mail"):
        (root / sub).mkdir(exist_ok=True)
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    leaf.private_key_and_cert_chain_pem.write_to_path(str(root / "server.pem"))
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    (root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    if os.geteuid() == 0:  # as root, drop to the users the Debian package creates
        login_user, internal_user = "dovenull", "dovecot"
        mail_user = pwd.getpwnam("dovecot")
        shutil.chown(root / "mail", mail_user.pw_uid, mail_user.pw_gid)
        uid, gid = mail_user.pw_uid, mail_user.pw_gid
    else:
        me = pwd.getpwuid(os.geteuid())
        login_user = internal_user = me.pw_name
        uid, gid = me.pw_uid, me.pw_gid
    port = port or free_port()
    (root / "dovecot.conf").write_text(
        f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
instance_name = mtasts-test-{port}
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{root}/server.pem
ssl_key = <{root}/server.pem
ssl_min_protocol = TLSv1.2
auth_mechanisms = plain
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""
    )
    process = subprocess.Popen(
        [binary, "-F", "-c", str(root / "dovecot.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, so a test can kill or freeze all of it
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr else ""
            log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
            raise RuntimeError(f"dovecot did not start: {error}\n{log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.05)
    if process.stderr is not None:
        process.stderr.close()
    return Dovecot(root, port, process, root / "ca.pem")
