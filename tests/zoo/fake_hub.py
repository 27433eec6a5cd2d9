"""A small stand-in for the Hugging Face Hub on 127.0.0.1: the few routes huggingface_hub calls to download a file
(HEAD and GET ``/{repo}/resolve/{revision}/{file}``) and to upload one (create a repo, preupload, commit)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_RESOLVE = re.compile(r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<path>.+)")
_API = re.compile(r"/api/models/(?P<repo>[^/]+/[^/]+)/(?P<action>preupload|commit)/(?P<revision>[^/?]+)")


@dataclass
class Repo:
    """A model repository: its commits (hash -> files) and branches (name -> hash)."""

    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def commit(self, files: dict[str, bytes], branch: str = "main") -> str:
        """Add ``files`` on top of ``branch``; the new commit's hash."""
        tree = {**self.commits.get(self.branches.get(branch, ""), {}), **files}
        digest = hashlib.sha1(json.dumps({path: hashlib.sha256(data).hexdigest() for path, data in sorted(tree.items())}).encode())
        oid = digest.hexdigest()
        self.commits[oid] = tree
        self.branches[branch] = oid
        return oid

    def resolve(self, revision: str) -> str | None:
        """The commit a branch name or commit hash names."""
        return self.branches.get(revision) or (revision if revision in self.commits else None)


class FakeHub:
    """The server; ``requests`` logs (method, path) of every request."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def add(self, repo: str, files: dict[str, bytes], branch: str = "main") -> str:
        """Commit ``files`` to ``repo`` (created if new); the commit's hash."""
        return self.repos.setdefault(repo, Repo()).commit(files, branch)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                self._resolve(body=False)

            def do_GET(self) -> None:
                self._resolve(body=True)

            def do_POST(self) -> None:
                hub.requests.append(("POST", self.path))
                payload = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/api/repos/create":
                    request = json.loads(payload)
                    repo = f"{request['organization']}/{request['name']}"
                    status = 409 if repo in hub.repos else 200
                    hub.repos.setdefault(repo, Repo())
                    return self._json({"error": "You already created this model repo", "url": f"{hub.url}/{repo}"}, status)
                if self.path == "/api/validate-yaml":
                    return self._json({})
                match = _API.fullmatch(self.path.split("?")[0])
                if match is None or match["repo"] not in hub.repos:
                    return self._json({"error": "Repository not found"}, 404, "RepoNotFound")
                if match["action"] == "preupload":
                    files = json.loads(payload)["files"]
                    modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
                    return self._json({"files": modes})
                lines = [json.loads(line) for line in payload.decode().splitlines() if line]
                files = {
                    line["value"]["path"]: base64.b64decode(line["value"]["content"]) for line in lines if line["key"] == "file"
                }
                oid = hub.repos[match["repo"]].commit(files, match["revision"])
                return self._json({"commitUrl": f"{hub.url}/{match['repo']}/commit/{oid}", "commitOid": oid})

            def _resolve(self, body: bool) -> None:
                hub.requests.append((self.command, self.path))
                match = _RESOLVE.fullmatch(self.path.split("?")[0])
                repo = hub.repos.get(match["repo"]) if match else None
                if repo is None:
                    return self._json({"error": "Repository not found"}, 404, "RepoNotFound")
                oid = repo.resolve(match["revision"])
                if oid is None:
                    return self._json({"error": "Invalid rev id"}, 404, "RevisionNotFound")
                data = repo.commits[oid].get(match["path"])
                if data is None:
                    return self._json({"error": "Entry not found"}, 404, "EntryNotFound", oid)
                start = int(re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", "bytes=0-"))[1])
                self.send_response(206 if start else 200)
                self.send_header("X-Repo-Commit", oid)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if body:
                    self.wfile.write(data[start:])

            def _json(self, content: dict[str, Any], status: int = 200, error: str | None = None, oid: str | None = None) -> None:
                data = json.dumps(content).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if error:
                    self.send_header("X-Error-Code", error)
                    self.send_header("X-Error-Message", content["error"])
                if oid:
                    self.send_header("X-Repo-Commit", oid)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
