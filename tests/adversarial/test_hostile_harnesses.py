"""Hostile and broken harnesses (one file each in harnesses/) inside one real optimize run.

`hostile_run.py` runs, in a subprocess whose real environment holds API keys, an optimize run
whose meta-agent proposes and fully evaluates every harness in harnesses/, then spot-checks a
good one. Each hostile harness must end as failed rollouts with a clear error in the trace (or be
refused at validation); the run must go on and finish with the champion unchanged; no secret may
appear anywhere in the run directory; nothing outside the run directory may change.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harnessopt.sandbox import namespace_prefix

HERE = Path(__file__).resolve().parent
HARNESSES = sorted(p.name for p in (HERE / "harnesses").glob("*.py"))

# name -> (status, error types, regex the error message must match). "refused" = validation.
EXPECTED: dict[str, tuple[str, tuple[str, ...], str]] = {
    "syntax_error.py": ("refused", (), r"syntax error"),
    "no_run.py": ("refused", (), r"no top-level `run`"),
    "import_error.py": ("error", ("ModuleNotFoundError",), r"No module named 'harnessopt_no_such_module_xyz'"),
    "infinite_loop.py": ("timeout", ("Timeout",), r"rollout exceeded 1\.5 s"),
    "busy_loop.py": ("timeout", ("Timeout",), r"did not finish within 1\.5 s; the worker was killed"),
    "memory_bomb.py": ("error", ("MemoryError",), r""),
    "fork_bomb.py": ("error", ("PermissionError",), r"starting a process \(os\.fork\) is not allowed"),
    "stdout_flood.py": ("error", ("OSError",), r"File too large"),
    "deep_recursion.py": ("error", ("RecursionError",), r"maximum recursion depth"),
    "deep_c_recursion.py": ("error", ("RecursionError",), r"maximum recursion depth"),
    "sys_exit.py": ("error", ("SystemExit",), r"harness raised SystemExit\(3\)"),
    "os_exit.py": ("error", ("WorkerDied",), r"exited with code 7"),
    "kill_own_group.py": ("error", ("WorkerDied",), r"killed by SIGKILL"),
    "kill_parent.py": ("error", ("PermissionError",), r"signalling process \d+ is not allowed"),
    "unserialisable_result.py": ("error", ("TypeError",), r"returned dict, expected str"),
    "surrogate_result.py": ("error", ("UnserialisableResult",), r"surrogates not allowed"),
    "huge_result.py": ("error", ("ValueError",), r"answers are limited to 1,000,000"),
    "read_env_keys.py": ("error", ("PermissionError",), r"reading /proc/\d+/environ is not allowed"),
    "env_keys_via_tool.py": ("error", ("PermissionError",), r"could not read any key.*(not allowed|Permission denied)"),
    "read_run_dir.py": ("error", ("PermissionError",), r"reading .* is not allowed"),
    "read_test_split.py": ("error", ("PermissionError",), r"reading .*test\.jsonl is not allowed"),
    "read_targets_from_memory.py": ("error", ("LookupError",), r"no target for s\d"),
    "network_socket.py": ("error", ("PermissionError",), r"opening a network socket is not allowed"),
    "network_http.py": ("error", ("PermissionError",), r"network access \(urllib\.Request\) is not allowed"),
    "write_outside_scratch.py": ("error", ("PermissionError",), r"writing /tmp/harnessopt-adversarial-canary\.txt is not allowed"),
    "monkeypatch_ctx.py": ("error", ("AttributeError",), r"ctx is read-only"),
    "forge_ipc.py": ("error", ("WorkerProtocolError",), r"unreadable message from the worker"),
    "ctypes_escape.py": ("error", ("PermissionError",), r"ctypes \(ctypes\.dlopen\) is not allowed"),
    "shell_command.py": ("error", ("PermissionError",), r"starting a process \(subprocess\.Popen\) is not allowed"),
    "raise_limits.py": ("error", ("PermissionError",), r"changing resource limits is not allowed"),
}
CANARIES = ["/tmp/harnessopt-adversarial-canary.txt", "/tmp/harnessopt-adversarial-ctypes-canary"]
TARGET_RE = re.compile(r"answer-\d+-kq")  # search/test targets; train targets look like train-N-ok

# As root without a user namespace, a program the python tool starts can read any process's
# environment: nothing short of a container stops that (docs/SECURITY.md). Skip that one case there.
ROOT_WITHOUT_USERNS = sys.platform.startswith("linux") and os.geteuid() == 0 and "--user" not in namespace_prefix()
SKIPPED = {"env_keys_via_tool.py"} if ROOT_WITHOUT_USERNS else set()


def test_every_harness_file_has_an_expectation():
    assert set(HARNESSES) == set(EXPECTED)
    assert len(HARNESSES) >= 25


def _snapshot(root: Path, skip: set[str]) -> dict[str, tuple[int, int]]:
    out = {}
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if rel.split("/")[0] in skip:
            continue
        st = p.lstat()
        out[rel] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    for canary in CANARIES:
        Path(canary).unlink(missing_ok=True)
    work = tmp_path_factory.mktemp("hostile")
    keys = {
        "OPENAI_API_KEY": f"sk-adv-{secrets.token_hex(16)}",
        "ANTHROPIC_API_KEY": f"sk-ant-adv-{secrets.token_hex(16)}",
        "HF_TOKEN": f"hf_adv{secrets.token_hex(16)}",
        "AWS_SECRET_ACCESS_KEY": secrets.token_hex(20),
        "HARNESSOPT_TEST_PASSWORD": secrets.token_hex(12),
    }
    env = {**os.environ, **keys, "HOSTILE_SKIP": ",".join(SKIPPED)}
    # Files the harnesses might reach for, written before the run: they must come out untouched.
    (work / "notes.txt").write_text("outside the run directory\n")
    sys.path.insert(0, str(HERE))
    try:
        import hostile_run
    finally:
        sys.path.remove(str(HERE))
    hostile_run.prepare(work)
    before = _snapshot(work, skip=set())
    proc = subprocess.run([sys.executable, str(HERE / "hostile_run.py"), str(work)], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcome = json.loads((work / "outcome.json").read_text())
    outcome["keys"] = keys
    outcome["work"] = work
    outcome["before"] = before
    outcome["after"] = _snapshot(work, skip={"runs", "outcome.json"})
    outcome["run_dir"] = Path(outcome["result"]["run_dir"])
    return outcome


def _rollouts(hostile, cid: str) -> list[dict]:
    root = hostile["run_dir"] / "rollouts" / cid
    return [json.loads(p.read_text()) for p in sorted(root.glob("*/*.json"))]


@pytest.mark.parametrize("name", HARNESSES)
def test_hostile_harness_fails_cleanly(hostile, name):
    if name in SKIPPED:
        pytest.skip("root without user namespaces: see docs/SECURITY.md")
    status, types, pattern = EXPECTED[name]
    cid = hostile["candidates"][name]
    traces = _rollouts(hostile, cid)
    if status == "refused":
        assert traces == []
        said = [o for o in hostile["observations"] if cid in o and "cannot run" in o]
        assert said and re.search(pattern, said[0]), said
        return
    assert len(traces) == 4, f"{name}: expected a rollout per search task"
    for trace in traces:
        assert trace["status"] == status, (name, trace["status"], trace["error"])
        assert trace["answer"] is None and trace["score"] == 0.0
        assert trace["error"]["type"] in types, (name, trace["error"])
        assert re.search(pattern, trace["error"]["message"], re.S), (name, trace["error"]["message"])
        text = json.dumps(trace)
        assert not TARGET_RE.search(text), f"{name}: a search/test target reached its trace"
        assert len(text) < 600_000, f"{name}: trace of {len(text)} bytes"


def test_the_run_went_on_and_the_champion_is_unchanged(hostile):
    result = hostile["result"]
    assert result["champion_id"] == "c0000" and result["promotions"] == []
    assert result["stop_reason"].startswith("iteration budget used")
    assert result["seed_test"]["n_tasks"] == 3  # the final held-out evaluation ran
    ledger = (hostile["run_dir"] / "ledger.tsv").read_text().splitlines()
    runnable = [n for n in HARNESSES if EXPECTED[n][0] != "refused" and n not in SKIPPED]
    full = [line for line in ledger if "\tfull\t" in line]
    assert len(full) == 1 + len(runnable)  # the seed + every runnable hostile harness
    # After all of them, a good harness runs normally in the same pool.
    good = _rollouts(hostile, hostile["good"])
    assert [t["score"] for t in good] == [1.0] * 4


def test_no_secret_anywhere_in_the_run_directory(hostile):
    values = [v.encode() for v in hostile["keys"].values()]
    leaks = [(str(p), v) for p in hostile["run_dir"].rglob("*") if p.is_file() for v in values
             if v in p.read_bytes()]
    assert leaks == []


def test_nothing_outside_the_run_directory_changed(hostile):
    work = hostile["work"]
    assert hostile["after"] == hostile["before"]  # the benchmark data, the seed, the notes: untouched
    assert (work / "notes.txt").read_text() == "outside the run directory\n"
    assert not (work / "canary.txt").exists()
    assert sorted(p.name for p in work.iterdir()) == ["bench", "notes.txt", "outcome.json", "runs", "seed.py"]
    assert sorted(p.name for p in (work / "runs").iterdir()) == [hostile["run_dir"].name]
    for canary in CANARIES:
        assert not Path(canary).exists(), canary
    # The executor's scratch folder is gone and no worker outlived the run.
    assert not Path(hostile["scratch"]).exists()
    deadline = time.monotonic() + 5
    while True:
        stray = [pid for pid in os.listdir("/proc") if pid.isdigit() and _cmdline_has(pid, hostile["scratch"])]
        if not stray or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert stray == []


def _cmdline_has(pid: str, text: str) -> bool:
    try:
        return text.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
