#!/usr/bin/env python3
"""Build the MangaAssist sample intent dataset that ships with kdedge.

MangaAssist is the support chatbot of an imaginary online manga and comics store. Every
sentence, title and name below was written for kdedge; nothing is copied from a public
dataset. The data is licensed Apache-2.0 like the rest of the project.

Usage (stdlib only, deterministic for a given --seed):

    python examples/sample_data/build_mangaassist.py --out kdedge/samples/mangaassist

How a row is made:

* hand-written whole messages per intent and slice (standard, ambiguous, multi_intent,
  noisy, short) are used first;
* the rest is composed from hand-written pieces: an intent-specific core phrasing with
  ``[a|b]`` alternations and ``{slot}`` entities (invented titles, volumes, countries, fake
  order ids...), plus optional openers, closers and mild frustration; multi-intent rows glue
  a secondary aside from another intent onto the primary request; noisy rows pass a
  composed row through typos, slang, lowercasing and punctuation loss;
* rows are deduplicated on a normalised key (NFKC, casefold, PII masked, punctuation
  stripped, whitespace collapsed), so no two rows anywhere share it;
* the labeled rows are split 70/15/15 per label, keeping every row composed from the same
  core phrasing (its "group") in one split, so test rows are not paraphrases of train rows;
* unlabeled rows come from hand-written extras and from the core phrasings of train only.

A check runs at the end of every build and fails loudly if the data drifts out of spec.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

SEED = 20240611
N_UNLABELED = 500

# Labeled rows per intent: imbalanced like real support traffic.
LABEL_COUNTS = {
    "order_tracking": 268,
    "product_inquiry": 268,
    "return_request": 250,
    "out_of_scope": 170,
    "checkout_help": 150,
    "faq": 150,
    "shipping": 150,
    "recommendation": 150,
    "account_help": 135,
    "payment_issue": 135,
    "cancel_order": 110,
    "escalation": 64,
}

DEFINITIONS = {
    "order_tracking": "Where an order already placed is: status, tracking numbers, delays, "
    "'delivered' but not received.",
    "product_inquiry": "A specific title, volume or edition: in stock, price, format, "
    "language, release date, contents.",
    "return_request": "Returning or exchanging items (damaged, wrong, unwanted), return "
    "labels and the return window.",
    "out_of_scope": "Anything the store cannot help with: weather, jokes, code, other shops, "
    "personal advice, drawing or spoiling manga.",
    "checkout_help": "Placing an order: cart, checkout errors, promo codes, payment options "
    "offered, pre-ordering, gift card entry.",
    "faq": "Store policies and info: opening hours, locations, membership, reward points, "
    "gift cards, price matching, trade-ins.",
    "shipping": "Shipping in general: costs, methods, delivery times, international, "
    "customs (not where a placed order is).",
    "recommendation": "What to read or buy: similar series, gift ideas, genres, beginner picks.",
    "account_help": "Login, password, email or phone change, two-factor, profile settings, "
    "deleting the account.",
    "payment_issue": "Problems with money already moving: charged twice, card declined, "
    "wrong amount, refund not received.",
    "cancel_order": "Cancelling a placed order or pre-order, or removing items from one.",
    "escalation": "Rare, high risk: fraud or unauthorised charges, legal threats, "
    "chargebacks, angry demands for a manager, safety complaints.",
}

SLICES = ("standard", "ambiguous", "multi_intent", "noisy", "short")
SLICE_RATES = {"short": 0.04, "ambiguous": 0.055, "multi_intent": 0.065, "noisy": 0.10}
SLICE_OVERRIDES = {
    "escalation": {"short": 2, "ambiguous": 11, "multi_intent": 3, "noisy": 6},
    "out_of_scope": {"short": 7, "ambiguous": 15, "multi_intent": 2, "noisy": 17},
}
SPLIT_FRACTIONS = {"validation": 0.15, "test": 0.15}
SPLITS = ("train", "validation", "test")

# --------------------------------------------------------------------------------------
# Entities (all invented).
# --------------------------------------------------------------------------------------

TITLES = [
    "Tidebreaker",
    "Moonlit Bakery",
    "Iron Lotus",
    "Ghost Lantern Alley",
    "Paper Crane Detective",
    "Neon Ronin 2099",
    "Starfall Academy",
    "Ramen Knights",
    "Kitsune Inn",
    "Salt & Ashes",
    "Hollow Crown Chronicles",
    "Daybreak Pilots",
    "Garden of Clockwork Birds",
    "Sakura Mechanic",
    "Shinobi Courier",
    "Velvet Thunder",
    "Kōri no Ōkoku",
    "Étoile de Minuit",
    "Café Lumière",
    "Yūrei Express",
    "Mizu no Kokoro",
    "Hoshizora Nikki",
    "Last Train to Akane",
    "Pocket Dragon Diaries",
    "Blade of the Red Tide",
    "Lantern Fox",
    "Ōkami High",
    "Second Shift Heroes",
]
KANA_TITLES = ["ねこまちストリート", "ほしぞらノート"]

SLOTS: dict[str, list[str]] = {
    "item": [
        "volume {vol} of {title}",
        "{title} vol. {vol}",
        "{title} volume {vol}",
        "the {title} box set",
        "{title} vol {vol}",
        "the {format} edition of {title}",
        "volume {vol} of {title}",
        "{title} volume {vol}",
        "the first volume of {title}",
        "the latest {title} volume",
    ],
    "item2": ["volume {vol2} of {title2}", "{title2} vol. {vol2}", "the {title2} box set"],
    "format": [
        "hardcover",
        "paperback",
        "deluxe",
        "omnibus",
        "digital",
        "collector's",
        "3-in-1",
        "special",
        "anniversary",
    ],
    "format2": ["paperback", "hardcover", "deluxe", "omnibus", "standard"],
    "lang": ["English", "Japanese", "French", "Spanish", "German", "Italian"],
    "ago": [
        "a week ago",
        "ten days ago",
        "last Monday",
        "two weeks ago",
        "on the 4th",
        "over a month ago",
        "five days ago",
        "last weekend",
        "nearly three weeks ago",
        "on Sunday night",
        "eight days ago",
        "at the start of the month",
    ],
    "due": [
        "yesterday",
        "on Monday",
        "last Friday",
        "two days ago",
        "by the weekend",
        "at the start of this week",
        "on the 12th",
        "last Thursday",
    ],
    "from_when": [
        "last week",
        "last Monday",
        "the 4th",
        "Sunday night",
        "the start of the month",
        "last weekend",
    ],
    "due_plain": ["Tuesday", "Thursday", "the 14th", "Friday"],
    "past": ["yesterday", "on Tuesday", "last week", "two days ago", "this morning", "on Friday"],
    "since": ["Monday", "last Thursday", "the 3rd", "Sunday", "last week", "Tuesday morning"],
    "by": [
        "Friday",
        "Saturday",
        "the weekend",
        "my son's birthday on the 20th",
        "Christmas",
        "next Wednesday",
        "the 18th",
    ],
    "n": ["3", "4", "5", "6", "8", "10", "12", "five", "six", "nine", "ten", "eleven"],
    "reason": [
        "I already own it.",
        "It was a duplicate.",
        "I ordered the wrong one by mistake.",
        "It's not what I expected.",
        "The pages are coming loose.",
        "It's the wrong language.",
        "My kid lost interest in the series.",
        "It was a gift and they already have it.",
        "The print quality is really poor.",
        "The cover is different from the photo.",
        "",
        "",
    ],
    "damage": [
        "with a torn cover",
        "with a cracked spine",
        "water damaged",
        "with bent corners",
        "with pages missing",
        "in a crushed box",
        "with ink smudged across several pages",
        "with a big dent in the cover",
        "with the dust jacket ripped",
    ],
    "damage_verb": [
        "came with a torn cover",
        "has pages missing",
        "got crushed in transit",
        "is water damaged",
        "has a cracked spine",
        "has pages printed upside down",
        "arrived with a dent in the cover",
    ],
    "code": [
        "MANGA10",
        "SPRING15",
        "WELCOME5",
        "FREESHIP",
        "OTAKU20",
        "BDAY25",
        "PANEL12",
        "SUMMER5",
        "NEWVOL10",
    ],
    "code_phrase": [
        "the student code",
        "the newsletter code",
        "my birthday code",
        "the welcome code",
        "the code from your email",
        "the 10% code",
    ],
    "card_kind": ["debit card", "credit card", "Amex card", "prepaid card", "Visa", "Mastercard"],
    "step": ["payment", "shipping address", "review order", "delivery options", "billing"],
    "glitch": [
        "reloading",
        "freezing",
        "timing out",
        "showing a blank screen",
        "throwing an error",
        "sending me back to the cart",
    ],
    "paymethod": [
        "PayPal",
        "a debit card",
        "Apple Pay",
        "Google Pay",
        "Klarna",
        "a prepaid card",
        "store credit",
        "a bank transfer",
        "an Amex card",
    ],
    "weekday": ["Sundays", "Saturdays", "Mondays", "a weekday", "Friday evenings"],
    "city": ["Manchester", "Bristol", "Leeds", "Lyon", "Montréal", "Toronto", "downtown"],
    "holiday": [
        "Christmas Eve",
        "New Year's Day",
        "bank holiday Monday",
        "Easter Sunday",
        "Boxing Day",
    ],
    "tier": ["Plus", "Gold", "basic", "premium", "annual", "student"],
    "relative": ["sister", "partner", "roommate", "son", "dad", "best friend"],
    "group": ["students", "teachers", "libraries", "seniors", "book clubs", "schools"],
    "amount": ["£50", "$25", "€40", "100 dollars", "$75", "£20", "30 euros", "$60"],
    "amount2": ["£42", "$19.99", "€31.50", "$54", "£12.99"],
    "genre": [
        "fantasy",
        "romance",
        "horror",
        "mystery",
        "sci-fi",
        "sports",
        "slice-of-life",
        "comedy",
        "isekai",
        "historical drama",
        "cooking",
        "mecha",
        "action",
        "psychological thriller",
        "shōjo",
        "seinen",
        "adventure",
    ],
    "audience": [
        "a beginner",
        "a 10 year old",
        "my teenage son",
        "an adult who's never read manga",
        "my grandma",
        "a book club",
        "a teenager",
        "my 13 year old niece",
        "my boss",
    ],
    "length": ["short", "completed", "long-running", "one-volume", "five-volume", "finished"],
    "twist": [
        "less violent",
        "funnier",
        "with more romance",
        "shorter",
        "darker",
        "for younger readers",
        "with less fan service",
        "more grown-up",
    ],
    "feature": [
        "a strong female lead",
        "gorgeous art",
        "a twist ending",
        "found family",
        "lots of action",
        "a slow-burn romance",
        "an older protagonist",
        "no love triangle",
    ],
    "country": [
        "Canada",
        "Australia",
        "Germany",
        "the Netherlands",
        "Brazil",
        "Japan",
        "Mexico",
        "Ireland",
        "New Zealand",
        "Norway",
        "South Africa",
        "Singapore",
        "France",
        "Réunion",
        "Puerto Rico",
        "Poland",
        "Chile",
    ],
    "method": [
        "express shipping",
        "next-day delivery",
        "standard shipping",
        "tracked shipping",
        "economy post",
        "weekend delivery",
        "same-day delivery",
    ],
    "place": [
        "a PO box",
        "a parcel locker",
        "my office",
        "a hotel",
        "a military base",
        "a pickup point",
        "my university mailroom",
    ],
    "error": [
        "invalid credentials",
        "account not found",
        "too many attempts",
        "link expired",
        "something went wrong",
        "email not verified",
        "session expired",
    ],
    "device": ["phone", "iPad", "laptop", "work computer", "Android tablet"],
    "account_action": [
        "change my password",
        "change my username",
        "delete my account",
        "update the address saved in my profile",
        "turn on two-factor authentication",
        "change my display name",
        "unsubscribe from your emails",
        "merge my two accounts",
        "change my account language",
        "download my account data",
    ],
    "cancel_reason": [
        "ordered the wrong volume",
        "found it cheaper elsewhere",
        "ordered it twice",
        "changed my mind",
        "won't be home for the delivery",
        "used the wrong address",
        "already got it as a gift",
        "picked the wrong edition",
    ],
    "currency": ["pounds", "dollars", "euros", "yen"],
    "currency2": ["euros", "Canadian dollars", "pounds", "Australian dollars"],
    "last4": ["4821", "0937", "7714", "3302", "5569"],
    "city_any": ["Tokyo", "Kyoto", "Paris", "Chicago", "Sapporo", "Lisbon", "Seoul"],
    "subject": [
        "my dog",
        "me and my girlfriend",
        "my cat",
        "my D&D character",
        "my grandad",
        "a dragon eating sushi",
    ],
    "lang_code": ["Python", "JavaScript", "Java", "C++", "Rust", "PHP"],
    "bug": [
        "crashes on startup",
        "returns the wrong result",
        "won't compile",
        "throws an error I don't understand",
        "runs forever",
    ],
    "coding_task": [
        "reverse a string",
        "read a CSV file",
        "sort a dictionary by value",
        "centre a div",
        "connect to a database",
        "parse JSON",
    ],
    "joke_kind": ["funny", "dad", "anime", "programming", "knock-knock", "terrible"],
    "writing": ["poem", "fanfic", "short story", "rap verse", "haiku"],
    "other_store": [
        "the comic shop on Main Street",
        "the bookstore at the mall",
        "that electronics chain",
        "the supermarket near me",
        "the toy shop in town",
    ],
    "other_product": [
        "the new games console",
        "vinyl figures",
        "a drawing tablet",
        "board games",
        "cheap headphones",
        "anime bedsheets",
    ],
    "non_manga_thing": [
        "gaming chair",
        "drawing tablet",
        "rice cooker",
        "budget phone",
        "running shoe",
        "houseplant",
    ],
    "life_decision": [
        "quit my job to become an illustrator",
        "move to Japan",
        "text my ex",
        "dye my hair pink like an anime character",
        "take a gap year",
        "adopt a second cat",
    ],
    "jp_word": ["kawaii", "itadakimasu", "sugoi", "ganbatte", "yoroshiku", "natsukashii"],
    "school_topic": [
        "photosynthesis",
        "the French Revolution",
        "quadratic equations",
        "supply and demand",
        "how volcanoes work",
    ],
}

FIRST_NAMES = [
    "kenji",
    "maria",
    "sam",
    "aiko",
    "tom",
    "lena",
    "priya",
    "jordan",
    "yuki",
    "olu",
    "chloe",
    "marco",
    "hana",
    "dev",
    "zoe",
]
LAST_NAMES = [
    "tanaka",
    "silva",
    "okafor",
    "nguyen",
    "berg",
    "rossi",
    "kim",
    "walsh",
    "mori",
    "ortiz",
]

# --------------------------------------------------------------------------------------
# Generic pieces.
# --------------------------------------------------------------------------------------

OPENERS = [
    "Hi,",
    "Hi!",
    "Hello,",
    "Hello!",
    "Hey,",
    "Hey there,",
    "Good morning,",
    "Good evening.",
    "Hi there,",
    "Quick question:",
    "Hi team,",
    "Hello MangaAssist,",
    "Hiya,",
    "Excuse me,",
    "Sorry to bother you, but",
    "Hi, hope you're well.",
    "Morning!",
    "Hi again,",
    "Hello, it's me again.",
    "Um, hi.",
    "Konnichiwa!",
    "Yo,",
    "Question:",
    "Hi, I need some help.",
    "Hello, I have a question.",
    "Hey MangaAssist,",
]
CLOSERS = [
    "Thanks!",
    "Thank you.",
    "Thanks in advance.",
    "Cheers.",
    "Much appreciated.",
    "Thank you so much!",
    "Any help appreciated.",
    "Please let me know.",
    "Thanks a lot!",
    "ty",
    "Arigatou!",
    "Merci !",
    "🙏",
    "Thanks 🙂",
    "Have a nice day.",
    "Thanks, {name}",
    "Best, {name}",
    "Cheers, {name}",
    "Thanks for your help.",
    "Appreciate it!",
    "- {name}",
]
SIGNATURE_NAMES = [
    "Tomás",
    "Zoë",
    "Sam",
    "Aiko",
    "Priya",
    "Marco",
    "Léa",
    "Björn",
    "Kenji",
    "Olu",
    "Chloé",
    "Nadia",
    "Jun",
    "Ravi",
    "Hana",
    "Siobhán",
    "Mateus",
    "Inês",
    "Dana",
    "Yusuf",
]
FRUSTRATION = [
    "Ugh.",
    "Honestly,",
    "This is the second time I'm asking:",
    "Still waiting on an answer here.",
    "Come on,",
    "Seriously,",
    "Not impressed so far.",
    "I've already asked once.",
]
FRUSTRATED_INTENTS = {"order_tracking", "return_request", "account_help", "payment_issue"}
ANGRY_OPENERS = [
    "Unbelievable.",
    "Listen.",
    "Right, I've had enough.",
    "This is ridiculous.",
    "I am furious.",
    "Enough.",
    "I'm done being polite.",
    "",
]
ANGRY_CLOSERS = ["Sort it out.", "I'm waiting.", "Fix this.", "Today.", "Don't ignore this.", ""]

CONNECTORS = [
    "Also,",
    "Oh, and",
    "Unrelated, but",
    "One more thing:",
    "Side question:",
    "And while I'm here,",
    "Btw,",
    "Also quick one:",
    "Oh and also",
]
LEAD_INS = [
    "I also have a question about {topic}, but first:",
    "I'll ask about {topic} in a sec, but first,",
    "Before I get to {topic}, the main thing:",
]

# Lowercase the first word of a core after an opener only when it is one of these.
_STARTER_WORDS = """
where where's when what what's how can could is are do does did has have my the please
would will why any which should there there's tracking only cancel still your you volume
vol order checkout give suggest looking recommend anything something who who's some help
not tell write nobody somebody a an it it's this that just first since if in for to am
"""
COMMON_STARTERS = set(_STARTER_WORDS.split())

# --------------------------------------------------------------------------------------
# Intent content. Each intent has:
#   written    hand-written whole messages (standard slice)
#   ambiguous  hand-written messages whose wording overlaps other intents
#   multi      hand-written messages with two requests, labelled by the main one
#   noisy      hand-written messages with typos, slang, no punctuation, lowercase
#   short      1-3 word messages
#   cores      templates ([a|b] alternations, {slot} entities) for composed rows
#   asides     secondary clauses, glued onto other intents' rows in multi_intent
#   topic      noun phrase for "I also have a question about ..., but first:"
# --------------------------------------------------------------------------------------

INTENTS: dict[str, dict] = {}

INTENTS["order_tracking"] = {
    "written": [
        "Where is my order? I placed it nine days ago and the tracking page hasn't changed "
        "since Tuesday.",
        "Can you tell me when my package will actually arrive? The estimate keeps moving.",
        "The tracking says delivered but there's nothing on my porch or with my neighbours.",
        "Hi, I never got a tracking number for my order from last week.",
        "My order has been stuck on 'label created' for five days. Has it actually shipped?",
        "Has my pre-order of the new volume shipped yet? Release day was Friday.",
        "Could you check the status of my order please? I need it before my sister's birthday "
        "on Saturday.",
        "The courier's website says 'exception' on my parcel. What does that mean for my delivery?",
        "I ordered three volumes and only one box turned up. Are the others coming separately?",
        "My tracking link just shows an error page. Where is my package?",
        "Is my order still processing? It's been four days and I haven't heard anything.",
        "Any update on my delivery? It was supposed to come yesterday.",
        "The map on the tracking page hasn't moved in two days. Where exactly is my parcel?",
        "The shipping email says 'dispatched' but the tracking number doesn't work on the "
        "carrier site.",
        "I think my parcel is lost. Tracking stopped updating in Frankfurt a week ago.",
        "Hello, just checking whether the box set I bought on the 3rd is on its way.",
        "My package was marked 'out for delivery' all day yesterday and never came. Where is "
        "it now?",
        "Can you resend the tracking info? I deleted the shipping email by accident.",
        "Is there a way to see which carrier is delivering my order?",
        "The delivery date on my order page says 'pending'. When will it ship?",
        "My order shows as split into two shipments, but I only have one tracking number.",
        "It's been three weeks and my international order still hasn't shown up in the "
        "customs tracking.",
        "Tracking says it was delivered to a parcel locker but I never got a pickup code.",
        "Could you find out why my package went back to the depot?",
        "I'm going on holiday on Friday. Will my order get here before then?",
        "Order status please. It's been 12 days and I'm getting impatient.",
        "Hi there! My manga haven't arrived yet and the estimated date was Monday. Can you "
        "check what's going on?",
        "The tracking number you sent belongs to someone else's parcel. It's going to Leeds, "
        "I live in Cardiff.",
        "Can I get an ETA on my order? The site just says 'in transit'.",
        "My pre-order was supposed to ship on release day but it still says awaiting stock.",
        "Good afternoon. I ordered a birthday present for my nephew ten days ago and there's "
        "no sign of it. Could you look into where it is?",
        "Did my parcel get stuck at customs? The last update says 'held for inspection'.",
        "Three of my orders arrived but the fourth one, the one with Iron Lotus, is missing. "
        "Any news on that one?",
        "How do I know if my order has left the warehouse?",
        "Please check order MA-2024-118233 for me, it still says processing.",
        "So I ordered the whole Starfall Academy set for my daughter's birthday, which is on "
        "Sunday, and the tracking has said 'arriving tomorrow' for three days in a row now. "
        "Is it actually coming?",
    ],
    "ambiguous": [
        "I paid for express shipping and it's still not here after a week. Where is it?",
        "Did my order actually go through and ship? I can see the charge on my card but no "
        "shipping email.",
        "I'm waiting on the replacement volume you promised after my return. Has it been sent yet?",
        "My account says 'delivered' but I don't have the parcel.",
        "The gift order for my nephew hasn't arrived. Is it still with the courier?",
        "Is volume 7 of Tidebreaker on its way? I ordered it on the 2nd.",
        "Your shipping page says 3-5 days and it's day 8. Where's my package?",
        "I'm not asking for a return or anything, I just want to know where my box is.",
        "I checked out last Thursday and still nothing. Has it even shipped?",
        "My membership includes free express delivery, so why has my order been in transit "
        "for six days?",
        "I changed my email last week so maybe I missed it, but has my order shipped?",
        "Not trying to cancel, just want to know if my order has left the warehouse yet.",
        "The payment went through fine, I just need to know when the books get here.",
        "You refunded the shipping fee for the delay, thanks, but the parcel itself still "
        "hasn't come. Any news?",
        "Is this normal? Order placed 10 days ago and the status still says 'processing'. "
        "Starting to wonder if I should cancel.",
        "I got an email saying my pre-order is ready. Ready where? It's not here and "
        "tracking shows nothing.",
        "The courier left a card saying they'd redeliver, but the tracking now says 'return "
        "to sender'. Is my order coming back to you?",
    ],
    "multi": [
        "I want to return volume 1 eventually, but right now I just need to know where my "
        "order is.",
        "Mainly: where is my order from last Monday? Second, smaller thing, do you sell "
        "gift cards?",
        "My tracking hasn't updated in a week, can you look into it? Also I forgot my "
        "password so I can't check it myself.",
        "Can you tell me where my package is? And if it turns out it's lost, how do refunds work?",
        "Where's my order? While you're at it, recommend me something like Iron Lotus to "
        "read while I wait.",
    ],
    "noisy": [
        "hey is my stuff shipped yet",
        "wheres my oder its been like 2 weeks",
        "tracking no. not working?? where is it",
        "yo my package says delivered but its NOT here",
        "did my preorder ship or nah",
        "pls check order status i need it by fri",
        "order still says procesing after a week wtf",
    ],
    "short": [
        "Where's my order?",
        "Order status",
        "Track my package",
        "Tracking number?",
        "Parcel update?",
        "ETA on delivery?",
        "Still waiting...",
        "Package not arrived",
        "Delivery status?",
        "Has it shipped?",
        "Order delayed?",
        "Where's my parcel??",
        "Missing delivery",
        "Shipped yet?",
    ],
    "cores": [
        "[Where is|Where's|Any idea where] {oid}? It was supposed to arrive {due}.",
        "Can you [check|look up|tell me] the status of {oid}[ please|]?",
        "I ordered {item} {ago} and it still hasn't [arrived|turned up|shown up].",
        "Has {oid} [shipped|been dispatched|left the warehouse] yet?",
        "The tracking for {oid} hasn't [updated|changed|moved] since {since}.",
        "When will {item} [get here|arrive|be delivered]? I ordered it {ago}.",
        "[My tracking|The tracking page|The carrier's site] says {oid} was delivered {past} "
        "but [I don't have it|nothing came|there's no parcel anywhere].",
        "Is {item} still on its way? I [ordered|bought] it {ago}.",
        "Could you [send me|give me|resend] the tracking number for {oid}?",
        "What's the [estimated delivery date|ETA|expected arrival date] for {oid}?",
        "{oid} has said 'in transit' for {n} days now. Is that normal?",
        "I'm still waiting on {item}. Any idea when it'll [show up|arrive|get here]?",
        "Which courier [has|is delivering] {oid}?",
        "My pre-order of {item} [was meant to ship|should have shipped] {past}. Has it [gone "
        "out|shipped] yet?",
        "Why does {oid} still say '[processing|awaiting fulfilment|preparing]'?",
        "[Is there an|Any] update on {oid}? It's been {n} days.",
        "I need {item} by {by}. Will [it|my order] [arrive|get here] in time?",
        "The delivery of {oid} has been rescheduled [twice|three times]. When is it actually "
        "coming?",
        "Tracking shows {oid} has been sitting at [the sorting centre|a depot|customs] since "
        "{since}. Can you check what's happening?",
        "Only part of {oid} arrived. Where's the rest?",
        "Did {item} ship [with the rest of my order|in the same box] or separately?",
        "How do I track {oid}?",
        "I got a '[delivery attempted|sorry we missed you]' note but nobody knocked. Where is "
        "{oid} now?",
        "[I still haven't received|Still no sign of] {item}, and I ordered it {ago}.",
        "What's going on with {oid}? [No updates at all.|The tracking hasn't said anything in "
        "days.]",
        "Could you [find out|check] where {oid} is? The tracking link [is broken|gives me an "
        "error|just loads forever].",
        "[My|The] parcel with {item} [hasn't moved|has been stuck] since {since}.",
        "Can you confirm {oid} has actually [been sent|shipped]? I haven't had a shipping email.",
        "Is {item} out for delivery today? The app [isn't clear|shows two different dates].",
        "The estimated delivery for {oid} [keeps changing|jumped from {due_plain} to next "
        "week]. What's the real date?",
        "{item} was meant to be here {due}. [Can you tell me where it is?|Where is it now?]",
        "My [neighbour|building's front desk] doesn't have {oid} either, and tracking says "
        "delivered. Where did it go?",
        "Is {oid} [delayed|held up] because of [the holidays|the postal strike|bad weather]?",
        "Tracking for {oid} says 'returned to sender'. Why, and is it coming back to me?",
        "When does {oid} leave [your|the] warehouse?",
        "How much longer [for|until] {item}? It's been {n} days.",
        "Is there any way to [speed up|check on] {oid}? [It's a gift.|I'm travelling soon.]",
        "[I was told|The email said] {oid} would [ship|go out] within 48 hours. That was {ago}.",
    ],
    "asides": [
        "has my other order shipped yet?",
        "can you also check where my last parcel is?",
        "my previous order still hasn't arrived, by the way.",
        "is there a tracking number for my last order?",
    ],
    "topic": "a late delivery",
}

INTENTS["return_request"] = {
    "written": [
        "I'd like to return volume 3 of Iron Lotus. It arrived with the cover torn in half.",
        "How do I send back a book I don't want anymore? It's still in the shrink wrap.",
        "You sent me volume 5 instead of volume 6. Can I exchange it?",
        "The spine on my box set is cracked and two pages are loose. I want to return it.",
        "What's your return window? I bought something three weeks ago and changed my mind.",
        "The printing is smudged on about twenty pages. Can I get a replacement copy?",
        "Hi, I accidentally bought the French edition. Can I swap it for the English one?",
        "How do I print a return label?",
        "Do I have to pay for return postage if the item was damaged when it arrived?",
        "The figure that came with the collector's edition is broken. I'd like to send the "
        "whole thing back.",
        "I want to return the whole order. None of it is what I expected.",
        "Can I return an opened manga? I read one chapter and didn't like it.",
        "My son ordered the wrong series. Is it too late to return it? It's been 20 days.",
        "The book smells strongly of cigarette smoke. I'd like to return it.",
        "Is it possible to exchange a damaged volume instead of getting my money back?",
        "Do you accept returns on digital editions?",
        "Two of the volumes in my bundle are duplicates. How do I return the extras?",
        "The dust jacket was ripped when it arrived. Could you send a new one, or should I "
        "return the book?",
        "I was sent a completely different title. Please arrange a return.",
        "Can I return something I bought in your physical store through the website?",
        "I started a return online but never received the label email.",
        "Where do I drop off returns? Is there a drop-off point or do I post it?",
        "How long do I have to return a gift? My aunt bought me volume 1 but I already have it.",
        "Water damage on the box and the first volume is warped. Return please.",
        "I'd like to exchange the hardcover for the paperback version, is that allowed?",
        "Some pages in the middle are printed upside down. Can I send it back for a proper copy?",
        "Is there a restocking fee if I return a box set?",
        "Can I return a signed edition? It arrived with a crease right across the signature page.",
        "The shrink wrap was already open and the book looks second hand. I want to return it.",
        "Hi! What's the process for returning items bought during the summer sale?",
        "My daughter got two copies of Moonlit Bakery for her birthday. Can we return one "
        "even without a receipt?",
        "The colour pages in my deluxe edition are all faded and blotchy. I'd like to exchange "
        "it for a good copy, please.",
        "Can I return a pre-order that just arrived? I found out I already own it.",
        "I'd like to return the box set but I threw away the outer box. Is that a problem?",
        "I bought the Hollow Crown Chronicles box set as a surprise for my partner, but it "
        "turns out he already owns the first six volumes, so I'd like to send it back "
        "unopened. How does that work?",
    ],
    "ambiguous": [
        "I want my money back for the damaged volume you sent. How do I send it back?",
        "The package was finally delivered, but the box was crushed and volume 2 is ripped.",
        "My order arrived but it's the wrong volume. Do I need to cancel something or just "
        "send it back?",
        "Can I get a refund on the box set? I opened it and two volumes are missing their covers.",
        "I paid for a new copy and got a used one. I'm sending it back, what's the address?",
        "Your recommendation bot suggested this series and honestly I hate it. Can I return "
        "volume 1?",
        "Is return shipping free, or do I pay the postage myself?",
        "I don't want to cancel my order, I just want to send back one of the books from it.",
        "The gift card purchase was fine, but the manga I bought with it arrived damaged. How "
        "do I return it?",
        "My account shows the order as complete, but I need to return one volume from it.",
        "I was charged for the deluxe edition and got the standard one. Can I exchange it?",
        "The price dropped the day after I bought it. Can I return it and buy it again cheaper?",
        "I ordered two copies by mistake and the order has already arrived. How do I give "
        "one back?",
        "Do you refund the original shipping cost if I return everything?",
        "The books arrived fine but the bonus poster was missing. Do I have to return the "
        "whole set?",
        "Tracking says delivered and yes, it's here, but it's the Spanish edition. Return please.",
    ],
    "multi": [
        "I'd like to return volume 4 because the cover is bent. Also, while I have you, when "
        "does volume 5 come out?",
        "Main thing: I need to return a damaged box set. Second, my password reset email "
        "never came.",
        "Can I exchange Tidebreaker vol. 2 for vol. 3? And any tips for similar series while "
        "I'm at it?",
        "I need to send back a duplicate volume. Also, do you still ship to Norway?",
    ],
    "noisy": [
        "how do i return stuff",
        "got the wrong vol, wanna swap it",
        "book came all bent n ripped. return??",
        "cna i send this back its not what i ordered",
        "retrun label pls i need one",
        "pages r falling out of my copy can i get a new one",
    ],
    "short": [
        "Return an item",
        "Return label?",
        "Exchange please",
        "Damaged book",
        "Wrong volume sent",
        "Start a return",
        "Return policy?",
        "Can I exchange?",
        "Faulty copy",
        "Return window?",
        "Swap wrong edition",
        "Misprinted volume",
    ],
    "cores": [
        "I'd like to return {item}. {reason}",
        "Can I send back {item}? {reason}",
        "How do I return {item} from {oid}?",
        "{item} arrived {damage}. I want to return it.",
        "{item} arrived {damage}. Can I get a replacement?",
        "You sent me volume {vol} of {title} instead of volume {vol2}. How do I exchange it?",
        "Is it too late to return {item}? I bought it {ago}.",
        "Can I exchange {item} for the {format2} edition?",
        "I need a return label for {oid}.",
        "What's the return process for {item}? {reason}",
        "Could you help me return {item}? {reason}",
        "I want to swap {item} for [a different volume|the next volume|the right one].",
        "Can I return part of {oid} and keep the rest?",
        "Please [start|set up|open] a return for {item}, it {damage_verb}.",
        "How many days do I have to return [something|an item|a book]?",
        "Do I need the original packaging to return {item}?",
        "Will I get the full price back if I return {item}?",
        "I'd like an exchange: {item} arrived {damage}.",
        "Where should I send {item} back to?",
        "[The|My] copy of {item} {damage_verb}. [What are my options?|Can I send it back?|"
        "I'd like a replacement.]",
        "Is there a [fee|restocking fee|charge] for returning {item}?",
        "Can I return {item} if I've [opened it|taken the shrink wrap off|read the first chapter]?",
        "I [received|got] two copies of {item}. How do I return the extra one?",
        "Can I return {item} [in the shop|at your store|in person] instead of posting it?",
        "Can I [get a replacement for|exchange] {item}? {reason}",
        "My return label for {oid} [won't print|is blank|has the wrong address on it].",
        "I bought {item} as a gift but [they already have it|it's the wrong series]. Can I "
        "return it?",
        "[Do you take|Are there] returns on {format} editions?",
        "How do I return [a book|an item] I paid for with a [gift card|discount code|store "
        "credit]?",
        "[Hello, |]{item} {damage_verb}, so I'd like to [return|exchange] it.",
        "Is an exchange possible if {item} is [the wrong language|the wrong edition|a misprint]?",
        "Do I get a prepaid label to return {item}, or do I pay postage?",
        "The {format} edition I got has [loose pages|a wobbly spine|a scratched cover]. "
        "[Return please.|How do I send it back?]",
    ],
    "asides": [
        "I might need to return a book from an earlier order.",
        "how do I send back a damaged volume?",
        "can I still return something from last month?",
    ],
    "topic": "a return",
}

INTENTS["checkout_help"] = {
    "written": [
        "My promo code says it's invalid, but the email said it's good until Sunday.",
        "The checkout button doesn't do anything when I click it.",
        "How do I apply a gift card at checkout? I don't see a field for it.",
        "Can I check out as a guest without making an account?",
        "My cart keeps emptying itself every time I go to the payment page.",
        "Do you accept PayPal or only cards?",
        "How do I place a pre-order for a volume that isn't out yet?",
        "The address form won't accept my postcode.",
        "Can I use two discount codes on one order?",
        "Is there a minimum order amount to use the student discount?",
        "I'm stuck on the 'review order' step. It just spins forever.",
        "How do I change the delivery address before I finish placing the order?",
        "The total at checkout is higher than what my cart showed. Why?",
        "Can I pay in instalments for the big box set?",
        "I want to buy the same volume for three friends and send each to a different "
        "address. Can I do that in one order?",
        "Where do I put my membership number so the discount applies?",
        "Can I add gift wrapping when I check out?",
        "The quantity box won't let me order more than two copies. Why is that?",
        "How do I remove an item from my basket? The little x isn't working.",
        "Is it possible to pay with Apple Pay in the app?",
        "I keep getting 'session expired' when I try to check out on my phone.",
        "Can I reserve a copy online and pay when I pick it up in store?",
        "How do I use my reward points on this order?",
        "I want to order a volume that says 'coming soon'. Can I put it in the cart now?",
        "Can I save my cart and finish buying later?",
        "Where's the field for a company name and VAT number at checkout?",
        "The captcha on the payment step won't load, so I can't finish my order.",
        "Checkout won't let me pick store pickup even though the Leeds shop is listed. How "
        "do I select it?",
        "I'm trying to buy a gift for my brother. How do I hide the prices on the packing slip?",
        "Hi, first time buying here. After I add things to the cart, what do I click to pay?",
    ],
    "ambiguous": [
        "The site says one item in my cart is out of stock, but the product page says available.",
        "The page crashed right after I hit 'place order'. Did it go through, or should I "
        "try again?",
        "The free shipping code isn't being applied even though my cart is over the minimum.",
        "My gift card balance is there, but checkout won't let me use it on a pre-order.",
        "I want to order volume 9 but it only shows 'notify me'. Can I still place the order?",
        "I tried to order again after cancelling the first one and now the cart won't update.",
        "My order total doesn't include the member discount. Can you fix it before I pay?",
        "Before I pay, will the coupon still work if I pick express shipping?",
        "The shipping address on the order I'm about to place keeps autofilling to my old "
        "one. How do I change it?",
        "I entered my card and the confirmation page never loaded, and there's no email. "
        "Should I order again?",
    ],
    "multi": [
        "My discount code isn't working at checkout. Also, how long does shipping to Ireland "
        "usually take?",
        "Can you help me finish my order? The payment page keeps reloading. After that I'd "
        "love a recommendation for my nephew.",
        "The promo code won't apply, that's the main problem. Also, are you open on Sunday?",
    ],
    "noisy": [
        "promo code not wroking",
        "cant checkout on mobile keeps crashing",
        "how do i use gift card on checkout??",
        "chekout page stuck loading pls help",
        "does u guys take paypal",
        "cart keeps emptying wen i go to pay",
    ],
    "short": [
        "Promo code invalid",
        "Checkout broken",
        "Coupon not working",
        "Guest checkout?",
        "Apply discount?",
        "Cart keeps emptying",
        "Pay with PayPal?",
        "Checkout error",
        "Use gift card?",
    ],
    "cores": [
        "My discount code {code} [isn't working|won't apply|gets rejected] at checkout.",
        "The code {code} says it's expired, but I [only got it|received it] {ago}.",
        "{code_phrase} [says it's expired|doesn't work|isn't accepted] at checkout. Why?",
        "How do I use {code} on my order?",
        "I can't get past the {step} step [at checkout|when I check out].",
        "The {step} page keeps {glitch}[ when I try to pay|].",
        "[The 'add to cart' button|The cart button] is greyed out for {item}. How do I buy it?",
        "Can I pay for {item} with {paymethod}?",
        "Do you accept {paymethod} at checkout?",
        "How do I pre-order {item}?",
        "Can I pre-order {item} and [buy|get] an in-stock book in the same order?",
        "Checkout shows a [higher|different] total than my cart. I only have {item} in there.",
        "Where do I enter a gift card code [when buying|for] {item}?",
        "Can I split the payment between a gift card and {paymethod}?",
        "I'm trying to buy {item} but [the site|checkout] says '[something went wrong|"
        "unexpected error|try again later]' at the {step} step.",
        "Is there a way to check out without [creating|making] an account?",
        "How do I get the bundle discount when buying {item}?",
        "My cart won't let me add {item}[ for some reason|].",
        "Checkout keeps [dropping|removing] {item} from my [basket|cart].",
        "The [postcode|phone number|address] field at checkout won't accept what I type.",
        "[How do I|Can I] apply my [member discount|reward points|store credit] at checkout?",
        "I want to buy {item} as a gift. Where do I add a gift message at checkout?",
        "Why isn't {code_phrase} [working|valid] on pre-orders?",
        "I'm trying to place an order on [my phone|the app|a tablet] and the {step} page is blank.",
        "Can I change the quantity of {item} [at checkout|in my cart]? The box won't let me type.",
        "How do I choose [store pickup|click and collect] at checkout?",
        "Checkout [won't take|isn't accepting] my billing address[ even though it's correct|].",
        "Is {paymethod} [an option|available] when pre-ordering {item}?",
        "I can't find where to [enter|type in] {code} on the checkout page.",
        "What do I do if checkout [freezes|hangs] after I click 'pay now'?",
    ],
    "asides": [
        "the promo code didn't work last time, is that fixed?",
        "can I pay with PayPal next time?",
        "how do I apply a gift card at checkout?",
    ],
    "topic": "a promo code",
}

INTENTS["faq"] = {
    "written": [
        "What time does your shop open on Sundays?",
        "Do you have a physical store or are you online only?",
        "How does the membership work, and is it worth it?",
        "Do gift cards expire?",
        "How do I check the balance on a gift card?",
        "Can I buy a gift card online and have it emailed to someone?",
        "Do you price match other bookshops?",
        "Do you buy back used manga or do trade-ins?",
        "What are your customer service hours?",
        "How many points do I earn per purchase with the rewards programme?",
        "Is there a student discount?",
        "Are you open on public holidays?",
        "Do you host author signings or events at the store?",
        "Where is your store located? Is there parking nearby?",
        "Do reward points expire if I don't use them?",
        "Can I get a physical gift card instead of an e-card?",
        "What's the difference between the basic and premium membership?",
        "Are your books officially licensed or imports?",
        "Do you sell second-hand manga at all?",
        "Can I use my membership discount in the physical shop?",
        "How do I sign up for your newsletter?",
        "Is the café in your Lyon store open late on Fridays?",
        "Do you offer discounts for schools or libraries ordering in bulk?",
        "What do you do with my personal data?",
        "Is there an age requirement to get a membership?",
        "Do members get a birthday discount?",
        "What's the phone number for customer support?",
        "How does the pre-order price guarantee work?",
        "Will there be a Black Friday sale this year?",
        "Is your flagship store the one near the station, or did it move?",
        "Hello! Are dogs allowed in the Bristol shop? Mine is very well behaved.",
    ],
    "ambiguous": [
        "How do I cancel my membership? I don't use it enough.",
        "Can I return a gift card I bought by mistake?",
        "Does the membership include free shipping, or is that only on orders over a certain "
        "amount?",
        "If I pay with a gift card, do I still earn reward points?",
        "My account says I have 450 points. What can I actually spend them on?",
        "Do you still price match if I've already placed my order?",
        "Do I need an account to use a gift card?",
        "Is the Plus membership charged monthly or yearly?",
        "Would you recommend the membership if I buy about two volumes a month?",
        "Is there a fee to get a refund on an unused gift card?",
        "Do gift cards work for pre-orders, or only for in-stock titles?",
    ],
    "multi": [
        "What are your opening hours this weekend? Also, does volume 12 of Ramen Knights come "
        "out before then?",
        "Do reward points expire? And a smaller question: can I log in with my phone number?",
    ],
    "noisy": [
        "r u open sundays",
        "do giftcards expire or nah",
        "hows the membership thing work",
        "wat time u close today",
        "is there student discount??",
        "do u guys do trade ins for old manga",
    ],
    "short": [
        "Opening hours?",
        "Store hours",
        "Gift card balance",
        "Membership benefits?",
        "Student discount?",
        "Price match?",
        "Store location?",
        "Open Sunday?",
        "Points expiry?",
        "Loyalty programme?",
    ],
    "cores": [
        "What are your opening hours on {weekday}?",
        "[Is|Will] the {city} store [be |]open on {holiday}?",
        "Do you have a [shop|store|physical location] in {city}?",
        "How do I check [my|the] [gift card|e-gift card] balance?",
        "Can I use [a gift card|an e-gift card] in the physical shop?",
        "Do [gift cards|e-gift cards] [expire|have an expiry date]?",
        "How many [points|reward points] do I get for spending {amount}?",
        "What [perks|benefits] come with the {tier} membership?",
        "How much does the {tier} membership cost[ per year| a month|]?",
        "Can I share my {tier} membership with my {relative}?",
        "Do you price match if another shop sells {item} cheaper?",
        "Do you buy used manga? I have about {n} volumes to sell.",
        "What time does customer support [close|open] on {weekday}?",
        "Is there a discount for {group}?",
        "Can I buy a gift card [worth|for] {amount}?",
        "Are there any [events|signings|launch parties] at the {city} store this month?",
        "Do [membership|reward] points carry over when I renew?",
        "What's your [phone number|support email] for general questions?",
        "Is the {city} store [wheelchair accessible|easy to get to by train]?",
        "Do you have a loyalty [programme|program|card]?",
        "[When|How often] do you [have sales|run promotions]?",
        "Can I [join|sign up for] the {tier} membership in store?",
        "Is there a [trial|free trial] for the {tier} membership?",
        "How do I [redeem|use] my reward points[ in store|]?",
        "Do you [run|host] a reading club or community events in {city}?",
        "Are your prices the same online and in the {city} store?",
        "Is the {tier} membership [worth it|good value] for {group}?",
        "What's your [privacy policy|policy on data sharing] in plain words?",
    ],
    "asides": [
        "what are your opening hours on Sunday?",
        "do gift cards expire?",
        "how do reward points work?",
        "is there a student discount?",
    ],
    "topic": "your membership",
}

INTENTS["product_inquiry"] = {
    "written": [
        "Do you have volume 12 of Tidebreaker in stock?",
        "Is Moonlit Bakery available in hardcover or just paperback?",
        "How much is the complete box set of Ghost Lantern Alley?",
        "Is the Étoile de Minuit omnibus the English translation or the original French?",
        "When does volume 8 of Starfall Academy come out?",
        "Does the deluxe edition of Iron Lotus include the colour pages?",
        "Is Kōri no Ōkoku available in English yet or only in Japanese?",
        "How many volumes of Paper Crane Detective are out so far?",
        "Are the Ramen Knights books printed right to left like the originals?",
        "Is volume 3 of Salt & Ashes back in stock? It's been sold out for ages.",
        "Do you sell ねこまちストリート in the original Japanese edition?",
        "What's the difference between the standard and collector's editions of Hollow Crown "
        "Chronicles?",
        "Is the digital version of Daybreak Pilots cheaper than the print one?",
        "Does the Café Lumière box set come with the art book?",
        "Is the 3-in-1 edition of Sakura Mechanic the same translation as the single volumes?",
        "Are the first volumes of Neon Ronin 2099 still in print?",
        "How many pages is Garden of Clockwork Birds volume 1?",
        "Do you stock the Spanish edition of Kitsune Inn?",
        "Is volume 15 the final volume of Velvet Thunder?",
        "Does Shinobi Courier volume 2 come with a variant cover?",
        "Are your copies of Mizu no Kokoro new or used?",
        "Is Hoshizora Nikki a one-shot or a full series?",
        "Is the hardcover of Last Train to Akane the signed printing?",
        "Do you have anything in stock from the Pocket Dragon Diaries series?",
        "What size are the Blade of the Red Tide omnibus books? Will they fit on a normal shelf?",
        "Is the English release of Étoile de Minuit edited compared to the original?",
        "Is volume 4 of Iron Lotus a reprint or a first edition?",
        "When is the next restock for the Moonlit Bakery box set?",
        "Do the Ghost Lantern Alley volumes come with the bonus postcards people mention online?",
        "Is ほしぞらノート the same series as Hoshizora Nikki, or a different one?",
        "Hi! Is Ōkami High volume 6 out yet in English? I've been waiting since spring.",
        "Are the Yūrei Express volumes in colour? The cover art is so bright.",
    ],
    "ambiguous": [
        "Is Yūrei Express suitable for a 10 year old? What's the age rating?",
        "If I order Tidebreaker volume 9 today, is it actually in stock or will it ship later?",
        "I'm looking for Kitsune Inn vol 6. Is it in stock or do I have to pre-order it?",
        "Is the Iron Lotus deluxe edition worth the extra money compared to the regular one?",
        "What's the price of Ramen Knights vol. 2 with the member discount?",
        "Do you have Neon Ronin 2099 volume 1? Mine had pages missing so I need another copy "
        "anyway.",
        "Is volume 3 of Salt & Ashes shipped from Japan, or is it a local edition?",
        "My friend recommended Daybreak Pilots. Is it complete or still ongoing?",
        "Is the Hollow Crown box set a one-time print run? I don't want to order it and have "
        "it cancelled.",
        "Does the Moonlit Bakery hardcover come in a protective case? My last order arrived "
        "scuffed.",
        "I can't find the checkout button for Café Lumière vol 4. Is it even in stock?",
        "Before I cancel my pre-order: is the Starfall Academy special edition still coming "
        "out this month?",
        "Is there a cheaper version of the Velvet Thunder box set? The one in my cart is 80 euros.",
        "Does the Sakura Mechanic omnibus ship with the bonus booklet, or is that sold separately?",
        "Will Paper Crane Detective volume 10 be in the shop or only online?",
    ],
    "multi": [
        "Do you have volume 6 of Tidebreaker in stock? And what's the return policy if it "
        "arrives damaged?",
        "Is Kōri no Ōkoku out in English yet? Also, separate thing, I can't log in to my wishlist.",
        "Is the Garden of Clockwork Birds box set back in stock? Oh, and do you ship it to Chile?",
    ],
    "noisy": [
        "u got tidebreaker vol 12??",
        "is moonlit bakery in hardcover",
        "how much iron lotus boxset",
        "when dose vol 8 of starfall academy drop",
        "restock on salt and ashes vol3 when",
        "is kitsune inn in spanish or only english",
    ],
    "short": [
        "Tidebreaker vol 12?",
        "Volume 5 available?",
        "Iron Lotus price?",
        "Hardcover available?",
        "English edition?",
        "Box set price?",
        "Restock date?",
        "Next volume release?",
        "In stock?",
        "Kitsune Inn stock?",
        "Signed copies?",
        "Ōkami High restock?",
        "Deluxe edition price?",
    ],
    "cores": [
        "Do you have {item} in stock?",
        "Is {item} available [right now|at the moment|to buy yet]?",
        "How much is {item}?",
        "What's the price of the {format} edition of {title}?",
        "Is {title} available in {lang}?",
        "Do you sell the {lang} edition of {title}?",
        "When does volume {vol} of {title} come out?",
        "When is {item} back in stock?",
        "Is {title} available as a {format} edition?",
        "How many volumes of {title} are there[ so far|]?",
        "Is {title} finished or still ongoing?",
        "What comes in the {title} box set?",
        "Are there any bonus extras with {item}?",
        "Is {item} a new copy or second hand?",
        "What's the difference between the {format} and {format2} editions of {title}?",
        "Is {title} printed in colour or black and white?",
        "What age rating does {title} have?",
        "Can you tell me if {item} is the latest printing?",
        "Is {item} the English translation or the original {lang}?",
        "Do you still carry {title}? I can't find it on the site.",
        "Is {item} available for pre-order yet?",
        "Any idea how big {item} is? I need to know if it fits my shelf.",
        "Does {item} have the same cover as the Japanese release?",
        "Is {item} on sale at the moment?",
        "Is there a {format} edition of {title}[ yet|]?",
        "Will you be getting more copies of {item}?",
        "Which translation is {item}, the old one or the new one?",
        "Is {item} signed or just the regular print?",
        "How much is the whole run of {title} if I buy it [together|as a bundle]?",
        "Does {item} include the [extra chapters|author's notes|colour pages] from the "
        "magazine run?",
        "[Hi, is|Is] {title} [out|published] in {lang} yet?",
        "Is the {format} edition of {title} [still in stock|available to order]?",
        "Has volume {vol} of {title} been released in {lang}?",
    ],
    "asides": [
        "is volume 4 of {title} in stock?",
        "do you have {title} in hardcover?",
        "when does the next volume of {title} come out?",
    ],
    "topic": "a specific volume",
}

INTENTS["recommendation"] = {
    "written": [
        "Can you recommend something similar to Tidebreaker? I loved the sea battles.",
        "I'm new to manga. Where should I start?",
        "What's a good gift for a 12 year old who likes fantasy?",
        "Any cosy slice-of-life series like Moonlit Bakery?",
        "I finished Iron Lotus and I'm lost. What should I read next?",
        "Suggest a horror manga that's actually scary, please.",
        "My girlfriend likes romance but hates love triangles. Any ideas?",
        "What are your best-selling series this month?",
        "I want something short, five volumes or less, with a proper ending.",
        "Looking for sci-fi with mechs but not too violent, for my nephew.",
        "What would you recommend for someone who only watches anime and has never read manga?",
        "Is there anything like Ghost Lantern Alley but less gory?",
        "I need a birthday present for a friend who's into mystery stories. Budget is about "
        "30 euros.",
        "Which of your new releases are worth picking up?",
        "Can you suggest a series with a strong female lead?",
        "I like Café Lumière's art style. Do you know other artists like that?",
        "What's a good manga to practise reading Japanese with?",
        "Give me your top three fantasy series, no harem stuff please.",
        "Something funny to cheer me up? I've had a long week.",
        "My book club wants to try a manga. Which one would spark a good discussion?",
        "I like historical stories set in Edo-period Japan. Got any suggestions?",
        "Looking for a completed series to binge over the holidays.",
        "What do people who bought Starfall Academy usually read next?",
        "Any wholesome manga about animals? Asking for my mum.",
        "I want to get into seinen. Where do I begin?",
        "What's popular with teenagers right now? I'm buying for my daughter.",
        "I read mostly literary fiction. Is there a manga that would win me over?",
        "Hello! My grandson is 8 and obsessed with trains. Is there any manga he'd enjoy?",
        "I've read pretty much everything with pirates or sailing in it, Tidebreaker, Blade "
        "of the Red Tide, the lot, and I'm running out. Is there anything new with ships "
        "and a bit of politics?",
    ],
    "ambiguous": [
        "Is Tidebreaker worth buying, or is there something better in the same genre?",
        "I'm returning Iron Lotus because it wasn't my thing. What should I get instead?",
        "Which box sets would you recommend for a beginner? Ideally ones that are in stock.",
        "What should I add to my cart to reach free shipping? Something like Ramen Knights "
        "ideally.",
        "I have a 40 dollar gift card. What would you suggest I spend it on?",
        "My order of Salt & Ashes comes next week. Anything similar to read while I wait?",
        "Is there a manga you'd recommend that ships before Christmas? It's for my brother.",
        "I cancelled my pre-order of Velvet Thunder because the delays are endless. What's "
        "something similar that's actually out?",
        "Which series has the nicest hardcover editions? I want something that looks good "
        "on a shelf.",
        "The Plus membership gives me a free book a month. Which one should I pick this time?",
    ],
    "multi": [
        "Can you recommend a completed fantasy series? Also, do you ship to Norway?",
        "What should I read after Kitsune Inn? Oh, and is the store open late on Thursday?",
    ],
    "noisy": [
        "recomend me somthing like tidebreaker",
        "need new manga to read any ideas",
        "whats good rn, bored of everything",
        "gift for 10yo who likes dragons??",
        "sumthing funny pls i need a laugh",
        "wat shud i read after iron lotus",
    ],
    "short": [
        "Recommend something?",
        "Any suggestions?",
        "Gift ideas?",
        "Something like Tidebreaker?",
        "Beginner manga?",
        "What's popular?",
        "Horror recommendations?",
        "Best sellers?",
        "Similar series?",
        "Staff picks?",
    ],
    "cores": [
        "Can you recommend something like {title}?",
        "I loved {title}. What should I read next?",
        "Any {genre} series you'd suggest?",
        "What's a good {genre} manga for {audience}?",
        "I need a gift for {audience} who likes {genre}. Ideas?",
        "Looking for a {length} {genre} series. Recommendations?",
        "What would you suggest after finishing {title}?",
        "Is there anything similar to {title} but {twist}?",
        "Which {genre} titles are popular right now?",
        "Suggest a {genre} manga with {feature}.",
        "I'm bored of {genre}. What else is good at the moment?",
        "What are your staff picks for {genre}?",
        "My {relative} liked {title}. What else might they enjoy?",
        "Give me a few {genre} recommendations under {amount}.",
        "What's the best {genre} series you sell for {audience}?",
        "[I just finished|I binged] {title} and need something with {feature}. Ideas?",
        "Could you point me to a {length} series with {feature}?",
        "What would you give {audience} as a first manga?",
        "I'm in the mood for {genre}, something like {title} but {twist}.",
        "If I liked {title} and {title2}, what else would I like?",
        "Is there a {genre} series that {audience} would actually finish?",
        "[Any|Some] recommendations for {genre} with {feature}?",
    ],
    "asides": [
        "any recommendations for something like {title}?",
        "could you suggest a good horror series?",
        "what's popular at the moment?",
    ],
    "topic": "recommendations",
}

INTENTS["shipping"] = {
    "written": [
        "How much is shipping to Canada?",
        "Do you ship internationally? I'm in Brazil.",
        "How long does standard delivery usually take?",
        "Is there free shipping over a certain amount?",
        "Can I get next-day delivery if I order before noon?",
        "Do you deliver to PO boxes?",
        "Will I have to pay customs fees if I order to Switzerland?",
        "Which couriers do you use?",
        "Do you ship on weekends?",
        "How are the books packed? The last shop I used just threw them in a bag.",
        "Can I collect from the store instead of paying for delivery?",
        "Is express shipping available to Australia?",
        "How long does it take to ship to Japan?",
        "Does free shipping apply to pre-orders?",
        "Why is shipping to Hawaii so expensive?",
        "Can you ship to a different address than my billing address?",
        "Do you ship to military addresses?",
        "Is tracked shipping included, or is it extra?",
        "Do you offer carbon-neutral delivery?",
        "How much does it cost to send a box set to Germany?",
        "Do you deliver to parcel lockers?",
        "If I pre-order several volumes with different release dates, do I pay shipping for "
        "each one?",
        "Is there same-day delivery in London?",
        "Do you ship to Northern Ireland or just Great Britain?",
        "Can I choose a delivery day?",
        "Do you send things in boxes or padded envelopes? Corners get bent so easily.",
        "Hello, do you ship to the Canary Islands, and if so roughly how long does it take?",
    ],
    "ambiguous": [
        "Are shipping costs refunded if an order arrives late?",
        "I haven't ordered yet, but how long does a package normally take to get to Texas?",
        "Before I order: how long would it take to reach Portugal?",
        "Can I pay extra at checkout for faster delivery?",
        "If my order is over 50 euros, is the tracked option free too?",
        "Is it cheaper to ship volumes one by one or all together?",
        "Where do you ship from? I want to know if my order will have import taxes.",
        "Does a pre-order ship on release day or do you wait until the whole order is ready?",
        "If a parcel to Canada gets stuck in customs, who pays the fees, me or you?",
    ],
    "multi": [
        "How much is shipping to Mexico? And separately, is Moonlit Bakery volume 3 in stock?",
        "Do you deliver to parcel lockers? Also my promo code isn't working, but that's less "
        "urgent.",
    ],
    "noisy": [
        "do u ship to canada",
        "shipping cost to uk?",
        "how long delivery takes normaly",
        "wats the free shiping threshold??",
        "u guys ship internationl?",
        "hw much is express to germany",
    ],
    "short": [
        "Shipping costs?",
        "International shipping?",
        "Ship to Canada?",
        "Delivery times?",
        "Free shipping?",
        "Express delivery?",
        "Customs fees?",
        "Shipping methods",
        "Next-day delivery?",
    ],
    "cores": [
        "How much does shipping to {country} cost?",
        "Do you ship to {country}?",
        "How long does delivery to {country} take?",
        "Is {method} available to {country}?",
        "How much extra is {method}?",
        "What's the cheapest way to ship {item} to {country}?",
        "Will I pay import duties when ordering to {country}?",
        "Is shipping free if I spend over {amount}?",
        "How long does {method} usually take?",
        "Do you offer {method} on pre-orders?",
        "What's the shipping cost for {item}?",
        "Can you deliver to {place}?",
        "Which courier do you use for {country}?",
        "If I order today, how long until it reaches {country}?",
        "Do you ship {item} in a box or a padded envelope?",
        "Is there a flat shipping rate for {country}?",
        "Do you [offer|have] {method} [in|to] {country}?",
        "What are the delivery options for {country}?",
        "How much would {method} be for {item}?",
        "Can I [pick|choose] {method} for a pre-order like {item}?",
        "Are customs [fees|charges] included in the price for {country}?",
        "Is it possible to ship to {place} in {country}?",
        "How long do parcels to {country} usually take with [standard shipping|economy post|"
        "tracked shipping]?",
    ],
    "asides": [
        "do you ship to {country}?",
        "how much is express delivery?",
        "how long does shipping to {country} usually take?",
    ],
    "topic": "shipping costs",
}

INTENTS["account_help"] = {
    "written": [
        "I forgot my password and the reset email never arrives.",
        "How do I change the email address on my account?",
        "My account is locked after too many login attempts.",
        "Can I change my username?",
        "I want to delete my account completely.",
        "The two-factor code isn't arriving by text.",
        "How do I update my saved address in my profile?",
        "I signed up with Google and now I can't log in with a password.",
        "I have two accounts by mistake. Can you merge them?",
        "The password reset link says it's expired as soon as I click it.",
        "How do I turn off marketing emails?",
        "I can't log in on the app, but the website works fine.",
        "Can I change the name on my account? I got married.",
        "How do I set up two-factor authentication?",
        "My old email address doesn't exist anymore. How do I get into my account?",
        "Where do I find my order history in my account?",
        "I keep getting logged out every few minutes.",
        "The site says my email is already registered, but I don't remember making an account.",
        "Can I have an account without giving my phone number?",
        "How do I download a copy of my personal data from my account?",
        "I never got the verification email when I signed up.",
        "My account page is just blank after I log in.",
        "Can I change my date of birth on my profile? I typed it wrong.",
        "How do I change the language of my account to French?",
        "Is it possible to log in with my phone number instead of my email?",
        "Hi, my login is kenji.tanaka@example.com and the reset email never comes through.",
        "Could you update my account phone number to 555-0134? The old one is disconnected.",
    ],
    "ambiguous": [
        "How do I remove an old card from my saved payment methods?",
        "I can't log in to check my order status.",
        "I can't sign in at checkout. It says wrong password even after I reset it.",
        "How do I cancel my account? Not an order, the whole account.",
        "I want to change the email address my order confirmations go to.",
        "I got an email saying my password was changed, but it was me. I just don't "
        "remember the new one.",
        "My reward points disappeared after I changed my email address.",
        "I want to stop getting shipping update texts on my phone. Where's that setting?",
    ],
    "multi": [
        "I need to reset my password. Also, once I'm in, how do I see the tracking?",
        "Please help me change my account email first. After that, do you have the Iron Lotus "
        "box set?",
    ],
    "noisy": [
        "forgot pasword reset email not coming",
        "how 2 change my email on acct",
        "app keeps loggin me out wtf",
        "locked out of my accnt pls help",
        "cant sign in says invalid credentails",
    ],
    "short": [
        "Password reset",
        "Can't log in",
        "Change email",
        "Account locked",
        "Delete my account",
        "Forgot password",
        "Login problems",
        "2FA not working",
        "Change username",
    ],
    "cores": [
        ("I can't log in. My [email|login] is {email}.", 0.5),
        ("The password reset email isn't reaching {email}.", 0.5),
        ("Please change my account email from {email} to {email2}.", 0.4),
        ("My verification code was supposed to go to {phone} but it never arrived.", 0.4),
        ("Can you update the phone number on my account to {phone}?", 0.4),
        "I can't log in on my {device}. It says '{error}'.",
        "When I try to sign in it says '{error}'.",
        "How do I {account_action}?",
        "Is there a way to {account_action} from the app?",
        "I'm locked out of my account after {n} failed attempts.",
        "My [password reset|reset] link says '[link expired|invalid token|this link has "
        "already been used]'.",
        "I'd like to {account_action}, but I can't find the option.",
        "Could you help me {account_action}?",
        "Where in the settings do I {account_action}?",
        "I [tried to|wanted to] {account_action} and the page says '{error}'.",
        "The [two-factor|2FA|verification] code never [arrives|comes through] on my {device}.",
        "I [forgot|can't remember] which email I used for my account.",
        "Why does the app keep [logging me out|asking me to sign in again]?",
        "My account [says|shows] '{error}' every time I try to log in[ on my {device}|].",
        "Can I {account_action} without [calling support|logging in first]?",
    ],
    "asides": [
        "I also can't log into my account.",
        "how do I change my account email?",
        "my password reset isn't working either.",
    ],
    "topic": "my login",
}

INTENTS["payment_issue"] = {
    "written": [
        "I was charged twice for the same order.",
        "My card keeps getting declined even though there's money in the account.",
        "You said my refund was processed ten days ago, but it's still not on my card.",
        "There's a pending charge on my card for an order that failed.",
        "I was charged more than the price shown at checkout.",
        "My bank shows two payments of 18.99 but I only bought one book.",
        "The payment failed but the money still left my account.",
        "Why was I charged in dollars when I chose euros?",
        "PayPal says the payment is complete, but your site says my order is unpaid.",
        "My refund went to my old card, which is closed now. What happens to the money?",
        "How long do refunds take to show up? It's been two weeks since you approved it.",
        "My pre-order was charged when I placed it instead of when it ships. Is that right?",
        "The store credit from my return hasn't appeared anywhere.",
        "I was charged a foreign transaction fee. Is that from you or my bank?",
        "Card declined again. Third time today, different card, same result.",
        "You refunded the wrong amount. I got 12 back instead of 24.",
        "Apple Pay shows the payment went through, but my order was cancelled for non-payment.",
        "Why is there a 1 dollar charge from you on my statement?",
        "My gift card was charged to my account but the code never arrived.",
        "The amount on my bank statement doesn't match my receipt.",
        "My partial refund for the missing volume never arrived.",
        "The Klarna instalment was taken twice this month.",
        "I keep getting 'payment authorisation failed' with a card that works everywhere else.",
        "My card 4111 1111 1111 1111 got declined twice, is something wrong on your side?",
        "Hello, I paid by bank transfer three days ago and the order still says awaiting payment.",
        "My bank statement shows three separate payments to you this week, one for 14.99 and "
        "two for 22.50, but I only placed one order on Tuesday. Can you check what happened "
        "and refund the extra ones?",
        "My debit card was charged and then the money came back and was charged again. Which "
        "one is real?",
    ],
    "ambiguous": [
        "I returned the books two weeks ago and there's still no refund.",
        "The refund for my cancelled order hasn't come through.",
        "I cancelled within minutes and you still charged me the full amount.",
        "My payment was taken but there's no order in my account.",
        "My order shipped, but you charged me for it twice.",
        "The checkout said 29.99 but my bank says 39.99. Which is it?",
        "I got charged for shipping even though I used the free shipping code.",
        "Your refund email says it's done, but my bank says nothing arrived.",
        "My gift card covered half and my card was charged for the full amount anyway.",
        "The return was accepted last week. When does the money actually go back on my card?",
    ],
    "multi": [
        "I was charged twice for my order. Also, can you tell me when it'll ship?",
        "Mainly, my card keeps getting declined. Secondly, do you have the Tidebreaker box set?",
    ],
    "noisy": [
        "charged me twice for one order??",
        "where my refund at its been 2 weeks",
        "got double charged for 1 book",
        "payment failed but money gone from my acc",
        "refnd still not showing on my card",
        "card keeps gettin declined on ur site",
    ],
    "short": [
        "Charged twice",
        "Card declined",
        "Refund missing",
        "Double charged",
        "Payment failed",
        "Where's my refund?",
        "Wrong amount charged",
        "Pending charge?",
    ],
    "cores": [
        "I was charged twice for {oid}.",
        "My card ending in {last4} was declined [at checkout|three times|again].",
        "My {paymethod} payment failed but the money was taken anyway.",
        "I still haven't received the refund for {oid}. It's been {n} days.",
        "You charged me {amount} for {oid} but the total was {amount2}.",
        "There's a duplicate charge of {amount} on my statement.",
        "Why was my card charged {amount} when {oid} was cancelled?",
        "The refund you approved {ago} hasn't reached my bank.",
        "My {card_kind} keeps getting declined. Is something wrong on your end?",
        "I see a pending charge from you but {oid} says payment failed.",
        "I was charged for {item} but it was removed from my order.",
        "Where is my refund for {item}? You confirmed it {ago}.",
        "Your site charged me in {currency} instead of {currency2}.",
        "The payment for {oid} went through twice.",
        "[My bank|My banking app] shows {amount} taken [twice|two times] for {oid}.",
        "I paid with {paymethod} and [got charged|was billed] {amount} more than the order total.",
        "The refund for {item} [still hasn't arrived|is missing], it's been {n} days.",
        "Why has the payment for {oid} been 'pending' for {n} days?",
        "My card was declined [but|and yet] {oid} still [shows as placed|says paid].",
        "The [partial refund|refund] for {item} was [less than|different from] what you promised.",
        "[Hi, my|My] payment with {paymethod} keeps failing at the last step.",
        "I tried {paymethod} and then my {card_kind}, and both were declined.",
    ],
    "asides": [
        "I think I was charged twice last month too.",
        "my refund from before still hasn't shown up.",
        "my card got declined earlier, is that normal?",
    ],
    "topic": "a charge on my card",
}

INTENTS["cancel_order"] = {
    "written": [
        "Please cancel my order, I bought the wrong edition.",
        "Can I still cancel my order if it hasn't shipped?",
        "I'd like to cancel my pre-order for volume 10.",
        "How do I cancel an order in the app?",
        "I ordered the same book twice by accident. Can you cancel one of them?",
        "Cancel everything from this morning's order please.",
        "Is it too late to cancel? I ordered about an hour ago.",
        "I found it cheaper locally, so I want to cancel.",
        "The cancel button is greyed out on my order page. How do I cancel?",
        "Can I cancel just one item and keep the rest of the order?",
        "Please stop my order, I'm moving next week and won't be at that address.",
        "My pre-order keeps getting delayed. I want to cancel it.",
        "Can you cancel the box set from my order but leave the single volumes?",
        "If I cancel a pre-order, do I lose my place for the limited edition?",
        "I placed an order with my partner's account by mistake. Please cancel it.",
        "Please cancel the order I just placed. My kid was playing on my phone.",
        "I changed my mind about the collector's edition. Can I cancel before it ships?",
        "Cancel please. The delivery estimate is after the trip I needed it for.",
        "Hello, I'd like to withdraw my order from yesterday. I no longer need it.",
        "How long after ordering can I still cancel?",
        "Please cancel order #48213397. I meant to buy volume 4, not volume 3.",
        "Can I cancel a pre-order I paid for with a gift card?",
        "Don't ship it, I don't want it anymore.",
        "Can I stop the order? I bought it from the wrong account.",
        "I'd rather not wait for the restock. Please drop volume 9 from my order.",
        "Hi, please cancel my last two orders, I'll place one combined order instead.",
    ],
    "ambiguous": [
        "Will I be charged anything if I cancel?",
        "I accidentally hit 'order' before applying my discount code. Can you cancel it so I "
        "can redo it?",
        "It's been processing for a week. At this point I'd rather just cancel.",
        "If it hasn't shipped, cancel it. If it has, I'll just refuse the delivery.",
        "Please cancel my order and put the money back on my card.",
        "Cancel my order. I don't want to deal with a return later if it arrives late.",
        "The tracking hasn't moved in days, so please cancel the whole thing.",
        "I ordered before I saw the shipping cost to Chile. Can you cancel it?",
    ],
    "multi": [
        "Please cancel my order from last night. And could you recommend a different series "
        "instead?",
        "I need to cancel my pre-order, that's the main thing. Also, when do reward points expire?",
    ],
    "noisy": [
        "cancle my order pls",
        "can i cancel preorder or is it too late",
        "pls cancel i orderd wrong one",
        "how do i cancel order on app its not letting me",
        "cancel it i dont need it anymore",
    ],
    "short": [
        "Cancel my order",
        "Cancel order",
        "Cancel pre-order",
        "Stop my order",
        "Cancel please",
        "Don't ship it",
        "Cancel everything",
    ],
    "cores": [
        "Please cancel {oid}.",
        "I want to cancel {oid}, I {cancel_reason}.",
        "Can I cancel my pre-order of {item}?",
        "How do I cancel {oid} before it ships?",
        "Is it still possible to cancel {oid}?",
        "Please remove {item} from {oid}, I no longer need it.",
        "I need to cancel {item} from my order.",
        "Could you cancel {oid}? I {cancel_reason}.",
        "I'd like to cancel the order for {item}.",
        "Cancel {item} please, I {cancel_reason}.",
        "[Please|Can you] stop {oid} from shipping? I {cancel_reason}.",
        "I placed an order {ago} by mistake. Can it still be cancelled?",
        "Is there a cancellation fee if I cancel {oid}?",
        "I [no longer want|don't need] {item}. Can you cancel it before it ships?",
        "How late can I cancel a pre-order like {item}?",
        "[Hi, I|I] need to cancel {oid} today, I {cancel_reason}.",
        "Can you take {item} off {oid}? I {cancel_reason}.",
    ],
    "asides": [
        "I might want to cancel my other order.",
        "can I cancel a pre-order later if I change my mind?",
    ],
    "topic": "cancelling something",
}

INTENTS["escalation"] = {
    "written": [
        "There are three orders on my account I never placed. Someone is using my card on "
        "your site.",
        "I did not authorise this charge. Nobody in my house ordered anything. I want it "
        "investigated as fraud.",
        "This is the fourth time I've asked about my refund. I want to speak to a manager "
        "today, not a bot.",
        "If this isn't sorted by Friday I'm taking you to small claims court.",
        "I've contacted my bank and I'm filing a chargeback for the full amount.",
        "The metal clip on the figure's stand snapped and cut my son's hand. This is a "
        "safety issue.",
        "My lawyer will be in touch about the money you've kept for two months.",
        "Get me a human supervisor right now. I'm done talking to this chat.",
        "Someone changed the email on my account and ordered 400 dollars of box sets. This "
        "is fraud.",
        "I'm reporting your company to consumer protection for refusing my refund.",
        "Your courier was aggressive and threatened me at my door. I want a formal complaint "
        "filed.",
        "The book you sent has a strong chemical smell and my daughter got a rash after "
        "reading it. Is this even safe?",
        "Absolutely unacceptable. Three weeks, zero answers, and you keep closing my tickets. "
        "Escalate this NOW.",
        "There are charges from your store made in a country I've never been to. Investigate "
        "this immediately.",
        "I want the name of your CEO. I'm going to the press about how you treat customers.",
        "You sent explicit adult manga in my 9 year old's gift order. I want an explanation "
        "from someone in charge.",
        "This is theft. You took my money and never shipped anything. I'm going to the police.",
        "My account was hacked and someone used my saved card. Why did your site allow this?",
        "I'm filing a complaint with trading standards unless I get my money back today.",
        "Stop ignoring me. I want a manager to call me back at 555-0147 today.",
        "The box arrived with broken glass inside from the display case and I cut my finger "
        "opening it.",
        "I've been a customer for six years and this is the worst service I've ever had. Put "
        "me through to your supervisor.",
        "You have 48 hours to refund me or I'm starting legal action.",
        "There's an order shipped to an address I've never lived at, charged to my card. "
        "Fraud. Fix it.",
        "I'm reversing the charge through my credit card company. Don't bother emailing me.",
        "The batteries in the light-up collector's box overheated and melted the case. That "
        "could have started a fire.",
        "Your agent was rude and hung up on me. I want this escalated to whoever manages the "
        "support team.",
        "I will be contacting the ombudsman about this. Consider this my formal notice.",
        "Your bot is useless. Human. Manager. Now.",
        "Someone called me pretending to be your store and asked for my card details. Did "
        "you leak my data?",
        "I got an email from you with another customer's name, address and order in it. "
        "That's a data breach.",
        "I never received my package, you refuse to refund, and the courier says you never "
        "sent it. I'm calling my solicitor.",
        "Your so-called sale was fake, the prices went up right before the discount. I'm "
        "reporting it as false advertising.",
        "Three unauthorised charges in one week. Freeze my account and get your fraud team "
        "on this immediately.",
        "The staples on the bonus booklet were sticking out and my toddler cut his lip. I'm "
        "furious.",
        "If I don't hear from a real person by tomorrow I'm disputing the payment and "
        "leaving reviews everywhere.",
        "My elderly dad was signed up for a membership he never asked for and charged for a "
        "whole year. This is a scam.",
        "Listen. I've been patient for a month. Either I get a manager or I get my money "
        "back. Today.",
        "Someone used my card 4111 1111 1111 1111 on your site without my permission. I "
        "want the order stopped and investigated.",
        "Please have a supervisor email me at r.ortiz@example.org. I've been promised a call "
        "back three times and nobody has ever called.",
        "The paint on the figure from the deluxe set is flaking off, and I found flakes in my "
        "toddler's mouth. Is that paint toxic?",
        "The magnetic bookmark in the box set came apart and the tiny magnets fell out. My kid "
        "could have swallowed them. This is dangerous.",
        "The keychain from the collector's edition has a sharp metal edge. My daughter cut her "
        "palm on it last night.",
        "The display stand you sold me collapsed and the whole box set fell on my son. He's "
        "okay, but this needs to be reported.",
        "The lamp in the light-up art box sparked when I plugged it in. That's a fire hazard "
        "and I want it looked into.",
        "My kid had an allergic reaction to the scented bookmark that came with the order. "
        "What on earth is in it?",
        "There was a loose sewing needle inside the plush from the collector's bundle. My son "
        "could have been badly hurt.",
        "The lanyard in the kids' starter pack has no safety break. That's a choking risk. Who "
        "handles product safety at your company?",
        "Whatever glue was used to seal the box burned my fingers when I opened it. I need "
        "someone to take this seriously.",
        "I have spent six weeks going back and forth with your team, I have sent photos, "
        "receipts and the courier's statement, and every reply is a copy-paste. I want this "
        "handed to a manager or I'm going to my bank.",
    ],
    "ambiguous": [
        "I was charged twice, and I'm not waiting any more: I've already told my bank to "
        "reverse both charges.",
        "My refund never arrived and honestly, at this point I'm talking to a lawyer.",
        "A charge for an order I never made. Not a double charge, I have never ordered from "
        "you at all.",
        "There's a payment on my statement from your store that I definitely didn't make. "
        "Who placed it?",
        "I want to cancel this order and report it, because I didn't place it. Someone got "
        "into my account.",
        "Where is my order?? Three weeks!! I want a manager NOW or I'm going to trading standards.",
        "I'm returning everything and filing a formal complaint. Your packaging sliced my "
        "hand open.",
        "My password was changed and there are new orders I didn't place. This isn't a login "
        "problem, it's fraud.",
        "Refund not received after 60 days. My bank is opening a dispute today.",
        "My card was declined, then charged anyway, four times. Unless this is fixed today "
        "I'm contacting my solicitor.",
        "Your shipping is so slow it's basically fraud. I've reported the payment as goods "
        "not received.",
    ],
    "multi": [
        "Someone placed orders on my account that I didn't make. Also my password doesn't "
        "work anymore.",
        "I want a manager. And while they're at it, they can explain where my order is.",
        "I'm filing a chargeback for the fake order on my card, and I want my account deleted.",
    ],
    "noisy": [
        "i did NOT make these orders someone hacked my acct and used my card",
        "get me a manager right now this is beyond a joke",
        "im doing a chargeback, ur company is a scam",
        "this is fraud i never orderd anything from u",
        "the toy part cut my kids finger thats dangerous, who do i report this to",
        "ill see u in court if my money isnt back by monday",
    ],
    "short": ["Fraudulent charges", "Manager NOW", "Filing a chargeback", "Unauthorised purchase"],
    # Escalation rows are also composed from a grievance and a demand; the group is the
    # grievance, so a grievance stays in one split.
    "grievances": [
        "I've been waiting {n} weeks for a refund.",
        "Nobody has answered my last {n} emails.",
        "There's a charge from you that I never made.",
        "You've lost my order twice now.",
        "Your support keeps closing my tickets without answering.",
        "I've been charged for orders I didn't place.",
        "Your staff member was incredibly rude to me on the phone.",
        "The figure you sent has a sharp broken edge and my kid got hurt.",
        "Somebody got into my account and bought {amount} worth of manga.",
        "You billed me {amount} for a membership I cancelled months ago.",
        "My refund was 'approved' {ago} and I still have nothing.",
        "I was promised a call back three times and nobody ever called.",
        "Your site kept my card after I deleted it and it was used again.",
        "The delivery driver threw my box over the fence and swore at me.",
        "The light-up collector's box overheated and scorched my desk.",
    ],
    "demands": [
        "I want a manager, now.",
        "I'm filing a chargeback with my bank.",
        "I'm contacting a lawyer.",
        "I'm reporting this to consumer protection.",
        "Escalate this immediately.",
        "Expect to hear from my solicitor.",
        "I'm disputing the charge.",
        "Get me a supervisor or I go to the press.",
        "I want this reported to your fraud team today.",
        "Put me through to someone senior. Now.",
    ],
    "asides": [],
    "topic": None,
}

INTENTS["out_of_scope"] = {
    "written": [
        "What's the weather going to be like in Tokyo next week?",
        "Tell me a joke.",
        "Can you help me fix this Python error? It says list index out of range.",
        "Can you draw me a manga version of my cat?",
        "What happens in the last chapter of Tidebreaker? Actually, go ahead and spoil it.",
        "Who would win in a fight, the captain from Iron Lotus or the twins from Velvet Thunder?",
        "Should I break up with my boyfriend? He thinks anime is childish.",
        "Does the comic shop downtown have the new graphic novel everyone's talking about?",
        "What's the best laptop for drawing digital art?",
        "Can you translate this for me: 今日はとても楽しかったです",
        "Write me a short fanfic about the Ramen Knights going to space.",
        "How do I become a manga artist?",
        "What's the capital of Australia?",
        "Where can I watch the Moonlit Bakery anime legally?",
        "Can you do my maths homework? It's only ten questions.",
        "How tall is Mount Fuji?",
        "Are you a real person or a bot?",
        "What's your favourite manga of all time?",
        "Can I send you my own manga so you can publish it?",
        "Who is the author of Paper Crane Detective dating?",
        "Can you help me write a cover letter for a bookshop job?",
        "When is the Neon Ronin 2099 video game coming out?",
        "Do you know a good tattoo artist who does anime designs?",
        "Explain the plot of Garden of Clockwork Birds so I don't have to read it.",
        "What time is it in Osaka right now?",
        "I'm feeling really lonely lately. Can we just talk for a bit?",
        "What does 'senpai' actually mean?",
        "How do I get rid of mould on my bookshelf?",
        "What's the score in the football match tonight?",
        "Sing me the opening song from the Starfall Academy anime.",
        "Is Kitsune Inn based on a real hotel? I want to stay there on my trip.",
        "What SQL query gets the top five customers by total spend?",
        "Which cosplay wig brand is the best?",
        "How do I get my cat to stop chewing my books?",
        "Can you predict this week's lottery numbers?",
        "What's the meaning of life?",
        "Help me plan a three-day trip to Akihabara.",
        "My neighbour's dog barks all night. What should I do?",
        "Can you make me a profile picture in manga style for my Discord?",
        "Why does the main character in Salt & Ashes make such terrible decisions?",
        "How long should I boil an egg for a soft yolk?",
        "Can you buy concert tickets for me?",
        "Is the author of Velvet Thunder on social media?",
        "What's a good name for my new hamster? Something anime-ish.",
        "Will it rain in Manchester tomorrow?",
        "Can you explain what a neural network is in simple words?",
        "I need a good excuse to skip work on Friday. Any ideas?",
        "What's the difference between anime and cartoons, philosophically speaking?",
        "Can you check the price of vinyl figures on other websites for me?",
        "Is it healthy to read manga until 3am every night?",
        "Okay this is random but my friends and I are arguing about whether the hero in Iron "
        "Lotus is secretly the villain's brother. You must have read it, who's right?",
    ],
    "ambiguous": [
        "Recommend me a good pizza place near me.",
        "Where is my order... of dumplings? Sorry, wrong chat.",
        "Can you track my flight? It's JL44 to Tokyo.",
        "I need to return my rental car. Where's the nearest drop-off?",
        "My phone screen cracked. Can I get a refund from the phone company?",
        "How do I cancel my streaming subscription?",
        "Can you draw the cover for volume 3 of my webcomic?",
        "What happens at the end of Hollow Crown Chronicles? I'm not buying it, just curious.",
        "I forgot my email password, not for your site, for my actual email. Can you reset it?",
        "My bank charged me an overdraft fee. Can you explain why?",
        "Can you explain how to draw the shading style they use in Iron Lotus?",
        "How do I open a manga shop like yours? What margins do you make?",
        "What's the cheapest courier for sending my own parcel to my mum?",
        "Is learning Japanese worth it just to read manga untranslated?",
        "How do I cook ramen like the one in Ramen Knights?",
        "Can you shipping-check... I mean, what's the best shipping company for my eBay shop?",
        "Do you think volume 2 of Tidebreaker will get an anime episode? What would you cast?",
    ],
    "multi": [
        "Tell me a joke, and then tell me what the weather's like in Kyoto.",
        "Can you draw me a fox girl? And also write a poem about her.",
    ],
    "noisy": [
        "tell me a joke lol",
        "whats the wether in tokyo",
        "draw me a anime girl pls",
        "who would win iron lotus captain vs velvet thunder twins",
        "help w my python homework its due tmrw",
        "wats ur fav manga",
        "r u a real person or a bot",
    ],
    "short": [
        "Tell a joke",
        "Weather today?",
        "Sing something",
        "Who are you?",
        "Python help",
        "Lottery numbers?",
        "Best pizza nearby?",
        "Meaning of life?",
        "Draw me something",
    ],
    "cores": [
        "What's the weather like in {city_any} this weekend?",
        "Can you draw {subject} in the style of {title}?",
        "What happens at the end of {title}? Just tell me.",
        "Who's the strongest character in {title}?",
        "Can you help me debug my {lang_code} code? It {bug}.",
        "How do I {coding_task} in {lang_code}?",
        "Tell me a {joke_kind} joke.",
        "Can you write a {writing} about {title}?",
        "Do you know if {other_store} has {other_product}?",
        "What's a good {non_manga_thing} to buy?",
        "Should I {life_decision}?",
        "What does '{jp_word}' mean in Japanese?",
        "Can you explain {school_topic} to me?",
        "What's the time difference between London and {city_any}?",
        "Is {title} going to get a live-action film? Who would play the lead?",
        "Can you [summarise|spoil] the last volume of {title} for me?",
        "I'm thinking about whether to {life_decision}. What would you do?",
        "Can you [recommend|find] a [hotel|restaurant|karaoke bar] in {city_any}?",
        "What's the best {non_manga_thing} for a small flat?",
        "Write a {writing} about {subject}, please.",
        "Is it going to snow in {city_any} on New Year's Eve?",
        "Can you [teach|show] me how to draw eyes like in {title}?",
        "My {lang_code} script {bug}. Any idea why?",
        "Could you [translate|check the grammar of] my essay about {school_topic}?",
    ],
    "asides": [
        "what's the weather like in Tokyo?",
        "tell me a joke while you're at it.",
        "do you know any good ramen places nearby?",
        "who do you think is the best villain ever written?",
    ],
    "topic": None,
}

# Unlabeled-only traffic: greetings, fragments, thanks, other languages.
UNLABELED_EXTRAS = [
    "hello?",
    "hi",
    "is anyone there",
    "ok thanks",
    "thank you, that helped!",
    "I have a question",
    "hello I need help",
    "can I talk to someone",
    "nvm figured it out",
    "what can you do?",
    "test",
    "hi again, same problem as yesterday",
    "thanks, bye!",
    "lol",
    "sorry wrong window",
    "ok",
    "can you help me with my order",
    "my thing didn't come",
    "um so about the manga",
    "you guys are great, got my books today!",
    "love the packaging btw",
    "👍 thanks",
    "ありがとう",
    "merci beaucoup",
    "bonjour, vous parlez français ?",
    "hola, ¿hablan español?",
    "Is this the right place to ask about the volume 3 thing?",
    "hmm",
    "I have an issue with my account and also an order",
    "wait",
    "one sec, looking for my order number",
    "never mind, it just arrived",
    "Can I ask you something?",
    "are you open",
    "yes",
    "no that's not it",
    "that didn't answer my question",
    "can I speak to a human",
    "how does this chat work?",
    "ok I'll try that",
    "still not working",
    "Hi MangaAssist, quick one",
    "the thing I asked about earlier",
    "hello, it's about my daughter's order",
    "just browsing, thanks",
    "good bot",
    "bad bot",
    "same issue as before",
]


# --------------------------------------------------------------------------------------
# Rendering.
# --------------------------------------------------------------------------------------

_ALT = re.compile(r"\[([^\[\]]*)\]")
_SLOT = re.compile(r"\{(\w+)\}")


class Renderer:
    """Fills templates. Slot values are cached per message so a repeated {title} agrees."""

    def __init__(self, rng: random.Random, pii_rate: float) -> None:
        self.rng = rng
        self.pii_rate = pii_rate
        self.cache: dict[str, str] = {}

    def reset(self) -> None:
        self.cache = {}

    def render(self, template: str) -> str:
        rng = self.rng
        text = _ALT.sub(lambda m: rng.choice(m.group(1).split("|")), template)
        text = _SLOT.sub(lambda m: self.slot(m.group(1)), text)
        return tidy(text)

    def slot(self, name: str) -> str:
        if name in self.cache:
            return self.cache[name]
        rng = self.rng
        if name in ("title", "title2"):
            pool = TITLES + KANA_TITLES if rng.random() < 0.1 else TITLES
            value = rng.choice(pool)
            if name == "title2":
                while value == self.cache.get("title"):
                    value = rng.choice(TITLES)
        elif name in ("vol", "vol2"):
            value = str(
                rng.choice([1, 1, 2, 2, 3, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 18, 21])
            )
            if name == "vol2":
                while value == self.cache.get("vol"):
                    value = str(rng.randint(1, 16))
        elif name == "oid":
            value = self.order_ref()
        elif name in ("email", "email2"):
            value = fake_email(rng)
        elif name == "phone":
            value = fake_phone(rng)
        else:
            value = self.render(rng.choice(SLOTS[name]))
            if name == "format2":
                while value == self.cache.get("format"):
                    value = self.render(rng.choice(SLOTS[name]))
        self.cache[name] = value
        return value

    def order_ref(self) -> str:
        rng = self.rng
        if rng.random() < self.pii_rate:
            oid = fake_order_id(rng)
            return rng.choice([f"order {oid}", f"my order {oid}", f"order number {oid}"])
        return self.render(
            rng.choice(
                [
                    "my order",
                    "my last order",
                    "my recent order",
                    "the order I placed {ago}",
                    "my order from {from_when}",
                    "my pre-order",
                    "my order",
                    "my latest order",
                    "my last order",
                    "my recent order",
                ]
            )
        )


def fake_order_id(rng: random.Random) -> str:
    if rng.random() < 0.55:
        return f"MA-{rng.choice([2023, 2024, 2025])}-{rng.randint(100000, 999999)}"
    return "#" + str(rng.randint(10**7, 10 ** rng.choice([8, 9, 10]) - 1))


def fake_email(rng: random.Random) -> str:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    local = rng.choice([f"{first}.{last}", f"{first}{rng.randint(1, 99)}", f"{first[0]}{last}"])
    return f"{local}@{rng.choice(['example.com', 'example.org'])}"


def fake_phone(rng: random.Random) -> str:
    number = f"555-01{rng.randint(0, 99):02d}"
    return rng.choice([number, f"(212) {number}", f"(415) {number}"])


def tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.?!:])", r"\1", text)
    return re.sub(r"\b([Aa]) (?=[aeioAEIO](?!ne))", r"\1n ", text)  # a isekai -> an isekai


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def join_after_opener(opener: str, core: str) -> str:
    first = core.split(" ", 1)[0].lower().rstrip(",.?!")
    if opener.endswith((",", ":", "but")) and first in COMMON_STARTERS:
        core = core[:1].lower() + core[1:]
    else:
        core = capitalise(core)
    return f"{opener} {core}"


# --------------------------------------------------------------------------------------
# Noise.
# --------------------------------------------------------------------------------------

SLANG = {
    "you": "u",
    "your": "ur",
    "you're": "ur",
    "please": "pls",
    "thanks": "thx",
    "are": "r",
    "because": "bc",
    "what": "wat",
    "what's": "whats",
    "why": "y",
    "really": "rly",
    "don't": "dont",
    "can't": "cant",
    "i'm": "im",
    "it's": "its",
    "okay": "ok",
    "tomorrow": "tmrw",
    "before": "b4",
    "with": "w/",
    "people": "ppl",
    "something": "smth",
    "doesn't": "doesnt",
    "haven't": "havent",
    "isn't": "isnt",
    "right now": "rn",
    "where's": "wheres",
    "i've": "ive",
    "i'd": "id",
    "won't": "wont",
    "to be honest": "tbh",
    "about": "abt",
    "hasn't": "hasnt",
}
NEIGHBOURS = {
    "a": "sq",
    "e": "wr",
    "i": "uo",
    "o": "ip",
    "r": "et",
    "s": "ad",
    "t": "ry",
    "n": "bm",
    "l": "k",
    "d": "sf",
    "u": "yi",
    "m": "n",
    "h": "gj",
    "c": "xv",
    "g": "fh",
    "p": "o",
}
TAILS = [" pls", " asap", " lol", " thx", " ??", " !!", " help", " ...", ""]


def typo(word: str, rng: random.Random) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)
    op = rng.choice(["swap", "drop", "double", "neighbour"])
    if op == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if op == "drop":
        return word[:i] + word[i + 1 :]
    if op == "double":
        return word[:i] + word[i] + word[i:]
    ch = word[i].lower()
    return word[:i] + rng.choice(NEIGHBOURS.get(ch, ch)) + word[i + 1 :]


def noisify(text: str, rng: random.Random) -> str:
    """Typos, slang, lowercase and punctuation loss; never touches PII-looking tokens."""
    tokens = text.split(" ")
    changed = False
    out = []
    for token in tokens:
        core = token.strip(".,!?:;'\"")
        key = core.lower()
        if key in SLANG and rng.random() < 0.6:
            token = token.replace(core, SLANG[key])
            changed = True
        out.append(token)
    text = " ".join(out)
    if rng.random() < 0.5:
        text = text.replace("right now", "rn").replace("to be honest", "tbh")
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if w.isalpha() and len(w) >= 5]
    n_typos = rng.choice([1, 1, 2]) if rng.random() < 0.85 or not changed else 0
    for i in rng.sample(candidates, min(n_typos, len(candidates))):
        words[i] = typo(words[i], rng)
        changed = True
    text = " ".join(words)
    lower = rng.random() < 0.85
    roll = rng.random()
    drop_apostrophes = rng.random() < 0.5
    tokens = []
    for token in text.split(" "):
        if any(p.search(token) for p in PII_PATTERNS.values()) or "@" in token:
            tokens.append(token.rstrip(".,!?") if roll < 0.6 else token)
            continue
        if lower:
            token = token.lower()
        if roll < 0.6:
            token = re.sub(r"^['\"]|['\"]$|[.,!?:;](?!\d)", "", token)
            if drop_apostrophes:
                token = token.replace("'", "")
        tokens.append(token)
    text = " ".join(tokens)
    if roll < 0.6:
        pass
    elif roll < 0.8:
        text = re.sub(r"[.?!]+$", "", text) + rng.choice(["??", "!!", "?!", "..."])
    if rng.random() < 0.25:
        tails = TAILS if text[-1:].isalnum() else [t for t in TAILS if t[-1:].isalpha()]
        text += rng.choice(tails)
    if not changed:
        words = text.split(" ")
        idx = [i for i, w in enumerate(words) if w.isalpha() and len(w) >= 4]
        if idx:
            i = rng.choice(idx)
            words[i] = typo(words[i], rng)
        text = " ".join(words)
    return tidy(text)


# --------------------------------------------------------------------------------------
# Normalisation, PII.
# --------------------------------------------------------------------------------------

PII_PATTERNS = {
    "email": re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}"),
    "order_id": re.compile(r"\b[Mm][Aa]-\d{4}-\d{6}\b|#\d{8,10}\b"),
    "phone": re.compile(r"(?:\(\d{3}\) )?555-01\d\d\b"),
    "card": re.compile(r"\b\d{4}(?: \d{4}){3}\b"),
}
ALLOWED_EMAIL = re.compile(r"@example\.(?:com|org)$")
ALLOWED_CARDS = {"4111 1111 1111 1111"}


def normalise(text: str) -> str:
    """Dedupe key: PII masked (rows differing only by an order id are duplicates once
    scrubbed), NFKC, casefold, punctuation stripped, whitespace collapsed."""
    for kind, pattern in PII_PATTERNS.items():
        text = pattern.sub(f" pii{kind} ", text)
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(ch).startswith(("P", "S")) else ch for ch in text)
    return re.sub(r"\s+", " ", text).strip()


def pii_kinds(text: str) -> list[str]:
    return [kind for kind, pattern in PII_PATTERNS.items() if pattern.search(text)]


def n_words(text: str) -> int:
    return len(text.split())


# --------------------------------------------------------------------------------------
# Composition.
# --------------------------------------------------------------------------------------


class Builder:
    def __init__(self, seed: int, pii_rate: float) -> None:
        self.rng = random.Random(seed)
        self.r = Renderer(self.rng, pii_rate)
        self.seen: set[str] = set()
        self.core_uses: Counter = Counter()

    # ---- bookkeeping
    def accept(self, text: str, min_words: int = 4, max_words: int = 40) -> bool:
        key = normalise(text)
        if not key or key in self.seen or not min_words <= n_words(text) <= max_words:
            return False
        self.seen.add(key)
        return True

    def cores(self, label: str) -> list[tuple[str, float]]:
        spec = INTENTS[label]
        if label == "escalation":
            return [(g, 1.0) for g in spec["grievances"]]
        return [c if isinstance(c, tuple) else (c, 1.0) for c in spec["cores"]]

    def pick_core(self, label: str, allowed: list[int] | None = None) -> int:
        cores = self.cores(label)
        idx = allowed if allowed is not None else list(range(len(cores)))
        weights = [cores[i][1] / (1 + self.core_uses[(label, i)]) ** 2 for i in idx]
        choice = self.rng.choices(idx, weights=weights)[0]
        self.core_uses[(label, choice)] += 1
        return choice

    # ---- pieces
    def core_text(self, label: str, i: int) -> str:
        self.r.reset()
        if label == "escalation":
            grievance = self.r.render(INTENTS[label]["grievances"][i])
            demand = self.rng.choice(INTENTS[label]["demands"])
            return f"{grievance} {demand}"
        return capitalise(self.r.render(self.cores(label)[i][0]))

    def decorate(self, label: str, core: str) -> str:
        rng = self.rng
        if label == "escalation":
            opener = rng.choice(ANGRY_OPENERS)
            closer = rng.choice(ANGRY_CLOSERS) if rng.random() < 0.4 else ""
            return tidy(" ".join(p for p in (opener, core, closer) if p))
        parts = []
        roll = rng.random()
        if core.lower().startswith(("hi", "hello")):
            parts.append(capitalise(core))
        elif roll < 0.07 and label in FRUSTRATED_INTENTS:
            parts.append(join_after_opener(rng.choice(FRUSTRATION), core))
        elif roll < 0.50:
            parts.append(join_after_opener(rng.choice(OPENERS), core))
        else:
            parts.append(capitalise(core))
        if rng.random() < 0.33:
            closers = (
                CLOSERS
                if core.endswith("?")
                else [
                    c for c in CLOSERS if c not in ("Please let me know.", "Any help appreciated.")
                ]
            )
            parts.append(rng.choice(closers).replace("{name}", rng.choice(SIGNATURE_NAMES)))
        return tidy(" ".join(parts))

    def aside(self, label: str) -> tuple[str, str]:
        others = [
            lab for lab in INTENTS if lab not in (label, "escalation") and INTENTS[lab]["asides"]
        ]
        other = self.rng.choice(others)
        self.r.reset()
        return other, self.r.render(self.rng.choice(INTENTS[other]["asides"]))

    def compose(self, label: str, slice_: str, i: int) -> str:
        core = self.core_text(label, i)
        if slice_ == "standard":
            return self.decorate(label, core)
        if slice_ == "noisy":
            if self.rng.random() < 0.25 and label != "escalation":
                opener = self.rng.choice(["hi,", "hey,", "yo,", "hello,", "um,"])
                core = join_after_opener(opener, core)
            return noisify(core, self.rng)
        if slice_ == "multi_intent":
            other, aside = self.aside(label)
            if self.rng.random() < 0.7 or not INTENTS[other]["topic"]:
                conn = self.rng.choice(CONNECTORS)
                return tidy(f"{core} {conn} {aside}")
            lead = self.rng.choice(LEAD_INS).format(topic=INTENTS[other]["topic"])
            return join_after_opener(lead, core)
        raise ValueError(slice_)


def quotas(label: str, n: int) -> dict[str, int]:
    q = {s: round(n * rate) for s, rate in SLICE_RATES.items()}
    q.update(SLICE_OVERRIDES.get(label, {}))
    q["standard"] = n - sum(q.values())
    return q


HAND_KEYS = {
    "standard": "written",
    "ambiguous": "ambiguous",
    "multi_intent": "multi",
    "noisy": "noisy",
    "short": "short",
}


def build_labeled(b: Builder) -> tuple[list[dict], list[dict]]:
    """Rows for every label/slice quota; hand-written first. Returns (rows, leftovers)."""
    rows: list[dict] = []
    leftovers: list[dict] = []
    for label, n in LABEL_COUNTS.items():
        spec = INTENTS[label]
        for slice_, need in quotas(label, n).items():
            hand = list(enumerate(spec[HAND_KEYS[slice_]]))
            b.rng.shuffle(hand)
            got = 0
            for j, text in hand:
                min_w, max_w = (1, 3) if slice_ == "short" else (4, 40)
                row = {
                    "text": text,
                    "label": label,
                    "slice": slice_,
                    "group": f"hw:{label}:{slice_}:{j}",
                }
                if got < need and b.accept(text, min_w, max_w):
                    rows.append(row)
                    got += 1
                elif got >= need and normalise(text) not in b.seen:
                    leftovers.append(row)
                elif got < need:
                    raise SystemExit(f"hand-written row rejected ({label}/{slice_}): {text!r}")
            tries = 0
            while got < need:
                tries += 1
                if slice_ in ("short", "ambiguous") or tries > 5000:
                    raise SystemExit(f"not enough rows for {label}/{slice_}: {got}/{need}")
                i = b.pick_core(label)
                text = b.compose(label, slice_, i)
                if b.accept(text):
                    rows.append(
                        {"text": text, "label": label, "slice": slice_, "group": f"tpl:{label}:{i}"}
                    )
                    got += 1
    return rows, leftovers


ESCALATION_THEMES = [
    (
        "safety",
        re.compile(
            r"\b(cut|rash|safe|safety|injur\w*|hurt|glass|fire|melt\w*|smell|sharp|toxic|"
            r"swallow\w*|allerg\w*|burn\w*|needle|dangerous|hazard|choking|scorched)\b",
            re.I,
        ),
    ),
    (
        "fraud",
        re.compile(
            r"\b(fraud\w*|unauthori[sz]ed|hacked|never (placed|made|ordered)|didn't (place|make)|"
            r"without (my )?permission|stolen|scam|breach|leak\w*|got into)\b",
            re.I,
        ),
    ),
    (
        "legal",
        re.compile(
            r"\b(lawyer|solicitor|court|legal|sue|ombudsman|trading standards|consumer protection|"
            r"police|chargeback|disput\w*|revers\w*|press|advertising)\b",
            re.I,
        ),
    ),
]


def stratum(row: dict) -> str:
    """The slice, plus the theme for escalation, so each theme is spread over the splits."""
    if row["label"] != "escalation":
        return row["slice"]
    theme = next((n for n, pat in ESCALATION_THEMES if pat.search(row["text"])), "anger")
    return f"{row['slice']}:{theme}"


def group_split(rows: list[dict], rng: random.Random) -> dict[str, list[dict]]:
    """Per label, assign whole groups (biggest first) to the split furthest below its target,
    counting the label's size and its mix of slices (and escalation themes)."""
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    by_label: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_label[row["label"]][row["group"]].append(row)

    def targets(n: int) -> dict[str, float]:
        t = {s: n * f for s, f in SPLIT_FRACTIONS.items()}
        t["train"] = n - sum(t.values())
        return t

    for label in LABEL_COUNTS:
        groups = by_label[label]
        label_rows = [r for g in groups.values() for r in g]
        target = targets(len(label_rows))
        slice_target = {sl: targets(n) for sl, n in Counter(stratum(r) for r in label_rows).items()}
        have = dict.fromkeys(SPLITS, 0)
        slice_have = {sl: dict.fromkeys(SPLITS, 0) for sl in slice_target}
        keys = list(groups)
        rng.shuffle(keys)
        keys.sort(key=lambda k: -len(groups[k]))

        for k in keys:
            order = list(SPLITS)
            rng.shuffle(order)
            scores = {}
            for split in order:
                label_gap = (target[split] - have[split]) / target[split]
                slice_gap = sum(
                    (slice_target[stratum(r)][split] - slice_have[stratum(r)][split])
                    / max(slice_target[stratum(r)][split], 0.5)
                    for r in groups[k]
                ) / len(groups[k])
                scores[split] = 6 * label_gap + slice_gap
            best = max(order, key=scores.__getitem__)
            out[best].extend(groups[k])
            have[best] += len(groups[k])
            for r in groups[k]:
                slice_have[stratum(r)][best] += 1
    return out


def build_unlabeled(b: Builder, splits: dict[str, list[dict]], leftovers: list[dict]) -> list[dict]:
    """Unlabeled traffic: extras, unused hand-written rows, and rows composed from train cores."""
    rng = b.rng
    # Cores whose rows are in validation/test are off limits; train and unused cores are fine.
    held_out: set[tuple[str, int]] = set()
    for s in ("validation", "test"):
        for row in splits[s]:
            if row["group"].startswith("tpl:"):
                _, label, i = row["group"].split(":")
                held_out.add((label, int(i)))
    train_cores = {
        label: [i for i in range(len(b.cores(label))) if (label, i) not in held_out]
        for label in LABEL_COUNTS
    }
    texts: list[str] = []
    for text in UNLABELED_EXTRAS:
        if b.accept(text, 1, 40):
            texts.append(text)
    rng.shuffle(leftovers)
    for row in leftovers[:40]:
        if b.accept(row["text"], 1, 40):
            texts.append(row["text"])
    remaining = N_UNLABELED - len(texts)
    total = sum(LABEL_COUNTS.values())
    for label, n in LABEL_COUNTS.items():
        want = round(remaining * n / total)
        got = 0
        tries = 0
        while got < want and tries < 5000:
            tries += 1
            slice_ = rng.choices(["standard", "noisy", "multi_intent"], [0.72, 0.18, 0.10])[0]
            if label in ("escalation", "out_of_scope") and slice_ == "multi_intent":
                slice_ = "standard"
            i = b.pick_core(label, sorted(train_cores[label]))
            text = b.compose(label, slice_, i)
            if b.accept(text):
                texts.append(text)
                got += 1
    while len(texts) < N_UNLABELED:  # rounding: top up with order tracking
        i = b.pick_core("order_tracking", sorted(train_cores["order_tracking"]))
        text = b.compose("order_tracking", "standard", i)
        if b.accept(text):
            texts.append(text)
    texts = texts[:N_UNLABELED]
    rng.shuffle(texts)
    return [{"text": t} for t in texts]


# --------------------------------------------------------------------------------------
# Output, check, data card.
# --------------------------------------------------------------------------------------


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def table(splits: dict[str, list[dict]], key: str, names: list[str]) -> str:
    counts = {s: Counter(r[key] for r in rows) for s, rows in splits.items()}
    width = max(len(n) for n in [*names, "total"]) + 2
    lines = [
        f"| {key:<{width}}| " + " | ".join(f"{s:>10}" for s in SPLITS) + f" | {'all':>6} |",
        "|" + "-" * (width + 1) + "|" + "|".join("-" * 12 for _ in SPLITS) + "|--------|",
    ]
    for name in [*names, "total"]:
        if name == "total":
            vals = [len(splits[s]) for s in SPLITS]
        else:
            vals = [counts[s][name] for s in SPLITS]
        lines.append(
            f"| {name:<{width}}| " + " | ".join(f"{v:>10}" for v in vals) + f" | {sum(vals):>6} |"
        )
    return "\n".join(lines)


def check(splits: dict[str, list[dict]], unlabeled: list[dict]) -> None:
    labeled = [r for s in SPLITS for r in splits[s]]
    counts = Counter(r["label"] for r in labeled)
    assert counts == Counter(LABEL_COUNTS), counts
    assert len(counts) >= 10 and set(counts) == set(DEFINITIONS)
    assert 1800 <= len(labeled) <= 2200, len(labeled)
    assert 400 <= len(unlabeled) <= 600, len(unlabeled)
    for s in SPLITS:
        share = Counter(r["label"] for r in splits[s])["escalation"] / len(splits[s])
        assert 0.02 <= share <= 0.04, (s, share)  # the brief: 2.5-3.5%, asserted below
        assert 0.025 <= share <= 0.035, (s, share)
        frac = len(splits[s]) / len(labeled)
        want = SPLIT_FRACTIONS.get(s, 0.70)
        assert abs(frac - want) < 0.02, (s, frac)
    assert Counter(r["label"] for r in splits["test"])["escalation"] >= 8
    # No normalised text shared within or across splits, or with unlabeled.
    keys = [normalise(r["text"]) for r in labeled] + [normalise(r["text"]) for r in unlabeled]
    assert len(keys) == len(set(keys)), "duplicate normalised text"
    assert all(keys), "empty normalised text"
    groups = {s: {r["group"] for r in splits[s]} for s in SPLITS}
    assert not (groups["train"] & groups["test"]) and not (groups["train"] & groups["validation"])
    assert not (groups["validation"] & groups["test"])
    shares = Counter(r["slice"] for r in labeled)
    n = len(labeled)
    assert set(shares) == set(SLICES)
    assert 0.10 <= (shares["ambiguous"] + shares["multi_intent"]) / n <= 0.15, shares
    assert 0.08 <= shares["noisy"] / n <= 0.12, shares
    assert 0.03 <= shares["short"] / n <= 0.05, shares
    oos = counts["out_of_scope"] / n
    assert 0.08 <= oos <= 0.10, oos
    for label in ("order_tracking", "product_inquiry", "return_request"):
        assert 0.12 <= counts[label] / n <= 0.15, label
    for row in labeled:
        words = n_words(row["text"])
        assert (1 <= words <= 3) if row["slice"] == "short" else (4 <= words <= 40), row
        assert row["slice"] in SLICES and row["label"] in DEFINITIONS
    # Fake PII only: example.com/org, 555-01xx, one test card number.
    everything = [r["text"] for r in labeled] + [r["text"] for r in unlabeled]
    for text in everything:
        for email in PII_PATTERNS["email"].findall(text):
            assert ALLOWED_EMAIL.search(email), email
        for card in PII_PATTERNS["card"].findall(text):
            assert card in ALLOWED_CARDS, card
        assert not re.search(r"\d{11,}", text), text
    pii = sum(bool(pii_kinds(r["text"])) for r in labeled) / n
    assert 0.03 <= pii <= 0.05, pii
    for label, spec in INTENTS.items():
        assert len(spec["written"]) >= 25, label


def summary(splits: dict[str, list[dict]], unlabeled: list[dict]) -> str:
    labeled = [r for s in SPLITS for r in splits[s]]
    pii = Counter(k for r in labeled for k in pii_kinds(r["text"]))
    pii_rows = sum(bool(pii_kinds(r["text"])) for r in labeled)
    return "\n".join(
        [
            table(splits, "label", list(LABEL_COUNTS)),
            "",
            table(splits, "slice", list(SLICES)),
            "",
            f"unlabeled: {len(unlabeled)} rows",
            f"labeled rows with fake PII: {pii_rows} ({100 * pii_rows / len(labeled):.1f}%) "
            f"{dict(pii)}",
        ]
    )


README = """# MangaAssist sample data

A small customer-support intent dataset for the chatbot of **MangaAssist**, an imaginary
online manga and comics store. `kdedge quickstart` fine-tunes a teacher
(all-MiniLM-L6-v2) on it and distills a smaller student, on a laptop CPU in minutes.

All text is original, written for kdedge (hand-written messages and hand-written
template pieces; every manga title, person and order is invented). It is licensed
Apache-2.0 like the rest of kdedge.

## Files

| file | rows | fields |
|---|---|---|
| `train.jsonl` | {n_train} | `text`, `label`, `slice` |
| `validation.jsonl` | {n_val} | `text`, `label`, `slice` |
| `test.jsonl` | {n_test} | `text`, `label`, `slice` |
| `unlabeled.jsonl` | {n_unl} | `text` (realistic traffic for teacher-only soft labels) |

## Intents

| label | definition |
|---|---|
{definitions}

Rows per split:

{label_table}

The distribution is imbalanced on purpose: tracking, product questions and returns are
common, `escalation` is rare (about 3% of every split) and is the class kdedge's rare-class
term and gates care about most.

## Slices

Each labeled row has a `slice`, so metrics can be broken down:

- `standard`: an ordinary single-intent message.
- `ambiguous`: wording that overlaps another intent ("refund" in a payment or escalation
  message, "cancel" in a membership question, manga vocabulary in an out-of-scope
  request); the label is the customer's actual need.
- `multi_intent`: two requests in one message; the label is the main one (the request
  the customer leads with or marks as the main thing; the other is an aside).
- `noisy`: typos, slang, all lowercase, missing punctuation.
- `short`: 1 to 3 words.

{slice_table}

About 4% of labeled rows contain fake PII for kdedge's scrubber to find: emails at
example.com / example.org, 555-01xx phone numbers, order ids such as `MA-2024-118233`
or `#48213397`, and the well-known test card number 4111 1111 1111 1111.

## How it was generated

```
python examples/sample_data/build_mangaassist.py --out kdedge/samples/mangaassist
```

The script is stdlib-only and deterministic (seed {seed}). It uses hand-written whole
messages first (at least 25 standard ones per intent, plus the ambiguous, multi-intent,
noisy and short ones), then composes the rest from hand-written core phrasings with
alternations and invented entities, optional openers and closers; multi-intent rows add
an aside from another intent; noisy rows add typos, slang and lost punctuation. Rows are
deduplicated on a normalised key (NFKC, casefold, PII masked, punctuation stripped), so
no two rows in any file share it. About 35% of labeled rows are hand-written whole
messages (all of `escalation`), the rest composed. The split is 70/15/15 per label,
balanced by slice (and, for `escalation`, by theme: fraud, legal, anger, safety); all rows
composed from the same core phrasing stay in the same split, so test rows are not
paraphrases of training rows. Unlabeled rows are composed only from phrasings used in
train. A check at the end of the script asserts the counts, the escalation share per
split, the slice shares and that no text is shared across files.

## Known limitations

- Synthetic: written by one author for a demo, not sampled from real traffic. Real
  customers are messier, longer and more varied.
- About 65% of the rows are composed from templates; they share openers, closers and
  sentence frames, which a model can pick up on.
- English only (with a few romaji/kana titles and other non-ASCII characters); a few
  British spellings.
- Labels follow the conventions above; some ambiguous and multi-intent rows could
  reasonably be given another label.
- Small: a few hundred test rows, so the per-class numbers, escalation above all (about
  {n_test_esc} test rows), are noisy.
"""


def data_card(splits: dict[str, list[dict]], unlabeled: list[dict], seed: int) -> str:
    defs = "\n".join(f"| `{k}` | {v} |" for k, v in DEFINITIONS.items())
    return README.format(
        n_train=len(splits["train"]),
        n_val=len(splits["validation"]),
        n_test=len(splits["test"]),
        n_unl=len(unlabeled),
        definitions=defs,
        label_table=table(splits, "label", list(LABEL_COUNTS)),
        slice_table=table(splits, "slice", list(SLICES)),
        seed=seed,
        n_test_esc=Counter(r["label"] for r in splits["test"])["escalation"],
    )


def build(seed: int, pii_rate: float) -> tuple[dict[str, list[dict]], list[dict]]:
    b = Builder(seed, pii_rate)
    rows, leftovers = build_labeled(b)
    splits = group_split(rows, b.rng)
    unlabeled = build_unlabeled(b, splits, leftovers)
    for s in SPLITS:
        b.rng.shuffle(splits[s])
    return splits, unlabeled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("kdedge/samples/mangaassist"))
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--pii-rate",
        type=float,
        default=0.26,
        help="chance an order reference is rendered as a fake order id",
    )
    args = parser.parse_args(argv)
    splits, unlabeled = build(args.seed, args.pii_rate)
    check(splits, unlabeled)
    args.out.mkdir(parents=True, exist_ok=True)
    for s in SPLITS:
        write_jsonl(
            args.out / f"{s}.jsonl",
            [{"text": r["text"], "label": r["label"], "slice": r["slice"]} for r in splits[s]],
        )
    write_jsonl(args.out / "unlabeled.jsonl", unlabeled)
    (args.out / "README.md").write_text(data_card(splits, unlabeled, args.seed), encoding="utf-8")
    print(summary(splits, unlabeled))
    print(f"wrote {args.out}/{{train,validation,test,unlabeled}}.jsonl and README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
