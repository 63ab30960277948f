"""Built-in offline tasks: GENERATED STAND-INS, NOT GLUE.

``builtin_sentiment`` (SST-2-like) and ``builtin_pair`` (MRPC/RTE-like) are
synthesised from templates so the pipeline can run without any download.
Their numbers say nothing about GLUE performance; they only exercise the
training/distillation code on tasks that are neither trivial nor random:

* about 5% of labels are flipped on purpose (exactly round(5%) per split) and
  some sentiment items are mixed/ambiguous, so accuracy tops out below 100%;
* compositional cases (negation, double negation, contrast clauses with the
  label following the main clause) reward models that read structure;
* pair non-paraphrases share most words, paraphrases sometimes change many,
  so lexical overlap alone does not decide the label.

Everything is drawn from one ``random.Random(seed)`` over sorted vocabulary,
so the same seed gives identical rows on every machine and Python run.
"""

from __future__ import annotations

import random
from functools import lru_cache
from importlib import resources

from datasets import DatasetDict

from .schema import rows_to_dataset
from .tasks import BUILTIN_TASKS, TaskInfo, get_task

NOISE_RATE = 0.05
VOCAB_PER_POLARITY = 40
_MAX_TRIES = 100  # attempts to draw an unseen item before accepting a duplicate

# ---------------------------------------------------------------------------
# Sentiment vocabulary, taken from VADER's human-rated lexicon.

_ADJ_SUFFIXES = ("ful", "ous", "ive", "able", "ible", "ant", "ent", "ic")
# Short, common adjectives the suffix filter would miss.
_CORE_ADJ = (
    "awful bad brilliant clever dull dumb excellent fantastic funny good gorgeous "
    "great horrible lame lovely messy nice poor smart stupid superb terrible ugly "
    "weak wonderful amazing stunning charming"
).split()
# Suffix matches that are nouns/verbs, odd coinages, or too violent/crude
# for movie reviews.
_DENY = set(
    "accident agreement argument compliment grant incentive lament panic talent "
    "deceive deprive respective acceptant awardable rewardable winnable satisfiable "
    "perfectible kissable huggable treasurable cherishable trustable stealable "
    "ruinable blamable doubtable embarrassable depressible repressible destructible "
    "distractible splendent splendiferous splendorous splendrous magnific magnifical "
    "intellective positivistic dynamistic adventuristic impressionistic humoristic "
    "heroical tragical problematical fantastical amusive beneficent benignant "
    "nurturant peaceable proudful easeful stenchful rageful blameful gloomful doomful "
    "disgustful distressful degradative devastative perversive rejective conflictive "
    "argumentive argumentative contradictious assaultive irritative violative "
    "punishable punitive troublous lugubrious dolorous libelous discomfortable "
    "aversive direful pissant terroristic masochistic seditious treasonous murderous "
    "irritant excitant depressant excitable respective sinful lunatic moronic "
    "poisonous violent villainous apocalyptic torturous revengeful wrathful "
    "fraudulent notorious suspicious dangerous jealous"
    .split()
)

_NOUNS = (
    "acting", "camera work", "cast", "cinematography", "dialogue", "director", "editing",
    "ending", "film", "finale", "lead actor", "movie", "opening scene", "pacing", "plot",
    "premise", "score", "screenplay", "script", "sequel", "set design", "soundtrack",
    "story", "villain",
)
_COPULAS = ("was", "is", "seemed", "felt")
_INTENSIFIERS = ("really", "very", "truly", "extremely", "incredibly", "remarkably",
                 "genuinely", "so")
_DOWNTONERS = ("somewhat", "slightly", "fairly", "rather", "a bit", "kind of", "mostly")
_NEGATORS = ("not", "never", "hardly", "far from")
_PREFIXES = ("honestly, ", "to be fair, ", "at the late screening, ", "on a rainy sunday, ",
             "as a longtime fan, ", "for what it is worth, ", "in my opinion, ")
_SUFFIXES = (" for most of its runtime", " in the second half", " from start to finish",
             ", which i watched with my cousin", ", as far as i remember")


def _lexicon_lines() -> list[str]:
    path = resources.files("vaderSentiment") / "vader_lexicon.txt"
    return path.read_text(encoding="utf-8").splitlines()


@lru_cache(maxsize=1)
def sentiment_vocab() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(positive, negative) adjectives, each sorted alphabetically.

    Candidates have VADER mean >= 1.5 / <= -1.5; the ``VOCAB_PER_POLARITY``
    strongest of each side are kept (ties broken by spelling). A small
    vocabulary lets each word recur often enough in a few thousand examples
    for a model trained from scratch to learn its polarity, so the difficulty
    lies in the composition rather than in rare words.
    """
    pos, neg = [], []
    core = set(_CORE_ADJ)
    for line in _lexicon_lines():
        fields = line.split("\t")
        if len(fields) < 2:
            continue
        word, mean = fields[0], float(fields[1])
        if not (word.isascii() and word.isalpha() and len(word) >= 3) or word in _DENY:
            continue
        # "-ment" words pass the "-ent" test but are nouns (enjoyment, disappointment).
        if word not in core and (not word.endswith(_ADJ_SUFFIXES) or word.endswith("ment")):
            continue
        if mean >= 1.5:
            pos.append((-mean, word))
        elif mean <= -1.5:
            neg.append((mean, word))
    return tuple(sorted(w for _, w in sorted(pos)[:VOCAB_PER_POLARITY])), tuple(
        sorted(w for _, w in sorted(neg)[:VOCAB_PER_POLARITY]))


def _clause(rng: random.Random, polarity: int) -> str:
    """One clause whose overall sentiment is ``polarity`` (+1 / -1).

    Zero, one or two negations; the adjective's polarity is chosen so the
    negations resolve to ``polarity``.
    """
    pos, neg = sentiment_vocab()
    n_neg = rng.choices((0, 1, 2), weights=(70, 22, 8))[0]
    adj_pol = polarity if n_neg % 2 == 0 else -polarity
    adj = rng.choice(pos if adj_pol > 0 else neg)
    r = rng.random()
    mod = rng.choice(_INTENSIFIERS) + " " if r < 0.35 else (
        rng.choice(_DOWNTONERS) + " " if r < 0.5 else "")
    noun = rng.choice(_NOUNS)
    # "felt"/"seemed" read badly before a negator, so negated clauses use was/is.
    cop = rng.choice(_COPULAS if n_neg == 0 else _COPULAS[:2])
    if n_neg == 0:
        return f"the {noun} {cop} {mod}{adj}"
    if n_neg == 1:
        form = rng.randrange(3)
        if form == 0:
            return f"the {noun} {cop} {rng.choice(_NEGATORS)} {mod}{adj}"
        if form == 1:
            who = rng.choice(("i would never", "nobody could", "you could not"))
            return f"{who} call the {noun} {mod}{adj}"
        return f"the {noun} was not {mod}{adj} at all"
    lead = rng.choice(("it is not true that", "i would not say", "nobody could say",
                       "i cannot pretend"))
    return f"{lead} the {noun} {cop} {rng.choice(('not', 'never'))} {mod}{adj}"


def _sentiment_text(rng: random.Random, label: int) -> str:
    p = 1 if label == 1 else -1
    kind = rng.choices(
        ("simple", "but", "although_front", "although_back", "and", "mixed"),
        weights=(45, 20, 8, 7, 14, 6),
    )[0]
    if kind == "simple":
        text = _clause(rng, p)
    elif kind == "but":
        # The label follows the clause after "but"; usually the first one disagrees.
        first = -p if rng.random() < 0.8 else p
        text = f"{_clause(rng, first)}, {rng.choice(('but', 'yet'))} {_clause(rng, p)}"
    elif kind == "although_front":
        text = f"although {_clause(rng, -p)}, {_clause(rng, p)}"
    elif kind == "although_back":
        text = f"{_clause(rng, p)}, although {_clause(rng, -p)}"
    elif kind == "and":
        text = f"{_clause(rng, p)} and {_clause(rng, p)}"
    else:
        # Deliberately ambiguous: one good and one bad clause with equal weight;
        # the label is the random target, so no model can be sure here.
        a, b = _clause(rng, 1), _clause(rng, -1)
        if rng.random() < 0.5:
            a, b = b, a
        text = f"{a} and {b}"
    if rng.random() < 0.2:
        text = rng.choice(_PREFIXES) + text
    if rng.random() < 0.2:
        text += rng.choice(_SUFFIXES)
    return text


# ---------------------------------------------------------------------------
# Pair task: small curated event lexicon. Each concept lists its synonyms.

_PERSON_NOUNS = {
    "analyst": ("analyst",), "chef": ("chef", "cook"), "coach": ("coach", "trainer"),
    "doctor": ("doctor", "physician"), "engineer": ("engineer",),
    "lawyer": ("lawyer", "attorney"), "manager": ("manager", "supervisor"),
    "reporter": ("reporter", "journalist"), "senator": ("senator",),
    "teacher": ("teacher", "instructor"),
}
_PERSON_ADJS = {  # concept: (synonyms, antonym concept)
    "senior": (("senior",), "junior"), "junior": (("junior",), "senior"),
    "young": (("young", "youthful"), "elderly"), "elderly": (("elderly", "older"), "young"),
    "local": (("local",), "foreign"), "foreign": (("foreign", "overseas"), "local"),
    "veteran": (("veteran", "experienced", "seasoned"), "rookie"),
    "rookie": (("rookie", "inexperienced", "novice"), "veteran"),
}
_DOC_NOUNS = {
    "budget": ("budget",), "contract": ("contract", "agreement", "deal"),
    "design": ("design",), "policy": ("policy",), "proposal": ("proposal", "plan"),
    "report": ("report", "study"), "schedule": ("schedule", "timetable"),
}
_ASSET_NOUNS = {
    "car": ("car", "vehicle"), "company": ("company", "firm"), "house": ("house", "home"),
    "painting": ("painting", "artwork"), "farm": ("farm", "ranch"),
}
_THING_ADJS = {
    "new": (("new", "recent"), "old"), "old": (("old", "previous"), "new"),
    "revised": (("revised", "updated", "amended"), "original"),
    "original": (("original", "initial"), "revised"),
    "large": (("large", "big"), "small"), "small": (("small", "modest"), "large"),
    "expensive": (("expensive", "costly"), "cheap"),
    "cheap": (("cheap", "inexpensive"), "expensive"),
}
_VERBS = {  # concept: ((base, past, participle) synonyms, antonym concept, object kinds)
    "praise": ((("praise", "praised", "praised"), ("commend", "commended", "commended"),
                ("applaud", "applauded", "applauded")), "criticize", ("person", "doc")),
    "criticize": ((("criticize", "criticized", "criticized"), ("fault", "faulted", "faulted")),
                  "praise", ("person", "doc")),
    "support": ((("support", "supported", "supported"), ("back", "backed", "backed"),
                 ("endorse", "endorsed", "endorsed")), "oppose", ("person", "doc")),
    "oppose": ((("oppose", "opposed", "opposed"), ("resist", "resisted", "resisted")),
               "support", ("person", "doc")),
    "approve": ((("approve", "approved", "approved"), ("accept", "accepted", "accepted")),
                "reject", ("doc",)),
    "reject": ((("reject", "rejected", "rejected"), ("turn down", "turned down", "turned down")),
               "approve", ("doc",)),
    "hire": ((("hire", "hired", "hired"), ("employ", "employed", "employed"),
              ("recruit", "recruited", "recruited")), "fire", ("person",)),
    "fire": ((("fire", "fired", "fired"), ("dismiss", "dismissed", "dismissed")),
             "hire", ("person",)),
    "buy": ((("buy", "bought", "bought"), ("purchase", "purchased", "purchased"),
             ("acquire", "acquired", "acquired")), "sell", ("asset",)),
    "sell": ((("sell", "sold", "sold"),), "buy", ("asset",)),
    "thank": ((("thank", "thanked", "thanked"),), "blame", ("person",)),
    "blame": ((("blame", "blamed", "blamed"),), "thank", ("person",)),
}
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")
_SOURCES = ("officials", "a spokesperson", "the newspaper", "witnesses")

_NOUNS_BY_KIND = {"person": _PERSON_NOUNS, "doc": _DOC_NOUNS, "asset": _ASSET_NOUNS}
_ADJS_BY_KIND = {"person": _PERSON_ADJS, "doc": _THING_ADJS, "asset": _THING_ADJS}


def _pick(rng: random.Random, mapping: dict) -> str:
    return rng.choice(sorted(mapping))


def _new_event(rng: random.Random) -> dict:
    verb = _pick(rng, _VERBS)
    obj_kind = rng.choice(_VERBS[verb][2])
    subj = (_pick(rng, _PERSON_ADJS), _pick(rng, _PERSON_NOUNS))
    obj = (_pick(rng, _ADJS_BY_KIND[obj_kind]), _pick(rng, _NOUNS_BY_KIND[obj_kind]))
    while obj == subj:  # "the senior analyst praised the senior analyst" is not a story
        obj = (_pick(rng, _PERSON_ADJS), _pick(rng, _PERSON_NOUNS))
    if rng.random() < 0.5:
        time = ("day", rng.choice(_DAYS))
    else:
        time = ("date", rng.choice(_MONTHS), rng.randint(1, 28))
    return {
        "subj": subj, "obj": obj, "obj_kind": obj_kind, "verb": verb,
        "neg": rng.random() < 0.1, "time": time,
        "source": rng.choice(_SOURCES) if rng.random() < 0.3 else None,
    }


# Surface choices: which synonym fills each slot, and how the sentence is ordered.
_SYN_SLOTS = ("subj_adj", "subj_noun", "obj_adj", "obj_noun", "verb")


def _new_surface(rng: random.Random) -> dict:
    s = {slot: rng.randrange(3) for slot in _SYN_SLOTS}  # taken modulo synonym count
    s.update(passive=rng.random() < 0.3, time_front=rng.random() < 0.25,
             date_dm=rng.random() < 0.3, attr=rng.randrange(3))
    return s


def _np(concepts, kind, surface, prefix):
    adj, noun = concepts
    adj_syns = _ADJS_BY_KIND[kind][adj][0]
    noun_syns = _NOUNS_BY_KIND[kind][noun]
    return (f"the {adj_syns[surface[prefix + '_adj'] % len(adj_syns)]} "
            f"{noun_syns[surface[prefix + '_noun'] % len(noun_syns)]}")


def _render(ev: dict, s: dict) -> str:
    subj = _np(ev["subj"], "person", s, "subj")
    obj = _np(ev["obj"], ev["obj_kind"], s, "obj")
    forms = _VERBS[ev["verb"]][0]
    base, past, part = forms[s["verb"] % len(forms)]
    if s["passive"]:
        clause = f"{obj} was {'not ' if ev['neg'] else ''}{part} by {subj}"
    else:
        clause = f"{subj} {'did not ' + base if ev['neg'] else past} {obj}"
    t = ev["time"]
    if t[0] == "day":
        when = f"on {t[1]}"
    else:
        when = f"on {t[2]} {t[1]}" if s["date_dm"] else f"on {t[1]} {t[2]}"
    clause = f"{when}, {clause}" if s["time_front"] else f"{clause} {when}"
    src = ev["source"]
    if src is None:
        return clause
    return (f"{clause}, {src} said", f"{src} said that {clause}",
            f"according to {src}, {clause}")[s["attr"]]


_STRUCTURAL = ("passive", "time_front", "date_dm", "attr")


def _paraphrase_surface(rng: random.Random, s: dict, n_structural: int, n_synonyms: int) -> dict:
    """Change meaning-preserving surface choices: word order/voice/date format, and synonyms.

    Synonym swaps are the hard part (the model must learn which word pairs mean
    the same), so they are rationed; structural changes are frequent.
    """
    s = dict(s)
    for opt in rng.sample(_STRUCTURAL, n_structural):
        s[opt] = (s[opt] + rng.randint(1, 2)) % 3 if opt == "attr" else not s[opt]
    for opt in rng.sample(_SYN_SLOTS, n_synonyms):
        s[opt] = (s[opt] + rng.randint(1, 2)) % 3
    return s


def _change_meaning(rng: random.Random, ev: dict) -> dict:
    """Apply one subtle change that makes the event a different claim."""
    ev = dict(ev)
    ops = ["verb_antonym", "adj_antonym", "negation", "time", "entity"]
    weights = [3, 3, 3, 3, 3]
    if ev["obj_kind"] == "person":
        ops.append("swap")  # swaps keep every word: the hardest case for overlap models
        weights.append(1)
    op = rng.choices(ops, weights=weights)[0]
    if op == "swap":
        ev["subj"], ev["obj"] = ev["obj"], ev["subj"]
    elif op == "verb_antonym":
        ev["verb"] = _VERBS[ev["verb"]][1]
    elif op == "adj_antonym":
        role, kind = rng.choice((("subj", "person"), ("obj", ev["obj_kind"])))
        adj, noun = ev[role]
        ev[role] = (_ADJS_BY_KIND[kind][adj][1], noun)
    elif op == "negation":
        ev["neg"] = not ev["neg"]
    elif op == "time":
        t = ev["time"]
        if t[0] == "day":
            ev["time"] = ("day", rng.choice([d for d in _DAYS if d != t[1]]))
        else:
            ev["time"] = ("date", t[1], rng.choice([n for n in range(1, 29) if n != t[2]]))
    else:  # entity: replace the subject's or object's noun with another of its kind
        role, kind = rng.choice((("subj", "person"), ("obj", ev["obj_kind"])))
        adj, noun = ev[role]
        ev[role] = (adj, rng.choice([n for n in sorted(_NOUNS_BY_KIND[kind]) if n != noun]))
    if ev["subj"] == ev["obj"]:
        return _change_meaning(rng, ev)  # degenerate: try another change on top
    return ev


def _pair_texts(rng: random.Random, label: int) -> tuple[str, str]:
    ev, s = _new_event(rng), _new_surface(rng)
    a = _render(ev, s)
    if label == 1:
        b = a
        while b == a:  # a change can be invisible (no attribution, one synonym): retry
            n_synonyms = rng.choices((0, 1), weights=(75, 25))[0]
            b = _render(ev, _paraphrase_surface(rng, s, rng.choice((1, 1, 2)), n_synonyms))
        return a, b
    n_structural = rng.choices((0, 1, 2), weights=(40, 40, 20))[0]
    n_synonyms = rng.choices((0, 1), weights=(90, 10))[0]
    return a, _render(_change_meaning(rng, ev), _paraphrase_surface(rng, s, n_structural, n_synonyms))


# ---------------------------------------------------------------------------


def _generate_split(rng, info: TaskInfo, size: int, seen: set) -> list[dict]:
    # Exactly balanced targets, shuffled; the noise flip below is symmetric.
    targets = [i % 2 for i in range(size)]
    rng.shuffle(targets)
    rows = []
    for target in targets:
        for _ in range(_MAX_TRIES):
            if info.name == "builtin_sentiment":
                key = (_sentiment_text(rng, target), None)
            else:
                key = _pair_texts(rng, target)
            if key not in seen:
                break
        seen.add(key)
        rows.append({"text_a": key[0], "text_b": key[1], "label": target})
    for i in rng.sample(range(size), round(NOISE_RATE * size)):
        rows[i]["label"] = 1 - rows[i]["label"]
    return rows


def generate_builtin(task: str | TaskInfo, seed: int, train_size: int, dev_size: int) -> DatasetDict:
    """Generate the train and dev splits of a built-in task (no test split).

    The sizes have no default here: params.yaml's data.builtin_train_size and
    data.builtin_dev_size (pkd.pipeline.params) hold the only ones."""
    info = get_task(task)
    if info.source_kind != "builtin":
        raise ValueError(f"task {info.name!r} is not built in; allowed: "
                         f"{', '.join(BUILTIN_TASKS)}")
    for name, size in (("train_size", train_size), ("dev_size", dev_size)):
        # bool is an int but never a size; numpy ints from configs are fine.
        if isinstance(size, bool) or not hasattr(size, "__index__") or size < 0:
            raise ValueError(f"{name} must be a non-negative int, got {size!r}")
    train_size, dev_size = int(train_size), int(dev_size)
    rng = random.Random(seed)
    seen: set = set()  # shared, so dev never repeats a train (text_a, text_b) pair
    train = _generate_split(rng, info, train_size, seen)
    dev = _generate_split(rng, info, dev_size, seen)
    return DatasetDict({"train": rows_to_dataset(train, info),
                        "dev": rows_to_dataset(dev, info)})
