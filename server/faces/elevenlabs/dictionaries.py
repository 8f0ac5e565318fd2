"""ElevenLabs pronunciation dictionaries on Morpheus: made from rules, used by locators.

`POST /v1/pronunciation-dictionaries/add-from-rules` (body `name`, `rules`, `description`)
stores a dictionary and answers its `id` and `version_id`, as ElevenLabs does;
`POST /v1/pronunciation-dictionaries/{id}/add-rules` and `/remove-rules` make a new version;
`GET /v1/pronunciation-dictionaries/` lists them and `GET .../{id}` describes one. A request's
`pronunciation_dictionary_locators` (up to 3, applied in order; a missing `version_id` means the
latest) become lexicon entries of that stream, before LEXICON_FILE's: alias rules are said as
their alias, phoneme rules (IPA or CMU ARPAbet) as phonemes for the engines that take them
(dsp/textfront/lexicon.py). The dictionaries live in the server's memory, bounded, until it
restarts: a client creates them at start-up, as it does with ElevenLabs.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from adapters.errors import BadRequest
from dsp.textfront import LexiconEntry, LexiconError, from_elevenlabs_rules
from server.errors import read_json_object
from server.faces.elevenlabs.api import Locator, detail_error, from_validation, key_error

MAX_DICTIONARIES = 100
MAX_RULES = 1000  # per dictionary
MAX_LOCATORS = 3  # per request, as ElevenLabs allows


class RulesBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: StrictStr = Field(min_length=1, max_length=200)
    rules: list[dict[str, Any]] = Field(max_length=MAX_RULES)
    description: StrictStr | None = Field(None, max_length=2000)


class RuleEdit(BaseModel):
    model_config = ConfigDict(extra="ignore")

    rules: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_RULES)
    rule_strings: list[StrictStr] = Field(default_factory=list, max_length=MAX_RULES)


@dataclass
class Dictionary:
    """One dictionary: its rules by version (every edit is a new version)."""

    id: str
    name: str
    description: str | None
    created: int
    versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    latest: str = ""

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "created_by": "morpheus",
                "creation_time_unix": self.created, "version_id": self.latest,
                "latest_version_id": self.latest,
                "version_rules_num": len(self.versions[self.latest]),
                "latest_version_rules_num": len(self.versions[self.latest]),
                "description": self.description, "permission_on_resource": "admin"}


class Dictionaries:
    """The dictionaries of one app."""

    def __init__(self) -> None:
        self._by_id: dict[str, Dictionary] = {}

    def add(self, name: str, rules: list[dict[str, Any]], description: str | None) -> Dictionary:
        if len(self._by_id) >= MAX_DICTIONARIES:
            raise BadRequest(f"at most {MAX_DICTIONARIES} pronunciation dictionaries are kept; "
                             "remove one first", field="name")
        _check(rules)
        d = Dictionary(uuid.uuid4().hex[:20], name, description, int(time.time()))
        self._version(d, rules)
        self._by_id[d.id] = d
        return d

    def edit(self, dict_id: str, add: list[dict[str, Any]], remove: list[str]) -> Dictionary:
        d = self.get(dict_id)
        rules = [r for r in d.versions[d.latest] if r.get("string_to_replace") not in remove]
        rules += add
        if len(rules) > MAX_RULES:
            raise BadRequest(f"a dictionary holds at most {MAX_RULES} rules", field="rules")
        _check(rules)
        self._version(d, rules)
        return d

    @staticmethod
    def _version(d: Dictionary, rules: list[dict[str, Any]]) -> None:
        version = uuid.uuid4().hex[:20]
        d.versions[version] = list(rules)
        d.latest = version

    def get(self, dict_id: str) -> Dictionary:
        d = self._by_id.get(dict_id)
        if d is None:
            raise BadRequest(f"no pronunciation dictionary {dict_id!r}",
                             field="pronunciation_dictionary_id", status=404)
        return d

    def all(self) -> list[Dictionary]:
        return list(self._by_id.values())

    def entries(self, locators: list[Locator] | None) -> tuple[LexiconEntry, ...]:
        """The lexicon entries a request's locators name, in order."""
        if not locators:
            return ()
        if len(locators) > MAX_LOCATORS:
            raise BadRequest(f"at most {MAX_LOCATORS} pronunciation dictionary locators",
                             field="pronunciation_dictionary_locators")
        out: list[LexiconEntry] = []
        for loc in locators:
            d = self.get(loc.pronunciation_dictionary_id)
            version = loc.version_id or d.latest
            rules = d.versions.get(version)
            if rules is None:
                raise BadRequest(f"dictionary {d.id!r} has no version {version!r}",
                                 field="pronunciation_dictionary_locators")
            out += from_elevenlabs_rules(rules).entries
        return tuple(out)


def _check(rules: list[dict[str, Any]]) -> None:
    try:
        from_elevenlabs_rules(rules)
    except LexiconError as e:
        raise BadRequest(str(e), field="rules") from e


DICTIONARIES = web.AppKey("pronunciation_dictionaries", Dictionaries)


def locators_of(raw: Any) -> list[Locator] | None:
    """`pronunciation_dictionary_locators` of a WebSocket message (a list of objects)."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise BadRequest("pronunciation_dictionary_locators must be a list",
                         field="pronunciation_dictionary_locators")
    try:
        return [Locator.model_validate(x) for x in raw]
    except ValidationError as e:
        raise BadRequest(f"pronunciation_dictionary_locators: {e.errors()[0].get('msg')}",
                         field="pronunciation_dictionary_locators") from e


# ------------------------------------------------------------------------------ routes


async def _answer(request: web.Request, make: Any) -> web.Response:
    denied = key_error(request)
    if denied is not None:
        return denied
    try:
        return web.json_response(await make())
    except ValidationError as e:
        return from_validation(e, "body")
    except BadRequest as e:
        return detail_error(e.status, "invalid_request", str(e), field=e.field)


async def add_from_rules(request: web.Request) -> web.Response:
    async def make() -> dict[str, Any]:
        body = RulesBody.model_validate(await read_json_object(request))
        d = request.app[DICTIONARIES].add(body.name, body.rules, body.description)
        return d.describe()
    return await _answer(request, make)


async def add_rules(request: web.Request) -> web.Response:
    async def make() -> dict[str, Any]:
        body = RuleEdit.model_validate(await read_json_object(request))
        d = request.app[DICTIONARIES].edit(request.match_info["dict_id"], body.rules, [])
        return {"id": d.id, "version_id": d.latest,
                "version_rules_num": len(d.versions[d.latest])}
    return await _answer(request, make)


async def remove_rules(request: web.Request) -> web.Response:
    async def make() -> dict[str, Any]:
        body = RuleEdit.model_validate(await read_json_object(request))
        d = request.app[DICTIONARIES].edit(request.match_info["dict_id"], [],
                                           list(body.rule_strings))
        return {"id": d.id, "version_id": d.latest,
                "version_rules_num": len(d.versions[d.latest])}
    return await _answer(request, make)


async def get_dictionary(request: web.Request) -> web.Response:
    async def make() -> dict[str, Any]:
        return request.app[DICTIONARIES].get(request.match_info["dict_id"]).describe()
    return await _answer(request, make)


async def list_dictionaries(request: web.Request) -> web.Response:
    async def make() -> dict[str, Any]:
        return {"pronunciation_dictionaries": [d.describe() for d in request.app[DICTIONARIES].all()],
                "has_more": False, "next_cursor": None}
    return await _answer(request, make)


def add_dictionary_routes(app: web.Application) -> None:
    app[DICTIONARIES] = Dictionaries()
    base = "/v1/pronunciation-dictionaries"
    app.router.add_post(f"{base}/add-from-rules", add_from_rules)
    app.router.add_post(f"{base}/{{dict_id}}/add-rules", add_rules)
    app.router.add_post(f"{base}/{{dict_id}}/remove-rules", remove_rules)
    app.router.add_get(f"{base}/{{dict_id}}", get_dictionary)
    app.router.add_get(f"{base}", list_dictionaries)
    app.router.add_get(f"{base}/", list_dictionaries)


__all__ = ["DICTIONARIES", "Dictionaries", "add_dictionary_routes", "locators_of"]
