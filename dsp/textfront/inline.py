"""Inline markup of one decided unit: markdown emphasis, code, links, images, HTML and SSML tags,
entities, emoji. Yields atoms of text (with their source span) and the pieces SSML asks for.

Markdown boundary rules: `*` runs are never spoken (emphasis or not, matched or not), except
`x**2` (a power: "^") and `5 * 3` (spaced between digits: "×"), which the normalizer reads.
`_` runs go only at a word's edge (`__dunder__`, `_em_`): inside a word (`snake_case`) they stay
for the normalizer, which reads them as a space. `~~struck~~` text is dropped whole, as a reader
skips what the writer struck out. Link and image targets are never read: `[text](url)` is its
text, `![alt](url)` its alt text. Unclosed constructs are dropped markup, never read aloud.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass

from dsp.chunker import EMOTION_TAGS
from dsp.textfront.options import EmojiPolicy, FrontOptions
from dsp.textfront.pieces import Pause, Phonemes, Piece, Rate, Say, Tag
from dsp.textfront.ssml import break_ms, parse_attrs, phoneme_ipa, prosody_speed
from dsp.textfront.symbols import SPECIAL_CLASS, emoji_name


@dataclass(frozen=True, slots=True)
class Atom:
    text: str  # text for the normalizer
    start: int  # source span
    end: int
    exact: bool  # text == source[start:end]


Item = "Atom | Piece"
SayAs = Callable[[str, str, "str | None"], "str | None"]  # (interpret-as, text, format) -> words

_URL = r"""[^()\s]{0,2000}(?:\([^()\s]{0,300}\)[^()\s]{0,300})?(?:\s{1,3}"[^"\n]{0,300}")?"""
_INLINE = re.compile(rf"""
 (?P<comment><!--[\s\S]{{0,2000}}?-->)
|(?P<elem><(?P<ename>phoneme|sub|say-as)(?=[\s>/])(?P<eattrs>[^<>]{{0,400}})>(?P<ebody>[^<>]{{0,300}})</(?P=ename)\s{{0,3}}>)
|(?P<autolink><(?P<aurl>(?:https?|ftp|mailto):[^\s<>]{{1,2000}})>)
|(?P<tag></?(?P<tname>[A-Za-z][A-Za-z0-9:_-]{{0,30}})(?P<tattrs>\s[^<>]{{0,400}})?/?>)
|(?P<code>(?P<ticks>`{{1,3}})(?P<cbody>[^`\n]{{1,400}}?)(?P=ticks)(?!`))
|(?P<image>!\[(?P<alt>[^\[\]\n]{{0,300}})\]\({_URL}\))
|(?P<link>\[(?P<ltext>[^\[\]\n]{{0,300}})\]\({_URL}\))
|(?P<refl>\[(?P<rtext>[^\[\]\n]{{1,300}})\]\[[^\[\]\n]{{0,100}}\])
|(?P<foot>\[\^[^\]\s]{{1,50}}\])
|(?P<urltail>\]\({_URL}\))
|(?P<strike>~~[^~\n]{{1,400}}?~~)
|(?P<entity>&(?:\#[0-9]{{1,7}}|\#[xX][0-9A-Fa-f]{{1,6}}|[A-Za-z][A-Za-z0-9]{{1,31}});)
|(?P<power>(?<=[^\W_])\*\*(?=\d))
|(?P<times>(?<=\d[ ])\*(?=[ ]\d))
|(?P<uscore>(?<![^\W_])_+|_+(?![^\W_]))
|(?P<delim>\*+|~~|[\[\]`]|<(?=[A-Za-z/!?]))
|(?P<pipe>[ \t]{{0,20}}\|[ \t]{{0,20}})
|(?P<special>{SPECIAL_CLASS})
""", re.VERBOSE)
_TRIGGER = re.compile(rf"[<\[\]*_~`&|]|{SPECIAL_CLASS}")
_BLOCK_TAGS = frozenset("br p div li tr td th h1 h2 h3 h4 h5 h6 ul ol table s".split())
_NEVER = re.compile(rf"[*`<>\[\]]|{SPECIAL_CLASS}")  # dropped even inside code


def _exact(text: str, start: int, end: int, base: int, out: list[Atom | Piece]) -> None:
    if end > start:
        out.append(Atom(text[start:end], base + start, base + end, True))


def _plain(text: str, start: int, end: int, base: int, out: list[Atom | Piece]) -> None:
    """Text that may hold characters never spoken (code, link text): exact atoms around them."""
    pos = start
    for m in _NEVER.finditer(text, start, end):
        _exact(text, pos, m.start(), base, out)
        pos = m.end()
    _exact(text, pos, end, base, out)


def inline(text: str, base: int, opts: FrontOptions, *, row: bool,
           say_as: SayAs | None) -> list[Atom | Piece]:
    """Atoms and pieces for `text`, which starts at source offset `base`."""
    out: list[Atom | Piece] = []
    if not _TRIGGER.search(text):
        _exact(text, 0, len(text), base, out)
        return out
    pos = 0
    for m in _INLINE.finditer(text):
        _exact(text, pos, m.start(), base, out)
        pos = m.end()
        _token(m, text, base, opts, row, say_as, out)
    _exact(text, pos, len(text), base, out)
    return out


def _token(m: re.Match[str], text: str, base: int, opts: FrontOptions, row: bool,
           say_as: SayAs | None, out: list[Atom | Piece]) -> None:
    kind = m.lastgroup
    s, e = base + m.start(), base + m.end()
    if kind == "elem":
        _element(m, base, opts, say_as, out)
    elif kind == "tag":
        _tag(m, s, e, opts, out)
    elif kind == "autolink":
        _exact(text, m.start("aurl"), m.end("aurl"), base, out)
    elif kind == "code":
        _plain(text, m.start("cbody"), m.end("cbody"), base, out)
    elif kind == "image":
        _plain(text, m.start("alt"), m.end("alt"), base, out)
    elif kind == "link":
        _plain(text, m.start("ltext"), m.end("ltext"), base, out)
    elif kind == "refl":
        _plain(text, m.start("rtext"), m.end("rtext"), base, out)
    elif kind == "entity":
        ch = html.unescape(m.group())
        if ch == m.group():
            _exact(text, m.start(), m.end(), base, out)
        elif ch and (ch in "<>" or not _NEVER.search(ch)) and (ch.isprintable() or ch.isspace()):
            out.append(Atom(" " if ch.isspace() else ch, s, e, False))
    elif kind == "power":
        out.append(Atom("^", s, e, False))
    elif kind == "times":
        out.append(Atom("×", s, e, False))
    elif kind == "pipe":
        out.append(Atom(", " if row else " ", s, e, False))
    elif kind == "special" and opts.emoji is EmojiPolicy.NAME and (name := emoji_name(m.group())):
        out.append(Atom(f" {name} ", s, e, False))
    # comment, foot, urltail, strike, uscore, delim, special: markup, nothing spoken


def _tag(m: re.Match[str], s: int, e: int, opts: FrontOptions, out: list[Atom | Piece]) -> None:
    name = m["tname"].lower()
    closing = m.group().startswith("</")
    if name in EMOTION_TAGS:
        if not closing and name in opts.voiced_tags:
            out.append(Tag(s, e, name))
        return
    if name in _BLOCK_TAGS:
        out.append(Atom(" ", s, e, False))
        return
    if not opts.ssml:
        return
    attrs = parse_attrs(m["tattrs"] or "")
    if name == "break" and not closing:
        out.append(Pause(s, e, break_ms(attrs, opts.max_break_ms)))
    elif name == "prosody":
        speed = 1.0 if closing else prosody_speed(attrs)
        if speed is not None:
            out.append(Rate(s, e, speed))


def _element(m: re.Match[str], base: int, opts: FrontOptions, say_as: SayAs | None,
             out: list[Atom | Piece]) -> None:
    s, e = base + m.start(), base + m.end()
    body = m["ebody"]
    bs, be = m.start("ebody"), m.end("ebody")
    if opts.ssml:
        attrs = parse_attrs(m["eattrs"])
        name = m["ename"]
        if name == "sub" and attrs.get("alias", "").strip():
            out.append(Say(s, e, attrs["alias"].strip()))
            return
        if name == "phoneme" and opts.phonemes and (ipa := phoneme_ipa(attrs)):
            out.append(Phonemes(s, e, body.strip(), ipa))
            return
        if name == "say-as" and say_as is not None:
            said = say_as(attrs.get("interpret-as", ""), body, attrs.get("format"))
            if said:
                out.append(Say(s, e, said))
                return
    _plain(m.string, bs, be, base, out)


__all__ = ["Atom", "inline"]
