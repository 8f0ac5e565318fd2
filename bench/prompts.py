"""The benchmark's fixed prompts: the same text for every backend, transport and peer.

SENTENCES are about 120 characters (a chat reply's first sentence), SMART_HOME are the short
answers a voice assistant speaks, REPLY_SENTENCES the sentences a conversational agent's replies
are drawn from (1-3 of them, about 2.5 s of speech each: the capacity part), PARAGRAPH is about 1,000 characters (8 sentences, about a
minute of speech) and NARRATION is about five minutes of speech with the bundled Piper voice.
"""

from __future__ import annotations

SENTENCES: tuple[str, ...] = (
    "Hello there! Thanks for calling the Morpheus help line, where every question gets a clear "
    "answer in a friendly, natural voice.",
    "Your package left the warehouse this morning and should arrive on Thursday afternoon, "
    "between two and five o'clock.",
    "I found three Italian restaurants within walking distance; the closest one is open until "
    "eleven and has a table for two.",
    "The meeting has been moved to Friday at ten, and I have already sent the new invitation "
    "to everyone on the team.",
    "Sure, here is a quick summary: sales rose by twelve percent last quarter, mostly thanks "
    "to the new online store.",
)

SMART_HOME: tuple[str, ...] = (
    "Okay, turning off the kitchen lights.",
    "It is twenty-one degrees in the living room.",
    "The front door is locked.",
    "Timer set for ten minutes.",
    "Playing jazz in the bedroom.",
    "Tomorrow will be sunny, with a high of eighteen degrees.",
)

REPLY_SENTENCES: tuple[str, ...] = (
    "Sure, I can help with that.",
    "Your appointment is on Tuesday at three.",
    "The store closes at nine tonight.",
    "I have added milk to your shopping list.",
    "That flight is delayed by forty minutes.",
    "Would you like me to book a table?",
    "The weather looks clear for the weekend.",
    "Your order shipped this morning.",
    "I could not find that contact, sorry.",
    "It takes about twenty minutes by train.",
    "Let me check that for you.",
    "The total comes to forty two dollars.",
    "Great, the reminder is set for six.",
    "Do you want the short version or the details?",
    "Traffic is light on the usual route.",
    "Your balance is a little over three hundred.",
    "I sent the message to Anna.",
    "The meeting room on the second floor is free.",
    "That recipe needs two eggs and a cup of flour.",
    "Yes, the pharmacy delivers on Sundays.",
    "Okay, I cancelled the alarm.",
    "The next bus leaves in eight minutes.",
    "I am not sure, but I can look it up.",
    "Your package is at the front desk.",
)

PARAGRAPH = (
    "The river ran quietly past the old mill, carrying leaves toward the sea. "
    "Nobody in the village remembered when the wheel had last turned. "
    "Doctor Adams said the water was three degrees warmer than the year before. "
    "Still, the children came every evening, and they listened, and they waited. "
    "Some said the mill would wake again; others laughed, but not unkindly. "
    "On the last night of summer, a light appeared in the upper window. "
    "By morning the wheel was turning, slowly at first, then with a steady rhythm. "
    "And the whole village gathered on the bridge to hear it sing. "
    "The old men said it sounded just as it had when they were boys, only a little slower. "
    "The baker brought bread still warm from the oven, and the schoolteacher brought her "
    "violin. "
    "Even the swallows, which had nested under the eaves for years, circled the roof to see. "
    "Nobody could say who had mended the wheel, or why, or how it had been done in one night. "
    "But as the sun rose over the hills, nobody really wanted to ask."
)

NARRATION = " ".join((
    PARAGRAPH,
    "The miller's granddaughter, Elena, had come back from the city with a toolbox and a "
    "notebook full of drawings. She had spent the whole spring in the loft, replacing rotten "
    "beams, oiling the great iron axle, and fitting new paddles cut from larch. Nobody had "
    "asked her to do it. When people asked why, she only shrugged and said that a river "
    "should have something to do. The baker thought she was wasting her time. The "
    "schoolteacher brought her lunch every Saturday and stayed to hand her nails. By June, "
    "the mill smelled of fresh wood and linseed oil, and the swallows had moved back under "
    "the eaves.",
    "The first time the wheel turned, it groaned so loudly that the dogs barked across the "
    "valley. Elena stood in the doorway with her hands over her ears, laughing. Then the "
    "groaning softened into a creak, and the creak into a low, even hum, like a cello "
    "holding one long note. Inside, the millstones began to move. They were slow and "
    "patient, and they filled the room with a sound that felt older than the village itself. "
    "The schoolteacher said it sounded like the building was breathing again. The baker, who "
    "had come to complain, stayed for an hour and said nothing at all.",
    "Within a month, farmers from three valleys were bringing their grain. They came in old "
    "trucks and on tractors, and one of them came with a horse and cart, because he said the "
    "horse would want to see it. Elena kept a ledger on the counter and wrote down every "
    "sack. She charged less than the factory in town, and the flour was better, coarse and "
    "sweet and full of the smell of the fields. The baker ordered twenty sacks for the "
    "autumn. He told everyone it was a business decision, but he was seen standing on the "
    "bridge in the evenings, listening to the wheel like the children did.",
    "Not everything went well. In September a storm brought the river up to the doorstep, "
    "and a tree trunk jammed against the wheel and snapped two paddles. Elena worked through "
    "the night in the rain, with the schoolteacher holding a lamp and the baker pulling on a "
    "rope until his hands bled. By dawn the trunk was free. The wheel was crooked, and it "
    "limped for a week until new paddles could be cut, but it never stopped turning. People "
    "said afterwards that the storm had tested the mill, and that the mill had passed. "
    "Elena said it was the people who had passed, and that the mill had only watched.",
    "When winter came, the river slowed and the wheel slowed with it. Ice formed along the "
    "banks, and on the coldest mornings the paddles wore thin white beards. Elena did not "
    "mind. She used the quiet weeks to repair the roof and to teach two teenagers from the "
    "village how to dress a millstone. They were clumsy at first, and one of them cut his "
    "thumb, but by the new year they could do it almost as well as she could. In the "
    "evenings they sat by the stove and read her grandfather's old account books, which "
    "listed every customer for sixty years in small, careful handwriting.",
    "In the spring, Elena packed her toolbox again. The city had offered her work, and she "
    "had said yes. On her last evening the whole village gathered on the bridge, as they had "
    "the summer before. Nobody made a speech. The children threw flowers into the water and "
    "watched them ride the current under the wheel and out toward the sea. The two teenagers "
    "stood in the doorway of the mill with their arms folded, trying to look like owners. "
    "And the wheel kept turning, slowly and steadily, singing its one long note to anyone "
    "who stopped to listen.",
    "That summer the teenagers ran the mill on their own. They made mistakes, of course. "
    "They let the hopper run empty twice, and once they ground a whole sack of barley that "
    "had been meant for seed, and had to drive to the next valley to apologise. But the "
    "farmers kept coming, and the ledger kept filling, and in August a letter arrived from "
    "the city with a photograph of Elena standing on a scaffold beside a bridge. On the back "
    "she had written only three words: keep it turning. They pinned the photograph above "
    "the counter, next to the old account books, where everyone could see it.",
    "Years later, a traveller passing through asked the baker about the mill. The baker was "
    "old by then, and the teenagers were grown, with children of their own who played on the "
    "bridge in the evenings. He took the traveller inside and showed him the ledger on the "
    "counter, still kept in small, careful handwriting, and the paddles of pale larch, and "
    "the crooked one that nobody had ever wanted to replace. The traveller asked who had "
    "built it all. The baker thought for a long time. Then he said that a river should have "
    "something to do, and so should people, and that the rest was just carpentry. The "
    "traveller wrote that down, thanked him, and walked on toward the sea.",
))

def different_texts(count: int, chars: int = 1000) -> tuple[str, ...]:
    """`count` different texts of about `chars` characters (whole sentences of the narration,
    each starting further on), for streams that start at once: each has its own first
    sentence, as the streams of different users do."""
    import re

    sentences = re.split(r"(?<=[.!?])\s+", NARRATION)
    step = max(1, (len(sentences) - chars // 60) // max(1, count))
    texts = []
    for i in range(count):
        start, text = (i * step) % len(sentences), ""
        while len(text) < chars:
            text = f"{text} {sentences[start % len(sentences)]}".strip()
            start += 1
        texts.append(text)
    return tuple(texts)


__all__ = ["NARRATION", "PARAGRAPH", "REPLY_SENTENCES", "SENTENCES", "SMART_HOME", "different_texts"]
