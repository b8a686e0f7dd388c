"""Generate the `workspace_tasks` benchmark: questions and goals about a small file tree.

Written for harnessopt. Deterministic: the same seed writes the same bytes. Standard library
only. Usage:

    python benchmark_specs/data/make_workspace_tasks.py          # writes benchmark_specs/data/workspace_tasks/
    python benchmark_specs/data/make_workspace_tasks.py --seed 7 --out /tmp/wt

Each task is a JSON line: `id`, `family`, `question`, `answer`, `files` (the workspace: a list of
{path, content}), `check` (Python run on the final workspace, for tasks that change files; empty
otherwise) and `solution` (a reference solution: Python that works from the files alone, prints
the answer and makes the changes a goal asks for). `check` and `solution` are hidden from
harnesses. tests/test_workspace_benchmark.py runs every solution and scores it.

Families (each needs several tool steps: list or search, read, often compute or run):
  first_error   logs of several services; the code of the earliest ERROR across all files
  csv_total     sum a CSV column over the rows selected by another file
  failing_test  a tiny Python package whose test suite has one failing test: name the function
  fix_bug       the same, but fix the code so the tests pass (checked on the final files)
  count_files   count the files that match a rule in a tree
  config_lookup follow references between service config files
  edit_config   change one setting in a config file, leaving everything else (checked)
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

PER_FAMILY = {"train": 18, "test": 18}
SERVICES = ["api", "auth", "billing", "cache", "checkout", "gateway", "inventory", "mailer", "payments",
            "reports", "scheduler", "search", "storage", "users"]
TEAMS = ["team-core", "team-growth", "team-payments", "team-platform", "team-data", "team-mobile"]
PEOPLE = ["Ada Moss", "Ben Ortiz", "Cleo Park", "Dan Weber", "Eva Novak", "Finn Lee", "Gia Russo", "Hugo Berg",
          "Ines Costa", "Jon Smit", "Kira Sato", "Liam Dunn", "Mia Kowal", "Noah Fink"]
WORDS = ["alpha", "river", "stone", "cloud", "ember", "pixel", "orbit", "maple", "delta", "quartz", "lumen",
         "cedar", "harbor", "signal", "vector", "meadow"]


def files_of(tree: dict[str, str]) -> list[dict[str, str]]:
    return [{"path": p, "content": c} for p, c in sorted(tree.items())]


# --------------------------------------------------------------------------- first_error

INFO = ["request served in {n} ms", "cache hit ratio {n}%", "worker heartbeat ok", "config reloaded",
        "queue depth {n}", "connection pool size {n}", "job {n} finished", "retried 0 errors so far"]
WARN = ["slow response: {n} ms", "retrying after a transient error", "disk usage at {n}%", "deprecated flag used"]
ERRS = ["connection refused by upstream", "timeout talking to the database", "invalid token signature",
        "out of memory in worker", "payment provider returned 500", "could not write to disk"]


def first_error(rng: random.Random) -> dict:
    services = rng.sample(SERVICES, rng.randint(3, 5))
    day = f"2024-05-{rng.randint(10, 28)}"
    used: set[int] = set()
    errors: list[tuple[int, str]] = []
    tree = {}
    for k, svc in enumerate(services):
        t = rng.randint(8 * 3600, 9 * 3600)
        n_err = rng.randint(1, 3) if k < 3 else rng.randint(0, 2)
        lines, err_at = [], set(rng.sample(range(2, 20), n_err))
        for i in range(rng.randint(20, 34)):
            t += rng.randint(20, 400)
            while t in used:
                t += 1
            used.add(t)
            stamp = f"{day} {t // 3600:02d}:{t % 3600 // 60:02d}:{t % 60:02d}"
            if i in err_at:
                code = f"E{rng.randint(1000, 9999)}"
                errors.append((t, code))
                lines.append(f"{stamp} ERROR [{svc}] {rng.choice(ERRS)} (code {code})")
            elif rng.random() < 0.15:
                lines.append(f"{stamp} WARN [{svc}] {rng.choice(WARN).format(n=rng.randint(50, 99))}")
            else:
                lines.append(f"{stamp} INFO [{svc}] {rng.choice(INFO).format(n=rng.randint(1, 900))}")
        tree[f"logs/{svc}.log"] = "\n".join(lines) + "\n"
    tree["README.md"] = "Service logs, one file per service, in logs/. Format: DATE TIME LEVEL [service] message\n"
    answer = min(errors)[1]
    question = ("Several services write their logs under logs/. Which error code does the earliest ERROR line "
                "across all the log files report? Answer with the code only, e.g. E1234.")
    solution = '''import glob, re
best = None
for path in sorted(glob.glob("logs/*.log")):
    for line in open(path):
        parts = line.split()
        if len(parts) > 2 and parts[2] == "ERROR":
            stamp, code = parts[0] + " " + parts[1], re.search(r"\\(code (E\\d+)\\)", line).group(1)
            if best is None or stamp < best[0]:
                best = (stamp, code)
print(best[1])
'''
    return dict(question=question, answer=answer, files=tree, solution=solution)


# --------------------------------------------------------------------------- csv_total


def csv_total(rng: random.Random) -> dict:
    people = rng.sample(PEOPLE, 9)
    regions = ["North", "South", "East", "West"]
    rows = []
    for i in range(rng.randint(24, 40)):
        rows.append((1000 + i, rng.choice(people), rng.choice(regions), rng.randint(500, 99999) / 100))
    csv = "order_id,customer,region,amount\n" + "".join(f"{o},{c},{r},{a:.2f}\n" for o, c, r, a in rows)
    tree = {"data/orders.csv": csv}
    if rng.random() < 0.5:
        chosen = rng.sample(sorted({r[1] for r in rows}), rng.randint(2, 4))
        tree["data/selected_customers.txt"] = "\n".join(chosen) + "\n"
        total = sum(a for _, c, _, a in rows if c in chosen)
        question = ("What is the total amount of the orders in data/orders.csv placed by the customers listed in "
                    "data/selected_customers.txt? Answer with the number only, rounded to two decimals.")
        solution = '''import csv
chosen = {line.strip() for line in open("data/selected_customers.txt") if line.strip()}
rows = csv.DictReader(open("data/orders.csv"))
print(f"{sum(float(r['amount']) for r in rows if r['customer'] in chosen):.2f}")
'''
    else:
        region = rng.choice(sorted({r[2] for r in rows}))
        tree["notes/request.md"] = (f"# Request from finance\n\nHi! Could you total the order amounts for the "
                                    f"{region.upper()} region only? The orders are in data/orders.csv.\n\nThanks\n")
        total = sum(a for _, _, r, a in rows if r == region)
        question = ("Finance left a request in notes/. Answer it: what total amount do they ask for? "
                    "Answer with the number only, rounded to two decimals.")
        solution = '''import csv, re
note = open("notes/request.md").read()
region = re.search(r"for the (\\w+) region", note).group(1).title()
rows = csv.DictReader(open("data/orders.csv"))
print(f"{sum(float(r['amount']) for r in rows if r['region'] == region):.2f}")
'''
    tree["README.md"] = "Order exports. Amounts are in EUR.\n"
    return dict(question=question, answer=f"{total:.2f}", files=tree, solution=solution)


# --------------------------------------------------------------------------- a tiny package with tests

# name -> (module, source, [(buggy line, correct line)], visible tests, hidden tests). Each test
# calls exactly one function; a bug makes at least one visible test fail.
FUNCTIONS = {
    "clamp": ("numbers", "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n",
              [("    return max(lo, min(x, lo))\n", "    return max(lo, min(x, hi))\n")],
              ["clamp(5, 0, 10) == 5", "clamp(15, 0, 10) == 10"], ["clamp(-3, 0, 10) == 0", "clamp(7, 0, 7) == 7"]),
    "mean": ("numbers", "def mean(xs):\n    return sum(xs) / len(xs)\n",
             [("    return sum(xs) / (len(xs) + 1)\n", "    return sum(xs) / len(xs)\n")],
             ["mean([2, 4, 6]) == 4"], ["mean([5]) == 5", "mean([1, 2]) == 1.5"]),
    "is_leap": ("numbers", "def is_leap(year):\n    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)\n",
                [("    return year % 4 == 0 and year % 100 != 0\n",
                  "    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)\n")],
                ["is_leap(2024)", "is_leap(2000)", "not is_leap(1900)"], ["not is_leap(2023)", "is_leap(2400)"]),
    "to_fahrenheit": ("numbers", "def to_fahrenheit(celsius):\n    return celsius * 9 / 5 + 32\n",
                      [("    return celsius * 5 / 9 + 32\n", "    return celsius * 9 / 5 + 32\n")],
                      ["to_fahrenheit(100) == 212"], ["to_fahrenheit(0) == 32", "to_fahrenheit(-40) == -40"]),
    "factorial": ("numbers", "def factorial(n):\n    out = 1\n    for k in range(2, n + 1):\n        out *= k\n    return out\n",
                  [("    for k in range(2, n):\n", "    for k in range(2, n + 1):\n")],
                  ["factorial(5) == 120"], ["factorial(0) == 1", "factorial(1) == 1", "factorial(6) == 720"]),
    "percent": ("numbers", "def percent(part, whole):\n    return round(100 * part / whole, 1)\n",
                [("    return round(part / whole, 1)\n", "    return round(100 * part / whole, 1)\n")],
                ["percent(1, 4) == 25.0"], ["percent(1, 3) == 33.3", "percent(0, 5) == 0"]),
    "median": ("numbers", "def median(xs):\n    s = sorted(xs)\n    mid = len(s) // 2\n    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2\n",
               [("    s = list(xs)\n", "    s = sorted(xs)\n")],
               ["median([3, 1, 2]) == 2"], ["median([4, 1, 3, 2]) == 2.5", "median([7]) == 7"]),
    "word_count": ("text", "def word_count(text):\n    return len(text.split())\n",
                   [("    return len(text.split(' '))\n", "    return len(text.split())\n")],
                   ["word_count('a  b c') == 3"], ["word_count('') == 0", "word_count(' one ') == 1"]),
    "slugify": ("text", "def slugify(title):\n    return '-'.join(title.lower().split())\n",
                [("    return '-'.join(title.split())\n", "    return '-'.join(title.lower().split())\n")],
                ["slugify('Hello World') == 'hello-world'"], ["slugify('  A  b ') == 'a-b'"]),
    "count_vowels": ("text", "def count_vowels(text):\n    return sum(ch in 'aeiou' for ch in text.lower())\n",
                     [("    return sum(ch in 'aeiou' for ch in text)\n",
                       "    return sum(ch in 'aeiou' for ch in text.lower())\n")],
                     ["count_vowels('Orange') == 3"], ["count_vowels('xyz') == 0", "count_vowels('AEIOU') == 5"]),
    "is_palindrome": ("text", "def is_palindrome(text):\n    s = ''.join(ch for ch in text.lower() if ch.isalnum())\n    return s == s[::-1]\n",
                      [("    s = ''.join(ch for ch in text if ch.isalnum())\n",
                        "    s = ''.join(ch for ch in text.lower() if ch.isalnum())\n")],
                      ["is_palindrome('Racecar')", "not is_palindrome('python')"], ["is_palindrome('A man, a plan, a canal: Panama')"]),
    "initials": ("text", "def initials(name):\n    return ''.join(part[0].upper() for part in name.split())\n",
                 [("    return ''.join(part[0] for part in name.split())\n",
                   "    return ''.join(part[0].upper() for part in name.split())\n")],
                 ["initials('ada lovelace') == 'AL'"], ["initials('Grace Brewster Hopper') == 'GBH'"]),
    "dedupe": ("text", "def dedupe(items):\n    seen = []\n    for item in items:\n        if item not in seen:\n            seen.append(item)\n    return seen\n",
               [("        if item in seen:\n", "        if item not in seen:\n")],
               ["dedupe(['b', 'a', 'b']) == ['b', 'a']"], ["dedupe([]) == []", "dedupe([1, 1, 1]) == [1]"]),
    "truncate": ("text", "def truncate(text, n):\n    return text if len(text) <= n else text[:n - 3] + '...'\n",
                 [("    return text if len(text) < n else text[:n - 3] + '...'\n",
                   "    return text if len(text) <= n else text[:n - 3] + '...'\n")],
                 ["truncate('hello', 5) == 'hello'", "truncate('hello world', 8) == 'hello...'"], ["truncate('', 3) == ''"]),
}


def project(rng: random.Random) -> tuple[dict[str, str], str, str, tuple[str, str]]:
    """(files, buggy function, its file, (buggy line, correct line)) of a package with one bug."""
    numbers = rng.sample([n for n, f in FUNCTIONS.items() if f[0] == "numbers"], rng.randint(2, 3))
    text = rng.sample([n for n, f in FUNCTIONS.items() if f[0] == "text"], rng.randint(2, 3))
    buggy = rng.choice(numbers + text)
    bug = rng.choice(FUNCTIONS[buggy][2])
    tree = {"calc/__init__.py": '"""Small helpers."""\n', "tests/__init__.py": "",
            "README.md": "# calc\n\nRun the tests from this folder with:\n\n    python -m unittest\n"}
    for module, names in (("numbers", numbers), ("text", text)):
        rng.shuffle(names)
        body = "\n\n".join(FUNCTIONS[n][1].replace(bug[1], bug[0]) if n == buggy else FUNCTIONS[n][1] for n in names)
        tree[f"calc/{module}.py"] = f'"""{module.title()} helpers."""\n\n\n' + body
        tests = [f"from calc.{module} import {', '.join(sorted(names))}", "import unittest", "", "",
                 f"class Test{module.title()}(unittest.TestCase):"]
        for n in names:
            for k, expr in enumerate(FUNCTIONS[n][3], 1):
                tests += [f"    def test_{n}_{k}(self):", f"        self.assertTrue({expr})", ""]
        tree[f"tests/test_{module}.py"] = "\n".join(tests).rstrip() + "\n"
    return tree, buggy, f"calc/{FUNCTIONS[buggy][0]}.py", bug


FIND_FAILING = '''import inspect, re, sys, unittest
sys.path.insert(0, ".")
result = unittest.TestResult()
unittest.defaultTestLoader.discover(".").run(result)
failed = [test for test, _ in result.failures + result.errors]
source = inspect.getsource(getattr(type(failed[0]), failed[0]._testMethodName))
called = sorted(set(re.findall(r"assertTrue\\((?:not )?(\\w+)\\(", source)))
'''


def failing_test(rng: random.Random) -> dict:
    tree, buggy, _, _ = project(rng)
    question = ("This is a small Python package (calc/) with its tests in tests/. Exactly one function has a bug "
                "that makes a test fail. Which function is it? Answer with the function's name only.")
    return dict(question=question, answer=buggy, files=tree, solution=FIND_FAILING + "print(called[0])\n")


def fix_bug(rng: random.Random) -> dict:
    tree, buggy, path, (bad, good) = project(rng)
    question = ("This is a small Python package (calc/) with its tests in tests/; one test fails. Fix the bug in "
                "the code under calc/ (do not change the tests) so that all tests pass. When you are done, answer "
                "with the path of the file you changed.")
    solution = (f"path, bad, good = {path!r}, {bad!r}, {good!r}\n"
                "text = open(path).read()\nassert bad in text\nopen(path, 'w').write(text.replace(bad, good))\n"
                "print(path)\n")
    module = FUNCTIONS[buggy][0]
    names = sorted(n for n, f in FUNCTIONS.items() if f[0] == module and f"def {n}(" in tree[path])
    asserts = [e for n in names for e in FUNCTIONS[n][3] + FUNCTIONS[n][4]]
    check = (f"import sys\nsys.path.insert(0, '.')\nfrom calc.{module} import {', '.join(names)}\n"
             f"for expr in {asserts!r}:\n    assert eval(expr), 'fails: ' + expr\nprint('ok')\n")
    return dict(question=question, answer=path, files=tree, solution=solution, check=check)


# --------------------------------------------------------------------------- count_files


def count_files(rng: random.Random) -> dict:
    tree = {}
    for i in range(rng.randint(5, 9)):
        folder = rng.choice(["src", "src", "src/core", "src/utils", "tests"])
        lines = [f"def {rng.choice(WORDS)}_{i}(x):", "    return x"]
        if rng.random() < 0.4:
            lines.insert(0, f"# TODO: handle the {rng.choice(WORDS)} case")
        if rng.random() < 0.4:
            lines += ["", f"class {rng.choice(WORDS).title()}{i}:", "    pass"]
        lines += [f"# line {k}" for k in range(rng.randint(0, 30))]
        tree[f"{folder}/{rng.choice(WORDS)}_{i}.py"] = "\n".join(lines) + "\n"
    for i in range(rng.randint(4, 8)):
        folder = rng.choice(["docs", "docs", "docs/guides", "notes"])
        ext = rng.choice([".md", ".md", ".txt", ".rst"])
        body = [f"# {rng.choice(WORDS).title()} notes"] + [f"Line {k} about {rng.choice(WORDS)}." for k in range(rng.randint(1, 30))]
        if rng.random() < 0.3:
            body.append("TODO: review this page")
        tree[f"{folder}/{rng.choice(WORDS)}_{i}{ext}"] = "\n".join(body) + "\n"
    for i in range(rng.randint(1, 3)):
        tree[f"data/{rng.choice(WORDS)}_{i}.csv"] = "a,b\n" + "".join(f"{k},{k * 2}\n" for k in range(rng.randint(1, 40)))
    kind = rng.choice(["todo_py", "md_docs", "long_files", "classes"])
    if kind == "todo_py":
        question = "How many .py files in this workspace (in any folder) contain the text TODO? Answer with the number only."
        rule = "path.endswith('.py') and 'TODO' in text"
    elif kind == "md_docs":
        question = "How many files under docs/ (including its subfolders) have the .md extension? Answer with the number only."
        rule = "path.startswith('docs/') and path.endswith('.md')"
    elif kind == "long_files":
        question = "How many files in this workspace have more than 20 lines? Answer with the number only."
        rule = "len(text.splitlines()) > 20"
    else:
        question = ("How many .py files under src/ define at least one class (a line starting with 'class ')? "
                    "Answer with the number only.")
        rule = "path.startswith('src/') and path.endswith('.py') and any(l.startswith('class ') for l in text.splitlines())"
    answer = sum(1 for path, text in tree.items() if eval(rule, {}, {"path": path, "text": text}))
    solution = ("import os\ncount = 0\nfor dirpath, _, names in os.walk('.'):\n    for name in names:\n"
                "        path = os.path.relpath(os.path.join(dirpath, name)).replace(os.sep, '/')\n"
                "        text = open(path).read()\n"
                f"        count += bool({rule})\nprint(count)\n")
    return dict(question=question, answer=str(answer), files=tree, solution=solution)


# --------------------------------------------------------------------------- service configs


def configs(rng: random.Random) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    names = rng.sample(SERVICES, rng.randint(6, 9))
    ports = rng.sample(range(7000, 9900), len(names))
    services = {}
    for k, (name, port) in enumerate(zip(names, ports)):
        others = [n for n in names if n != name]
        services[name] = {"name": name, "owner": rng.choice(TEAMS), "port": str(port),
                          "depends_on": ", ".join(rng.sample(others, rng.randint(0, 2))),
                          "timeout_s": str(rng.choice([5, 10, 30, 60]))}
    tree = {f"configs/{n}.ini": "[service]\n" + "".join(f"{k} = {v}\n" for k, v in s.items()) for n, s in services.items()}
    tree["README.md"] = "One config file per service in configs/ (INI format, section [service]).\n"
    return tree, services


def config_lookup(rng: random.Random) -> dict:
    tree, services = configs(rng)
    single = [n for n, s in services.items() if s["depends_on"] and "," not in s["depends_on"]]
    kind = rng.choice(["dependency_port", "owner_of_port", "count_dependents"] if single else ["owner_of_port", "count_dependents"])
    load = ("import configparser, glob\nservices = {}\nfor path in sorted(glob.glob('configs/*.ini')):\n"
            "    cp = configparser.ConfigParser()\n    cp.read(path)\n    services[cp['service']['name']] = dict(cp['service'])\n")
    if kind == "dependency_port":
        name = rng.choice(single)
        dep = services[name]["depends_on"]
        question = (f"The service `{name}` depends on one other service. Which port does that service listen on? "
                    "The service configs are in configs/. Answer with the port number only.")
        answer = services[dep]["port"]
        solution = load + f"print(services[services[{name!r}]['depends_on'].strip()]['port'])\n"
    elif kind == "owner_of_port":
        name = rng.choice(sorted(services))
        port = services[name]["port"]
        question = f"Which team owns the service that listens on port {port}? Answer with the team name only (e.g. team-core)."
        answer = services[name]["owner"]
        solution = load + f"print(next(s['owner'] for s in services.values() if s['port'] == {port!r}))\n"
    else:
        target = rng.choice(sorted(services))
        question = (f"How many services list `{target}` in their depends_on setting? The configs are in configs/. "
                    "Answer with the number only.")
        answer = str(sum(target in [d.strip() for d in s["depends_on"].split(",")] for s in services.values()))
        solution = load + (f"print(sum({target!r} in [d.strip() for d in s['depends_on'].split(',')] "
                           "for s in services.values()))\n")
    return dict(question=question, answer=answer, files=tree, solution=solution)


def edit_config(rng: random.Random) -> dict:
    tree, services = configs(rng)
    name = rng.choice(sorted(services))
    path = f"configs/{name}.ini"
    key = rng.choice(["port", "timeout_s", "owner"])
    old = services[name][key]
    new = {"port": lambda: str(rng.choice([p for p in range(9900, 9999)])),
           "timeout_s": lambda: str(rng.choice([n for n in (15, 20, 45, 90, 120) if str(n) != old])),
           "owner": lambda: rng.choice([t for t in TEAMS if t != old])}[key]()
    what = {"port": "port", "timeout_s": "timeout (timeout_s)", "owner": "owner"}[key]
    question = (f"Change the {what} of the `{name}` service to {new} in its config file under configs/. Keep every "
                "other setting and every other file as it is. When you are done, answer with the path of the file "
                "you changed.")
    solution = (f"import re\npath = {path!r}\ntext = open(path).read()\n"
                f"text = re.sub(r'(?m)^{key} = .*$', {f'{key} = {new}'!r}, text)\nopen(path, 'w').write(text)\n"
                "print(path)\n")
    expected = {p: c for p, c in tree.items()}
    expected[path] = tree[path].replace(f"{key} = {old}\n", f"{key} = {new}\n")
    check = ("import configparser, glob\n"
             f"expected = {json.dumps(expected, sort_keys=True)}\n"
             "def parse(text):\n    cp = configparser.ConfigParser()\n    cp.read_string(text)\n"
             "    return {s: dict(cp[s]) for s in cp.sections()}\n"
             "found = sorted(glob.glob('configs/*.ini'))\n"
             "assert found == sorted(p for p in expected if p.endswith('.ini')), f'config files now: {found}'\n"
             "for path, text in expected.items():\n"
             "    if path.endswith('.ini'):\n"
             "        got = parse(open(path).read())\n"
             "        assert got == parse(text), f'{path}: {got} != {parse(text)}'\n"
             "print('ok')\n")
    return dict(question=question, answer=path, files=tree, solution=solution, check=check)


FAMILIES = {"first_error": first_error, "csv_total": csv_total, "failing_test": failing_test, "fix_bug": fix_bug,
            "count_files": count_files, "config_lookup": config_lookup, "edit_config": edit_config}


def generate(seed: int) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for split, n in PER_FAMILY.items():
        rows = []
        for family, make in FAMILIES.items():
            rng = random.Random(f"workspace_tasks:{seed}:{split}:{family}")
            for i in range(n):
                task = make(rng)
                rows.append({"id": f"{family}-{split}-{i:03d}", "family": family, "question": task["question"],
                             "answer": task["answer"], "files": files_of(task["files"]),
                             "check": task.get("check", ""), "solution": task["solution"]})
        out[split] = rows
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "workspace_tasks")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for split, rows in generate(args.seed).items():
        text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
        (args.out / f"{split}.jsonl").write_text(text, encoding="utf-8")
        print(f"{split}: {len(rows)} tasks, {len(text):,} bytes -> {args.out / f'{split}.jsonl'}")


if __name__ == "__main__":
    main()
