"""``mtasts publish export``: write the policies and a server configuration for another server."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path, PurePosixPath
from typing import Annotated

import typer

from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.cli.publish._common import ConfigOption, config_failed, listen_address, say
from mtasts.i18n import current
from mtasts.i18n.words import counted
from mtasts.publish.config import ConfigError, default_config_path
from mtasts.publish.export import (
    EXPORT_MANIFEST,
    ExportError,
    ExportFormat,
    Rendered,
    as_posix,
    default_listen,
    manifest_paths,
    render_export,
)

_NEXT_STEP = {
    ExportFormat.STATIC: "serve each mta-sts.<domain> directory as the document root of https://mta-sts.<domain>/ "
    "(text/plain, no redirect)",
    ExportFormat.NGINX: "include {config} in http {{ }}, then: nginx -t && nginx -s reload",
    ExportFormat.CADDY: "caddy validate --config {config} && caddy reload --config {config}",
}


def export_command(
    directory: Annotated[
        Path,
        typer.Argument(
            help="Where to write (created if missing); the server reads the files from here.", metavar="DIR"
        ),
    ],
    export_format: Annotated[
        ExportFormat,
        typer.Option("--format", help="static: the policy files only; nginx or caddy: also a server configuration."),
    ],
    config: ConfigOption = None,
    https_port: Annotated[
        int, typer.Option("--https-port", min=1, max=65535, help="The HTTPS port (RFC 8461: 443; others for tests).")
    ] = 443,
    listen: Annotated[
        list[str] | None,
        typer.Option(
            "--listen",
            help="Listen on HOST:PORT ([IPv6]:PORT) only; repeatable; replaces every address of both "
            "families on --https-port.",
            metavar="ADDR",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Write into a directory that is not empty, replacing a previous export.")
    ] = False,
) -> None:
    """Write every configured domain's policy, and a server configuration, for hosting elsewhere.

    The bodies are byte for byte what `mtasts publish serve` would serve, at
    DIR/mta-sts.<domain>/.well-known/mta-sts.txt (the document root of each policy host). nginx:
    DIR/nginx-mta-sts.conf, one server block per mta-sts.<domain> (exactly one Content-Type:
    text/plain, the policy path only, 404 elsewhere, no redirect, IPv4 and IPv6). caddy:
    DIR/Caddyfile with the same rules. A domain without cert and key gets certbot's paths marked
    PLACEHOLDER (nginx) or Caddy's automatic HTTPS. With --force, files of a previous export
    that are no longer configured are removed. Exit 0 written, 2 the configuration cannot be
    exported, 3 a file cannot be read or written."""
    from mtasts.publish.snapshot import read_config

    addresses = tuple(listen_address(text, "--listen") for text in listen or []) or default_listen(https_port)
    try:
        # absolute, so relative cert and key paths (relative to the file) come out absolute
        settings = read_config((config or default_config_path()).expanduser().absolute())
    except ConfigError as exc:
        config_failed(exc)
    target = directory.expanduser().absolute()
    try:
        rendered = render_export(settings, export_format, root=as_posix(target), listen=addresses)
    except ExportError as exc:
        for problem in exc.problems[:-1]:
            sys.stderr.write(f"mtasts: error: {say(problem)}\n")
        fail(say(exc.problems[-1]), ExitCode.USAGE)
    removed = _write(rendered, target, force)
    for site in rendered.placeholders:
        if export_format is ExportFormat.NGINX:
            warning = (
                f"{site.domain}: no cert and key configured: the ssl_certificate lines of "
                f"{site.host} are placeholders (marked PLACEHOLDER)"
            )
        elif export_format is ExportFormat.CADDY:
            warning = (
                f"{site.domain}: no cert and key configured: Caddy's automatic HTTPS must get "
                f"the certificate of {site.host}"
            )
        else:
            continue
        sys.stderr.write(f"mtasts: warning: {say(warning)}\n")
    tr = current()
    count = len(rendered.sites)
    typer.echo(
        tr.gettext("exported %(domains)s (%(format)s) to %(path)s")
        % {"domains": counted(count, "domain"), "format": export_format.value, "path": target}
    )
    files = counted(count, "policy file")
    typer.echo(f"  {files}: {target}/mta-sts.<domain>/.well-known/mta-sts.txt")
    if rendered.server_config is not None:
        typer.echo("  " + tr.gettext("server configuration: %(path)s") % {"path": target / rendered.server_config})
    if removed:
        typer.echo(
            "  "
            + tr.gettext("removed %(files)s of the previous export (no longer configured)")
            % {"files": counted(removed, "file")}
        )
    server_config = target / rendered.server_config if rendered.server_config else target
    step = tr.text(_NEXT_STEP[export_format].format(config=server_config))
    typer.echo(tr.gettext("next: %(detail)s") % {"detail": step})
    typer.echo(
        tr.gettext(
            "then: mtasts publish plan (it fetches each policy as a sender does and prints the _mta-sts record to set)"
        )
    )


def _write(rendered: Rendered, target: Path, force: bool) -> int:
    """Write the export into ``target``; the number of files of a previous export removed."""
    try:
        if target.exists() and not target.is_dir():
            fail(say(f"{target} is not a directory"), ExitCode.USAGE)
        if target.is_dir() and any(target.iterdir()) and not force:
            fail(say(f"{target} is not empty: give --force to replace a previous export there"), ExitCode.USAGE)
        target.mkdir(parents=True, exist_ok=True)
        wanted = {f.path for f in rendered.files}
        removed = 0
        manifest = target / EXPORT_MANIFEST
        if manifest.is_file():
            for stale in manifest_paths(manifest.read_text("utf-8", "replace")):
                if stale not in wanted and _remove(target, stale):
                    removed += 1
        for exported in rendered.files:
            _atomic_write(target / Path(*exported.path.parts), exported.content)
        _atomic_write(manifest, rendered.manifest())
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        fail(say(f"cannot write the export:{where}: {exc.strerror or exc}"), ExitCode.CANNOT_RUN)
    return removed


def _atomic_write(path: Path, content: bytes) -> None:
    """Replace ``path`` in one rename, so a server reading it sees the old bytes or the new ones;
    world-readable (the web server runs as another user)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".export-")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _remove(target: Path, stale: PurePosixPath) -> bool:
    """Remove a file of the previous export and the directories it leaves empty."""
    path = target / Path(*stale.parts)
    if path.is_symlink() or not path.is_file():
        return False
    path.unlink()
    parent = path.parent
    while parent != target and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent
    return True
