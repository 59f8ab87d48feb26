"""Applets as Caco stores them, in a git repository of their own so that each keeps its history.

Layout (Caco's ``~/.caco/applets``): ``<root>/<slug>/meta.json`` (``{slug, name, description,
createdAt, updatedAt}``), ``content.html``, and optionally ``script.js`` and ``style.css``.
``<root>`` is a git repository (GitPython): every :meth:`AppletStore.save` writes the files
atomically and commits them, so an earlier version is one ``git show`` away. Saves come from
the server and from task processes, so a save holds an exclusive lock on ``<root>/.lock`` from
the first write to the commit.

A slug is checked against Caco's pattern before the disk is touched, which keeps ``/``, ``..``
and every other way out of ``<root>`` away. A folder whose ``meta.json`` is missing or broken
is listed with an ``error`` instead of being left out (Caco skips it silently).
"""

from __future__ import annotations

import fcntl
import json
import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from .. import constants
from ..errors import MisoError
from ..settings_files import write_atomic
from .timestamps import iso_time

logger = logging.getLogger(__name__)

_SLUG = re.compile(constants.CACO_APPLET_SLUG_PATTERN)
FILES = {"meta": "meta.json", "html": "content.html", "js": "script.js", "css": "style.css"}
#: Who the applet repository's commits are by (never the user's own git identity).
COMMITTER = ("Miso runtime", "miso-runtime@localhost")


def check_slug(slug: Any) -> str:
    """``slug`` when it is one (Caco's pattern, at most 64 characters); 400 otherwise."""
    if not isinstance(slug, str) or len(slug) > constants.CACO_APPLET_SLUG_MAX or not _SLUG.match(slug):
        raise MisoError(
            400,
            "invalid_slug",
            f"Invalid applet slug {slug!r}: lowercase letters, digits and inner hyphens, "
            f"at most {constants.CACO_APPLET_SLUG_MAX} characters",
        )
    return slug


def not_found(slug: str) -> MisoError:
    return MisoError(404, "applet_not_found", f'Applet "{slug}" not found')


@dataclass(frozen=True)
class Applet:
    slug: str
    meta: dict[str, Any]
    html: str
    js: str | None
    css: str | None

    @property
    def title(self) -> str:
        return str(self.meta.get("name") or self.slug)


class AppletStore:
    """The applets under ``root``; see the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # --- reading ----------------------------------------------------------------------------

    def paths(self, slug: str) -> dict[str, str]:
        folder = self.root / slug
        return {"root": str(folder), **{key: str(folder / name) for key, name in FILES.items()}}

    def list(self) -> list[dict[str, Any]]:
        """Every applet, newest first: ``{slug, name, description, updatedAt, paths}``, or with ``error``."""
        if not self.root.is_dir():
            return []
        listed = []
        for folder in self.root.iterdir():
            if folder.name.startswith((".", "_")) or not folder.is_dir() or not _SLUG.match(folder.name):
                continue
            entry: dict[str, Any] = {"slug": folder.name, "paths": self.paths(folder.name)}
            try:
                meta = self._meta(folder.name)
            except MisoError as exc:
                entry.update(name=folder.name, description=None, updatedAt=None, error=exc.message)
            else:
                entry.update(
                    name=str(meta.get("name") or folder.name),
                    description=meta.get("description") or None,  # Caco: ``description || null``
                    updatedAt=meta.get("updatedAt"),
                )
            listed.append(entry)
        listed.sort(key=lambda item: str(item.get("updatedAt") or ""), reverse=True)
        return listed

    def _meta(self, slug: str) -> dict[str, Any]:
        path = self.root / slug / FILES["meta"]
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise MisoError(422, "applet_broken", "meta.json is missing") from None
        except (OSError, ValueError) as exc:
            raise MisoError(422, "applet_broken", f"meta.json is not valid JSON: {exc}") from None
        if not isinstance(meta, dict):
            raise MisoError(422, "applet_broken", "meta.json is not a JSON object")
        return meta

    def load(self, slug: str) -> Applet:
        """The applet ``slug``: 400 for a bad slug, 404 when there is none, 422 when its files are broken."""
        check_slug(slug)
        folder = self.root / slug
        if not folder.is_dir():
            raise not_found(slug)
        meta = self._meta(slug)
        try:
            html = (folder / FILES["html"]).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise MisoError(422, "applet_broken", f'Applet "{slug}" has no content.html') from None
        except (OSError, UnicodeDecodeError) as exc:
            raise MisoError(422, "applet_broken", f'Applet "{slug}": content.html is unreadable: {exc}') from None
        return Applet(slug, meta, html, self._optional(folder / FILES["js"]), self._optional(folder / FILES["css"]))

    @staticmethod
    def _optional(path: Path) -> str | None:
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError):
            return None

    def history(self, slug: str) -> list[dict[str, Any]]:
        """The commits that changed the applet, newest first: ``{sha, message, committedAt}``."""
        import git

        check_slug(slug)
        if not (self.root / slug).is_dir():
            raise not_found(slug)
        try:
            repo = git.Repo(self.root)  # read only: the repository is made by a save, under the lock
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            return []
        if not repo.head.is_valid():
            return []
        return [
            {
                "sha": commit.hexsha,
                "message": str(commit.message).strip(),
                "committedAt": datetime.fromtimestamp(commit.committed_date, timezone.utc).isoformat(),
            }
            for commit in repo.iter_commits(paths=slug)
        ]

    # --- saving -----------------------------------------------------------------------------

    def save(
        self,
        slug: str,
        *,
        name: str,
        html: str,
        description: str | None = None,
        js: str | None = None,
        css: str | None = None,
    ) -> tuple[Applet, str]:
        """Write the applet's files and commit them; the applet and the commit's sha.

        ``createdAt`` of an existing applet is kept; a ``js`` or ``css`` of None removes that file.
        """
        check_slug(slug)
        if not isinstance(name, str) or not name.strip():
            raise MisoError(400, "invalid_applet", "an applet needs a name")
        if not isinstance(html, str) or not html.strip():
            raise MisoError(400, "invalid_applet", "an applet needs its HTML (content.html)")
        with self._locked():
            repo = self._repo()
            folder = self.root / slug
            created = None
            if folder.is_dir():
                try:
                    created = self._meta(slug).get("createdAt")
                except MisoError:
                    created = None
            folder.mkdir(parents=True, exist_ok=True)
            now = iso_time()
            meta = {
                "slug": slug,
                "name": name,
                "description": description,
                "createdAt": created or now,
                "updatedAt": now,
            }
            if description is None:
                del meta["description"]
            write_atomic(folder / FILES["html"], html)
            for key, text in (("js", js), ("css", css)):
                path = folder / FILES[key]
                if text is None:
                    path.unlink(missing_ok=True)
                else:
                    write_atomic(path, text)
            write_atomic(folder / FILES["meta"], json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
            repo.git.add("--all", "--", slug)
            verb = "Update" if created else "Create"
            actor = self._actor()
            sha = _commit(repo, f"{verb} applet {slug}: {name}", actor)
        logger.info("applet %s saved (%s)", slug, sha[:10])
        return Applet(slug, meta, html, js, css), sha

    @staticmethod
    def _actor():
        import git

        return git.Actor(*COMMITTER)

    def _repo(self):
        """The applet repository, made on first use (call it under :meth:`_locked`).

        Applets already in the folder (copied from a ``~/.caco/applets``, say) go into the first
        commit, so that each later save shows as a change to them.
        """
        import git

        self.root.mkdir(parents=True, exist_ok=True)
        try:
            return git.Repo(self.root)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            repo = git.Repo.init(self.root)
            write_atomic(self.root / ".gitignore", ".lock\n")
            repo.git.add("--all")
            _commit(repo, "Applet repository", AppletStore._actor())
            return repo

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _commit(repo: Any, message: str, actor: Any) -> str:
    """Commit the index as ``actor``; the sha.

    The identity is given here, so the user's git config needs none; hooks are skipped, since a
    ``.git/hooks`` from the user's ``init.templateDir`` must not refuse or rewrite a save.
    """
    return repo.index.commit(message, author=actor, committer=actor, skip_hooks=True).hexsha
