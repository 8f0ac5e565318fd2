"""CMU ARPAbet (as ElevenLabs' cmu-arpabet phoneme rules and CMUdict spell it) to IPA."""

from __future__ import annotations

_VOWELS = {
    "AA": "ɑ", "AE": "æ", "AH": "ʌ", "AO": "ɔ", "AW": "aʊ", "AX": "ə", "AXR": "ɚ", "AY": "aɪ",
    "EH": "ɛ", "ER": "ɝ", "EY": "eɪ", "IH": "ɪ", "IX": "ɨ", "IY": "i", "OW": "oʊ", "OY": "ɔɪ",
    "UH": "ʊ", "UW": "u", "UX": "ʉ",
}
_CONSONANTS = {
    "B": "b", "CH": "tʃ", "D": "d", "DH": "ð", "DX": "ɾ", "EL": "l̩", "EM": "m̩", "EN": "n̩",
    "F": "f", "G": "ɡ", "HH": "h", "H": "h", "JH": "dʒ", "K": "k", "L": "l", "M": "m", "N": "n",
    "NG": "ŋ", "NX": "ɾ̃", "P": "p", "Q": "ʔ", "R": "ɹ", "S": "s", "SH": "ʃ", "T": "t", "TH": "θ",
    "V": "v", "W": "w", "WH": "ʍ", "Y": "j", "Z": "z", "ZH": "ʒ",
}
_STRESS = {"1": "ˈ", "2": "ˌ", "0": ""}


def arpabet_to_ipa(arpabet: str) -> str | None:
    """"K AH0 K AO1 R OW0" -> "kʌkˈɔɹoʊ" (stress marked on the vowel); None if a symbol is unknown.

    AH0 is a schwa, as in CMUdict's usage. The stress mark goes right before the stressed
    vowel, not at the syllable's start: finding syllable onsets would need phonotactics.
    """
    out: list[str] = []
    for sym in arpabet.upper().split():
        base, stress = (sym[:-1], sym[-1]) if sym[-1:] in _STRESS else (sym, "")
        if base in _VOWELS:
            ipa = "ə" if base == "AH" and stress == "0" else _VOWELS[base]
            out.append(_STRESS.get(stress, "") + ipa)
        elif base in _CONSONANTS and not stress:
            out.append(_CONSONANTS[base])
        else:
            return None
    return "".join(out) or None


__all__ = ["arpabet_to_ipa"]
