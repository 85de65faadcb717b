"""Container image references per the OCI distribution reference grammar.

The expressions are those of distribution/reference (``regexp.go``); the
normalisation (``nginx`` → ``docker.io/library/nginx``) is Docker's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_REFERENCE_LENGTH = 512

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"  # Go's \w is ASCII
# distribution/reference allows other algorithms; a job's image_digest is sha256, and a
# reference pinned otherwise could never agree with it.
_DIGEST = r"sha256:[a-f0-9]{64}"

_REFERENCE = re.compile(
    rf"(?P<name>(?:(?P<domain>{_DOMAIN})/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?"
)
# What the parser accepts, as one ECMA-262 pattern for the OpenAPI schema: a first component
# is a registry only if it looks like a host (as _split_domain decides). (Python's "$" also
# matches before a final newline; the API's fields strip surrounding whitespace first.)
# (distribution/reference also caps the name at 255 characters; a schema cannot say so, and
# a registry refuses such a name at pull time, so only the whole reference is bounded here.)
_REGISTRY = (
    rf"(?:(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})+|{_IPV6})(?::[0-9]+)?"
    rf"|{_DOMAIN_COMPONENT}:[0-9]+|localhost)"
)
_SUFFIX = rf"(?::{_TAG})?(?:@{_DIGEST})?"
REFERENCE_PATTERN = rf"^(?:{_REGISTRY}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*{_SUFFIX}$"
SHA256_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
SHA256_DIGEST_PATTERN = rf"^{SHA256_DIGEST.pattern}$"
_DIGEST_AT_END = re.compile(r"(?:^|@)(sha256:[a-f0-9]{64})$")

DEFAULT_REGISTRY = "docker.io"


@dataclass(frozen=True)
class ImageReference:
    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """The last path component: ``nginx`` for ``docker.io/library/nginx``."""
        return self.repository.rsplit("/", 1)[-1]

    def pinned(self, digest: str) -> str:
        """The reference that runs exactly ``digest``: ``registry/repository@digest``."""
        return f"{self.registry}/{self.repository}@{digest}"


def digest_of(image_id: str) -> str | None:
    """The manifest digest an image ID or reference pins, whatever the runtime put before it.

    ``docker-pullable://nginx@sha256:…``, ``docker.io/library/nginx@sha256:…``
    and a bare ``sha256:…`` give the digest. Docker's ``docker://sha256:…`` is
    the image's config digest, which no registry or scanner knows the image by:
    None, like anything else.
    """
    match = _DIGEST_AT_END.search(image_id.strip().lower())
    return match[1] if match else None


def unique_digests(*digests: str | None) -> tuple[str, ...]:
    """The digests in first-seen order, each once; empty values dropped."""
    return tuple(dict.fromkeys(d for d in digests if d))


class InvalidReference(ValueError):
    pass


def parse_image_reference(value: str) -> ImageReference:
    if len(value) > MAX_REFERENCE_LENGTH:
        raise InvalidReference(f"longer than {MAX_REFERENCE_LENGTH} characters")
    match = _REFERENCE.fullmatch(value)
    if match is None:
        raise InvalidReference("not a valid image reference (registry/path:tag or @digest)")
    registry, repository = _split_domain(match["name"], match["domain"])
    return ImageReference(registry, repository, match["tag"], match["digest"])


def _split_domain(name: str, domain: str | None) -> tuple[str, str]:
    # Docker reads the first component as a registry only if it looks like a host.
    if domain and (
        "." in domain or ":" in domain or domain == "localhost" or domain.startswith("[")
    ):
        registry, repository = domain, name[len(domain) + 1 :]
    else:
        registry, repository = DEFAULT_REGISTRY, name
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = f"library/{repository}"
    if repository != repository.lower():
        raise InvalidReference("repository names must be lowercase")
    return registry, repository
