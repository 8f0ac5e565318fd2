"""The English normalizer's one tokenizing expression: every alternative bounded, tried in order.

At each position the first alternative that matches wins (URLs before e-mail before phone
numbers before dates before plain numbers, ...), so the order below is the precedence. No
alternative nests unbounded repetition, so matching is linear in the text (no catastrophic
backtracking on floods of digits, dots or letters).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from dsp.textfront.en.tables import GLUED_UNITS, SPACED_UNITS


def _alts(words: Iterable[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


UNIT_SP = _alts(SPACED_UNITS)
UNIT_GL = _alts(GLUED_UNITS)
MON = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
       r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)")
DAY = r"(?:3[01]|[12]\d|0?[1-9])"
NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)"
YEAR = r"(?:1\d{3}|20\d{2})"
_URL_END = r"""[^\s<>"'`.,;:!?)\]}]"""
_URL_CH = r"""[^\s<>"'`]"""
TLDS = "com|org|net|io|dev|ai|app|edu|gov|info|co|me|tv|ly|gg|xyz|tech|uk|de|fr|us|ca|au"

MASTER = re.compile(rf"""
 (?P<url>(?<![\w@])(?:https?://|ftp://|www\.){_URL_CH}{{0,2000}}{_URL_END})
|(?P<scheme>[A-Za-z][A-Za-z0-9+.-]{{1,15}}://)
|(?P<email>(?<![\w.+-])[A-Za-z0-9._%+-]{{1,64}}@[A-Za-z0-9-]{{1,63}}(?:\.[A-Za-z0-9-]{{1,63}}){{1,8}})
|(?P<domain>(?<![\w@./-])[A-Za-z0-9][A-Za-z0-9-]{{0,62}}(?:\.[A-Za-z0-9-]{{1,63}}){{0,4}}\.(?:{TLDS})(?![\w-]|\.\w)(?:/{_URL_CH}{{0,300}}{_URL_END})?)
|(?P<phone>(?<![\w+])(?:\+\d{{1,3}}[ .-]?|1[ .-])?(?:\(\d{{3}}\)[ ]?|\d{{3}}[ .-])\d{{3}}[ .-]\d{{4}}(?![\w-]))
|(?P<intl>(?<![\w+])\+\d{{1,3}}(?:[ .-]\(?\d{{1,4}}\)?){{2,5}}(?![\w-]))
|(?P<local>(?<![\w.-])\d{{3}}-\d{{4}}(?![\w-]))
|(?P<iso>(?<![\w-])(?P<iy>{YEAR})-(?P<im>0[1-9]|1[0-2])-(?P<id>0[1-9]|[12]\d|3[01])(?![\w-]))
|(?P<nd>(?<![\w/.-])(?P<na>{DAY})(?P<nsep>[/.-])(?P<nb>{DAY})(?P=nsep)(?P<nc>\d{{4}}|\d{{2}})(?![\w/-]|\.\d))
|(?P<md>(?<![\w.])(?P<mon>{MON})\.?[ ](?P<mday>{DAY})(?:st|nd|rd|th)?(?![\w:])(?:,?[ ](?P<myear>{YEAR})(?![\w:]))?)
|(?P<dm>(?<![\w.,])(?P<dday>{DAY})(?:st|nd|rd|th)?[ ](?:of[ ])?(?P<dmon>{MON})(?:\.(?![\w])|(?![\w.]))(?:,?[ ](?P<dyear>{YEAR})(?!\w))?)
|(?P<t12>(?<![\d:.])(?P<th>1[0-2]|0?[1-9])(?::(?P<tm>[0-5]\d))?(?::(?P<ts>[0-5]\d))?[ ]?(?P<ap>[AaPp])(?:[Mm]|\.[Mm]\.)(?!\w))
|(?P<t24>(?<![\d:.,])(?P<hh>[01]?\d|2[0-3]):(?P<mm>[0-5]\d)(?::(?P<ss>[0-5]\d))?(?![\d:]))
|(?P<money>(?<![\w.])(?P<neg>-)?(?P<cur>[$€£¥₹]|(?:USD|EUR|GBP|JPY|INR|CHF)[ ])[ ]?(?P<amt>{NUM})(?:\.(?P<cents>\d{{1,6}}))?(?!\d|,\d)(?:[ ](?P<magw>thousand|million|billion|trillion)|(?P<magl>bn|mn|[KkMmBbTt]))?(?:/(?P<per>mo|month|yr|year|hr|hour|day|wk|week|user|person|seat))?(?!\w))
|(?P<money2>(?<![\w.,])(?P<amt2>{NUM})(?:[.,](?P<cents2>\d\d))?[ ]?(?P<cur2>[€£¥₹$]|(?:USD|EUR|GBP|JPY|INR|CHF)(?!\w)))
|(?P<pct>(?<![\w.,])(?P<pneg>-)?(?P<pa>{NUM}(?:\.\d{{1,20}})?)(?:[ ]?[-–][ ]?(?P<pb>{NUM}(?:\.\d{{1,20}})?))?[ ]?%)
|(?P<decade>(?<![\w.])'?(?P<dec>1[1-9]\d0|20\d0|[2-9]0)s(?!\w))
|(?P<range>(?<![\w.,/-])(?P<ra>{NUM}(?:\.\d{{1,20}})?)(?:-|[ ]?[–—][ ]?)(?P<rb>{NUM}(?:\.\d{{1,20}})?)(?:[ ]?(?P<ru>{UNIT_SP})|(?P<rug>{UNIT_GL}))?(?![\w/-]|[.,]\d))
|(?P<ord>(?<![\w.,])(?P<on>\d{{1,9}})(?:st|nd|rd|th|ST|ND|RD|TH)(?!\w))
|(?P<frac>(?<![\w/.,])(?:(?P<fw>\d{{1,3}})[ ])?(?P<fn>\d{{1,3}})/(?P<fd>\d{{1,3}})(?![\w/]|[.,]\d))
|(?P<ufrac>(?<![\w.])(?P<uw>\d{{1,3}})?(?P<uf>[½⅓⅔¼¾⅛⅜⅝⅞]))
|(?P<dims>(?<![\w.,])(?P<da>\d{{1,5}})[x×](?P<db>\d{{1,5}})(?!\w))
|(?P<mult>(?<![\w.,])(?P<xn>{NUM}(?:\.\d{{1,20}})?)x(?!\w))
|(?P<meas>(?<![\w.,])(?P<mneg>-)?(?P<mn>{NUM}(?:\.\d{{1,20}})?)(?:[ ]?(?P<mu>{UNIT_SP})|(?P<mug>{UNIT_GL}))(?![\w/]))
|(?P<ver>(?<![\w.])v?(?P<vn>\d{{1,4}}(?:\.\d{{1,4}}){{2,4}})(?!\w|\.\w))
|(?P<num>(?:(?<![\w.,-])-)?(?<![\d.,])(?P<nv>{NUM})(?:\.(?P<nf>\d{{1,40}}))?(?!\d))
|(?P<hnum>(?<![\w&#])\#(?P<hn>\d{{1,9}})(?!\w))
|(?P<sharp>(?<![\w\#])(?P<sl>[A-G])\#(?![\w\#]))
|(?P<htag>(?<![\w&\#])\#(?P<ht>[A-Za-z][A-Za-z0-9_]{{0,49}})(?![\w:]))
|(?P<at>(?<![\w@.])@(?P<an>[A-Za-z0-9_]{{1,30}})(?![\w@:]))
|(?P<abbr>(?<![\w.])(?P<ab>[eE]\.g|[iI]\.e|etc|vs|approx|cf|est|Dr|Mr|Mrs|Ms|Prof|Mt|Gen|Capt|Lt|Sgt|Col|Gov|Sen|Rep|Fig|Jr|Sr|Inc|Ltd|Corp|Ave|Blvd|Rd|Dept|St|No)\.(?!\w))
|(?P<vs>(?<![\w.])vs(?![\w.]))
|(?P<mabbr>(?<![\w.])(?P<mab>Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.(?!\w))
|(?P<dotted>(?<![\w.])(?:[A-Za-z]\.){{2,6}}(?!\w))
|(?P<caps>(?<![\w'’.])(?P<cw>[A-Z]{{2,6}})(?P<cpl>s|'s|’s)?(?![\w'’]))
|(?P<arrow>->|=>|[→⇒⟶➡])
|(?P<approx>~(?=[ ]?\d)|≈)
|(?P<sym>[&+=±≥≤≠÷×^%@])
|(?P<cmp>(?<=[\s\d])[<>](?=[\s\d]))
|(?P<with>(?<![\w])w/(?=\s))
|(?P<slash>(?<=\w)/(?=\w))
|(?P<uscore>_{{1,50}})
|(?P<junk>[\\{{}}<>|\#~*`])
""", re.VERBOSE)

__all__ = ["MASTER"]
