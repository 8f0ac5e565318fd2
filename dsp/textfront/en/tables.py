"""English word tables: units, currencies, months, abbreviations, acronyms read as words."""

from __future__ import annotations

# unit -> (singular, plural). SPACED units are read after a number with or without a space;
# GLUED ones (single letters, ambiguous as words) only when written against the digits ("5m").
SPACED_UNITS: dict[str, tuple[str, str]] = {
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "m/s": ("meter per second", "meters per second"),
    "mph": ("mile per hour", "miles per hour"), "kph": ("kilometer per hour", "kilometers per hour"),
    "km": ("kilometer", "kilometers"), "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"), "nm": ("nanometer", "nanometers"),
    "kg": ("kilogram", "kilograms"), "mg": ("milligram", "milligrams"),
    "lb": ("pound", "pounds"), "lbs": ("pound", "pounds"), "oz": ("ounce", "ounces"),
    "°C": ("degree Celsius", "degrees Celsius"), "°F": ("degree Fahrenheit", "degrees Fahrenheit"),
    "ºC": ("degree Celsius", "degrees Celsius"), "ºF": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°": ("degree", "degrees"),
    "ms": ("millisecond", "milliseconds"), "µs": ("microsecond", "microseconds"),
    "sec": ("second", "seconds"), "secs": ("second", "seconds"),
    "min": ("minute", "minutes"), "mins": ("minute", "minutes"),
    "hr": ("hour", "hours"), "hrs": ("hour", "hours"),
    "KB": ("kilobyte", "kilobytes"), "MB": ("megabyte", "megabytes"),
    "GB": ("gigabyte", "gigabytes"), "TB": ("terabyte", "terabytes"),
    "kB": ("kilobyte", "kilobytes"), "PB": ("petabyte", "petabytes"),
    "Kbps": ("kilobit per second", "kilobits per second"),
    "Mbps": ("megabit per second", "megabits per second"),
    "Gbps": ("gigabit per second", "gigabits per second"),
    "Hz": ("hertz", "hertz"), "kHz": ("kilohertz", "kilohertz"),
    "MHz": ("megahertz", "megahertz"), "GHz": ("gigahertz", "gigahertz"),
    "kW": ("kilowatt", "kilowatts"), "kWh": ("kilowatt hour", "kilowatt hours"),
    "MW": ("megawatt", "megawatts"), "mAh": ("milliamp hour", "milliamp hours"),
    "ml": ("milliliter", "milliliters"), "mL": ("milliliter", "milliliters"),
    "ft": ("foot", "feet"), "yd": ("yard", "yards"), "mi": ("mile", "miles"),
    "sq ft": ("square foot", "square feet"), "fps": ("frame per second", "frames per second"),
    "px": ("pixel", "pixels"), "dB": ("decibel", "decibels"),
}
GLUED_UNITS: dict[str, tuple[str, str]] = {
    "m": ("meter", "meters"), "g": ("gram", "grams"), "s": ("second", "seconds"),
    "h": ("hour", "hours"), "l": ("liter", "liters"), "L": ("liter", "liters"),
    "W": ("watt", "watts"), "V": ("volt", "volts"), "in": ("inch", "inches"),
    "t": ("ton", "tons"), "K": ("thousand", "thousand"), "k": ("thousand", "thousand"),
}

# symbol or code -> (singular, plural, cent singular, cent plural or "" when it has none)
CURRENCIES: dict[str, tuple[str, str, str, str]] = {
    "$": ("dollar", "dollars", "cent", "cents"), "USD": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"), "EUR": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"), "GBP": ("pound", "pounds", "penny", "pence"),
    "¥": ("yen", "yen", "", ""), "JPY": ("yen", "yen", "", ""),
    "₹": ("rupee", "rupees", "paisa", "paise"), "INR": ("rupee", "rupees", "paisa", "paise"),
    "CHF": ("franc", "francs", "centime", "centimes"),
}
MAGNITUDES = {"k": "thousand", "K": "thousand", "m": "million", "M": "million", "mn": "million",
              "b": "billion", "B": "billion", "bn": "billion", "t": "trillion", "T": "trillion",
              "thousand": "thousand", "million": "million", "billion": "billion",
              "trillion": "trillion"}

MONTHS = ("January February March April May June July August September October November "
          "December").split()
MONTH_BY_PREFIX = {m[:3].lower(): i + 1 for i, m in enumerate(MONTHS)}
MONTH_BY_PREFIX["sept"] = 9

# abbreviation (without its period) -> expansion. Titles go before a name: no period kept.
TITLES = {"Dr": "Doctor", "Mr": "Mister", "Mrs": "Missus", "Ms": "Miz", "Prof": "Professor",
          "Mt": "Mount", "Gen": "General", "Capt": "Captain", "Lt": "Lieutenant",
          "Sgt": "Sergeant", "Col": "Colonel", "Gov": "Governor", "Sen": "Senator",
          "Rep": "Representative", "Fig": "Figure"}
ABBREVIATIONS = {"e.g": "for example", "i.e": "that is", "etc": "et cetera", "vs": "versus",
                 "approx": "approximately", "cf": "compare", "Jr": "Junior", "Sr": "Senior",
                 "Inc": "Incorporated", "Ltd": "Limited", "Corp": "Corporation",
                 "Ave": "Avenue", "Blvd": "Boulevard", "Rd": "Road", "Dept": "Department",
                 "est": "established", "St": "Street"}

# All-capital words read as words, not letters (acronyms a person says as a word).
ACRONYM_WORDS = frozenset(
    "NASA NATO UNESCO UNICEF OPEC FIFA IKEA LASER RADAR SCUBA ASAP JSON YAML AIDS COVID NASDAQ "
    "GIF JPEG OK SIM PIN RAM ROM LAN WAN ZIP CAPTCHA ASCII LIDAR SONAR FOMO YOLO GIS POTUS "
    "WASM TOEFL SWAT INTERPOL BAFTA ANZAC NAFTA".split())
# Capitalised common words that shouting text contains: never spelled out.
SHOUTED_WORDS = frozenset(
    "A I AN AND ARE AS AT BE BUT BY DO FOR GO HE HI IF IN IS ME MY NO NOT OF OH ON OR OUR SO THE "
    "TO UP WE YES YOU ALL CAN GET HAS HAD HER HIS HOW NEW NOW ONE OUT TWO WAS WHO WHY BIG HOT "
    "TOP WOW".split())
# Initialisms with vowels that would otherwise be left as words (4-5 letters).
SPELLED_WORDS = frozenset("UUID GUID UEFI IEEE OLED IMHO IIRC EULA AMOLED HDMI ISBN".split())
# Words that join with the next or previous word: the streaming front never cuts next to them.
# Capitalised month names and abbreviations join the day after them ("Dec. 5").
STICKY_CASED = frozenset(MONTHS) | {m[:3] for m in MONTHS} | {"Sept"}
# (A word with a digit is sticky anyway, which covers "Dec 5", "5 km", "$1.5 million".)
STICKY_WORDS = frozenset({t.lower() for t in TITLES} | {a.lower() for a in ABBREVIATIONS}
                         | {"x", "no", "sq"})
