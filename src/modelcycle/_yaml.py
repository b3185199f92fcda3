"""Safe YAML reading for every file modelcycle parses: alias expansion, recursive aliases and nesting are bounded."""

from __future__ import annotations

from typing import Any

import yaml
from yaml import YAMLError
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, CollectionStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from modelcycle.errors import InvalidInputError

__all__ = [
    "MAX_ALIAS_NODES", "MAX_DEPTH", "MappingNode", "Node", "SafeLoader", "ScalarNode", "SequenceNode", "YAMLError", "compose", "construct", "load",
]

# A hand-written config that uses anchors for defaults expands to tens or hundreds of values; a "billion laughs"
# document needs millions. Ten thousand leaves room for any real file and still costs only milliseconds to walk.
MAX_ALIAS_NODES = 10_000
# Real configs nest fewer than ten levels; a hundred keeps PyYAML's recursive composer (three frames a level) far
# below Python's recursion limit, even when called from deep inside a test runner or a CLI framework.
MAX_DEPTH = 100


class _BoundedComposer(Composer):
    """A composer that counts what aliases expand to and how deep collections nest, and refuses a document that goes too far.

    Every node is counted once where it is written; an alias counts the whole expanded size of its anchor's value
    (aliases inside that value included), each time it is used. That expanded size is what anything walking the
    result pays, so it is what is bounded.
    """

    source: str = "YAML"
    error: type[Exception] = InvalidInputError

    def __init__(self) -> None:
        Composer.__init__(self)
        self._depth = 0
        self._count = 0  # nodes composed so far, each alias counted at its anchor's expanded size
        self._expanded = 0  # nodes reached through aliases
        self._sizes: dict[str, int] = {}  # anchor -> expanded size of its value
        self._open: set[str] = set()  # anchors whose value is being composed

    def _refuse(self, line: int, message: str) -> Exception:
        return self.error(f"{self.source}, line {line}: {message}")

    def _too_deep(self, line: int) -> Exception:
        return self._refuse(line, f"YAML nested more than {MAX_DEPTH} levels deep; flatten the document")

    def _read(self, single: Any) -> Any:
        try:
            return single()
        except yaml.MarkedYAMLError as e:
            # libyaml's scanner reads ahead and has its own limit (1000 flow levels): the same refusal, in the same words.
            if e.problem == "exceeded maximum nesting depth" and e.problem_mark is not None:
                raise self._too_deep(e.problem_mark.line + 1) from None
            raise

    def compose_document(self) -> Any:
        node = Composer.compose_document(self)
        self._sizes, self._open = {}, set()  # anchors are per document
        return node

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        line = event.start_mark.line + 1
        anchor = event.anchor
        if isinstance(event, AliasEvent):
            if anchor in self._open:
                raise self._refuse(line, f"the YAML alias *{anchor} is used inside its own anchor &{anchor}, so it never ends; "
                                         "remove it or point it at another value")
            size = self._sizes.get(anchor, 0)  # an undefined alias is reported by PyYAML itself
            self._expanded += size
            if self._expanded > MAX_ALIAS_NODES:
                raise self._refuse(line, f"YAML aliases expand to more than {MAX_ALIAS_NODES:,} values; write the values out or use fewer aliases")
            self._count += size
            return Composer.compose_node(self, parent, index)
        nested = isinstance(event, CollectionStartEvent)
        if nested:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise self._too_deep(line)
        before = self._count
        self._count += 1
        if anchor is not None:
            self._open.add(anchor)
        node = Composer.compose_node(self, parent, index)
        if anchor is not None:
            self._open.discard(anchor)
            self._sizes[anchor] = self._count - before
        if nested:
            self._depth -= 1
        return node


class _PureSafeLoader(_BoundedComposer, yaml.SafeLoader):
    """PyYAML's pure-Python safe loader with the bounded composer."""

    def __init__(self, stream: str | bytes) -> None:
        yaml.SafeLoader.__init__(self, stream)
        _BoundedComposer.__init__(self)


_LOADERS: list[type[_BoundedComposer]] = [_PureSafeLoader]

if getattr(yaml, "__with_libyaml__", False):

    class _CSafeLoader(_BoundedComposer, yaml.CSafeLoader):  # type: ignore[misc]
        """libyaml's parser (fast) feeding the bounded composer, which comes first so that it builds the nodes."""

        def __init__(self, stream: str | bytes) -> None:
            yaml.CSafeLoader.__init__(self, stream)
            _BoundedComposer.__init__(self)

    _LOADERS.insert(0, _CSafeLoader)

SafeLoader: type[_BoundedComposer] = _LOADERS[0]
"""The loader ``load`` and ``compose`` use: libyaml's parser when PyYAML was built with it, else the pure one."""


def _loader(text: str | bytes, source: str, error: type[Exception]) -> Any:
    loader: Any = SafeLoader(text)  # type: ignore[call-arg]
    loader.source, loader.error = source, error
    return loader


def load(text: str | bytes, source: str = "YAML", error: type[Exception] = InvalidInputError) -> Any:
    """The Python value of one YAML document, like ``yaml.safe_load`` but with bounded aliases and nesting.

    Args:
        text: the document.
        source: what to call it in messages, usually the file's path.
        error: the exception class raised for a document that is refused (e.g. the caller's own error type).

    Returns:
        The document's value (``None`` for an empty document).

    Raises:
        YAMLError: the text is not valid YAML (callers keep their own message for it).
        InvalidInputError: (or ``error``) aliases expand to more than ``MAX_ALIAS_NODES`` values, an alias is used inside
            its own anchor, or collections nest deeper than ``MAX_DEPTH``; the message names the source and the line.

    Example:
        >>> load("defaults: &d {lr: 0.1, depth: 3}\\nrun: {<<: *d, depth: 5}\\n")["run"]
        {'lr': 0.1, 'depth': 5}
        >>> try:
        ...     load("a: &a [*a]", source="config.yaml")
        ... except InvalidInputError as e:
        ...     print(e)
        config.yaml, line 1: the YAML alias *a is used inside its own anchor &a, so it never ends; remove it or point it at another value
    """
    loader = _loader(text, source, error)
    try:
        return loader._read(loader.get_single_data)
    finally:
        loader.dispose()


def compose(text: str | bytes, source: str = "YAML", error: type[Exception] = InvalidInputError) -> Node | None:
    """The node tree of one YAML document (each node knows its line), with the same bounds as ``load``.

    Merge keys (``<<: *defaults``) are already applied: a mapping's pairs include the merged ones, the mapping's own
    keys coming after them so that they win. Turn a node into its value with ``construct``.

    Args:
        text: the document.
        source: what to call it in messages, usually the file's path.
        error: the exception class raised for a document that is refused.

    Returns:
        The root node, or ``None`` for an empty document.

    Raises:
        YAMLError: the text is not valid YAML.
        InvalidInputError: (or ``error``) the document is refused, as in ``load``.

    Example:
        >>> node = compose("base: &b {x: 1}\\nmine:\\n  <<: *b\\n  y: 2\\n")
        >>> [(k.value, k.start_mark.line + 1) for k, _ in node.value[1][1].value]
        [('x', 1), ('y', 4)]
    """
    loader = _loader(text, source, error)
    try:
        node = loader._read(loader.get_single_node)
        seen: set[int] = set()
        todo = [node] if node is not None else []
        while todo:  # a loop, not recursion: shared (aliased) nodes are visited once
            n = todo.pop()
            if id(n) in seen:
                continue
            seen.add(id(n))
            if isinstance(n, MappingNode):
                loader.flatten_mapping(n)
                todo.extend(part for pair in n.value for part in pair)
            elif isinstance(n, SequenceNode):
                todo.extend(n.value)
        return node
    finally:
        loader.dispose()


def construct(node: Node) -> Any:
    """The Python value of a node from ``compose`` (safe types only), without re-serialising it.

    Raises:
        YAMLError: the node has a tag no safe constructor knows, or a key that cannot be a key.

    Example:
        >>> construct(compose("[1, two, 3.5, null]"))
        [1, 'two', 3.5, None]
    """
    return SafeConstructor().construct_document(node)
