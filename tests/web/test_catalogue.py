"""The message catalogues: every text of the pages, and every finding's meaning, has a
Japanese translation; the shipped ``.mo`` is compiled from the ``.po``; placeholders agree.

The messages are extracted from the templates and the Python code with Babel (the standard
gettext toolchain for Python and Jinja2), plus the titles of :data:`mtasts.core.findings.CATALOGUE`.
"""

from __future__ import annotations

import re

import pytest

babel_extract = pytest.importorskip("babel.messages.extract", reason="Babel (a test dependency) is not installed")
from babel.messages.mofile import read_mo  # noqa: E402
from babel.messages.pofile import read_po  # noqa: E402

from mtasts.core.findings import CATALOGUE  # noqa: E402
from mtasts.i18n.words import plural  # noqa: E402
from mtasts.web.i18n import LANGUAGES, LOCALE_DIR, translations  # noqa: E402

WEB = LOCALE_DIR.parent
_METHODS = [("**/templates/**.html", "jinja2.ext:babel_extract"), ("**.py", "python")]
_OPTIONS = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
_PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
_COMPILE = "pybabel compile -d src/mtasts/web/locale -D mtasts"


def _key(message_id: str | tuple[str, ...]) -> str:
    return message_id if isinstance(message_id, str) else message_id[0]


def extracted() -> dict[str, str | tuple[str, ...]]:
    """Every message the pages can show: id → the whole id (a plural has two forms)."""
    found: dict[str, str | tuple[str, ...]] = {}
    for _, _, message, _, _ in babel_extract.extract_from_dir(WEB, _METHODS, _OPTIONS):
        found[_key(message)] = message
    for _, _, title in CATALOGUE.values():
        found.setdefault(title, title)
    return found


@pytest.mark.parametrize("tag", [t for t in LANGUAGES if t != "en"])
def test_every_message_is_translated(tag: str) -> None:
    po_path = LOCALE_DIR / tag / "LC_MESSAGES" / "mtasts.po"
    with po_path.open("rb") as stream:
        catalogue = read_po(stream)
    wanted = extracted()
    translated = {_key(m.id): m for m in catalogue if m.id}
    missing = sorted(set(wanted) - set(translated))
    assert not missing, f"{po_path} lacks {plural(len(missing), 'message')}: {missing}"
    untranslated = sorted(k for k, m in translated.items() if not m.string or not all(_forms(m.string)))
    assert not untranslated, f"{po_path}: empty translations: {untranslated}"
    fuzzy = sorted(k for k, m in translated.items() if m.fuzzy)
    assert not fuzzy, f"{po_path}: fuzzy translations to review: {fuzzy}"
    unused = sorted(set(translated) - set(wanted))
    assert not unused, f"{po_path}: messages no page uses any more (remove them): {unused}"
    for key, message in translated.items():
        for form in _forms(message.string):
            assert set(_PLACEHOLDER.findall(form)) == set(_PLACEHOLDER.findall(key)), (key, form)


def _forms(string: str | tuple[str, ...]) -> tuple[str, ...]:
    return (string,) if isinstance(string, str) else tuple(string)


@pytest.mark.parametrize("tag", [t for t in LANGUAGES if t != "en"])
def test_the_shipped_mo_is_compiled_from_the_po(tag: str) -> None:
    folder = LOCALE_DIR / tag / "LC_MESSAGES"
    with (folder / "mtasts.po").open("rb") as stream:
        source = {_key(m.id): _forms(m.string) for m in read_po(stream) if m.id}
    with (folder / "mtasts.mo").open("rb") as stream:
        compiled = {_key(m.id): _forms(m.string) for m in read_mo(stream) if m.id}
    assert compiled == source, f"the .mo is stale: run {_COMPILE}"


def test_the_runtime_finds_the_catalogue() -> None:
    """What the pages use (stdlib gettext on the shipped .mo), not Babel."""
    japanese = translations("ja")
    assert japanese.gettext("Check a domain") == "ドメインをチェック"
    assert japanese.gettext(CATALOGUE["mx-cert-expired"][2]) == "MX の証明書の有効期限が切れています"
    assert japanese.ngettext("%(num)d error", "%(num)d errors", 3) == "エラー %(num)d 件"
    assert translations("en").gettext("Check a domain") == "Check a domain"


def test_the_package_ships_its_files() -> None:
    """The wheel holds everything under src/mtasts (hatchling): the templates, the assets and
    the compiled catalogue must be files of the package, not generated elsewhere."""
    for relative in (
        "templates/base.html",
        "static/style.css",
        "static/progress.js",
        "locale/ja/LC_MESSAGES/mtasts.mo",
    ):
        assert (WEB / relative).is_file(), relative
