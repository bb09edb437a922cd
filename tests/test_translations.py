"""French is complete and stays complete: every string meant for people has a French translation.

The committed catalogue (``locale/fr/LC_MESSAGES/django.po``) is checked as a file, the extraction is
re-run on a copy of the source so a newly added string without a translation fails the suite, and a
few real outputs (the admin, the API, a management command) are rendered in French.
"""

from __future__ import annotations

import ast
import gettext as gnu_gettext
import re
import shutil
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse
from django.utils import translation

from tests.conftest import require_service
from tests.factories import DeviceFactory

ROOT = Path(settings.BASE_DIR)
CATALOGUE = ROOT / "locale" / "fr" / "LC_MESSAGES" / "django.po"
COMPILED = CATALOGUE.with_suffix(".mo")
# What `makemessages` must not scan (README, "Languages"), besides hidden folders: no string a user reads is there.
NOT_EXTRACTED = {".venv", "var", "tests", "bench", "build", "locale"}
# makemessages' default extensions (-e html,txt,py): copying only these keeps the copy small and quick.
EXTRACTED_SUFFIXES = {".py", ".html", ".txt"}
GETTEXT_TOOLS = ("xgettext", "msguniq", "msgmerge", "msgattrib")
PLACEHOLDER = re.compile(r"%\((\w+)\)|\{(\w*)\}")


@dataclass
class Message:
    """One entry of a .po file, its strings unescaped."""

    msgid: str
    msgctxt: str | None = None
    msgid_plural: str | None = None
    translations: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)

    @property
    def key(self) -> tuple[str | None, str]:
        return (self.msgctxt, self.msgid)


def read_po(path: Path) -> list[Message]:
    """The entries of a .po file as GNU gettext writes them (no dependency: polib is not worth adding for this).

    Entries are separated by blank lines; obsolete entries (``#~``) are skipped, as msgfmt skips them.
    The header (empty msgid) is returned like any entry.
    """
    messages = []
    for block in re.split(r"\n\s*\n", path.read_text(encoding="utf-8").strip()):
        fields: dict[str, str] = {}
        flags: set[str] = set()
        key = None
        for line in block.splitlines():
            if line.startswith("#,"):
                flags |= {flag.strip() for flag in line[2:].split(",")}
            elif line.startswith("#"):
                continue
            elif match := re.match(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?)\s+(".*")$', line):
                key = match.group(1)
                fields[key] = ast.literal_eval(match.group(2))
            elif line.startswith('"') and key is not None:
                fields[key] += ast.literal_eval(line)
            else:
                raise AssertionError(f"{path}: cannot read this line: {line!r}")
        if "msgid" not in fields:  # a block of obsolete (#~) entries or comments only
            continue
        translations = [fields[name] for name in sorted(fields) if name.startswith("msgstr")]
        messages.append(
            Message(
                msgid=fields["msgid"],
                msgctxt=fields.get("msgctxt"),
                msgid_plural=fields.get("msgid_plural"),
                translations=translations,
                flags=flags,
            )
        )
    return messages


def placeholders(text: str) -> set[str]:
    return {"".join(groups) for groups in PLACEHOLDER.findall(text)}


@pytest.fixture(scope="module")
def committed() -> dict[tuple[str | None, str], Message]:
    return {message.key: message for message in read_po(CATALOGUE) if message.msgid}


# --- The committed catalogue ------------------------------------------------------------------------


def test_the_french_catalogue_declares_the_french_plural_rule():
    header = next(message for message in read_po(CATALOGUE) if not message.msgid)
    assert "Language: fr\n" in header.translations[0]
    assert "Plural-Forms: nplurals=2; plural=(n > 1);" in header.translations[0]


def test_every_message_of_the_french_catalogue_is_translated_and_none_is_fuzzy(committed):
    untranslated = [m.msgid for m in committed.values() if not m.translations or not all(m.translations)]
    fuzzy = [m.msgid for m in committed.values() if "fuzzy" in m.flags]
    assert (untranslated, fuzzy) == ([], [])


def test_plural_messages_have_both_french_forms(committed):
    plurals = [m for m in committed.values() if m.msgid_plural is not None]
    assert plurals, "the catalogue has plural messages (device counts)"
    assert [m.msgid for m in plurals if len(m.translations) != 2] == []


def test_french_translations_keep_every_placeholder(committed):
    """A lost or misspelt %(name)s raises KeyError at run time, in French only: check them all here."""
    broken = []
    for m in committed.values():
        if m.msgid_plural is None:
            expected = [placeholders(m.msgid)]
        else:
            # The singular may spell out the count ("un appareil") but never name something the plural lacks.
            expected = [placeholders(m.msgid) | placeholders(m.msgid_plural), placeholders(m.msgid_plural)]
        for translated, names in zip(m.translations, expected, strict=False):
            if placeholders(translated) != names and not (m.msgid_plural and placeholders(translated) <= names):
                broken.append((m.msgid, translated))
    assert broken == []


def test_the_compiled_catalogue_matches_the_po_file(committed):
    """Django reads the .mo: a translation added to the .po without compilemessages would never show."""
    with COMPILED.open("rb") as handle:
        compiled = gnu_gettext.GNUTranslations(handle)
    stale = []
    for message in committed.values():
        context = f"{message.msgctxt}\x04" if message.msgctxt is not None else ""
        if message.msgid_plural is None:
            found = [compiled.gettext(context + message.msgid)]
        else:
            found = [compiled.ngettext(context + message.msgid, message.msgid_plural, n) for n in (1, 2)]
        if found != message.translations:
            stale.append(message.msgid)
    assert stale == [], "run: cd locale && django-admin compilemessages"


def test_every_string_extracted_from_the_source_is_in_the_french_catalogue(tmp_path, settings, monkeypatch, committed):
    """``makemessages`` on a copy of the source: a new or changed string without a French translation fails here.

    The copy keeps the project's layout (only .py, .html and .txt files, the ones makemessages reads) and
    LOCALE_PATHS points into it, so the real catalogue is never rewritten by the test.
    """
    missing_tools = [tool for tool in GETTEXT_TOOLS if shutil.which(tool) is None]
    require_service(not missing_tools, f"GNU gettext is not installed (missing {', '.join(missing_tools)})")

    source = tmp_path / "source"

    def not_extracted(directory: str, names: list[str]) -> set[str]:
        at_root = Path(directory) == ROOT
        return {
            name
            for name in names
            if (at_root and (name in NOT_EXTRACTED or name.startswith(".")))
            or name == "__pycache__"
            or (Path(directory, name).is_file() and Path(name).suffix not in EXTRACTED_SUFFIXES)
        }

    shutil.copytree(ROOT, source, ignore=not_extracted, symlinks=True)
    (source / "locale").mkdir()
    settings.LOCALE_PATHS = [source / "locale"]
    monkeypatch.chdir(source)

    call_command("makemessages", locale=["fr"], verbosity=0)

    extracted = [m for m in read_po(source / "locale" / "fr" / "LC_MESSAGES" / "django.po") if m.msgid]
    assert len(extracted) > 100, "the extraction found FleetPatch's strings"
    not_translated = [
        m.msgid
        for m in extracted
        if m.key not in committed
        or committed[m.key].msgid_plural != m.msgid_plural
        or not all(committed[m.key].translations)
    ]
    assert not_translated == [], (
        "Strings without a French translation (run `manage.py makemessages -l fr`, translate them in "
        "locale/fr/LC_MESSAGES/django.po, then compilemessages: README, Languages):\n" + "\n".join(not_translated)
    )


# --- French as people see it ------------------------------------------------------------------------


def test_french_plural_rule_is_singular_for_zero_and_one():
    with translation.override("fr"):
        counts = [translation.ngettext("%(shown)s device", "%(shown)s devices", n) % {"shown": n} for n in (0, 1, 2)]
    assert counts == ["0 appareil", "1 appareil", "2 appareils"]


@pytest.mark.django_db
def test_the_admin_dashboard_speaks_french_to_a_manager_whose_browser_asks_for_it(client, manager_a, org_a):
    DeviceFactory(organisation=org_a, compliance_status="behind")
    client.force_login(manager_a)

    french = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="fr-FR,fr;q=0.9,en;q=0.5")
    english = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="en")

    assert french.status_code == 200
    page = french.content.decode()
    assert '<html lang="fr"' in page
    for words in ("Conformité de la flotte", "Conformité de Ministère A", "Appareils par statut de conformité"):
        assert words in page
    assert "En retard" in page and "À jour" in page
    assert "Fleet compliance" in english.content.decode()


@pytest.mark.django_db
def test_the_api_explains_a_missing_token_in_french_when_asked(client):
    french = client.get("/api/v1/devices/", HTTP_ACCEPT_LANGUAGE="fr")
    english = client.get("/api/v1/devices/", HTTP_ACCEPT_LANGUAGE="en")

    assert (french.status_code, english.status_code) == (401, 401)
    # DRF's own French catalogue: FleetPatch's only adds the messages it writes itself.
    assert french.json() == {"detail": "Informations d'authentification non fournies."}
    assert english.json() == {"detail": "Authentication credentials were not provided."}
    assert french.headers["Content-Language"] == "fr"


@pytest.mark.django_db
def test_the_api_refuses_an_invalid_token_in_french_when_asked(client):
    response = client.get("/api/v1/devices/", HTTP_AUTHORIZATION="Bearer not-a-token", HTTP_ACCEPT_LANGUAGE="fr")

    assert response.status_code == 401
    assert response.json() == {"detail": "Jeton invalide."}


@pytest.mark.django_db
def test_flag_devices_reports_in_french_under_a_french_locale(org_a):
    DeviceFactory(organisation=org_a)
    out = StringIO()

    with translation.override("fr"):
        call_command("flag_devices", stdout=out)

    assert re.match(r"\d+ appareils mis à jour, \d+ changements de statut, en \d+[.,]\d s\.", out.getvalue())
