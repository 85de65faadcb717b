"""A Kubernetes API server double for tests: kmock's stateful emulator over real HTTP.

The official ``kubernetes`` client is synchronous, and kmock's own pytest fixture serves on the
test's event loop, where a blocking client call deadlocks. So the emulator and its aiohttp
server run on an event loop of their own in a background thread, and tests use the plain
synchronous API of :class:`KubeApiServer`; whatever touches kmock's state runs on that loop.

kmock 0.8 gaps are patched here, at the HTTP level, where the service would notice them; each
patch says why. Kubescape's storage API is played as kubescape/storage serves it: LISTs are
metadata only and paged (500 by default, ``continue`` tokens), and label selectors are ignored as
in v0.0.297 unless :meth:`KubeApiServer.kubescape_applies_selectors` says otherwise (newer
storage filters each page). Not patched: PATCH is a plain recursive merge (no JSON patch, no
strategic merge of lists), watches ignore selectors, and no controllers run (no ``generation``,
no Deployment ``status``: seed what a test needs with ``put``).

One kmock cost is patched too: to choose a reaction it asks whether the request is in each
reaction's view by scanning every request served so far, so a test of thousands of requests
slows down quadratically (:func:`_in_view`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import functools
import gzip
import json
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Self

import aiohttp.test_utils
import aiohttp.web
import attrs
import kmock
from django.conf import settings as django_settings
from kmock._internal import dsl
from kmock._internal.k8s import KubernetesObjectConflictError
from kmock._internal.parsing import ParsedPath, guess_k8s

from analysis.sandbox.client import reset_client

NAMESPACES = kmock.resource("", "v1", "namespaces")
KUBESCAPE_GROUP = "spdx.softwarecomposition.kubescape.io"
# What Kubescape's storage API server serves: plural -> (kind, namespaced).
KUBESCAPE_RESOURCES = {
    "vulnerabilitymanifests": ("VulnerabilityManifest", True),
    "vulnerabilitymanifestsummaries": ("VulnerabilityManifestSummary", True),
    "sbomsyfts": ("SBOMSyft", True),
    "sbomsyftfiltereds": ("SBOMSyftFiltered", True),
    "openvulnerabilityexchangecontainers": ("OpenVulnerabilityExchangeContainer", True),
    "containerprofiles": ("ContainerProfile", True),
    "applicationprofiles": ("ApplicationProfile", True),
    "networkneighborhoods": ("NetworkNeighborhood", True),
    "seccompprofiles": ("SeccompProfile", True),
    "workloadconfigurationscans": ("WorkloadConfigurationScan", True),
    "workloadconfigurationscansummaries": ("WorkloadConfigurationScanSummary", True),
    "generatednetworkpolicies": ("GeneratedNetworkPolicy", True),
    "vulnerabilitysummaries": ("VulnerabilitySummary", False),
    "configurationscansummaries": ("ConfigurationScanSummary", False),
    "knownservers": ("KnownServer", False),
    "collapseconfigurations": ("CollapseConfiguration", False),
}
# The shape of a kube-apiserver's answer (the commit is made up).
VERSION = {
    "major": "1",
    "minor": "33",
    "emulationMajor": "1",
    "emulationMinor": "33",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "32",
    "gitVersion": "v1.33.4",
    "gitCommit": "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c",
    "gitTreeState": "clean",
    "buildDate": "2025-08-12T10:15:00Z",
    "goVersion": "go1.24.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}
# kubescape/storage GetList: a LIST without ?limit= gets at most this many items and a token.
KUBESCAPE_DEFAULT_LIMIT = 500
REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    408: "Timeout",
    409: "Conflict",
    413: "RequestEntityTooLarge",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}

_NAMESPACE_PATH = re.compile(
    r"/api/v1/namespaces(?:/(?P<name>[^/]+)(?:/(?P<sub>status|finalize))?)?"
)
_REQUIREMENT = re.compile(
    r"(?P<neg>!)?\s*(?P<key>[\w./-]+)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<value>[\w.-]*)|(?P<set>in|notin)\s*\((?P<values>[^)]*)\))?"
)


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Any  # the JSON body, parsed; None if there was none


class KubeApiServer:
    """kmock's Kubernetes emulator on http://127.0.0.1:<free port>, in a thread of its own.

    Objects persist across requests (create, read, replace, patch, delete, list, watch).
    Resources are named like kmock's: ``"v1/pods"``, ``"apps/v1/deployments"``.
    """

    def __init__(self) -> None:
        self.url = ""
        self.kubeconfig: Path | None = None
        self._thread: threading.Thread | None = None
        self._crash: BaseException | None = None

    def start(self) -> Self:
        ready: concurrent.futures.Future[tuple[Any, ...]] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="kube-api-double", daemon=True
        )
        self._thread.start()
        self._loop, self._emulator, self._stopping, self.url = ready.result(timeout=10)
        for name in ("default", "kube-system"):
            self.put_namespace(name)
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            raise RuntimeError("the Kubernetes API double did not stop")
        self._thread = None
        if self._crash is not None:
            raise self._crash

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, ready: concurrent.futures.Future[tuple[Any, ...]]) -> None:
        try:
            asyncio.run(self._serve(ready))
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            self._crash = exc

    async def _serve(self, ready: concurrent.futures.Future[tuple[Any, ...]]) -> None:
        stopping = asyncio.Event()
        # aiohttp's raw server, not kmock.Server: that one also opens an aiohttp client session
        # and patches aiohttp's resolver process-wide, neither of which a urllib3 client needs.
        async with _Emulator() as emulator:
            server = aiohttp.test_utils.RawTestServer(emulator, host="127.0.0.1")
            await server.start_server(access_log=None)
            try:
                url = str(server.make_url("")).rstrip("/")
                ready.set_result((asyncio.get_running_loop(), emulator, stopping, url))
                await stopping.wait()
            finally:
                await server.close()

    def _call(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
        """Run ``fn(*args)`` on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(fn(*args), self._loop).result(timeout=10)

    def react(self, fn: Callable[[Any], Coroutine[Any, Any, Any]]) -> Any:
        """Run ``fn(emulator)`` on the server's loop: for reactions kmock declares in place."""
        return self._call(fn, self._emulator)

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig for this server (the shape of conftest's ``unreachable_cluster``)."""
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "test",
                    "clusters": [{"name": "test", "cluster": {"server": self.url}}],
                    "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
                    "users": [{"name": "test", "user": {"token": "not-a-secret"}}],
                }
            )
        )
        self.kubeconfig = path
        return path

    def put(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` (replacing any), as the API server would have it; returns that."""
        return self._call(self._emulator.seed, kmock.resource(resource), copy.deepcopy(obj))

    def put_namespace(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        return self.put("v1/namespaces", {"metadata": {"name": name, "labels": labels or {}}})

    def get(self, resource: str, name: str, namespace: str | None = None) -> dict | None:
        """The stored object, or None."""
        return self._call(self._emulator.stored, kmock.resource(resource), namespace, name)

    def with_kubescape(self, available: bool = True, *, namespace: str | None = None) -> Self:
        """Kubescape's storage APIService (Available or not), its namespace and resources."""
        name = django_settings.KUBESCAPE_APISERVICE
        version, group = name.split(".", 1)
        namespace = namespace or django_settings.KUBESCAPE_NAMESPACE
        missing = f'endpoints for service/storage in "{namespace}" have no addresses'
        self.put_namespace(namespace)
        self.put(
            "apiregistration.k8s.io/v1/apiservices",
            {
                "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "storage"}},
                "spec": {
                    "group": group,
                    "version": version,
                    "groupPriorityMinimum": 1000,
                    "versionPriority": 15,
                    "insecureSkipTLSVerify": True,
                    "service": {"name": "storage", "namespace": namespace, "port": 443},
                },
                "status": {
                    "conditions": [
                        {
                            "type": "Available",
                            "status": str(available),
                            "reason": "Passed" if available else "MissingEndpoints",
                            "message": "all checks passed" if available else missing,
                            "lastTransitionTime": _now(),
                        }
                    ]
                },
            },
        )
        self._call(self._emulator.declare_kubescape)
        if not available:  # the aggregator cannot reach the storage server
            self.fail(
                f"/apis/{group}/*", 503, "the server is currently unable to handle the request"
            )
        return self

    def kubescape_applies_selectors(self, applied: bool = True) -> Self:
        """Newer kubescape/storage matches label selectors page by page; v0.0.297 ignores them."""
        self._call(self._emulator.set_kubescape_selectors, applied)
        return self

    def fail(
        self,
        target: str,
        status: int,
        message: str | None = None,
        *,
        method: str | None = None,
        times: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer requests for ``target`` with an error, changing nothing on the server.

        ``target`` is a URL path (``*`` globs allowed) or a resource (``"apps/v1/deployments"``);
        ``times`` limits it to the next N such requests.
        """
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "message": message or f"injected failure {status}",
            "reason": REASONS.get(status, "Unknown"),
            "code": status,
        }
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
            body["details"] = {"retryAfterSeconds": retry_after}
        self._call(self._emulator.inject_failure, target, method, times, status, headers, body)

    @property
    def requests(self) -> list[SeenRequest]:
        """Every request received so far, oldest first."""
        return self._call(self._emulator.seen)

    def requests_to(self, path: str) -> list[SeenRequest]:
        return [request for request in self.requests if request.path == path]


@contextmanager
def running_kube_api(settings: Any, tmp_path: Path) -> Iterator[KubeApiServer]:
    """A started double holding the sandbox namespace, the service's settings pointed at it.

    ``settings`` is pytest-django's fixture (it restores what is changed here). The service's
    client is reset before and after, as conftest's ``unreachable_cluster`` does.
    """
    with KubeApiServer() as kube:
        kube.put_namespace(settings.K8S_SANDBOX_NAMESPACE)
        settings.SANDBOX_ENABLED = True
        settings.K8S_IN_CLUSTER = False
        settings.KUBECONFIG = str(kube.write_kubeconfig(tmp_path / "kubeconfig"))
        reset_client()
        try:
            yield kube
        finally:
            reset_client()  # closes its connections before the server goes


@attrs.define(kw_only=True)
class _Emulator(kmock.KubernetesEmulator):
    """kmock's emulator with the gaps that matter to a Kubernetes client filled in."""

    _failures: list[kmock.View] = attrs.field(factory=list, init=False)
    _revision: int = attrs.field(default=0, init=False)
    _kubescape_selectors: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        # Discovery and lists of built-in resources that hold no objects yet (otherwise a 404).
        # Not resources.load_bundled(): it uses a deprecated importlib API (a warning).
        self.resources.load_data(_bundled_resources())
        # Above kmock's fallbacks, below anything a test adds; object URLs only, so that
        # discovery (/api/v1, /apis/apps/v1, also "LIST"s to kmock) stays kmock's.
        objects = (self**-1)[lambda request: bool(request.resource and request.resource.plural)]
        objects[kmock.action.CREATE] << 201 << self._serve_create  # kmock answers 200
        objects[kmock.action.LIST] << self._list
        objects[kmock.action.FETCH] << self._fetch
        objects[kmock.action.DELETE] << self._delete
        objects[kmock.method.PUT] << self._replace  # kmock has no PUT (replace_*)
        # kmock serves /version only; the client asks for /version/.
        (self**-1)[kmock.method.GET, re.compile(r"/version/")] << self._serve_server_version

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        # kmock 0.8 parses /api/v1/namespaces/<name> as "everything in namespace <name>" (GET is
        # a 404) and fails on POST /api/v1/namespaces (a 500): identify namespaces here instead.
        match = _NAMESPACE_PATH.fullmatch(raw.path)
        if match is None:
            return await super().__call__(raw)
        try:
            body = await raw.read()
            request = kmock.Request(
                id=len(self._requests),
                raw_request=raw,
                method=raw.method,
                url=raw.url,
                params=dict(raw.query),
                headers=dict(raw.headers),
                body=body,
                text=body.decode(),
                data=json.loads(body) if body else None,
                resource=NAMESPACES,
                name=match["name"],
                subresource=match["sub"],
                action=guess_k8s(  # kmock's own rules, for the right path
                    ParsedPath("", "v1", "namespaces", None, match["name"]),
                    kmock.method(raw.method),
                    dict(raw.query),
                ),
            )
            self._requests.append(request)
            return await self._handle(request)
        except Exception as exc:
            return await self._render_error(exc)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if any(request in failure for failure in self._failures):
            # The emulator applies creates/patches/deletes before any reaction answers, so a
            # 429 would still have created the object: answer as a plain kmock handler instead.
            return await super(kmock.KubernetesEmulator, self)._handle(request)
        try:
            self._admit(request)
            return await super()._handle(request)
        except (kmock.KubernetesNotFoundError, KubernetesObjectConflictError) as exc:
            raise self._as_real_error(exc, request) from None

    def _admit(self, request: kmock.Request) -> None:
        """What a real API server does to a write before storing it (kmock does none of it)."""
        if request.resource is None or not isinstance(request.data, dict):
            return
        meta = request.data.setdefault("metadata", {})
        if request.action == kmock.action.CREATE:
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
            if not meta.get("name"):
                raise _error(422, "metadata.name: Required value: name or generateName is required")
            if request.namespace:
                if not self._exists(NAMESPACES, None, request.namespace):
                    raise _error(
                        404,
                        f'namespaces "{request.namespace}" not found',
                        name=request.namespace,
                        kind="namespaces",
                    )
                meta["namespace"] = request.namespace
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now())
            self._set_type(request.resource, request.data)
        if request.action in (kmock.action.CREATE, kmock.action.UPDATE):
            meta["resourceVersion"] = self._next_revision()

    def _as_real_error(self, exc: kmock.KubernetesError, request: kmock.Request) -> Exception:
        """kmock's 404/409 Status bodies say e.g. "Object Not Found"; a real server's do not."""
        resource = request.resource
        name = request.name or ((request.data or {}).get("metadata") or {}).get("name")
        if resource is None or name is None:
            return _error(404, "the server could not find the requested resource")
        what = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
        if isinstance(exc, KubernetesObjectConflictError):
            return _error(
                409,
                f'{what} "{name}" already exists',
                reason="AlreadyExists",
                name=name,
                group=resource.group,
                kind=resource.plural,
            )
        return _error(
            404, f'{what} "{name}" not found', name=name, group=resource.group, kind=resource.plural
        )

    async def _serve_server_version(self, request: kmock.Request) -> dict[str, Any]:
        return dict(VERSION)  # kmock's is a v1.26 k3s

    async def _list(self, request: kmock.Request) -> dict[str, Any]:
        resource = request.resource
        items = (await self._serve_list(request))["items"]
        metadata = {"resourceVersion": str(self._revision)}
        if resource.group == KUBESCAPE_GROUP:
            # Kubescape's storage lists metadata only unless asked for resourceVersion=fullSpec
            # (kubescape/storage): keep that, so pipelines must cope.
            items, token = self._kubescape_page(request)
            if token:
                metadata["continue"] = token
            if request.params.get("resourceVersion") != "fullSpec":
                items = [_metadata_only(item) for item in items]
        else:  # kmock 0.8 ignores selectors: it would list everything
            items = [item for item in items if _matches(request, item)]
        kind = self.resources[resource].kind if resource in self.resources else None
        return {
            "apiVersion": _api_version(resource),
            "kind": f"{kind}List" if kind else "List",
            "metadata": metadata,
            "items": items,
        }

    def _kubescape_page(self, request: kmock.Request) -> tuple[list[dict[str, Any]], str]:
        """One page as kubescape/storage ``GetList`` cuts it: up to ``limit`` (default 500)
        objects from the ``continue`` position, in storage order. Positions count deleted
        objects too (as SQLite rowids do), so deleting while paging skips nothing. Newer
        storage fills the page with matching objects only; v0.0.297 ignores selectors."""
        rows = [
            obj
            for (resource, namespace, _), obj in self.objects.items()
            if resource == request.resource
            and (request.namespace is None or namespace == request.namespace)
        ]
        limit = int(request.params.get("limit") or KUBESCAPE_DEFAULT_LIMIT)
        position = int(request.params.get("continue") or 0)
        page: list[dict[str, Any]] = []
        while position < len(rows) and len(page) < limit:
            row = rows[position]
            position += 1
            selected = not self._kubescape_selectors or _matches(request, row.raw)
            if not row.deleted and selected:
                page.append(copy.deepcopy(row.raw))
        return page, str(position) if position < len(rows) else ""

    async def _fetch(self, request: kmock.Request) -> dict[str, Any]:
        obj = await self._serve_fetch(request)
        metadata_only = request.params.get("resourceVersion") == "metadata"
        if request.resource.group == KUBESCAPE_GROUP and metadata_only:
            return _metadata_only(obj)  # Kubescape's cheap GET (resourceVersion=metadata)
        return obj

    async def _delete(self, request: kmock.Request) -> dict[str, Any]:
        # kmock answers the deleted object. A real server answers a Status for what it deleted
        # at once, but the object for services (ReturnDeletedObject), pods (graceful deletion)
        # and objects that finalizers keep.
        obj = await self._serve_delete(request)
        meta = obj.get("metadata", {})
        if request.resource.plural in ("services", "pods") or meta.get("deletionTimestamp"):
            return obj
        return {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": request.name,
                "group": request.resource.group,
                "kind": request.resource.plural,
                "uid": meta.get("uid"),
            },
        }

    async def _replace(self, request: kmock.Request) -> dict[str, Any]:
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            if request.name is None or not self._exists(*key):
                raise kmock.KubernetesObjectNotFoundError()
            current = copy.deepcopy(self.objects[key].raw)
            new = copy.deepcopy(request.data)
            if request.subresource == "status":
                new = {**current, "status": new.get("status")}
            meta = new.setdefault("metadata", {})
            if meta.get("resourceVersion") not in (
                None,
                "",
                current["metadata"].get("resourceVersion"),
            ):
                what = request.resource.plural
                raise _error(
                    409,
                    f'Operation cannot be fulfilled on {what} "{request.name}": '
                    "the object has been modified; please apply your changes to the "
                    "latest version and try again",
                    name=request.name,
                    kind=what,
                )
            for field in ("uid", "creationTimestamp", "namespace"):
                if field in current["metadata"]:
                    meta[field] = current["metadata"][field]
            meta["resourceVersion"] = self._next_revision()
            self._set_type(request.resource, new)
            self.objects[key].create(new)
            await self._buses[request.resource].put({"type": "MODIFIED", "object": new})
        return new

    # Called from the test's thread through KubeApiServer._call.

    async def seed(self, resource: kmock.resource, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        meta["resourceVersion"] = self._next_revision()
        self._set_type(resource, obj)
        key = (resource, meta.get("namespace"), meta["name"])
        async with self._lock:
            event = "MODIFIED" if self._exists(*key) else "ADDED"
            self.objects[key] = obj
            await self._buses[resource].put({"type": event, "object": obj})
        return copy.deepcopy(obj)

    async def stored(self, resource: kmock.resource, namespace: str | None, name: str) -> Any:
        key = (resource, namespace, name)
        return copy.deepcopy(self.objects[key].raw) if self._exists(*key) else None

    async def set_kubescape_selectors(self, applied: bool) -> None:
        self._kubescape_selectors = applied

    async def declare_kubescape(self) -> None:
        for plural, (kind, namespaced) in KUBESCAPE_RESOURCES.items():
            self.resources[f"{KUBESCAPE_GROUP}/v1beta1/{plural}"] = kmock.ResourceInfo(
                kind=kind,
                namespaced=namespaced,
                verbs={"create", "delete", "get", "list", "patch", "update", "watch"},
            )

    async def inject_failure(
        self,
        target: str,
        method: str | None,
        times: int | None,
        status: int,
        headers: dict[str, str],
        body: dict,
    ) -> None:
        since = len(self._requests)  # not requests from before (they take places in [:times])
        view = self[kmock.path(target) if target.startswith("/") else kmock.resource(target)]
        view = view[lambda request: request.id >= since]
        if method is not None:
            view = view[kmock.method(method)]
        if times is not None:
            view = view[:times]
        self._failures.append(view)
        view << status << kmock.headers(headers) << body

    async def seen(self) -> list[SeenRequest]:
        return [
            SeenRequest(
                request.method.value, request.url.path, dict(request.params), _decode(request.body)
            )
            for request in self._requests
        ]

    def _exists(self, resource: kmock.resource, namespace: str | None, name: str) -> bool:
        key = (resource, namespace, name)
        return key in self.objects and not self.objects[key].deleted

    def _next_revision(self) -> str:
        self._revision += 1
        return str(self._revision)

    def _set_type(self, resource: kmock.resource, obj: dict[str, Any]) -> None:
        obj.setdefault("apiVersion", _api_version(resource))
        if resource in self.resources and self.resources[resource].kind:
            obj.setdefault("kind", self.resources[resource].kind)
        if resource == NAMESPACES:  # what the namespace controller and admission add
            name = obj["metadata"]["name"]
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj.setdefault("status", {"phase": "Active"})


def _in_view(view: dsl.View, request: kmock.Request) -> bool | None:
    """Whether ``request`` is in ``view``, walking the view's chain instead of its history.

    Exact for chains of criteria filters and priorities over the server (the emulator's own
    reactions); None for anything else (slices, unions), which kmock then answers its way.
    """
    while True:
        if isinstance(view, dsl.Root):
            requests = view._requests
            return request.id < len(requests) and requests[request.id] is request
        if type(view) is dsl.Filter:
            if not view.criteria(request):
                return False
        elif type(view) is not dsl.Priority:
            return None
        view = view._source


_kmock_contains = dsl.View.__contains__


def _contains(self: dsl.View, item: Any) -> bool:
    if isinstance(item, kmock.Request):
        found = _in_view(self, item)
        if found is not None:
            return found
    return _kmock_contains(self, item)


dsl.View.__contains__ = _contains


def _error(status: int, message: str, reason: str | None = None, **details: str | None):
    return kmock.KubernetesError(
        status=status,
        reason=reason or REASONS[status],
        message=message,
        details=details or {"causes": []},
    )


def _matches(request: kmock.Request, item: dict[str, Any]) -> bool:
    labels = (item.get("metadata", {}).get("labels") or {}).get
    return _selects(request.params.get("labelSelector"), labels) and _selects(
        request.params.get("fieldSelector"), functools.partial(_field, item)
    )


def _selects(selector: str | None, value_of: Callable[[str], str | None]) -> bool:
    """Whether a label or field selector (=, ==, !=, in, notin, exists, !exists) matches."""
    for requirement in filter(None, map(str.strip, re.split(r",(?![^(]*\))", selector or ""))):
        match = _REQUIREMENT.fullmatch(requirement)
        if match is None:
            raise _error(400, f"unable to parse requirement: {requirement!r}")
        value = value_of(match["key"])
        if match["op"]:
            selected = (value == match["value"]) != (match["op"] == "!=")
        elif match["set"]:
            values = {v.strip() for v in match["values"].split(",")}
            selected = (value in values) != (match["set"] == "notin")
        else:
            selected = (value is not None) != bool(match["neg"])
        if not selected:
            return False
    return True


def _field(obj: dict[str, Any], path: str) -> str | None:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return None if value is None else json.dumps(value) if isinstance(value, bool) else str(value)


@functools.cache
def _bundled_resources() -> bytes:
    bundled = resources.files("kmock._internal").joinpath("resources.json.gz")
    return gzip.decompress(bundled.read_bytes())


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:  # e.g. a YAML apply patch
        return body.decode(errors="replace")


def _metadata_only(obj: dict[str, Any]) -> dict[str, Any]:
    return {key: obj[key] for key in ("apiVersion", "kind", "metadata") if key in obj}


def _api_version(resource: kmock.resource) -> str:
    return f"{resource.group}/{resource.version}" if resource.group else resource.version


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
