"""Markdown blocks, line by line: headings, list items, quotes, tables, rules, fenced code.

What a listener hears (the decisions, documented for the README):
- A heading, a list item and a table row each end as a sentence ("." added when the line has
  no closing punctuation), with a pause of item_pause_ms between such lines; a blank line or a
  rule is a pause of paragraph_pause_ms.
- List markers are not read: a person reading a numbered plan aloud mostly just pauses between
  steps. list_numbers=True says the number ("Two, book the table").
- A table is read a row at a time, its cells joined by commas; the |---| separator is silent.
- A fenced code block is not read by default: the listener hears code_note once ("Code
  omitted."), which tells them there is something to look at; CodePolicy.SKIP is silent,
  CodePolicy.READ reads the lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dsp.textfront.inline import Atom, SayAs, inline
from dsp.textfront.options import CodePolicy, FrontOptions
from dsp.textfront.pieces import Pause, Piece, Say

_FENCE = re.compile(r"[ \t]{0,3}(`{3,}|~{3,})")
_RULE = re.compile(r"[ \t]{0,3}([-*_=])(?:[ \t]*\1){2,}[ \t]*")
_HEADING = re.compile(r"[ \t]{0,3}(#{1,6})(?:[ \t]+|$)")
_QUOTE = re.compile(r"[ \t]{0,3}(?:>[ \t]?){1,10}")
_ITEM = re.compile(r"[ \t]{0,12}(?:[-*+•‣◦▪–]|(\d{1,3})[.)])[ \t]+(?:\[[ xX]\][ \t]+)?")
_ROW = re.compile(r"[ \t]{0,3}\|[ \t]*")
_SEPARATOR = re.compile(r"[ \t|:-]*-[ \t|:-]*")
_CLOSING_HASHES = re.compile(r"[ \t]+#+[ \t]*$")
_TRAILING_PIPE = re.compile(r"[ \t]*\|[ \t]*$")
_ITEMY = frozenset({"item", "heading", "row"})
_ENDS = ".!?:;"


@dataclass
class BlockState:
    """Where the front is in the client's document, carried from unit to unit."""

    at_line_start: bool = True
    kind: str = "para"  # this line: para | item | heading | row | code | quiet
    fence: str = ""  # the fence that opened the code block we are in ("" outside)
    blank: bool = False  # a blank line, a rule or a code block since the last content line
    prev: str = ""  # kind of the last content line ("" before any)
    tail: str = ""  # the last character said on this line, "" if nothing yet


def _tail(items: list[Atom | Piece], current: str) -> str:
    for it in reversed(items):
        text = it.text.strip() if isinstance(it, Atom) else it.spoken.strip()
        if text:
            return text[-1]
    return current


def _rstrip(items: list[Atom | Piece]) -> None:
    while items and isinstance(items[-1], Atom) and items[-1].exact and not items[-1].text.strip():
        items.pop()
    if items and isinstance(items[-1], Atom) and items[-1].exact:
        a = items[-1]
        items[-1] = Atom(a.text.rstrip(), a.start, a.start + len(a.text.rstrip()), True)


class Blocks:
    """Turns one decided unit (part of one line, maybe ending with its newline) into atoms
    and pieces, keeping the document state."""

    def __init__(self, opts: FrontOptions, say_as: SayAs | None) -> None:
        self.opts = opts
        self.say_as = say_as
        self.st = BlockState()

    def unit(self, text: str, base: int, *, last: bool = False) -> list[Atom | Piece]:
        """last: the input ends with this unit, which closes its line."""
        st = self.st
        nl = text.endswith("\n")
        body_end = len(text) - 1 if nl else len(text)
        items: list[Atom | Piece] = []
        pos = 0
        if st.at_line_start:
            st.at_line_start = False
            pos = self._line_start(text[:body_end], base, items)
        if st.kind == "code" and self.opts.code is CodePolicy.READ:
            items += inline(text[pos:body_end], base + pos, self.opts, row=False, say_as=None)
        elif st.kind not in ("code", "quiet"):
            end = body_end
            if (nl or last) and st.kind == "heading" and (m := _CLOSING_HASHES.search(text, pos, end)):
                end = m.start()
            if (nl or last) and st.kind == "row" and (m := _TRAILING_PIPE.search(text, pos, end)):
                end = m.start()
            items += inline(text[pos:end], base + pos, self.opts, row=st.kind == "row",
                            say_as=self.say_as)
        st.tail = _tail(items, st.tail)
        if nl or last:
            if st.kind in _ITEMY and st.tail not in _ENDS:
                _rstrip(items)  # "item ." -> "item."
            items += self.line_end(base + body_end, newline=nl)
        return items

    def line_end(self, at: int, *, newline: bool) -> list[Atom | Piece]:
        """Close the current line (at source offset `at`, its newline if `newline`)."""
        st = self.st
        items: list[Atom | Piece] = []
        if st.kind in _ITEMY and st.tail and st.tail not in _ENDS:
            items.append(Atom(".", at, at, False))
        if st.tail and st.kind != "quiet" and newline:
            items.append(Atom("\n", at, at + 1, True))
        if st.tail and st.kind not in ("quiet", "code"):
            st.prev = st.kind
        st.at_line_start, st.tail = True, ""
        if st.kind != "code":
            st.kind = "para"
        return items

    def _line_start(self, line: str, base: int, items: list[Atom | Piece]) -> int:
        """Read the line's block markers; returns where its inline text starts."""
        st, opts = self.st, self.opts
        if st.fence:
            m = _FENCE.match(line)
            if m and m[1][0] == st.fence[0] and len(m[1]) >= len(st.fence) and not line[m.end():].strip():
                st.fence, st.kind, st.blank = "", "quiet", True
            else:
                st.kind = "code"
            return len(line) if st.kind == "quiet" else 0
        if m := _FENCE.match(line):
            st.fence, st.kind = m[1], "quiet"
            if opts.code is CodePolicy.READ:
                return len(line)
            if st.prev:
                items.append(Pause(base, base, opts.paragraph_pause_ms))
            if opts.code is CodePolicy.NOTE and opts.code_note:
                items.append(Say(base, base + len(line), opts.code_note + "\n"))
                st.prev = "code"
            st.blank = True
            return len(line)
        if not line.strip() or _RULE.fullmatch(line):
            st.kind, st.blank = "quiet", st.blank or bool(st.prev)
            return len(line)
        pos, kind = 0, "para"
        if m := _QUOTE.match(line):
            pos = m.end()
        number = ""
        if m := _HEADING.match(line, pos):
            pos, kind = m.end(), "heading"
        elif m := _ITEM.match(line, pos):
            pos, kind, number = m.end(), "item", m[1] or ""
        elif _ROW.match(line, pos):
            if _SEPARATOR.fullmatch(line, pos):
                st.kind = "quiet"
                return len(line)
            pos, kind = _ROW.match(line, pos).end(), "row"  # type: ignore[union-attr]
        if st.prev:
            if st.blank:
                items.append(Pause(base, base, opts.paragraph_pause_ms))
            elif kind in _ITEMY or st.prev in _ITEMY:
                items.append(Pause(base, base, opts.item_pause_ms))
        st.kind, st.blank = kind, False
        if number and opts.list_numbers:
            at = base + line.index(number, 0, pos)
            items.append(Atom(number, at, at + len(number), True))
            items.append(Atom(", ", at + len(number), at + len(number) + 1, False))
        return pos


__all__ = ["BlockState", "Blocks"]
