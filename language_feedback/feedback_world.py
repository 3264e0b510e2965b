"""A feedback world with a ground truth: procedural posts, a hidden reader preference, an oracle that writes
feedback in words, and a scorer that knows what a good summary is.

The world is deterministic from a seed. Each post (3–6 sentences) tells a small story from one of many
scenarios (a car repair, a vet bill, a cancelled flight, ...) with people, a place, a date, an event, amounts
and an outcome, and annotates its key facts (type and surface form, e.g. ``amount: "3,800 euros"``). Sentence
templates, their order, fillers and vocabularies vary, so nothing can be learned from one sentence shape.

The hidden **reader preference** is the same for every post: a summary must state the required fact types
(:data:`CHECKABLE_FACTS`: how much the main thing cost, and how it ended; by default both,
:data:`REQUIRED_FACTS`). A model only learns it from the
feedback, which the :class:`Oracle` writes as a person would ("You left out how much the repair cost.",
"Say how it ended.") from many paraphrases, optionally with a share of vague or misleading feedback. The
feedback is words, never a label.

The :func:`score` of a summary checks the preference and that the summary is a real summary:

- ``recall``: the share of the required facts it states (numbers compared digit by digit; the outcome by
  its marker words, which appear nowhere else in the post);
- ``unsupported``: names and numbers that are not in the post (hallucination);
- ``copy_share``: the share of its word 5-grams copied verbatim from the post;
- ``format_violations``: meta-comments about the text, the summary or a rewrite, quotes, more than one
  sentence;
- ``n_words``.

A summary is **good** when it has every required fact, invents nothing, is at most :data:`MAX_WORDS` long,
copies at most :data:`MAX_COPY_SHARE` and breaks no format rule. The two bounds were fixed from the reference
summaries the generator writes (see :func:`reference_bounds` and the tests), before any model's output was
looked at.

Rows come out in the SLF5K format (:func:`to_slf5k_row`), so the loaders, selectors, reward-model training
and eval scripts work on this world unchanged.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from language_feedback.text import WORD, split_sentences

CHECKABLE_FACTS = ("amount", "outcome")  # the fact types the scorer can check in any wording
REQUIRED_FACTS = CHECKABLE_FACTS  # the default reader preference
# Fixed from the generator's reference summaries (longest 29 words, largest copy share 0.35 over 5000 posts; see
# reference_bounds()), with headroom for a model's own wording, before looking at any model output.
MAX_WORDS = 40
MAX_COPY_SHARE = 0.5
COPY_NGRAM = 5


# --------------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------------

FIRST_NAMES = (
    "Anna", "Ben", "Carla", "David", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Liam", "Maya",
    "Nikolai", "Olivia", "Pavel", "Rosa", "Samir", "Tessa", "Umar", "Vera", "Walter", "Yusuf", "Zoe", "Amir",
    "Bianca", "Conor", "Dalia", "Emil", "Fatima", "Gustav", "Hana", "Igor", "Julia", "Kofi", "Lena", "Marco",
    "Nadia", "Oscar", "Priya", "Rafael", "Sofia", "Tomas", "Ursula", "Viktor", "Wanda", "Xavier", "Yara",
)
RELATIONS = ("my brother", "my sister", "my neighbour", "my roommate", "my partner", "my cousin", "my friend",
             "my coworker", "my dad", "my mum", "my uncle", "my aunt")
PLACES = (
    "Lyon", "Porto", "Leeds", "Graz", "Utrecht", "Bologna", "Krakow", "Tampere", "Bilbao", "Ghent", "Aarhus",
    "Brno", "Cork", "Dresden", "Nantes", "Malmo", "Turin", "Seville", "Bergen", "Lausanne", "Riga", "Rijeka",
    "Galway", "Leipzig", "Salzburg", "Toulouse", "Valencia", "Zagreb", "Basel", "Gdansk",
)
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
CURRENCIES = (("euros", "{n} euros"), ("dollars", "{n} dollars"), ("pounds", "{n} pounds"), ("francs", "{n} francs"))

# Words that start a sentence in the generator's or a model's summaries and are not names.
_NOT_NAMES = {"I", "My", "The", "A", "An", "After", "In", "On", "At", "We", "He", "She", "They", "It", "Our",
              "His", "Her", "Their", "When", "But", "And", "So", "Then", "This", "That", "There", "TL", "DR",
              "Finally", "Eventually", "Later", "Now", "Last", "Next", "Yesterday", "Today", "Because", "Although",
              "While", "For", "To", "With", "Summary", "Post", "Text", "Title"}


# --------------------------------------------------------------------------------------------------
# Scenarios: what a post is about, how its sentences can be said, and how it can end
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How a story ends: the sentence in the post, a short phrase for summaries, and marker words.

    ``markers`` are groups of word stems; the outcome counts as stated when every group has a word starting
    with one of its stems. The markers appear in the post only in the outcome sentence.
    """

    sentences: tuple[str, ...]
    phrase: str
    markers: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Scenario:
    name: str
    subreddit: str
    titles: tuple[str, ...]
    setups: tuple[str, ...]  # introduce the person, place and date
    events: tuple[str, ...]  # what happened
    costs: tuple[str, ...]  # the key amount ({amount}); {other} is a distractor amount in some
    fillers: tuple[str, ...]  # optional colour, no key facts
    outcomes: tuple[Outcome, ...]
    cost_noun: str  # "the repair": for feedback and references ("how much the repair cost")
    event_phrase: str  # "had the car repaired": for reference summaries
    amount_range: tuple[int, int]


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "car_repair", "personalfinance",
        ("Garage bill shock", "My car broke down and the repair was not cheap", "Was I overcharged by the garage?"),
        ("On {date}, my car broke down near {place} while {person} and I were driving home.",
         "{person}, {relation}, lent me a car after mine died in {place} on {date}.",
         "My old hatchback stopped working in {place} on {date}, the day {person} was visiting."),
        ("The mechanic said the gearbox had to be replaced.", "The garage found a cracked cylinder head.",
         "It turned out the clutch was completely worn out."),
        ("The repair cost {amount} in the end.",
         "They charged me {amount} for the work, although the first quote was {other}.",
         "The final bill came to {amount}."),
        ("I had to take the bus to work for a week.", "The waiting room coffee was terrible.",
         "I had only bought the car two years earlier."),
        (Outcome(("In the end the insurance paid for the whole repair.", "Luckily my insurance covered all of it."),
                 "the insurance paid for it", (("insurance", "insurer"), ("paid", "pay", "cover"))),
         Outcome(("After I complained, the garage gave me a discount.",),
                 "the garage gave a discount after a complaint", (("discount",),)),
         Outcome(("I decided to sell the car to a scrapyard instead.", "In the end I sold the car for scrap."),
                 "the car was sold for scrap", (("sold", "sell"), ("scrap",)))),
        "the repair", "had the car repaired", (250, 4800),
    ),
    Scenario(
        "deposit", "legaladvice",
        ("Landlord kept my deposit", "Deposit dispute after moving out", "Can my landlord do this?"),
        ("I moved out of my flat in {place} on {date} after three years there.",
         "{person}, my landlord in {place}, inspected the flat on {date} when I left.",
         "On {date} I handed back the keys of my apartment in {place}; {person} was there to check it."),
        ("The landlord claimed the carpets were ruined.", "He said the walls needed repainting.",
         "She listed a broken oven and stains on the floor."),
        ("He kept {amount} of my deposit.", "The landlord wanted to keep {amount}, out of a deposit of {other}.",
         "She deducted {amount} from the deposit."),
        ("I had photos from the day I moved in.", "The flat was older than the landlord admitted.",
         "My new place is much smaller."),
        (Outcome(("The tenancy tribunal ordered him to return everything.",),
                 "a tribunal ordered the deposit returned", (("tribunal",), ("return", "order", "refund"))),
         Outcome(("We settled and I got half of it back.", "After some emails we agreed to split it."),
                 "they settled and split the amount", (("settle", "split", "half"),)),
         Outcome(("I gave up and let him keep the money.",),
                 "I gave up and let the landlord keep it", (("gave up", "give up", "let "),))),
        "the deductions", "lost part of the deposit when moving out", (150, 2400),
    ),
    Scenario(
        "vet", "dogs",
        ("Emergency vet visit", "My dog ate something he should not have", "Vet bill advice"),
        ("On {date}, {person}'s dog swallowed a sock at the park in {place}.",
         "My puppy got sick on {date} while we were staying with {person} in {place}.",
         "We rushed our cat to an emergency clinic in {place} on {date}; {person} drove."),
        ("The vet had to operate that night.", "She needed an X-ray and two days on a drip.",
         "The clinic kept him overnight for tests."),
        ("The bill was {amount}.", "All together the treatment cost {amount}, far more than the {other} I expected.",
         "We paid {amount} at the front desk."),
        ("The staff were very kind.", "He is back to chasing pigeons now.", "I did not sleep at all that night."),
        (Outcome(("The pet insurance reimbursed most of it a month later.",),
                 "the pet insurance reimbursed most of it", (("insurance",), ("reimburs", "paid", "cover"))),
         Outcome(("The clinic let us pay in monthly instalments.", "We agreed a payment plan with the clinic."),
                 "the clinic allowed monthly instalments", (("instalment", "installment", "payment plan"),)),
         Outcome(("Sadly the dog did not survive the night.",),
                 "the pet did not survive", (("surviv", "died", "passed away"),))),
        "the treatment", "had an emergency vet visit", (180, 3600),
    ),
    Scenario(
        "flight", "travel",
        ("Cancelled flight and no help", "Airline cancelled my flight", "Stuck at the airport"),
        ("My flight from {place} was cancelled on {date}, an hour before boarding.",
         "{person} and I were flying home from {place} on {date} when the airline cancelled our flight.",
         "On {date} the last flight out of {place} was cancelled; {person} and I were on it."),
        ("We had to book a hotel and new tickets ourselves.", "The airline offered no rebooking until the next week.",
         "Nobody at the desk could tell us why."),
        ("The new tickets and the hotel cost us {amount}.", "We spent {amount} getting home, plus {other} for food.",
         "Getting home cost {amount} in total."),
        ("The airport was packed with stranded people.", "We missed a cousin's birthday party.",
         "Our suitcases arrived two days later."),
        (Outcome(("After a formal claim the airline refunded everything.",
                  "The airline eventually refunded every cent."),
                 "the airline refunded it after a claim", (("refund",),)),
         Outcome(("The airline only gave us a voucher for a future flight.",),
                 "the airline only offered a voucher", (("voucher",),)),
         Outcome(("Our travel insurance rejected the claim.",),
                 "the travel insurance rejected the claim", (("reject", "denied", "refused"),))),
        "getting home", "had a flight cancelled", (220, 2900),
    ),
    Scenario(
        "phone", "techsupport",
        ("Phone screen disaster", "Dropped my phone, now what?", "Repair shop drama"),
        ("I dropped my phone in a café in {place} on {date}.",
         "On {date} {person} knocked my phone off a table in {place}.",
         "My phone fell into a fountain in {place} on {date} while I was taking photos with {person}."),
        ("The screen was shattered and the camera stopped working.", "It would not turn on any more.",
         "The battery started swelling a few days later."),
        ("The repair shop charged {amount}.", "Fixing it cost {amount}, while a new phone would have been {other}.",
         "I paid {amount} for the repair."),
        ("I had no backup of my photos.", "The shop was in a tiny alley.", "I used an old phone in the meantime."),
        (Outcome(("The manufacturer replaced the phone for free under warranty.",),
                 "it was replaced under warranty", (("warranty",),)),
         Outcome(("The phone broke again a week later, so I bought a new one.",),
                 "it broke again and a new phone was bought", (("broke again", "broken again"),)),
         Outcome(("{person} offered to pay half, which I accepted.",),
                 "the friend paid half", (("half",), ("pay", "paid")))),
        "the repair", "had the phone repaired", (60, 900),
    ),
    Scenario(
        "wedding", "weddingplanning",
        ("Wedding venue cancelled on us", "Our venue went bust", "Wedding planning nightmare"),
        ("{person} and I booked a wedding venue near {place} for {date}.",
         "Our wedding was planned for {date} at an old mill outside {place}; {person} found the place.",
         "On {date} the venue near {place} that {person} and I had booked called us."),
        ("Two months before, the venue told us it had closed.", "The owners had sold the building without telling us.",
         "They had double-booked the date with another couple."),
        ("We had already paid {amount}.", "Our deposit was {amount}, and flowers had cost another {other}.",
         "We lost {amount} in fees."),
        ("Planning a wedding is stressful enough.", "My mother cried on the phone.", "The caterer was very understanding."),
        (Outcome(("The venue's insurance refunded our deposit.",), "the deposit was refunded",
                 (("refund",),)),
         Outcome(("We moved the wedding to {person}'s garden and it was lovely.",),
                 "the wedding moved to a garden", (("garden",),)),
         Outcome(("We postponed the wedding by a year.",), "the wedding was postponed by a year",
                 (("postpone", "delay"),))),
        "the venue", "lost their wedding venue", (800, 9500),
    ),
    Scenario(
        "tickets", "concerts",
        ("Fake concert tickets", "Got scammed buying tickets", "Ticket resale gone wrong"),
        ("I bought two concert tickets from a reseller for a show in {place} on {date}.",
         "{person} and I were going to see our favourite band in {place} on {date}.",
         "On {date} I tried to get into a concert in {place} with tickets {person} helped me buy online."),
        ("At the gate the tickets were declared fake.", "The barcodes had already been used.",
         "The seller stopped answering messages."),
        ("I had paid {amount} for them.", "They cost {amount}, while the official price was {other}.",
         "That was {amount} gone."),
        ("The band was amazing, I heard, from outside.", "It was raining the whole evening.",
         "We ended up eating pizza nearby."),
        (Outcome(("My bank reversed the payment after a week.", "The bank got my money back through a chargeback."),
                 "the bank reversed the payment", (("bank",), ("revers", "chargeback", "back"))),
         Outcome(("The police took a report but nothing came of it.",),
                 "a police report led nowhere", (("police",),)),
         Outcome(("The venue let us in anyway after checking our emails.",),
                 "the venue let them in anyway", (("let us in", "let them in", "anyway"),))),
        "the tickets", "bought fake concert tickets", (70, 1200),
    ),
    Scenario(
        "dental", "Dentistry",
        ("Surprise dental bill", "Tooth pain turned expensive", "Dentist charged me for extra work"),
        ("I woke up with a terrible toothache on {date} while visiting {person} in {place}.",
         "On {date} I saw a dentist in {place} because a filling fell out.",
         "{person} recommended a dental clinic in {place}, and I went there on {date}."),
        ("The dentist said I needed a root canal and a crown.", "They pulled a wisdom tooth on the spot.",
         "It turned out two teeth needed treatment."),
        ("The treatment cost {amount}.", "I was billed {amount}, although the estimate had been {other}.",
         "The clinic asked for {amount}."),
        ("I hate the sound of the drill.", "My face was numb for hours.", "The clinic had a fish tank."),
        (Outcome(("My health insurance covered most of the bill.",), "the health insurance covered most of it",
                 (("insurance",), ("cover", "paid", "pay"))),
         Outcome(("After I disputed the bill, the clinic lowered it.",), "the clinic lowered the bill after a dispute",
                 (("lower", "reduc"),)),
         Outcome(("I am still paying it off with a loan.",), "it is being paid off with a loan",
                 (("loan",),))),
        "the treatment", "needed urgent dental work", (120, 3200),
    ),
    Scenario(
        "laptop", "buildapc",
        ("Laptop died after a month", "Warranty trouble with my laptop", "New laptop, new problems"),
        ("I bought a laptop in a shop in {place} on {date}.",
         "On {date} the laptop {person} sold me in {place} stopped charging.",
         "{person} helped me pick a laptop at a store in {place} on {date}."),
        ("A month later the motherboard failed.", "The screen started flickering within weeks.",
         "It overheated and shut down every hour."),
        ("It had cost {amount}.", "I paid {amount} for it, and {other} for the extended service.",
         "The price was {amount}."),
        ("I need it for university.", "The shop assistant was not helpful.", "I lost an essay I was writing."),
        (Outcome(("The shop gave me a full refund.", "In the end the store refunded me."),
                 "the shop refunded it", (("refund",),)),
         Outcome(("They swapped it for a newer model.",), "it was swapped for a newer model",
                 (("swap", "exchange", "replac"),)),
         Outcome(("The shop refused, so I took them to small claims court.",), "it went to small claims court",
                 (("court",),))),
        "the laptop", "bought a faulty laptop", (300, 2600),
    ),
    Scenario(
        "movers", "moving",
        ("Moving company held my stuff hostage", "Movers broke my furniture", "Moving day disaster"),
        ("We hired a moving company to take our things from {place} to the coast on {date}.",
         "On {date} {person} and I moved out of {place} with a moving company.",
         "Movers came to my flat in {place} on {date}; {person} helped me pack."),
        ("They broke a wardrobe and lost two boxes.", "They demanded more money before unloading.",
         "Half of the furniture arrived scratched."),
        ("The move cost {amount}.", "The movers charged {amount}, double the quoted {other}.",
         "We paid {amount} for the move."),
        ("It took eleven hours.", "The dog hid under the bed all day.", "Our new neighbours brought cake."),
        (Outcome(("The company's insurer compensated us for the damage.",), "the movers' insurer paid compensation",
                 (("compensat", "insur"),)),
         Outcome(("We left a bad review and never heard from them again.",),
                 "a bad review got no answer", (("review",),)),
         Outcome(("A consumer agency forced them to refund the extra charge.",),
                 "a consumer agency forced a refund", (("agency",),))),
        "the move", "had a bad experience with movers", (400, 5200),
    ),
    Scenario(
        "roof", "HomeImprovement",
        ("Leaking roof and a shady builder", "Roof repair went wrong", "Builder did half a job"),
        ("After a storm on {date}, our roof in {place} started leaking.",
         "On {date} {person} noticed water dripping through our ceiling in {place}.",
         "We hired a builder in {place} on {date} to fix the leaking roof; {person} knew him."),
        ("The builder replaced the tiles but the leak came back.", "He found rotten beams under the tiles.",
         "The ceiling in the kitchen partly collapsed."),
        ("He charged {amount} for the job.", "The work cost {amount}, and the ceiling another {other}.",
         "We paid {amount}."),
        ("It rained for a week straight.", "We slept in the living room.", "The cat loved the buckets."),
        (Outcome(("The builder came back and fixed it for free.",), "the builder fixed it again for free",
                 (("free",),)),
         Outcome(("Our home insurance paid for a new roof.",), "the home insurance paid for a new roof",
                 (("insurance",), ("paid", "pay", "cover"))),
         Outcome(("We hired a different builder and paid twice.",), "they had to pay a second builder",
                 (("different builder", "second builder", "another builder", "twice"),))),
        "the roof work", "had a leaking roof repaired", (600, 8700),
    ),
    Scenario(
        "gym", "personalfinance",
        ("Gym will not let me cancel", "Stuck in a gym contract", "Gym membership trap"),
        ("I signed up at a gym in {place} on {date}.", "On {date} {person} talked me into joining a gym in {place}.",
         "I moved away from {place} on {date} and tried to cancel my gym contract; {person} had warned me."),
        ("The gym kept charging me after I cancelled.", "They said the contract ran for two years.",
         "They claimed my cancellation letter never arrived."),
        ("They took {amount} from my account.", "The charges added up to {amount}, plus a {other} fee.",
         "I had paid {amount} by then."),
        ("I went maybe five times.", "The showers were always cold.", "I now run in the park instead."),
        (Outcome(("A lawyer's letter made them stop and refund me.",), "a lawyer's letter got a refund",
                 (("lawyer",),)),
         Outcome(("I blocked the payments through my bank.",), "the payments were blocked at the bank",
                 (("block",),)),
         Outcome(("I paid until the contract ended.",), "the contract was paid to the end",
                 (("contract ended", "until the end", "to the end", "paid until"),))),
        "the gym charges", "was stuck in a gym contract", (90, 1400),
    ),
)

FACT_TYPES = ("person", "place", "date", "event", "amount", "outcome")


@dataclass(frozen=True)
class Fact:
    type: str
    surface: str


@dataclass(frozen=True)
class Post:
    """One generated post with its annotated key facts and a reference summary."""

    id: str
    scenario: str
    subreddit: str
    title: str
    text: str
    facts: tuple[Fact, ...]
    reference: str
    outcome_markers: tuple[tuple[str, ...], ...]
    cost_noun: str
    distractor: str = ""  # another amount the post states (e.g. a first quote), or ""

    def fact(self, fact_type: str) -> Fact:
        return next(f for f in self.facts if f.type == fact_type)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict) -> Post:
        return cls(**{**row, "facts": tuple(Fact(**f) for f in row["facts"]),
                      "outcome_markers": tuple(tuple(m) for m in row["outcome_markers"])})


def _amount(rng: random.Random, low: int, high: int) -> int:
    value = rng.randint(low, high)
    step = 50 if value >= 1000 else 10 if value >= 100 else 5
    return max(step, value // step * step)


def _format_amount(value: int, template: str) -> str:
    return template.format(n=f"{value:,}")


def _date(rng: random.Random) -> str:
    day = rng.randint(1, 28)
    return rng.choice((f"{rng.choice(MONTHS)} {day}", f"{day} {rng.choice(MONTHS)}",
                       f"a {rng.choice(WEEKDAYS)} in {rng.choice(MONTHS)}"))


def make_post(rng: random.Random, post_id: str) -> Post:
    """One post drawn with ``rng``: a scenario, its sentences in a varied order, facts and a reference summary."""
    scenario = rng.choice(SCENARIOS)
    person, place, date = rng.choice(FIRST_NAMES), rng.choice(PLACES), _date(rng)
    _, currency = rng.choice(CURRENCIES)
    value = _amount(rng, *scenario.amount_range)
    other_value = _amount(rng, *scenario.amount_range)
    while other_value == value:
        other_value += 10
    amount, other = _format_amount(value, currency), _format_amount(other_value, currency)
    outcome = rng.choice(scenario.outcomes)
    slots = {"person": person, "place": place, "date": date, "amount": amount, "other": other,
             "relation": rng.choice(RELATIONS)}
    setup = rng.choice(scenario.setups).format(**slots)
    event = rng.choice(scenario.events).format(**slots)
    cost = rng.choice(scenario.costs).format(**slots)
    ending = rng.choice(outcome.sentences).format(**slots)
    fillers = [f.format(**slots) for f in rng.sample(scenario.fillers, rng.randint(0, 2))]
    # The setup opens and the ending closes; cost, event and fillers come in between in a varied order.
    middle = [event, cost] if rng.random() < 0.7 else [cost, event]
    for filler in fillers:
        middle.insert(rng.randint(0, len(middle)), filler)
    text = " ".join([setup, *middle, ending])
    reference = _reference(rng, scenario, person, place, amount, outcome.phrase.format(**slots))
    facts = tuple(f for f in (Fact("person", person), Fact("place", place), Fact("date", date), Fact("event", event),
                              Fact("amount", amount), Fact("outcome", ending))
                  if f.type != "person" or person in text)  # some stories name no one
    return Post(post_id, scenario.name, scenario.subreddit, rng.choice(scenario.titles), text, facts, reference,
                outcome.markers, scenario.cost_noun, other if other in text else "")


def _reference(rng: random.Random, scenario: Scenario, person: str, place: str, amount: str, outcome: str) -> str:
    """A one-sentence summary in the reader's preferred form: the amount and the outcome, in few words."""
    templates = (
        "I {event} in {place}; {noun} cost {amount} and {outcome}.",
        "{Noun} cost {amount} after I {event}, and in the end {outcome}.",
        "After I {event}, {noun} came to {amount}; {outcome}.",
        "I {event}: {amount} for {noun}, and {outcome}.",
    )
    noun = scenario.cost_noun
    text = rng.choice(templates).format(event=scenario.event_phrase, place=place, noun=noun, Noun=noun[0].upper()
                                        + noun[1:], amount=amount, outcome=outcome)
    return text


def generate_world(n_posts: int, seed: int = 0) -> list[Post]:
    """``n_posts`` posts, deterministic for ``seed``; ids ``w<seed>-<index>``."""
    if n_posts < 1:
        raise ValueError(f"n_posts must be >= 1, got {n_posts}")
    rng = random.Random(seed)
    return [make_post(rng, f"w{seed}-{i:05d}") for i in range(n_posts)]


# --------------------------------------------------------------------------------------------------
# The ground-truth scorer
# --------------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"\d[\d,.]*\d|\d")
_META = re.compile(
    r"\b(the|this|that|original|given|above) (text|post|passage|story|article|summary|tl;?dr)\b|"
    r"\b(rewrit\w*|rephras\w*|feedback|improved summary|new summary|here is|here's|summary:|the author)\b|"
    r"^\s*title\s*:",  # a post's title line copied out: a heading, not a summary
    re.IGNORECASE,
)


def _numbers(text: str) -> set[str]:
    """Numbers written with digits, thousands separators removed ("3,800" and "3800" are the same)."""
    return {re.sub(r"[,.](?=\d{3}\b)", "", n) for n in _NUMBER.findall(text)}


def _words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def _ngrams(words: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _has_marker_group(text: str, group: Sequence[str]) -> bool:
    lowered = " " + " ".join(_words(text)) + " "
    return any((" " + stem) in lowered for stem in group)


def _names(text: str) -> set[str]:
    """Capitalised words that are not sentence starters: names of people and places."""
    found = set()
    for sentence in split_sentences(text):
        words = WORD.findall(sentence)
        for i, word in enumerate(words):
            possessive = word.endswith("'s")
            word = word.removesuffix("'s")
            if not word[:1].isupper() or word in _NOT_NAMES or word in MONTHS or word in WEEKDAYS:
                continue
            if i == 0 and not possessive and word not in FIRST_NAMES and word not in PLACES:
                continue  # a sentence's first word is capitalised anyway
            found.add(word)
    return found


@dataclass(frozen=True)
class Score:
    """The ground truth on one summary of one post (see the module docstring)."""

    present: dict[str, bool]
    required: tuple[str, ...]
    wrong_amount: bool
    unsupported: tuple[str, ...]
    copy_share: float
    format_violations: tuple[str, ...]
    n_words: int

    @property
    def recall(self) -> float:
        return sum(self.present[t] for t in self.required) / len(self.required)

    @property
    def too_long(self) -> bool:
        return self.n_words > MAX_WORDS

    @property
    def copies(self) -> bool:
        return self.copy_share > MAX_COPY_SHARE

    @property
    def good(self) -> bool:
        return (self.recall == 1.0 and not self.unsupported and not self.too_long and not self.copies
                and not self.format_violations and self.n_words >= 3)

    @property
    def value(self) -> float:
        """One number to rank summaries by (the ground-truth selector): good first, then recall, minus faults."""
        faults = bool(self.unsupported) + self.too_long + self.copies + bool(self.format_violations)
        return 2.0 * self.good + self.recall - 0.5 * faults

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "recall": self.recall, "good": self.good, "too_long": self.too_long,
                "copies": self.copies}


def score(post: Post, summary: str, required: Sequence[str] = REQUIRED_FACTS) -> Score:
    """Score ``summary`` of ``post`` against the ground truth; ``required``: the fact types the reader wants."""
    unknown = sorted(set(required) - set(CHECKABLE_FACTS))
    if unknown or not required:
        raise ValueError(f"required facts must be a non-empty subset of {CHECKABLE_FACTS}, got {list(required)}")
    amount = post.fact("amount").surface
    summary_numbers, post_numbers = _numbers(summary), _numbers(post.text + " " + post.title)
    key_numbers = _numbers(amount)
    has_amount = bool(key_numbers) and key_numbers <= summary_numbers
    has_outcome = all(_has_marker_group(summary, group) for group in post.outcome_markers)
    post_words_cased = {w.removesuffix("'s") for w in WORD.findall(post.text + " " + post.title)}
    unsupported = sorted((summary_numbers - post_numbers) | (_names(summary) - post_words_cased))
    summary_words, post_words = _words(summary), _words(post.text)
    grams = _ngrams(summary_words, COPY_NGRAM)
    copy_share = len(grams & _ngrams(post_words, COPY_NGRAM)) / len(grams) if grams else 0.0
    violations = []
    if _META.search(summary):
        violations.append("meta-comment")
    if '"' in summary or "“" in summary or "”" in summary:
        violations.append("quotes")
    if len(split_sentences(summary)) > 1:
        violations.append("more than one sentence")
    return Score(
        present={"amount": has_amount, "outcome": has_outcome}, required=tuple(required),
        wrong_amount=not has_amount and bool(post.distractor) and _numbers(post.distractor) <= summary_numbers,
        unsupported=tuple(unsupported), copy_share=copy_share, format_violations=tuple(violations),
        n_words=len(summary_words),
    )


def reference_bounds(posts: Sequence[Post]) -> dict[str, float]:
    """The longest reference summary (words) and the largest share it copies: what MAX_WORDS and
    MAX_COPY_SHARE were fixed from."""
    scores = [score(p, p.reference) for p in posts]
    return {"max_words": max(s.n_words for s in scores), "max_copy_share": max(s.copy_share for s in scores)}


# --------------------------------------------------------------------------------------------------
# The feedback oracle
# --------------------------------------------------------------------------------------------------

MISSING_AMOUNT = (
    "You left out how much {noun} cost.", "How much did {noun} cost? The summary should say.",
    "Mention the price of {noun}.", "The summary needs the amount: what did {noun} cost?",
    "Please include how much money {noun} was.", "A reader wants to know what {noun} cost.",
)
MISSING_OUTCOME = (
    "Say how it ended.", "What happened in the end? Add that.", "You didn't say how things turned out.",
    "Mention the outcome.", "The ending is missing: how was it resolved?", "Tell me how the story ended.",
)
WRONG_AMOUNT = (
    "The amount is wrong: {noun} cost {amount}.", "That's not the right figure; {noun} came to {amount}.",
)
UNSUPPORTED = ("There is no {what} in the post.", "Don't invent details: {what} isn't mentioned.",
               "Where does {what} come from? It's not in the post.")
COPYING = ("Use your own words instead of copying sentences from the post.", "Don't just copy the post.")
META = ("Just give the summary, without talking about the text.", "Don't comment on the post; summarize it.")
MULTI = ("Keep it to one sentence.", "One sentence is enough.")
TOO_LONG = ("Make it shorter.", "That's too long for a summary.")
VAGUE = ("Could be better.", "Not quite there yet.", "Hmm, try again.", "This needs some work.")
MISLEADING = ("Mention the date.", "Say where it happened.", "Add more detail about the people involved.",
              "Make it more emotional.")
GOOD = ("Good summary.", "That's a good summary.")


@dataclass
class Oracle:
    """Writes feedback in words on a summary of a post, as a reader with the hidden preference would.

    It names what is missing or wrong, most important first (missing required facts, a wrong amount,
    invented names or numbers, then form: copying, meta-comments, several sentences, length), at most
    ``max_points`` points, each from several paraphrases. ``vague_fraction`` and ``misleading_fraction`` of
    the feedback (drawn per call) is replaced by vague or misleading remarks. A good summary gets praise.
    """

    seed: int = 0
    max_points: int = 2
    vague_fraction: float = 0.0
    misleading_fraction: float = 0.0
    required: tuple[str, ...] = REQUIRED_FACTS
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.vague_fraction + self.misleading_fraction <= 1:
            raise ValueError("vague_fraction + misleading_fraction must be between 0 and 1")
        self.rng = random.Random(self.seed)

    def points(self, post: Post, result: Score) -> list[str]:
        """Every applicable remark, most important first."""
        noun = post.cost_noun
        out = []
        if "amount" in self.required and not result.present["amount"]:
            pool = WRONG_AMOUNT if result.wrong_amount else MISSING_AMOUNT
            out.append(self.rng.choice(pool).format(noun=noun, amount=post.fact("amount").surface))
        if "outcome" in self.required and not result.present["outcome"]:
            out.append(self.rng.choice(MISSING_OUTCOME))
        if result.unsupported:
            out.append(self.rng.choice(UNSUPPORTED).format(what=result.unsupported[0]))
        if result.copies:
            out.append(self.rng.choice(COPYING))
        if "meta-comment" in result.format_violations or "quotes" in result.format_violations:
            out.append(self.rng.choice(META))
        if "more than one sentence" in result.format_violations:
            out.append(self.rng.choice(MULTI))
        if result.too_long:
            out.append(self.rng.choice(TOO_LONG))
        return out

    def __call__(self, post: Post, summary: str) -> str:
        result = score(post, summary, self.required)
        draw = self.rng.random()
        if draw < self.vague_fraction:
            return self.rng.choice(VAGUE)
        if draw < self.vague_fraction + self.misleading_fraction:
            return self.rng.choice(MISLEADING)
        points = self.points(post, result)
        if not points:
            return self.rng.choice(GOOD)
        return " ".join(points[: self.max_points])


# --------------------------------------------------------------------------------------------------
# SLF5K rows
# --------------------------------------------------------------------------------------------------


def to_slf5k_row(post: Post, summary: str, feedback: str) -> dict[str, str]:
    """An SLF5K-format row: ``summary`` is the one the feedback is about; the reference is the ideal summary
    and the preferred side of the comparison."""
    return {
        "id": post.id, "subreddit": post.subreddit, "title": post.title, "post": post.text,
        "tldr_human_reference_summary": post.reference, "ideal_human_summary": post.reference,
        "generated_summary_for_feedback": summary, "feedback": feedback, "feedback_class": "",
        "generated_summary_for_comparison_A": post.reference, "generated_summary_for_comparison_B": summary,
        "comparison_preference": "Summary A",
    }


def flawed_summary(post: Post, rng: random.Random) -> str:
    """A generator-written summary that misses what the reader wants (for model-free SLF5K files)."""
    event = post.fact("event").surface.rstrip(".")
    return rng.choice((f"{event[0].upper()}{event[1:]}.", f"Things went wrong in {post.fact('place').surface}.",
                       f"{post.title}."))
