"""graphql-core's executor with a short way through plain answers (the simulator's GraphQL).

Why: answering one page of issue details (100 issues with their timelines and Projects values,
about 3,500 fields) took graphql-core ~25 ms, most of it per-field bookkeeping: a resolve-info
object, an argument check and several type dispatches for every scalar of every dict our
resolvers return. The simulator shares the machine with the process it serves, so that time was
added to every request in flight.

``FastExecutor`` completes the common cases itself, exactly as graphql-core would:

* a field without a resolver of its own and without arguments is read from the dict
  (graphql-core's default resolver: ``source.get(name)``);
* a field with a resolver gets its arguments coerced once per field node and answer (they only
  depend on the query and its variables), not once per list item;
* a value is completed directly when it is plain: ``None`` for a nullable type, a scalar or enum
  coerced by its type, a dict for an object type (or for an interface or union, by its
  ``__typename``), a list item by item.

Anything else (a null for a non-null type, a failed coercion, a value that is callable or an
exception, a dict without a valid ``__typename``, ``@stream``, middleware, custom field or type
resolvers) goes graphql-core's general way for that value, so answers and errors (messages,
paths, null propagation) stay graphql-core's own. Resolvers must be synchronous.

It builds on graphql-core 3.3's executor internals; with any other version ``fast_execution``
returns nothing and graphql-core's own executor answers (the same answers, only slower).
"""

from __future__ import annotations

from typing import Any

import graphql
from graphql import (
    GraphQLAbstractType,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLUnionType,
)
from graphql.execution.collect_fields import FieldDetails, FieldDetailsList, GroupedFieldSet
from graphql.execution.executor import default_field_resolver, default_type_resolver, to_nodes
from graphql.execution.incremental.incremental_executor import IncrementalExecutor
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path, Undefined
from graphql.pyutils import is_awaitable as _is_awaitable

__all__ = ["FastExecutor", "fast_execution", "is_awaitable"]

#: Types no resolver returns as an awaitable: answered without graphql-core's probe.
_PLAIN = frozenset({dict, list, str, int, float, bool, type(None), tuple})
#: Values a scalar or enum type coerces without surprises (anything else: the general way).
_SCALARS = frozenset({str, int, float, bool})

# How a field of a selection is executed (see ``FastExecutor._plan``).
_GENERAL, _DEFAULT, _RESOLVE, _TYPENAME, _SKIP = range(5)

_LEAVES = (GraphQLScalarType, GraphQLEnumType)
_ABSTRACT = (GraphQLInterfaceType, GraphQLUnionType)


def is_awaitable(value: Any) -> bool:
    """graphql-core's check, answered at once for the JSON-like values resolvers return."""
    return type(value) not in _PLAIN and _is_awaitable(value)


class _Site:
    """One field being completed: what graphql-core's general way needs if a value is not
    plain (its resolve info is built only then, unless the resolver needed it anyway)."""

    __slots__ = ("field_def", "field_details_list", "info", "parent_type", "path", "streams")

    def __init__(
        self,
        field_def: GraphQLField,
        field_details_list: FieldDetailsList,
        parent_type: GraphQLObjectType,
        path: Path,
        streams: bool,
        info: GraphQLResolveInfo | None = None,
    ) -> None:
        self.field_def = field_def
        self.field_details_list = field_details_list
        self.parent_type = parent_type
        self.path = path
        self.streams = streams
        self.info = info


#: (response name, its field nodes, how (``_GENERAL`` …), field definition, field name,
#: ``@stream`` asked, the leaf type of a ``_DEFAULT`` scalar field (else None), non-null)
_PlanEntry = tuple[str, FieldDetailsList, int, Any, str, bool, Any, bool]


class FastExecutor(IncrementalExecutor):
    """See the module docstring. Use with ``graphql.execute(..., executor_class=FastExecutor,
    is_awaitable=is_awaitable)``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # per answer: keyed by the identity of graphql-core's collected selections (kept
        # alive beside each entry, so an id is never reused while the answer runs)
        self._fast_plans: dict[int, tuple[Any, Any, list[_PlanEntry]]] = {}
        self._fast_args: dict[int, tuple[Any, dict[str, Any]]] = {}
        self._fast_types: dict[tuple[str, str], GraphQLObjectType | None] = {}

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        if type(source_value) is not dict or position_context is not None:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        results: dict[str, Any] = {}
        for response_name, details, kind, field_def, name, streams, leaf, non_null in self._plan(
            parent_type, grouped_field_set
        ):
            if kind == _SKIP:
                continue
            if kind == _TYPENAME:
                results[response_name] = parent_type.name
                continue
            if kind == _DEFAULT:
                value = source_value.get(name)
                if leaf is not None:  # the most common field of all: a scalar from a dict
                    if value is None:
                        if not non_null:
                            results[response_name] = None
                            continue
                    elif type(value) in _SCALARS:
                        try:
                            coerced = leaf.coerce_output_value(value)
                        except Exception:  # noqa: BLE001 - the general way reports it
                            coerced = None
                        if coerced is not None and coerced is not Undefined:
                            results[response_name] = coerced
                            continue
                if callable(value):
                    kind = _GENERAL
            field_path = Path(path, response_name, parent_type.name)
            if kind == _GENERAL:
                result = self.execute_field(
                    parent_type, source_value, details, field_path, position_context
                )
                if result is not Undefined:
                    results[response_name] = self._synchronous(result)
                continue
            site = _Site(field_def, details, parent_type, field_path, streams)
            return_type = field_def.type
            try:
                if kind == _RESOLVE:
                    site.info = self.build_resolve_info(
                        field_def, to_nodes(details), parent_type, field_path
                    )
                    value = self._synchronous(
                        field_def.resolve(
                            source_value, site.info, **self._arguments(field_def, details[0])
                        )
                    )
                results[response_name] = self._complete(return_type, site, field_path, value)
            except Exception as raw_error:
                self.handle_field_error(raw_error, return_type, details, field_path)
                results[response_name] = None
        return results

    def _complete(
        self, return_type: GraphQLOutputType, site: _Site, path: Path, result: Any
    ) -> Any:
        """``complete_value`` for plain values; anything else is handed to it unchanged."""
        if type(return_type) is GraphQLNonNull:
            if result is None:
                return self._general(return_type, site, path, result)
            inner: Any = return_type.of_type
        elif result is None:
            return None
        else:
            inner = return_type
        kind = type(inner)
        if kind is GraphQLObjectType:
            if type(result) is dict and inner.is_type_of is None:
                return self._subfields(inner, site, path, result)
        elif kind in _LEAVES:
            if not isinstance(result, Exception):
                try:
                    coerced = inner.coerce_output_value(result)
                except Exception:  # noqa: BLE001 - the general way reports it
                    coerced = None
                if coerced is not None and coerced is not Undefined:
                    return coerced
        elif kind is GraphQLList:
            if type(result) is list and not site.streams:
                item_type = inner.of_type
                completed: list[Any] = []
                for index, item in enumerate(result):
                    item_path = path.add_key(index, None)
                    try:
                        completed.append(self._complete(item_type, site, item_path, item))
                    except Exception as raw_error:
                        self.handle_field_error(
                            raw_error, item_type, site.field_details_list, item_path
                        )
                        completed.append(None)
                return completed
        elif kind in _ABSTRACT and type(result) is dict:
            runtime = self._runtime_type(inner, result.get("__typename"))
            if runtime is not None:
                return self._subfields(runtime, site, path, result)
        return self._general(return_type, site, path, result)

    def _subfields(
        self, object_type: GraphQLObjectType, site: _Site, path: Path, result: dict[str, Any]
    ) -> Any:
        """``collect_and_execute_subfields`` for a dict (nothing deferred)."""
        grouped_field_set, new_defer_usages, _ = self.collect_subfields(
            object_type, site.field_details_list
        )
        if new_defer_usages:
            return self._synchronous(
                self.collect_and_execute_subfields(
                    object_type, site.field_details_list, path, result, None
                )
            )
        return self.execute_fields(object_type, result, path, grouped_field_set, None)

    def _general(self, return_type: GraphQLOutputType, site: _Site, path: Path, result: Any) -> Any:
        """graphql-core's own completion (with the field's resolve info)."""
        if site.info is None:
            site.info = self.build_resolve_info(
                site.field_def, to_nodes(site.field_details_list), site.parent_type, site.path
            )
        return self._synchronous(
            self.complete_value(return_type, site.field_details_list, site.info, path, result, None)
        )

    @staticmethod
    def _synchronous(value: Any) -> Any:
        if is_awaitable(value):
            close = getattr(value, "close", None)
            if close is not None:
                close()
            raise TypeError("FastExecutor needs synchronous resolvers")
        return value

    def _arguments(self, field_def: GraphQLField, details: FieldDetails) -> dict[str, Any]:
        """The field's coerced arguments, once per field node and answer."""
        node = details.node
        if not (field_def.args or node.arguments):
            return {}
        cache = self._fast_args
        key = id(details)
        found = cache.get(key)
        if found is not None and found[0] is details:
            return found[1]
        args = get_argument_values(
            field_def,
            node,
            self.variable_values,
            details.fragment_variable_values,
            self.hide_suggestions,
        )
        cache[key] = (details, args)
        return args

    def _runtime_type(self, abstract: GraphQLAbstractType, name: Any) -> GraphQLObjectType | None:
        """The object type a dict's ``__typename`` names, when graphql-core's default type
        resolution would pick it without more ado (else ``None``: the general way decides)."""
        if not isinstance(name, str):
            return None
        cache = self._fast_types
        key = (abstract.name, name)
        if key in cache:
            return cache[key]
        found = self.schema.get_type(name)
        plain = (
            abstract.resolve_type is None
            and self.type_resolver is default_type_resolver
            and isinstance(found, GraphQLObjectType)
            and found.is_type_of is None
            and self.schema.is_sub_type(abstract, found)
        )
        cache[key] = found if plain and isinstance(found, GraphQLObjectType) else None
        return cache[key]

    def _plan(
        self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet
    ) -> list[_PlanEntry]:
        """How each field of one collected selection is executed, worked out once per
        selection and answer (graphql-core hands the same collected set to every list item)."""
        plans = self._fast_plans
        key = id(grouped_field_set)
        found = plans.get(key)
        if found is not None and found[0] is grouped_field_set and found[1] is parent_type:
            return found[2]
        plain = not self.middleware_manager
        plan: list[_PlanEntry] = []
        for response_name, details in grouped_field_set.items():
            node = details[0].node
            name = node.name.value
            field_def = self.schema.get_field(parent_type, name)
            streams = any(
                d.name.value == "stream" for f in details for d in f.node.directives or ()
            )
            if field_def is None:
                kind = _SKIP
            elif name == "__typename":
                kind = _TYPENAME
            elif not plain:
                kind = _GENERAL
            elif field_def.resolve is not None:
                kind = _RESOLVE
            elif self.field_resolver is default_field_resolver and not node.arguments:
                kind = _DEFAULT
            else:
                kind = _GENERAL
            leaf, non_null = None, False
            if kind == _DEFAULT and field_def is not None:
                inner: Any = field_def.type
                if isinstance(inner, GraphQLNonNull):
                    non_null, inner = True, inner.of_type
                leaf = inner if isinstance(inner, _LEAVES) else None
            plan.append((response_name, details, kind, field_def, name, streams, leaf, non_null))
        plans[key] = (grouped_field_set, parent_type, plan)
        return plan


def fast_execution() -> dict[str, Any]:
    """The ``graphql.execute`` arguments that use ``FastExecutor`` (none when the installed
    graphql-core is not the 3.3 whose internals it was written against)."""
    if tuple(graphql.version_info[:2]) != (3, 3):
        return {}
    return {"executor_class": FastExecutor, "is_awaitable": is_awaitable}
