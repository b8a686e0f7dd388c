"""Generate the `home_intents` benchmark: smart-home voice commands labelled with 12 intents.

Written for harnessopt (not copied from any dataset). Deterministic: the same seed writes the same
bytes. Standard library only. Usage:

    python benchmark_specs/data/make_home_intents.py            # writes benchmark_specs/data/home_intents/
    python benchmark_specs/data/make_home_intents.py --seed 7 --out /tmp/hi

What makes it less than trivial:
* confusable pairs share vocabulary: "turn off the music" (stop_music) vs "turn off the lamp"
  (lights_off), "put on some jazz" (play_music) vs "put the lights on" (lights_on), "wake me at
  7" (set_alarm) vs "ping me in 10 minutes" (set_timer), "is it cold out" (weather_query) vs
  "it's cold in here" (set_temperature), lock vs unlock;
* indirect requests ("it's pitch black in the hallway", "we're out of eggs");
* about a quarter of each intent's templates appear ONLY in the test file, so the test split
  checks generalisation to new phrasings, not just new slot values;
* fillers, politeness, casing and punctuation vary.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

INTENTS = [
    "lights_on",
    "lights_off",
    "set_temperature",
    "play_music",
    "stop_music",
    "set_alarm",
    "set_timer",
    "weather_query",
    "lock_door",
    "unlock_door",
    "add_to_shopping_list",
    "call_contact",
]

SLOTS: dict[str, list[str]] = {
    "room": [
        "kitchen", "living room", "bedroom", "bathroom", "hallway", "office", "garage",
        "dining room", "kids' room", "basement", "porch", "guest room", "nursery", "attic",
    ],
    "light": [
        "lights", "lamp", "ceiling light", "floor lamp", "overhead lights", "reading light",
        "light strip", "night light", "desk lamp", "spotlights",
    ],
    "temp": [
        "18", "19", "20", "21", "22", "23", "24", "25", "65", "68", "70", "72", "74", "76",
    ],
    "unit": ["degrees", "degrees", "degrees celsius", "degrees fahrenheit", ""],
    "music": [
        "jazz", "classical music", "some lo-fi beats", "my running playlist", "the road trip mix",
        "something relaxing", "rock", "the morning playlist", "some blues", "hip hop",
        "the dinner party playlist", "folk songs", "piano music", "the top hits", "reggae",
        "my favourites", "something upbeat", "country music",
    ],
    "time": [
        "7 am", "6:30", "half past six", "quarter to eight", "noon", "7:15", "5:45 am", "nine",
        "8 o'clock", "six in the morning", "10:30 pm", "4 am", "7:05",
    ],
    "day": ["tomorrow", "on Monday", "on weekdays", "tomorrow morning", "on Saturday", "every day", ""],
    "duration": [
        "10 minutes", "half an hour", "45 seconds", "an hour and a half", "3 minutes", "20 minutes",
        "two hours", "90 seconds", "a minute", "25 minutes", "an hour", "15 min", "five minutes",
    ],
    "timer_for": ["the pasta", "the eggs", "the laundry", "my nap", "the oven", "the tea", "homework", "the cake"],
    "place": [
        "Paris", "Chicago", "Tokyo", "here", "Berlin", "the city", "Lisbon", "Denver", "Seattle",
        "my town", "Nairobi", "Toronto",
    ],
    "when": ["today", "tomorrow", "this weekend", "tonight", "on Friday", "this afternoon", "right now", "later"],
    "door": ["front door", "back door", "garage door", "side door", "patio door", "door", "main entrance"],
    "item": [
        "milk", "eggs", "bread", "coffee", "dish soap", "apples", "toilet paper", "butter", "rice",
        "olive oil", "bananas", "batteries", "cat food", "tomatoes", "paper towels", "cheese",
        "orange juice", "garbage bags", "yogurt", "pasta",
    ],
    "contact": [
        "mom", "dad", "Sarah", "the plumber", "grandma", "Alex", "my sister", "Dr. Patel", "work",
        "Jamie", "my brother", "the babysitter", "Uncle Joe", "Priya", "the vet",
    ],
}

TEMPLATES: dict[str, list[str]] = {
    "lights_on": [
        "turn on the {room} {light}",
        "switch on the {light} in the {room}",
        "lights on in the {room}",
        "can I get some light in the {room}",
        "put the {light} on",
        "it's pitch black in the {room}",
        "brighten up the {room}",
        "I can't see anything in the {room}, fix the {light}",
        "{light} on",
        "illuminate the {room}",
        "power up the {light} in the {room}",
        "make it bright in the {room}",
        "the {room} is too dark",
        "flip the {room} {light} on",
    ],
    "lights_off": [
        "turn off the {room} {light}",
        "switch off the {light} in the {room}",
        "lights off in the {room}",
        "kill the {light}",
        "I'm heading to bed, shut the {light} off",
        "nobody's in the {room}, turn the {light} off",
        "{light} off",
        "make the {room} dark",
        "cut the {light} in the {room}",
        "shut off all the {light}",
        "darken the {room}",
        "the {room} {light} can go off now",
        "no more light in the {room}",
        "power down the {light}",
    ],
    "set_temperature": [
        "set the thermostat to {temp} {unit}",
        "make it {temp} {unit} in the {room}",
        "it's freezing in here, warm up the {room}",
        "turn the heat up to {temp}",
        "cool the {room} down to {temp} {unit}",
        "I'm too hot, lower the temperature",
        "change the temperature to {temp}",
        "bump the heating up a couple of degrees",
        "can you make the {room} warmer",
        "it's cold in the {room}",
        "set the {room} to {temp} {unit}",
        "crank up the AC",
        "drop the thermostat to {temp}",
        "heat the house to {temp} {unit}",
    ],
    "play_music": [
        "play {music}",
        "put on {music}",
        "turn on {music} in the {room}",
        "I want to hear {music}",
        "start playing {music}",
        "can you play {music} in the {room}",
        "some music please, {music}",
        "queue up {music}",
        "let's have {music}",
        "shuffle {music}",
        "blast {music}",
        "throw on {music} in the {room}",
        "I'm in the mood for {music}",
        "resume the music",
    ],
    "stop_music": [
        "stop the music",
        "turn off the music",
        "pause the song",
        "that's enough music",
        "kill the music in the {room}",
        "silence please, stop playing",
        "switch off the music in the {room}",
        "stop playing {music}",
        "turn the music off",
        "shut the music off in the {room}",
        "quiet, no more songs",
        "mute the speaker in the {room}",
        "I don't want to hear {music} anymore",
        "end the playlist",
    ],
    "set_alarm": [
        "set an alarm for {time} {day}",
        "wake me up at {time} {day}",
        "alarm at {time}",
        "I need to get up at {time} {day}",
        "make sure I'm up by {time}",
        "set my alarm to {time}",
        "can you wake me at {time}",
        "create an alarm for {time} {day}",
        "get me up at {time} {day}",
        "schedule a wake-up call at {time}",
        "I have to be awake at {time} {day}",
        "alarm for {time} please",
        "put an alarm on for {time}",
        "ring me awake at {time} {day}",
    ],
    "set_timer": [
        "set a timer for {duration}",
        "start a {duration} timer",
        "timer for {duration}",
        "count down {duration}",
        "let me know when {duration} is up",
        "ping me in {duration}",
        "set a timer for {timer_for}, {duration}",
        "{duration} timer for {timer_for}",
        "time {timer_for} for {duration}",
        "remind me in {duration} to check {timer_for}",
        "start counting down from {duration}",
        "give me a {duration} countdown",
        "tell me when {duration} have passed",
        "I need a timer, {duration}",
    ],
    "weather_query": [
        "what's the weather in {place} {when}",
        "will it rain {when}",
        "is it cold outside {when}",
        "how hot will it be in {place} {when}",
        "do I need an umbrella {when}",
        "what's the forecast for {place}",
        "is it going to snow in {place} {when}",
        "how's the weather looking {when}",
        "should I wear a jacket {when}",
        "what's the temperature outside in {place}",
        "is it sunny in {place}",
        "any storms coming {when}",
        "weather report for {place} please",
        "how windy is it {when}",
    ],
    "lock_door": [
        "lock the {door}",
        "make sure the {door} is locked",
        "secure the {door}",
        "lock up the house",
        "did I lock the {door}? lock it",
        "bolt the {door}",
        "lock all the doors",
        "I'm leaving, lock the {door}",
        "engage the lock on the {door}",
        "lock it up for the night",
        "can you lock the {door} please",
        "the {door} should be locked",
        "close and lock the {door}",
        "lock the {door} behind me",
    ],
    "unlock_door": [
        "unlock the {door}",
        "open the lock on the {door}",
        "let me in, unlock the {door}",
        "unbolt the {door}",
        "the delivery guy is here, unlock the {door}",
        "release the lock on the {door}",
        "unlock all the doors",
        "I'm home, open the {door}",
        "disengage the {door} lock",
        "can you unlock the {door} for {contact}",
        "let {contact} in through the {door}",
        "the {door} needs to be unlocked",
        "buzz open the {door}",
        "unlock it, I'm outside",
    ],
    "add_to_shopping_list": [
        "add {item} to the shopping list",
        "we're out of {item}",
        "put {item} on my list",
        "remind me to buy {item}",
        "we need {item}",
        "add {item} and {item2} to the grocery list",
        "shopping list: {item}",
        "don't let me forget {item} at the store",
        "I used the last of the {item}",
        "note down {item} for groceries",
        "pick up {item}, add it to the list",
        "we're running low on {item}",
        "put {item} on the groceries",
        "can you add {item} to the list",
    ],
    "call_contact": [
        "call {contact}",
        "phone {contact}",
        "give {contact} a ring",
        "get {contact} on the phone",
        "dial {contact}",
        "I need to talk to {contact}, call them",
        "ring {contact}",
        "start a call with {contact}",
        "can you call {contact} for me",
        "video call {contact}",
        "connect me to {contact}",
        "call {contact} on speaker in the {room}",
        "make a call to {contact}",
        "I want to speak with {contact}",
    ],
}

QUESTION_WORDS = ("what", "how", "will", "is ", "do ", "should", "any ", "can you", "can i")
IMPERATIVE_VERBS = {
    "turn", "switch", "put", "brighten", "illuminate", "power", "flip", "kill", "shut", "make",
    "cut", "darken", "set", "warm", "cool", "change", "bump", "crank", "drop", "heat", "play",
    "start", "queue", "shuffle", "blast", "throw", "resume", "stop", "pause", "mute", "end",
    "wake", "create", "get", "schedule", "ring", "count", "ping", "time", "remind", "give",
    "tell", "lock", "secure", "bolt", "engage", "close", "unlock", "open", "unbolt", "release",
    "disengage", "buzz", "let", "add", "note", "pick", "call", "phone", "dial", "video",
    "connect",
}
# Fillers by sentence kind, so that every utterance still reads like something a person says.
PREFIXES = {
    "command": ["", "", "", "", "please ", "hey, ", "could you ", "can you please ", "ok home, ", "um, ", "hey home, ", "quick, "],
    "statement": ["", "", "", "", "hey, ", "ok home, ", "um, ", "so ", "hey home, "],
    "question": ["", "", "", "", "hey, ", "ok home, ", "um, ", "quick question, "],
}
SUFFIXES = {
    "command": ["", "", "", "", " please", " thanks", " now", " right away", " for me", " thank you"],
    "statement": ["", "", "", " thanks", " please"],
    "question": [""],
}


def _kind(template: str) -> str:
    t = template.lower()
    if t.startswith(QUESTION_WORDS):
        return "question"
    first = t.split()[0].strip(",")
    return "command" if first in IMPERATIVE_VERBS or first.startswith("{") else "statement"


def _fill(template: str, rng: random.Random) -> str:
    values = {k: rng.choice(v) for k, v in SLOTS.items()}
    values["item2"] = rng.choice([x for x in SLOTS["item"] if x != values["item"]])
    text = template.format(**values)
    return " ".join(text.split())


def _utterance(template: str, rng: random.Random) -> str:
    kind = _kind(template)
    core = _fill(template, rng)
    prefix = rng.choice(PREFIXES[kind])
    suffix = rng.choice(SUFFIXES[kind])
    if "please" in prefix + core and "please" in suffix:
        suffix = ""
    text = f"{prefix}{core}{suffix}".strip()
    if kind == "question" or prefix in ("could you ", "can you please "):
        text += rng.choice(["?", "?", ""])
    elif not text.endswith("?"):
        text += rng.choice(["", "", "", ".", "!"])
    style = rng.random()
    if style < 0.45:
        text = text[0].upper() + text[1:]
    elif style < 0.5 and len(text) < 40:
        text = text.upper()
    return text


def generate(seed: int = 0, n_train: int = 600, n_test: int = 150) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    train: list[dict] = []
    test: list[dict] = []
    seen: set[str] = set()
    base_train, extra_train = divmod(n_train, len(INTENTS))
    base_test, extra_test = divmod(n_test, len(INTENTS))
    for i, intent in enumerate(INTENTS):
        templates = list(TEMPLATES[intent])
        rng.shuffle(templates)
        n_held = max(2, len(templates) // 4)
        held_out, shared = templates[:n_held], templates[n_held:]
        want_train = base_train + (1 if i < extra_train else 0)
        want_test = base_test + (1 if i < extra_test else 0)
        want_held = want_test // 2

        def draw(pool: list[str], n: int, out: list[dict]) -> None:
            tries = 0
            while n > 0:
                tries += 1
                if tries > 10_000:
                    raise RuntimeError(f"cannot draw enough distinct utterances for {intent}")
                text = _utterance(rng.choice(pool), rng)
                key = " ".join(text.lower().strip(".!?").split())
                if key in seen:
                    continue
                seen.add(key)
                out.append({"text": text, "intent": intent})
                n -= 1

        draw(shared, want_train, train)
        draw(held_out, want_held, test)
        draw(shared, want_test - want_held, test)
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def write(out_dir: Path, seed: int = 0) -> None:
    train, test = generate(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.jsonl", train), ("test.jsonl", test)):
        with open(out_dir / name, "w", encoding="utf-8", newline="\n") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    (out_dir / "labels.json").write_text(json.dumps(INTENTS, indent=2) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "home_intents")
    args = ap.parse_args()
    write(args.out, args.seed)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
