"""mkdocs hooks (``hooks:`` in mkdocs.yml): the site's home page is README.md itself (no second copy in docs/), and
the notebooks in notebooks/ are pages of the site (rendered by mkdocs-jupyter, not executed).

README.md links to the site's pages as the repository lays them out (``docs/guide/usage.md``, ``CONTRIBUTING.md``);
the home page gets those links as the site lays them out (``guide/usage.md``, ``contributing.md``), so both GitHub
and ``mkdocs build --strict`` resolve every link.
"""

from __future__ import annotations

import pathlib
import re
from typing import Any

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = pathlib.Path(__file__).resolve().parent
NOTEBOOK_DIR = "notebooks"


def readme_as_home_page(text: str) -> str:
    """README.md's text with its repository-relative links rewritten for the site (``docs/`` is the site's root,
    ``CONTRIBUTING.md`` is ``contributing.md``); inline ``](...)`` and reference ``[x]: ...`` links alike."""
    text = re.sub(r"(\]\(|^\[[^\]]+\]:\s*)docs/", r"\1", text, flags=re.M)
    return re.sub(r"(\]\(|^\[[^\]]+\]:\s*)CONTRIBUTING\.md", r"\1contributing.md", text, flags=re.M)


@event_priority(100)  # before mkdocs-jupyter's on_files, which turns the .ipynb files into notebook pages
def on_files(files: Files, config: Any) -> Files:
    if files.get_file_from_path("index.md") is not None:
        raise ValueError("docs/index.md: the home page is generated from README.md (mkdocs_hooks.py); delete the copy")
    files.append(File.generated(config, "index.md", content=readme_as_home_page((ROOT / "README.md").read_text())))
    for path in sorted((ROOT / NOTEBOOK_DIR).glob("*.ipynb")) + [ROOT / NOTEBOOK_DIR / "README.md"]:
        files.append(File(f"{NOTEBOOK_DIR}/{path.name}", src_dir=str(ROOT), dest_dir=config["site_dir"],
                          use_directory_urls=config["use_directory_urls"]))
    return files
