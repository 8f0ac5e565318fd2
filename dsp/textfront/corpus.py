"""LLM-style replies for measuring the text front end (and, later, judging it end to end)."""

from __future__ import annotations

REPLIES: tuple[str, ...] = (
    "**Sure!** Here's the plan:\n1. Book the *table* for 7:30 PM.\n2. Call the venue at "
    "+1 (555) 123-4567.\n3. Confirm by **Friday, Dec 5**.",
    "Great news 🎉 your order #48213 has shipped 😊 It should arrive in 3-5 business days. "
    "Track it at https://example.com/track?id=48213 👍",
    "Your invoice of $1,234.56 is due on 12/05/2026. You can pay online or email "
    "billing@example.com if you have questions.",
    "## Summary\n\n- Revenue grew **12.5%** to $1.5 million in 2025.\n- Costs fell by about "
    "$200k.\n- Headcount is now 1,204 people across 3 offices.",
    "The meeting is on 2026-12-05 at 15:30 CET and should take about 45 min. Dr. Smith will "
    "present the Q3 results, e.g. the new API usage numbers.",
    "It's 72°F (about 22°C) in San Francisco today, with winds at 15 mph. Tomorrow looks "
    "cooler, around 64°F, with a 30% chance of rain.",
    "Well <laugh> that was funny. <sigh> Anyway, let's go through the next steps together.",
    "To install it, run `pip install morpheus-tts` and then start the server:\n\n```bash\n"
    "morpheus --port 5005\n```\n\nThen open http://localhost:5005 in your browser.",
    "| Plan | Price | Users |\n|---|---|---|\n| Basic | $9/mo | 1 |\n| Pro | $29/mo | 5 |\n"
    "| Team | $99/mo | 25 |",
    "The FBI and NASA both use this format. In the U.S., the 1st and 22nd of each month are "
    "billing days, vs. the 15th in the EU.",
    "> Note: the file is 2.5 GB, so the download may take ~10 minutes on a 50 Mbps line.",
    "Follow @morpheus_tts and check #VoiceAI for updates. Our next release, v2.1.0, ships "
    "March 3rd, 2026 at 9:00 AM PT.",
    "Absolutely! The recipe needs 1/2 cup of sugar, 3/4 cup of flour and 2 eggs. Bake at "
    "350°F for 25-30 minutes.",
    "I found 3 flights: the 6:15 AM departure costs €189, the 11:40 AM one €214, and the "
    "evening flight at 19:05 is £156.",
    "Step 1: open **Settings** → **Privacy**. Step 2: turn off *Location History*. That's "
    "it ✓",
    "The population of Tokyo is roughly 37.4 million, while London has about 9 million "
    "people. Both cities date back centuries, to 1457 and 47 AD respectively.",
    "Here are your options:\n- **Option A**: faster, but costs $5.50 more per month.\n- "
    "**Option B**: slower, with 1 TB of storage.\n- **Option C**: the 24/7 support plan.",
    "Your appointment with Dr. Patel is confirmed for Tuesday at 10:30 AM at 221 Baker St. "
    "Please arrive 15 minutes early.",
    "Sorry, I couldn't find that. Try searching on [the help center](https://help.example.com"
    "/articles/123) or call 1-800-555-0199.",
    "In the 1990s, only about 2% of households had internet access; by 2020 it was over 90%."
    " That's a 45x increase in 30 years.",
    "<speak>Hello <break time=\"1s\"/> and welcome back. I'll read your messages now.</speak>",
    "The train leaves from platform 9 at 08:45 and arrives at 13:20, so the trip takes 4 h "
    "35 min. Tickets start at ¥12,000.",
    "Quick math: 5 * 3 = 15, and x**2 for x = 4 is 16. The snake_case variable __init__ is "
    "set in config.py.",
    "Thanks for waiting! 🙏 Your refund of $42.00 was processed on Nov 28 and should appear "
    "within 5–7 business days.",
)


def segments(max_chars: int = 120) -> list[str]:
    """The replies, one after another, cut at the last space before `max_chars`."""
    out: list[str] = []
    rest = "\n\n".join(REPLIES)
    while len(rest) > max_chars:
        cut = rest.rfind(" ", 0, max_chars)
        cut = cut if cut > 0 else max_chars
        out.append(rest[:cut + 1])
        rest = rest[cut + 1:]
    if rest:
        out.append(rest)
    return out


__all__ = ["REPLIES", "segments"]
