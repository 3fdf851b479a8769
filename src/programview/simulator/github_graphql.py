"""GitHub GraphQL (``POST /github/graphql``) of the simulator, executed for real.

Every request is parsed, validated and executed by graphql-core against GitHub's own published
schema (``github_schema.graphql``), so a query real GitHub would reject (an unknown field, a
missing fragment, a wrong argument) fails here the same way, aliases, variables and fragments
work, and union members show only the fields their fragments ask for. Parsing and validation
are cached by query text; execution uses ``graphql_executor.FastExecutor`` (graphql-core's
executor with a short way through the plain dicts the resolvers return: same answers).

Served (resolvers below; everything else in the schema answers ``null``):

* ``organization(login:)``, ``user(login:)``, ``repositoryOwner(login:)`` and their
  ``projectV2(number:)``: the organisation's Projects v2 project (``org.github_project_number``)
  with ``fields`` (Title, Status single select, Estimate number, Iteration with
  ``configuration { iterations completedIterations }``, Target date, …) and ``items`` in
  position order (every GitHub issue, the repos' PRs, one draft), each with ``content``,
  ``fieldValues`` and ``fieldValueByName(name:)``;
* ``nodes(ids:)`` / ``node(id:)`` for issues (``I_kw…`` ids, as REST's ``node_id``) with
  ``timelineItems(itemTypes:)`` (labeled / unlabeled / closed / reopened / assigned /
  milestoned, from the item history), ``projectItems`` and ``labels``;
* ``rateLimit { limit cost remaining resetAt used nodeCount }`` and ``viewer``.

GitHub's own rules apply before execution: every connection needs ``first`` or ``last``
(``MISSING_PAGINATION_BOUNDARIES``), at most 100 (``EXCESSIVE_PAGINATION``), at most 500,000
nodes; the cost is GitHub's formula (connection requests / 100, at least 1). Errors carry
GitHub's top-level ``type`` (``NOT_FOUND`` with a ``path``), all as HTTP 200.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    build_schema,
    execute,
    get_named_type,
    is_abstract_type,
    parse,
    validate,
    value_from_ast_untyped,
)
from graphql.type.validate import validate_schema

from programview.simulator import github_api as gh
from programview.simulator.app import Ctx, github_time, iso_date
from programview.simulator.generator import DONE, GITHUB_PROJECT_STATUS, Item
from programview.simulator.graphql_executor import fast_execution

MAX_PAGE = 100
MAX_NODES = 500_000
DRAFT_TITLE = "Spike: evaluate new search provider"

_lock = threading.Lock()


@cache
def _schema() -> GraphQLSchema:
    """GitHub's schema with our resolvers (built once: about a second).

    The published schema breaks two graphql-js rules that do not matter for answering queries
    (fields declared twice, and deprecated implementations of non-deprecated interface fields),
    so it is built without SDL validation and only those known problems are waived.
    """
    sdl = resources.files("programview.simulator").joinpath("github_schema.graphql").read_text()
    schema = build_schema(sdl, assume_valid_sdl=True)
    problems = [e.message for e in validate_schema(schema)]
    unexpected = [p for p in problems if "must not be deprecated" not in p]
    if unexpected:
        raise RuntimeError("GitHub schema failed validation: " + "; ".join(unexpected[:3]))
    schema._validation_errors = []  # the waived problems above
    _install_resolvers(schema)
    return schema


def schema() -> GraphQLSchema:
    with _lock:
        return _schema()


# --- the answer ------------------------------------------------------------------------------


def graphql_answer(ctx: Ctx) -> dict[str, Any]:
    """The JSON answer to one GraphQL request."""
    payload = ctx.json_body()  # not JSON: 400 in GitHub's REST error shape
    query = payload.get("query") if isinstance(payload, dict) else None
    if not isinstance(query, str) or not query.strip():
        return {
            "errors": [{"message": "A query attribute must be specified and must be a string."}]
        }
    variables = payload.get("variables") or {}
    if not isinstance(variables, dict):
        variables = {}
    operation = payload.get("operationName")
    sch = schema()
    document, problems = _checked(query)
    if problems:
        return {"errors": [_error(e) for e in problems]}
    assert document is not None
    try:
        cost = _static_cost(sch, document, variables, operation)
    except _Refused as exc:
        return {"data": None, "errors": [exc.error]}
    result = execute(
        sch,
        document,
        root_value={},
        context_value=_Context(ctx, cost),
        variable_values=variables,
        operation_name=operation,
        **fast_execution(),
    )
    assert isinstance(result, ExecutionResult)  # every resolver is synchronous
    answer: dict[str, Any] = {"data": result.data}
    if result.errors:
        answer["errors"] = [_error(e) for e in result.errors]
    return answer


@lru_cache(maxsize=256)
def _checked(query: str) -> tuple[Any, tuple[GraphQLError, ...]]:
    """The parsed query and its validation errors against the schema, cached by text (a
    client sends the same few queries over and over; parsing and validating them against
    GitHub's large schema costs more than answering them)."""
    try:
        document = parse(query)
    except GraphQLError as exc:
        return None, (exc,)
    return document, tuple(validate(schema(), document))


def _error(exc: GraphQLError) -> dict[str, Any]:
    """GitHub's error shape: ``type`` at the top level, then path, locations, message."""
    out: dict[str, Any] = {}
    extensions = dict(exc.extensions or {})
    if "type" in extensions:
        out["type"] = extensions.pop("type")
    if exc.path:
        out["path"] = list(exc.path)
    if exc.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in exc.locations]
    if extensions:
        out["extensions"] = extensions
    out["message"] = exc.message
    return out


class _Refused(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error["message"])
        self.error = error


class _Context:
    def __init__(self, ctx: Ctx, cost: tuple[int, int]) -> None:
        self.ctx = ctx
        self.cost, self.nodes = cost


# --- GitHub's static checks and cost ----------------------------------------------------------


def _static_cost(
    sch: GraphQLSchema, document: Any, variables: dict[str, Any], operation: str | None
) -> tuple[int, int]:
    """(cost, node count) as GitHub computes them before running a query, raising
    ``_Refused`` for a connection without ``first``/``last`` or with more than 100."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    op = next((o for o in ops if operation is None or (o.name and o.name.value == operation)), None)
    if op is None:
        return 1, 0
    root = sch.mutation_type if op.operation.value == "mutation" else sch.query_type
    requests = 0
    nodes = 0

    def walk(
        selection: SelectionSetNode, parent: GraphQLNamedType, multiplier: int, path: list[str]
    ) -> None:
        nonlocal requests, nodes
        for node in selection.selections:
            if isinstance(node, FragmentSpreadNode):
                frag = fragments[node.name.value]
                walk(
                    frag.selection_set,
                    sch.get_type(frag.type_condition.name.value) or parent,
                    multiplier,
                    path,
                )
                continue
            if isinstance(node, InlineFragmentNode):
                target = (
                    sch.get_type(node.type_condition.name.value) if node.type_condition else parent
                )
                walk(node.selection_set, target or parent, multiplier, path)
                continue
            assert isinstance(node, FieldNode)
            if node.selection_set is None:
                continue
            fields = getattr(parent, "fields", {}) if not is_abstract_type(parent) else {}
            field = fields.get(node.name.value)
            if field is None:
                # a field of an interface/union member: look it up on any possible type
                for member in sch.get_possible_types(parent) if is_abstract_type(parent) else []:
                    field = member.fields.get(node.name.value)
                    if field is not None:
                        break
            if field is None:
                continue
            target = get_named_type(field.type)
            name = node.alias.value if node.alias else node.name.value
            here = [*path, name]
            size = multiplier
            given = node.arguments or ()
            args = {a.name.value: value_from_ast_untyped(a.value, variables) for a in given}
            if isinstance(args.get("ids"), list):  # nodes(ids:): one object per id
                size = multiplier * max(1, len(args["ids"]))
            if target.name.endswith("Connection"):
                first, last = args.get("first"), args.get("last")
                if first is None and last is None:
                    raise _Refused(
                        {
                            "type": "MISSING_PAGINATION_BOUNDARIES",
                            "path": here,
                            "message": "You must provide a `first` or `last` value to properly "
                            f"paginate the `{node.name.value}` connection.",
                        }
                    )
                value = first if first is not None else last
                which = "first" if first is not None else "last"
                if not isinstance(value, int) or value < 0 or value > MAX_PAGE:
                    raise _Refused(
                        {
                            "type": "EXCESSIVE_PAGINATION",
                            "path": here,
                            "message": f"Requesting {value} records on the `{node.name.value}` "
                            f"connection exceeds the `{which}` limit of {MAX_PAGE} records.",
                        }
                    )
                requests += multiplier
                size = multiplier * value
                nodes += size
            walk(node.selection_set, target, size, here)

    assert root is not None
    walk(op.selection_set, root, 1, [])
    if nodes > MAX_NODES:
        raise _Refused(
            {
                "type": "MAX_NODE_LIMIT_EXCEEDED",
                "path": [],
                "message": f"This query requests up to {nodes:,} possible nodes which exceeds the "
                f"maximum limit of {MAX_NODES:,}.",
            }
        )
    return max(1, round(requests / 100)), nodes


# --- resolvers -------------------------------------------------------------------------------

Resolver = Callable[..., Any]


def _install_resolvers(sch: GraphQLSchema) -> None:
    def on(type_name: str, field: str) -> Callable[[Resolver], Resolver]:
        def deco(fn: Resolver) -> Resolver:
            gql_type = sch.get_type(type_name)
            assert isinstance(gql_type, GraphQLObjectType), type_name
            gql_type.fields[field].resolve = fn
            return fn

        return deco

    @on("Query", "organization")
    def organization(_: Any, info: Any, login: str) -> dict[str, Any]:
        owner = _owner(info.context.ctx, login, organisation=True)
        if owner is None:
            raise GraphQLError(
                f"Could not resolve to an Organization with the login of '{login}'.",
                extensions={"type": "NOT_FOUND"},
            )
        return owner

    @on("Query", "user")
    def user(_: Any, info: Any, login: str) -> dict[str, Any]:
        owner = _owner(info.context.ctx, login, organisation=False)
        if owner is None:
            raise GraphQLError(
                f"Could not resolve to a User with the login of '{login}'.",
                extensions={"type": "NOT_FOUND"},
            )
        return owner

    @on("Query", "repositoryOwner")
    def repository_owner(_: Any, info: Any, login: str) -> dict[str, Any] | None:
        ctx = info.context.ctx
        return _owner(ctx, login, organisation=True) or _owner(ctx, login, organisation=False)

    @on("Query", "viewer")
    def viewer(_: Any, info: Any) -> dict[str, Any]:
        ctx = info.context.ctx
        return _user_node(ctx, ctx.user.id)

    @on("Query", "rateLimit")
    def rate_limit(_: Any, info: Any, dryRun: bool = False) -> dict[str, Any]:  # noqa: N803
        ctx, cost = info.context.ctx, info.context.cost
        limit, used, remaining, reset = ctx.app.limiters[gh.GITHUB].state("graphql")
        return {
            "limit": limit,
            "cost": cost,
            "remaining": max(0, remaining - cost),
            "used": used + cost,
            "resetAt": github_time(datetime.fromtimestamp(reset, UTC)),
            "nodeCount": info.context.nodes,
        }

    @on("Query", "nodes")
    def nodes(_: Any, info: Any, ids: list[str]) -> list[dict[str, Any] | None]:
        if len(ids) > MAX_PAGE:
            raise GraphQLError(
                f"You may not request more than {MAX_PAGE} nodes at once.",
                extensions={"type": "EXCESSIVE_PAGINATION"},
            )
        return [_node_by_id(info.context.ctx, i) for i in ids]

    @on("Query", "node")
    def node(_: Any, info: Any, id: str) -> dict[str, Any] | None:  # noqa: A002
        return _node_by_id(info.context.ctx, id)

    for owner_type in ("Organization", "User"):

        @on(owner_type, "projectV2")
        def project_v2(owner: dict[str, Any], info: Any, number: int) -> dict[str, Any]:
            ctx = info.context.ctx
            org = ctx.org
            if owner.get("__typename") != "Organization" or number != org.github_project_number:
                raise GraphQLError(
                    f"Could not resolve to a ProjectV2 with the number {number}.",
                    extensions={"type": "NOT_FOUND"},
                )
            return _project(ctx)

    @on("ProjectV2", "fields")
    def fields(project: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
        return _connection(_fields(info.context.ctx), args, key=lambda n: n[0])

    @on("ProjectV2", "items")
    def items(project: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
        ctx = info.context.ctx
        rows = gh._project_items(ctx.org)
        return _keyed_connection(
            rows, args, lambda row: _item(ctx, row[0], row[1]), lambda row: row[0]
        )

    def values_of(item: dict[str, Any], info: Any) -> list[dict[str, Any]]:
        # one item's values, worked out once per answer (a query asks several by name)
        if "_values" not in item:
            item["_values"] = _field_values(info.context.ctx, item["_record"])
        values: list[dict[str, Any]] = item["_values"]
        return values

    @on("ProjectV2Item", "fieldValues")
    def field_values(item: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
        values = values_of(item, info)
        return _connection(list(enumerate(values)), args, key=lambda n: n[0], value=lambda n: n[1])

    @on("ProjectV2Item", "fieldValueByName")
    def field_value_by_name(item: dict[str, Any], info: Any, name: str) -> dict[str, Any] | None:
        wanted = name.strip().lower()
        for value in values_of(item, info):
            if value["field"]["name"].lower() == wanted:
                return value
        return None

    @on("Issue", "timelineItems")
    def timeline_items(issue: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
        ctx = info.context.ctx
        wanted = {t.replace("_", "").lower() for t in args.get("itemTypes") or []}
        events = [
            e
            for e in (_timeline_event(*ev) for ev in gh.event_history(ctx.org, issue["_record"]))
            if not wanted or e["__typename"].lower() in wanted
        ]
        return _connection(list(enumerate(events)), args, key=lambda n: n[0], value=lambda n: n[1])

    @on("ProjectV2Item", "content")
    def item_content(item: dict[str, Any], info: Any) -> dict[str, Any]:
        return _item_content(info.context.ctx, item["_record"])

    @on("Issue", "projectItems")
    def project_items(issue: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
        ctx = info.context.ctx
        rec = issue["_record"]
        key = (int(rec.created.timestamp()), rec.id)
        found = [(0, _item(ctx, key, rec))] if rec.deleted is None else []
        return _connection(found, args, key=lambda n: n[0], value=lambda n: n[1])

    @on("Query", "repository")
    def repository(_: Any, info: Any, owner: str, name: str, **args: Any) -> dict[str, Any] | None:
        ctx = info.context.ctx
        scope = ctx.org.find_scope("github", f"{owner}/{name}")
        if scope is None:
            raise GraphQLError(
                f"Could not resolve to a Repository with the name '{owner}/{name}'.",
                extensions={"type": "NOT_FOUND"},
            )
        return {**_repository(scope), "_scope": scope}

    @on("Repository", "issues")
    def repo_issues(repo: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
        """``issues(first, after, orderBy {field CREATED_AT|UPDATED_AT, direction},
        states, filterBy {since, states})``: the repository's live issues (no PRs)."""
        ctx = info.context.ctx
        order = args.get("orderBy") or {"field": "CREATED_AT", "direction": "ASC"}
        states = set(args.get("states") or (args.get("filterBy") or {}).get("states") or [])
        since_text = (args.get("filterBy") or {}).get("since")
        since = gh.parse_time(since_text) if since_text else None
        rows = [
            i
            for i in ctx.org.scope_items(repo["_scope"])
            if (not states or ("CLOSED" if i.status == DONE else "OPEN") in states)
            and (since is None or i.updated >= since)
        ]
        by_updated = order.get("field") == "UPDATED_AT"
        rows.sort(
            key=lambda i: (i.updated if by_updated else i.created, i.id),
            reverse=order.get("direction") == "DESC",
        )
        keyed = [
            ((int((i.updated if by_updated else i.created).timestamp()), i.id), i) for i in rows
        ]
        if order.get("direction") == "DESC":
            keyed = [((-k[0], -k[1]), i) for k, i in keyed]
        return _keyed_connection(keyed, args, lambda r: _issue_node(ctx, r[1]), lambda r: r[0])

    @on("Issue", "labels")
    def labels(issue: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
        rec = issue["_record"]
        names = [{"__typename": "Label", "name": n, "id": n} for n in rec.source_labels]
        return _connection(list(enumerate(names)), args, key=lambda n: n[0], value=lambda n: n[1])


# --- data ------------------------------------------------------------------------------------


def _owner(ctx: Ctx, login: str, *, organisation: bool) -> dict[str, Any] | None:
    org = ctx.org
    if organisation:
        if str(login).lower() != org.github_org:
            return None
        return {"__typename": "Organization", "login": org.github_org, "id": gh._node("O_kgDO", 1)}
    person = next((p for p in org.people if p.login.lower() == str(login).lower()), None)
    return _user_node(ctx, person.id) if person is not None else None


def _user_node(ctx: Ctx, person_id: int) -> dict[str, Any]:
    person = ctx.org.person(person_id)
    return {
        "__typename": "User",
        "login": person.login,
        "name": person.name,
        "id": gh._node("U_kgDO", 1 + person.id),
        "databaseId": 1 + person.id,
    }


def _project(ctx: Ctx) -> dict[str, Any]:
    org = ctx.org
    live = [i for i in org.live_items() if i.system == "github"]
    return {
        "__typename": "ProjectV2",
        "id": _project_id(),
        "title": gh.PROJECT_TITLE,
        "number": org.github_project_number,
        "url": f"{gh._web(ctx)}/orgs/{org.github_org}/projects/{org.github_project_number}",
        "closed": False,
        "public": False,
        "createdAt": github_time(gh._generation_time(org) - timedelta(days=400)),
        "updatedAt": github_time(max((i.updated for i in live), default=org.now)),
        "owner": {"__typename": "Organization", "login": org.github_org},
    }


def _fields(ctx: Ctx) -> list[tuple[int, dict[str, Any]]]:
    org = ctx.org
    sprints = gh._github_sprints(org)
    out = []
    for n, (name, typename, data_type) in enumerate(gh._FIELDS):
        node: dict[str, Any] = {
            "__typename": typename,
            "id": gh._field_id(name),
            "name": name,
            "dataType": data_type,
            "createdAt": github_time(gh._generation_time(org) - timedelta(days=400)),
            "updatedAt": github_time(gh._generation_time(org) - timedelta(days=400)),
        }
        if typename == "ProjectV2SingleSelectField":
            node["options"] = [
                {
                    "id": gh._option_id(label),
                    "name": label,
                    "nameHTML": label,
                    "color": ("GRAY", "YELLOW", "BLUE", "GREEN")[i],
                    "description": "",
                    "descriptionHTML": "",
                }
                for i, label in enumerate(GITHUB_PROJECT_STATUS.values())
            ]
        if typename == "ProjectV2IterationField":
            first = sprints[0].start if sprints else gh._generation_time(org)
            node["configuration"] = {
                "duration": 14,
                "startDay": first.isoweekday(),
                "iterations": [gh._iteration_json(s) for s in sprints if s.state != "closed"],
                "completedIterations": [
                    gh._iteration_json(s) for s in reversed(sprints) if s.state == "closed"
                ],
            }
        out.append((n, node))
    return out


@cache
def _field_ref(name: str) -> dict[str, Any]:
    typename = next(t for n, t, _ in gh._FIELDS if n == name)
    return {"__typename": typename, "id": gh._field_id(name), "name": name}


def _field_values(ctx: Ctx, rec: Any) -> list[dict[str, Any]]:
    org = ctx.org

    def stamp(at: datetime) -> dict[str, Any]:
        return {"createdAt": github_time(at), "updatedAt": github_time(at)}

    if rec is None:
        title, status, at = DRAFT_TITLE, "todo", gh._generation_time(org)
    elif isinstance(rec, gh.PullRequest):
        title, status, at = rec.title, (DONE if rec.closed else "in_review"), rec.created
    else:
        title, status, at = rec.title, rec.status, rec.created
    values: list[dict[str, Any]] = [
        {
            "__typename": "ProjectV2ItemFieldTextValue",
            "text": title,
            "field": _field_ref("Title"),
            **stamp(at),
        }
    ]
    name = GITHUB_PROJECT_STATUS[status]
    values.append(
        {
            "__typename": "ProjectV2ItemFieldSingleSelectValue",
            "name": name,
            "nameHTML": name,
            "optionId": gh._option_id(name),
            "color": "GRAY",
            "description": "",
            "descriptionHTML": "",
            "field": _field_ref("Status"),
            **stamp(rec.updated if rec is not None else at),
        }
    )
    if isinstance(rec, Item):
        if rec.points is not None:
            values.append(
                {
                    "__typename": "ProjectV2ItemFieldNumberValue",
                    "number": float(rec.points),
                    "field": _field_ref("Estimate"),
                    **stamp(rec.points_history[-1].at),
                }
            )
        spr = org.current_sprint(rec)
        if spr is not None:
            it = gh._iteration_json(spr)
            values.append(
                {
                    "__typename": "ProjectV2ItemFieldIterationValue",
                    "iterationId": it["id"],
                    "title": it["title"],
                    "titleHTML": it["titleHTML"],
                    "startDate": it["startDate"],
                    "duration": it["duration"],
                    "field": _field_ref("Iteration"),
                    **stamp(rec.created),
                }
            )
        if rec.due is not None:
            values.append(
                {
                    "__typename": "ProjectV2ItemFieldDateValue",
                    "date": iso_date(rec.due),
                    "field": _field_ref("Target date"),
                    **stamp(rec.created),
                }
            )
    owner = rec.id if rec is not None else gh._DRAFT_ID
    for n, value in enumerate(values):
        value.setdefault("id", f"PVTFV_lADO{gh._b64(f'{owner}:{n}')}")
    return values


def _item(ctx: Ctx, key: tuple[int, int], rec: Any) -> dict[str, Any]:
    """A project item; its ``content`` is built only when a query asks for it (the details
    and board queries do not: see the ``ProjectV2Item.content`` resolver)."""
    org = ctx.org
    if rec is None:
        kind = "DRAFT_ISSUE"
        created = updated = gh._generation_time(org) - timedelta(days=3)
    else:
        kind = "PULL_REQUEST" if isinstance(rec, gh.PullRequest) else "ISSUE"
        created, updated = rec.created, rec.updated
    return {
        "__typename": "ProjectV2Item",
        "_record": rec,
        "id": f"PVTI_lADO{gh._b64(f'{key[1]}')}",
        "type": kind,
        "createdAt": github_time(created),
        "updatedAt": github_time(updated),
        "isArchived": False,
        "project": {
            "__typename": "ProjectV2",
            "number": org.github_project_number,
            "owner": {"__typename": "Organization", "login": org.github_org},
            "id": _project_id(),
            "title": gh.PROJECT_TITLE,
        },
    }


def _item_content(ctx: Ctx, rec: Any) -> dict[str, Any]:
    """What a project item shows: its draft, pull request or issue."""
    if rec is None:
        return {
            "__typename": "DraftIssue",
            "id": gh._node("DI_lADO", gh._DRAFT_ID),
            "title": DRAFT_TITLE,
            "body": "",
        }
    if isinstance(rec, gh.PullRequest):
        return _pull_node(ctx, rec)
    return _issue_node(ctx, rec)


@cache
def _project_id() -> str:
    return f"PVT_kwDO{gh._hex('project', 10)}"


def _repository(scope: Any) -> dict[str, Any]:
    owner, name = scope.path.split("/", 1)
    return {
        "__typename": "Repository",
        "nameWithOwner": scope.path,
        "name": name,
        "owner": {"__typename": "Organization", "login": owner},
        "databaseId": scope.native_id,
        "id": gh._node("R_kgDO", scope.native_id),
    }


def _issue_node(ctx: Ctx, rec: Item) -> dict[str, Any]:
    web = gh._web(ctx)
    return {
        "__typename": "Issue",
        "_record": rec,
        "id": gh._node("I_kwDO", rec.id),
        "databaseId": rec.id,
        "fullDatabaseId": str(rec.id),
        "number": rec.number,
        "title": rec.title,
        "url": f"{web}/{rec.scope.path}/issues/{rec.number}",
        "state": "CLOSED" if rec.status == DONE else "OPEN",
        "stateReason": (rec.github_state_reason or "").upper() or None,
        "closed": rec.status == DONE,
        "closedAt": github_time(rec.resolved),
        "createdAt": github_time(rec.created),
        "updatedAt": github_time(rec.updated),
        "repository": _repository(rec.scope),
    }


def _pull_node(ctx: Ctx, rec: Any) -> dict[str, Any]:
    return {
        "__typename": "PullRequest",
        "id": gh._node("PR_kwDO", rec.id),
        "databaseId": rec.id,
        "number": rec.number,
        "title": rec.title,
        "url": f"{gh._web(ctx)}/{rec.scope.path}/pull/{rec.number}",
        "state": "MERGED" if rec.merged else ("CLOSED" if rec.closed else "OPEN"),
        "createdAt": github_time(rec.created),
        "updatedAt": github_time(rec.updated),
        "repository": _repository(rec.scope),
    }


def _node_by_id(ctx: Ctx, node_id: str) -> dict[str, Any] | None:
    """An issue by its node id (``I_kwDO`` + base64 of the database id), else ``None``."""
    if not isinstance(node_id, str) or not node_id.startswith("I_kwDO"):
        return None
    text = node_id[len("I_kwDO") :]
    try:
        ident = int(base64.b64decode(text + "=" * (-len(text) % 4)).decode())
    except (ValueError, UnicodeDecodeError):
        return None
    rec = ctx.org.items.get(ident)
    if rec is None or rec.deleted is not None or rec.system != "github":
        return None
    return _issue_node(ctx, rec)


_EVENT_TYPES = {
    "labeled": "LabeledEvent",
    "unlabeled": "UnlabeledEvent",
    "closed": "ClosedEvent",
    "reopened": "ReopenedEvent",
    "assigned": "AssignedEvent",
    "milestoned": "MilestonedEvent",
}


def _timeline_event(eid: int, at: datetime, kind: str, detail: str | None) -> dict[str, Any]:
    """One timeline item from ``github_api.event_history`` (the REST events, as GraphQL
    shows them)."""
    out: dict[str, Any] = {
        "__typename": _EVENT_TYPES[kind],
        "id": gh._node("IE_lADO", eid),
        "createdAt": github_time(at),
    }
    if kind in ("labeled", "unlabeled"):
        out["label"] = {"__typename": "Label", "name": detail, "id": detail}
    elif kind in ("closed", "reopened"):
        out["stateReason"] = detail.upper() if detail else None
    elif kind == "milestoned":
        out["milestoneTitle"] = detail
    return out


# --- connections -----------------------------------------------------------------------------


def _cursor(n: Any) -> str:
    return base64.b64encode(f"cursor:{n}".encode()).decode()


def _uncursor(text: str) -> str:
    try:
        raw = base64.b64decode(text.encode(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raw = ""
    if not raw.startswith("cursor:"):
        raise GraphQLError(
            f"`{text}` does not appear to be a valid cursor.",
            extensions={"type": "INVALID_CURSOR_ARGUMENTS"},
        )
    return raw[len("cursor:") :]


def _page_size(args: dict[str, Any]) -> int:
    """``first`` (else ``last``) of a connection; checked to be 0..100 before execution."""
    value = args.get("first")
    if value is None:
        value = args.get("last")
    return int(value or 0)


def _connection(
    rows: list[Any],
    args: dict[str, Any],
    *,
    key: Callable[[Any], Any],
    value: Callable[[Any], dict[str, Any]] = lambda r: r[1],
) -> dict[str, Any]:
    """A connection over ``rows`` (small lists: fields, values, events) by position."""
    start = 0
    if args.get("after"):
        after = _uncursor(str(args["after"]))
        start = next((i + 1 for i, r in enumerate(rows) if str(key(r)) == after), len(rows))
    n = _page_size(args)
    page = rows[start : start + n]
    return {
        "totalCount": len(rows),
        "pageInfo": {
            "hasNextPage": start + len(page) < len(rows),
            "hasPreviousPage": start > 0,
            "startCursor": _cursor(key(page[0])) if page else None,
            "endCursor": _cursor(key(page[-1])) if page else None,
        },
        "nodes": [value(r) for r in page],
        "edges": [{"cursor": _cursor(key(r)), "node": value(r)} for r in page],
    }


def _keyed_connection(
    rows: list[tuple[tuple[int, int], Any]],
    args: dict[str, Any],
    render: Callable[[tuple[tuple[int, int], Any]], dict[str, Any]],
    key: Callable[[tuple[tuple[int, int], Any]], tuple[int, int]],
) -> dict[str, Any]:
    """Project items: cursors are (created, id) keys, so items deleted between two pages never
    shift the listing (the next page starts after the key, wherever it is now)."""
    start = 0
    if args.get("after"):
        raw = _uncursor(str(args["after"]))
        try:
            a, b = (int(x) for x in raw.split(":"))
        except ValueError:
            raise GraphQLError(
                f"`{args['after']}` does not appear to be a valid cursor.",
                extensions={"type": "INVALID_CURSOR_ARGUMENTS"},
            ) from None
        lo, hi = 0, len(rows)
        while lo < hi:  # first row with key > cursor key
            mid = (lo + hi) // 2
            if rows[mid][0] <= (a, b):
                lo = mid + 1
            else:
                hi = mid
        start = lo
    n = _page_size(args)
    page = rows[start : start + n]

    def cur(row: tuple[tuple[int, int], Any]) -> str:
        k = key(row)
        return _cursor(f"{k[0]}:{k[1]}")

    nodes = [render(r) for r in page]
    return {
        "totalCount": len(rows),
        "pageInfo": {
            "hasNextPage": start + len(page) < len(rows),
            "hasPreviousPage": start > 0,
            "startCursor": cur(page[0]) if page else None,
            "endCursor": cur(page[-1]) if page else None,
        },
        "nodes": nodes,
        "edges": [{"cursor": cur(r), "node": n} for r, n in zip(page, nodes, strict=True)],
    }
