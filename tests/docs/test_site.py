"""The documentation site builds with ``mkdocs build --strict`` (broken links and anchors, pages
missing from the navigation, unresolved API references fail it) and reads offline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e .[docs]")
pytest.importorskip("material", reason="the docs extra is not installed: pip install -e .[docs]")
pytest.importorskip("mkdocstrings", reason="the docs extra is not installed: pip install -e .[docs]")

# A stylesheet, script, font or image fetched from another host: a CDN or web fonts.
REMOTE_ASSET = re.compile(r"""<(?:link|script|img|source)\b[^>]*\b(?:href|src)=["']?(?:https?:)?//""", re.I)
FONT_OR_CDN = re.compile(r"fonts\.googleapis|fonts\.gstatic|//cdn[\w.-]*\.|jsdelivr|unpkg\.com|cdnjs", re.I)


class _Loader(yaml.SafeLoader):
    """mkdocs.yml may use !!python/name and !ENV tags; the navigation needs none of them."""


_Loader.add_multi_constructor("", lambda loader, suffix, node: None)


def nav_pages(nav: list) -> list[str]:
    pages = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.load((REPO / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_Loader)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site_dir = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    warnings = [line for line in done.stderr.splitlines() if not line.startswith("INFO")]
    assert done.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(warnings)[-4000:]
    return site_dir


def test_every_nav_page_exists(config):
    pages = nav_pages(config["nav"])
    assert len(pages) >= 19 and len(set(pages)) == len(pages)
    missing = [page for page in pages if not (REPO / config.get("docs_dir", "docs") / page).is_file()]
    assert not missing, f"pages in mkdocs.yml's nav that do not exist: {missing}"


def test_the_site_builds_strictly_and_fetches_nothing_from_other_hosts(site, config):
    html = {path: path.read_text(encoding="utf-8") for path in site.rglob("*.html")}
    for page in nav_pages(config["nav"]):
        assert site / page.removesuffix(".md").removesuffix("index") / "index.html" in html, page
    remote = {str(path.relative_to(site)): REMOTE_ASSET.findall(text) for path, text in html.items()}
    assert not {k: v for k, v in remote.items() if v}, "assets fetched from another host"
    fonts = {str(path.relative_to(site)) for path, text in html.items() if FONT_OR_CDN.search(text)}
    assert not fonts, f"web fonts or a CDN in {sorted(fonts)}"


def test_the_python_api_and_the_changelog_are_rendered(site):
    api = (site / "reference" / "python-api" / "index.html").read_text(encoding="utf-8")
    for name in (
        "seq2seq.api.train",
        "seq2seq.api.load_translator",
        "seq2seq.api.TrainResult",
        "seq2seq.api.CheckpointTranslator",
        "seq2seq.decode.translation.Translation",
        "seq2seq.inspect.plotting.plot_attention",
    ):
        assert f'id="{name}"' in api, name
    changelog = (site / "changelog" / "index.html").read_text(encoding="utf-8")
    assert "Keep a Changelog" in changelog and "--8&lt;--" not in changelog


def test_archive_files_are_not_built(site):
    built = {path.suffix for path in site.rglob("*") if path.is_file() and "experiments" in path.parts}
    assert not built & {".json", ".jsonl", ".txt", ".hyp", ".log"}, built
