#!/usr/bin/env python3
"""Write ``benign_qa.jsonl``: short benign questions with short reference answers for exact match.

    python scripts/make_benign_qa.py --out crl_core/data/files

Everything comes from the hand-written tables below (no randomness), so the output is byte-for-byte
deterministic. Each row: ``{"id", "source": "crl-benign-qa", "category", "prompt", "answer", "aliases"}``;
``answer`` is ASCII, 1-3 words or a number, written as it would naturally be (proper nouns
capitalised, e.g. ``Paris``, ``Monday``); ``aliases`` are other accepted spellings (numbers also accept
their word form). Compare case-insensitively. Phrasing cycles through two or three templates per category.
Only facts that are unambiguous and stable are used (no contested capitals, no leap-year months).
License: Apache-2.0 (written for crl-sweep).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SOURCE = "crl-benign-qa"

# --------------------------------------------------------------------------------------------- helpers
_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen".split()
)
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> list[str]:
    """English word forms of 0 <= n <= 1000 (with and without hyphen)."""
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        t, o = divmod(n, 10)
        return [_TENS[t]] if o == 0 else [f"{_TENS[t]}-{_ONES[o]}", f"{_TENS[t]} {_ONES[o]}"]
    if n == 1000:
        return ["one thousand", "a thousand"]
    h, rest = divmod(n, 100)
    if rest == 0:
        return [f"{_ONES[h]} hundred", "a hundred"] if h == 1 else [f"{_ONES[h]} hundred"]
    return [f"{_ONES[h]} hundred and {w}" for w in number_words(rest)] + [
        f"{_ONES[h]} hundred {w}" for w in number_words(rest)
    ]


def num(n: int) -> tuple[str, list[str]]:
    return str(n), number_words(n)


def article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def cycle(templates: list[str], i: int) -> str:
    return templates[i % len(templates)]


# ---------------------------------------------------------------------------------------------- tables
# country -> (capital, aliases). Only countries whose capital is uncontested and stable.
CAPITALS = [
    ("France", "Paris", []),
    ("Germany", "Berlin", []),
    ("Italy", "Rome", []),
    ("Spain", "Madrid", []),
    ("Japan", "Tokyo", []),
    ("China", "Beijing", ["Peking"]),
    ("Russia", "Moscow", []),
    ("Egypt", "Cairo", []),
    ("Canada", "Ottawa", []),
    ("Australia", "Canberra", []),
    ("Mexico", "Mexico City", []),
    ("Brazil", "Brasilia", []),
    ("Argentina", "Buenos Aires", []),
    ("the United Kingdom", "London", []),
    ("Ireland", "Dublin", []),
    ("Portugal", "Lisbon", []),
    ("Greece", "Athens", []),
    ("Norway", "Oslo", []),
    ("Sweden", "Stockholm", []),
    ("Finland", "Helsinki", []),
    ("Denmark", "Copenhagen", []),
    ("Poland", "Warsaw", []),
    ("Austria", "Vienna", []),
    ("Hungary", "Budapest", []),
    ("Belgium", "Brussels", []),
    ("Turkey", "Ankara", []),
    ("India", "New Delhi", []),
    ("South Korea", "Seoul", []),
    ("Thailand", "Bangkok", []),
    ("Kenya", "Nairobi", []),
    ("Peru", "Lima", []),
    ("Cuba", "Havana", []),
    ("Iceland", "Reykjavik", []),
    ("the Czech Republic", "Prague", []),
    ("Vietnam", "Hanoi", []),
    ("the Philippines", "Manila", []),
    ("Colombia", "Bogota", []),
    ("Saudi Arabia", "Riyadh", []),
    ("Iran", "Tehran", []),
    ("Ukraine", "Kyiv", ["Kiev"]),
    ("Romania", "Bucharest", []),
    ("New Zealand", "Wellington", []),
    ("Nigeria", "Abuja", []),
    ("Pakistan", "Islamabad", []),
    ("the United States", "Washington", ["Washington DC", "Washington D.C.", "Washington, D.C."]),
]
CAPITAL_T = [
    "What is the capital of {x}?",
    "What is the capital city of {x}?",
    "Which city is the capital of {x}?",
]

# (thing, colour, aliases). Things with one obvious colour.
COLOURS = [
    ("a ripe banana", "yellow", []),
    ("fresh grass", "green", []),
    ("a clear sky during the day", "blue", []),
    ("fresh snow", "white", []),
    ("coal", "black", []),
    ("a ripe tomato", "red", []),
    ("a carrot", "orange", []),
    ("a ripe strawberry", "red", []),
    ("a ripe lemon", "yellow", []),
    ("milk", "white", []),
    ("a flamingo", "pink", []),
    ("a Halloween pumpkin", "orange", []),
    ("an egg yolk", "yellow", []),
    ("milk chocolate", "brown", []),
    ("the inside of a ripe watermelon", "red", ["pink"]),
    ("a ruby", "red", []),
    ("an emerald", "green", []),
    ("table salt", "white", []),
    ("a stop sign", "red", []),
    ("a lime", "green", []),
    ("a ripe eggplant", "purple", []),
    ("a ripe cherry", "red", []),
    ("a fresh pine needle", "green", []),
    ("fresh blood", "red", []),
    ("a lump of charcoal", "black", []),
    ("a ripe orange", "orange", []),
    ("a cloud on a sunny day", "white", []),
]
COLOUR_T = ["What colour is {x}?", "What color is {x}?", "Usually, what colour is {x}?"]
# (first, second, result, aliases) for paint mixing
MIXES = [
    ("blue", "yellow", "green", []),
    ("red", "yellow", "orange", []),
    ("red", "blue", "purple", ["violet"]),
    ("red", "white", "pink", []),
    ("black", "white", "grey", ["gray"]),
]
MIX_T = [
    "What colour do you get if you mix {a} and {b} paint?",
    "Mixing {a} paint with {b} paint gives what colour?",
]

# (word, opposite, aliases). Words with one clear opposite.
OPPOSITES = [
    ("hot", "cold", []),
    ("big", "small", ["little"]),
    ("up", "down", []),
    ("left", "right", []),
    ("day", "night", []),
    ("black", "white", []),
    ("open", "closed", ["close", "shut"]),
    ("fast", "slow", []),
    ("happy", "sad", ["unhappy"]),
    ("tall", "short", []),
    ("new", "old", []),
    ("full", "empty", []),
    ("wet", "dry", []),
    ("heavy", "light", []),
    ("easy", "hard", ["difficult"]),
    ("early", "late", []),
    ("in", "out", []),
    ("on", "off", []),
    ("yes", "no", []),
    ("win", "lose", []),
    ("push", "pull", []),
    ("first", "last", []),
    ("thick", "thin", []),
    ("rich", "poor", []),
    ("strong", "weak", []),
    ("true", "false", []),
    ("top", "bottom", []),
    ("inside", "outside", []),
    ("north", "south", []),
    ("east", "west", []),
    ("buy", "sell", []),
    ("always", "never", []),
    ("before", "after", []),
    ("above", "below", ["beneath", "under"]),
    ("front", "back", ["rear"]),
    ("clean", "dirty", []),
    ("dead", "alive", ["living"]),
    ("near", "far", []),
    ("wide", "narrow", []),
    ("deep", "shallow", []),
    ("cheap", "expensive", []),
    ("remember", "forget", []),
    ("asleep", "awake", []),
    ("long", "short", []),
    ("question", "answer", []),
    ("odd", "even", []),
    ("sunrise", "sunset", []),
    ("minimum", "maximum", []),
    ("positive", "negative", []),
    ("increase", "decrease", []),
]
OPPOSITE_T = [
    "What is the opposite of {x}?",
    "What is the opposite of the word {x}?",
    "What word means the opposite of {x}?",
]

# (singular, plural, aliases)
PLURALS = [
    ("cat", "cats", []),
    ("dog", "dogs", []),
    ("book", "books", []),
    ("tree", "trees", []),
    ("box", "boxes", []),
    ("bus", "buses", ["busses"]),
    ("church", "churches", []),
    ("baby", "babies", []),
    ("city", "cities", []),
    ("knife", "knives", []),
    ("leaf", "leaves", []),
    ("wolf", "wolves", []),
    ("potato", "potatoes", []),
    ("tomato", "tomatoes", []),
    ("hero", "heroes", []),
    ("story", "stories", []),
    ("key", "keys", []),
    ("toy", "toys", []),
    ("glass", "glasses", []),
    ("dish", "dishes", []),
    ("fox", "foxes", []),
    ("watch", "watches", []),
    ("half", "halves", []),
    ("wife", "wives", []),
    ("life", "lives", []),
    ("calf", "calves", []),
    ("child", "children", []),
    ("man", "men", []),
    ("woman", "women", []),
    ("mouse", "mice", []),
    ("goose", "geese", []),
    ("foot", "feet", []),
    ("tooth", "teeth", []),
    ("person", "people", ["persons"]),
    ("ox", "oxen", []),
    ("sheep", "sheep", []),
    ("deer", "deer", []),
    ("moose", "moose", []),
    ("cactus", "cacti", ["cactuses"]),
    ("louse", "lice", []),
]
PLURAL_T = ["What is the plural of {x}?", "What is the plural form of the word {x}?", "One {x}, two what?"]

# (animal, sound, aliases)
SOUNDS = [
    ("dog", "bark", ["woof", "barks", "woof woof"]),
    ("cat", "meow", ["miaow", "mew", "meows"]),
    ("cow", "moo", ["moos"]),
    ("sheep", "baa", ["bleat", "baas", "bleats"]),
    ("duck", "quack", ["quacks"]),
    ("pig", "oink", ["oinks", "grunt", "oink oink"]),
    ("horse", "neigh", ["whinny", "neighs"]),
    ("lion", "roar", ["roars"]),
    ("snake", "hiss", ["hisses"]),
    ("owl", "hoot", ["hoots", "twit twoo"]),
    ("rooster", "cock-a-doodle-doo", ["crow", "crows", "cock a doodle doo"]),
    ("bee", "buzz", ["buzzes"]),
    ("frog", "croak", ["ribbit", "croaks"]),
    ("mouse", "squeak", ["squeaks"]),
    ("donkey", "bray", ["hee-haw", "hee haw", "brays"]),
    ("wolf", "howl", ["howls"]),
    ("turkey", "gobble", ["gobble gobble", "gobbles"]),
    ("dove", "coo", ["coos"]),
    ("hen", "cluck", ["clucks"]),
    ("elephant", "trumpet", ["trumpets"]),
    ("crow", "caw", ["caws"]),
]
SOUND_T = ["What sound does {x} make?", "What noise does {x} make?", "{X} makes what sound?"]
# (sound, animal, aliases) reverse questions
SOUND_REV = [
    ("moo", "cow", []),
    ("oink", "pig", ["hog"]),
    ("quack", "duck", []),
    ("meow", "cat", ["kitten"]),
    ("woof", "dog", ["puppy"]),
    ("neigh", "horse", []),
    ("hoot", "owl", []),
    ("croak", "frog", ["toad"]),
    ("gobble", "turkey", []),
    ("cock-a-doodle-doo", "rooster", ["cockerel", "cock", "chicken"]),
    ("baa", "sheep", ["lamb"]),
    ("hee-haw", "donkey", []),
]
SOUND_REV_T = ["Which animal says {x}?", "What animal goes {x}?"]

# arithmetic tables (all operands and results within 0..20)
ADDITIONS = [
    (2, 3),
    (4, 5),
    (1, 1),
    (6, 2),
    (7, 3),
    (0, 9),
    (8, 8),
    (5, 5),
    (9, 4),
    (3, 12),
    (10, 10),
    (11, 6),
    (2, 15),
    (13, 0),
    (7, 7),
    (6, 9),
    (14, 3),
    (1, 18),
    (12, 8),
    (4, 4),
    (9, 9),
    (3, 6),
    (5, 8),
    (16, 2),
    (10, 7),
    (1, 19),
    (0, 0),
    (6, 6),
    (8, 11),
    (15, 5),
    (2, 7),
    (4, 13),
    (3, 3),
    (17, 1),
    (9, 10),
]
ADD_T = ["What is {a} plus {b}?", "What is {a} + {b}?", "How much is {a} added to {b}?"]
SUBTRACTIONS = [
    (5, 2),
    (9, 4),
    (10, 3),
    (7, 7),
    (8, 1),
    (12, 5),
    (15, 10),
    (20, 5),
    (6, 0),
    (11, 9),
    (14, 7),
    (18, 9),
    (13, 6),
    (20, 8),
    (17, 8),
    (4, 2),
    (16, 4),
    (19, 11),
    (10, 10),
    (3, 1),
    (20, 1),
    (9, 2),
    (12, 7),
    (15, 6),
    (8, 5),
    (11, 2),
    (14, 5),
    (7, 4),
    (18, 3),
    (16, 15),
    (6, 3),
    (19, 6),
    (13, 9),
    (10, 5),
    (17, 4),
]
SUB_T = ["What is {a} minus {b}?", "What is {a} - {b}?", "If you take {b} away from {a}, how many are left?"]

# number after / before (answers within 0..20)
AFTER = [0, 1, 3, 4, 6, 7, 9, 10, 12, 13, 15, 16, 18, 19, 5, 8, 11, 14, 17, 2]
BEFORE = [1, 2, 4, 5, 7, 8, 10, 11, 13, 14, 16, 17, 19, 20, 3, 6, 9, 12, 15, 18]
AFTER_T = ["What number comes after {n}?", "What number comes right after {n} when counting?"]
BEFORE_T = ["What number comes before {n}?", "What number comes just before {n} when counting?"]

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
ORDINALS = [
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
]

# (word) for letter questions: plain lower-case English words
LETTER_WORDS = [
    "apple",
    "banana",
    "cat",
    "dog",
    "elephant",
    "fish",
    "garden",
    "house",
    "igloo",
    "jacket",
    "kite",
    "lemon",
    "monkey",
    "nest",
    "orange",
    "pencil",
    "queen",
    "rabbit",
    "sun",
    "table",
    "umbrella",
    "violin",
    "water",
    "yellow",
    "zebra",
    "bread",
    "chair",
    "window",
    "river",
    "cloud",
]
FIRST_T = ["What is the first letter of the word {w}?", "Which letter does the word {w} start with?"]
LAST_T = ["What is the last letter of the word {w}?", "Which letter does the word {w} end with?"]
LEN_T = ["How many letters are in the word {w}?", "How many letters does the word {w} have?"]
ALPHA_NEXT = ["a", "c", "f", "h", "k", "m", "p", "r", "t", "w"]
ALPHA_PREV = ["b", "e", "g", "j", "l", "o", "q", "s", "v", "z"]

# (question, number)
UNITS = [
    ("How many days are in a week?", 7),
    ("How many hours are in a day?", 24),
    ("How many minutes are in an hour?", 60),
    ("How many seconds are in a minute?", 60),
    ("How many months are in a year?", 12),
    ("How many days are in a year that is not a leap year?", 365),
    ("How many days are in a leap year?", 366),
    ("How many centimetres are in a metre?", 100),
    ("How many millimetres are in a centimetre?", 10),
    ("How many metres are in a kilometre?", 1000),
    ("How many grams are in a kilogram?", 1000),
    ("How many millilitres are in a litre?", 1000),
    ("How many inches are in a foot?", 12),
    ("How many feet are in a yard?", 3),
    ("How many ounces are in a pound?", 16),
    ("How many cents are in a US dollar?", 100),
    ("How many years are in a decade?", 10),
    ("How many years are in a century?", 100),
    ("How many years are in a millennium?", 1000),
    ("How many sides does a triangle have?", 3),
    ("How many sides does a square have?", 4),
    ("How many sides does a pentagon have?", 5),
    ("How many sides does a hexagon have?", 6),
    ("How many sides does an octagon have?", 8),
    ("How many legs does a spider have?", 8),
    ("How many legs does an insect have?", 6),
    ("How many legs does a dog have?", 4),
    ("How many things are in a dozen?", 12),
    ("How many days are in the month of April?", 30),
    ("How many days are in the month of June?", 30),
    ("How many days are in the month of September?", 30),
    ("How many days are in the month of November?", 30),
    ("How many days are in the month of January?", 31),
    ("How many days are in the month of March?", 31),
    ("How many days are in the month of July?", 31),
    ("How many days are in the month of December?", 31),
    ("How many wheels does a bicycle have?", 2),
    ("How many wheels does a tricycle have?", 3),
    ("How many minutes are in half an hour?", 30),
    ("How many minutes are in a quarter of an hour?", 15),
    ("How many hours are in half a day?", 12),
    ("How many months are in half a year?", 6),
    ("How many weeks are in a fortnight?", 2),
    ("How many players are on the court for one basketball team?", 5),
]

# (question, answer, aliases)
FACTS = [
    ("What do bees make?", "honey", []),
    ("What is frozen water called?", "ice", []),
    ("Which planet do we live on?", "Earth", ["the Earth", "planet Earth"]),
    ("What is the star at the centre of our solar system called?", "Sun", ["the Sun"]),
    ("What is the natural satellite of the Earth called?", "Moon", ["the Moon"]),
    ("What is the largest planet in our solar system?", "Jupiter", []),
    ("Which planet is closest to the Sun?", "Mercury", []),
    ("Which planet is known as the Red Planet?", "Mars", []),
    ("How many planets are in our solar system?", "8", ["eight"]),
    ("What is the name of our galaxy?", "Milky Way", ["the Milky Way"]),
    ("What is the largest ocean on Earth?", "Pacific", ["the Pacific", "Pacific Ocean", "the Pacific Ocean"]),
    ("In which direction does the sun rise?", "east", ["the east"]),
    ("In which direction does the sun set?", "west", ["the west"]),
    ("At what temperature in degrees Celsius does pure water freeze?", "0", ["zero"]),
    (
        "At sea level, at what temperature in degrees Celsius does water boil?",
        "100",
        ["one hundred", "a hundred"],
    ),
    ("What is the tallest animal in the world?", "giraffe", ["the giraffe", "a giraffe"]),
    ("What is the largest animal that has ever lived?", "blue whale", ["the blue whale", "a blue whale"]),
    ("Which organ pumps blood around the body?", "heart", ["the heart"]),
    ("Which organs do people use to breathe?", "lungs", ["the lungs", "lung"]),
    ("What do you call a baby cat?", "kitten", ["kitty"]),
    ("What do you call a baby dog?", "puppy", ["pup"]),
    ("What do you call a baby cow?", "calf", []),
    ("What do you call a baby sheep?", "lamb", []),
    ("What do you call a baby horse?", "foal", ["colt", "filly"]),
    ("What do you call a baby duck?", "duckling", []),
    ("What do you call a baby goose?", "gosling", []),
    ("What do you call a baby frog?", "tadpole", ["froglet"]),
    ("What do you call a baby kangaroo?", "joey", []),
    ("What do you call a baby bear?", "cub", []),
    ("What season comes after winter?", "spring", []),
    ("What season comes after spring?", "summer", []),
    ("What season comes after summer?", "autumn", ["fall"]),
    ("What season comes after autumn?", "winter", []),
    ("What is the meal you eat in the morning called?", "breakfast", []),
    ("What do you call a person who flies an airplane?", "pilot", ["a pilot"]),
    ("What do you call a person who teaches students in a school?", "teacher", ["a teacher"]),
    ("What tool do you usually use to cut paper?", "scissors", ["a pair of scissors"]),
    ("What do you write with on a blackboard?", "chalk", []),
    ("What shape has three sides?", "triangle", ["a triangle"]),
    ("What is the chemical formula H2O more commonly called?", "water", []),
    ("What is the chemical symbol for gold?", "Au", []),
    ("What is the chemical symbol for oxygen?", "O", []),
    ("What gas do plants take in from the air to make food?", "carbon dioxide", ["CO2"]),
    ("What gas do people need to breathe in to stay alive?", "oxygen", []),
    ("What do cows produce that people drink?", "milk", []),
    ("What is the first letter of the English alphabet?", "A", ["a"]),
    ("What is the last letter of the English alphabet?", "Z", ["z"]),
    ("How many letters are in the English alphabet?", "26", ["twenty-six", "twenty six"]),
]

# ---------------------------------------------------------------------------------------------- builders


def _rows() -> list[tuple[str, str, str, list[str]]]:
    out: list[tuple[str, str, str, list[str]]] = []

    def add(cat: str, prompt: str, answer, aliases=()):
        if isinstance(answer, int):
            answer, extra = num(answer)
            aliases = list(aliases) + extra
        out.append((cat, prompt, answer, list(aliases)))

    for i, (country, cap, al) in enumerate(CAPITALS):
        add("capital", cycle(CAPITAL_T, i).format(x=country), cap, al)

    for i, (thing, col, al) in enumerate(COLOURS):
        add("colour", cycle(COLOUR_T, i).format(x=thing), col, al)
    for i, (a, b, res, al) in enumerate(MIXES):
        add("colour", cycle(MIX_T, i).format(a=a, b=b), res, al)

    for i, (w, opp, al) in enumerate(OPPOSITES):
        add("opposite", cycle(OPPOSITE_T, i).format(x=w), opp, al)

    for i, (s, p, al) in enumerate(PLURALS):
        add("plural", cycle(PLURAL_T, i).format(x=s), p, al)

    for i, (animal, snd, al) in enumerate(SOUNDS):
        add(
            "animal_sound",
            cycle(SOUND_T, i).format(x=article(animal), X=article(animal).capitalize()),
            snd,
            al,
        )
    for i, (snd, animal, al) in enumerate(SOUND_REV):
        add("animal_sound", cycle(SOUND_REV_T, i).format(x=snd), animal, al + [article(animal)])

    for i, (a, b) in enumerate(ADDITIONS):
        add("addition", cycle(ADD_T, i).format(a=a, b=b), a + b)
    for i, (a, b) in enumerate(SUBTRACTIONS):
        add("subtraction", cycle(SUB_T, i).format(a=a, b=b), a - b)

    for i, n in enumerate(AFTER):
        add("number_order", cycle(AFTER_T, i).format(n=n), n + 1)
    for i, n in enumerate(BEFORE):
        add("number_order", cycle(BEFORE_T, i).format(n=n), n - 1)

    for i, d in enumerate(DAYS):
        add("days", f"Which day of the week comes after {d}?", DAYS[(i + 1) % 7])
        add("days", f"Which day of the week comes before {d}?", DAYS[(i - 1) % 7])
        add(
            "days",
            f"If today is {d}, what day will it be tomorrow?"
            if i % 2 == 0
            else f"If today is {d}, what day was it yesterday?",
            DAYS[(i + 1) % 7 if i % 2 == 0 else (i - 1) % 7],
        )
        add("days", f"If today is {d}, what day will it be the day after tomorrow?", DAYS[(i + 2) % 7])

    for i, m in enumerate(MONTHS):
        add("months", f"Which month comes after {m}?", MONTHS[(i + 1) % 12])
        add("months", f"Which month comes before {m}?", MONTHS[(i - 1) % 12])
        add(
            "months",
            f"What is the {ORDINALS[i]} month of the year?"
            if i % 2 == 0
            else f"Which month is the {ORDINALS[i]} month of the year?",
            m,
        )

    for i, w in enumerate(LETTER_WORDS):
        kind = i % 3
        if kind == 0:
            add("letters", cycle(FIRST_T, i // 3).format(w=w), w[0], [w[0].upper()])
        elif kind == 1:
            add("letters", cycle(LAST_T, i // 3).format(w=w), w[-1], [w[-1].upper()])
        else:
            add("letters", cycle(LEN_T, i // 3).format(w=w), len(w))
    for i, c in enumerate(ALPHA_NEXT):
        nxt = chr(ord(c) + 1).upper()
        q = (
            f"Which letter comes after {c.upper()} in the alphabet?"
            if i % 2 == 0
            else f"In the alphabet, what letter comes right after {c.upper()}?"
        )
        add("letters", q, nxt, [nxt.lower()])
    for i, c in enumerate(ALPHA_PREV):
        prv = chr(ord(c) - 1).upper()
        q = (
            f"Which letter comes before {c.upper()} in the alphabet?"
            if i % 2 == 0
            else f"In the alphabet, what letter comes just before {c.upper()}?"
        )
        add("letters", q, prv, [prv.lower()])

    for q, n in UNITS:
        add("units", q, n)

    for q, a, al in FACTS:
        add("everyday_fact", q, a, al)
    return out


def build() -> list[dict]:
    rows = []
    seen: set[str] = set()
    for i, (cat, prompt, answer, aliases) in enumerate(_rows(), 1):
        key = " ".join(prompt.split()).lower()
        assert key not in seen, f"duplicate prompt: {prompt}"
        seen.add(key)
        aliases = sorted({a for a in aliases if a != answer}, key=aliases.index)
        for text in [prompt, answer, *aliases]:
            assert text.isascii() and text == text.strip() and text, repr(text)
        assert 1 <= len(answer.split()) <= 3, answer
        rows.append(
            {
                "id": f"{SOURCE}-{i:04d}",
                "source": SOURCE,
                "category": cat,
                "prompt": prompt,
                "answer": answer,
                "aliases": aliases,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("crl_core/data/files"))
    args = ap.parse_args(argv)
    rows = build()
    args.out.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    (args.out / "benign_qa.jsonl").write_bytes(data.encode("utf-8"))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["category"]] = counts.get(r["category"], 0) + 1
    print(f"benign_qa.jsonl\t{len(rows)}\t" + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
