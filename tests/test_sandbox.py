import json
import os
import time

import pytest

from harnessopt.sandbox import OUTPUT_CAP_BYTES, ExecResult, run_python


def test_runs_code_and_captures_output():
    res = run_python("import sys\nprint('hello')\nprint('oops', file=sys.stderr)")
    assert isinstance(res, ExecResult)
    assert res.exit_code == 0 and res.ok
    assert res.stdout == "hello\n"
    assert "oops" in res.stderr
    assert not res.timed_out and res.wall_s > 0


def test_exception_gives_nonzero_exit_and_traceback():
    res = run_python("raise ValueError('boom')")
    assert res.exit_code == 1 and not res.ok
    assert "ValueError: boom" in res.stderr


def test_timeout_kills_busy_loop():
    t0 = time.monotonic()
    res = run_python("while True:\n    pass", timeout_s=1)
    elapsed = time.monotonic() - t0
    assert res.timed_out
    assert res.exit_code != 0
    assert elapsed < 5
    assert "timeout" in res.stderr


def test_timeout_kills_the_whole_process_group():
    code = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(p.pid, flush=True)\n"
        "while True: time.sleep(0.1)\n"
    )
    res = run_python(code, timeout_s=1.5)
    assert res.timed_out
    pid = int(res.stdout.split()[0])
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        # a killed child of a dead parent may linger as a zombie until reaped by init
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().split()[2] == "Z":
                    break
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"grandchild {pid} survived the timeout")


def test_memory_limit_stops_large_allocation():
    res = run_python("x = bytearray(2 * 1024 ** 3)\nprint('allocated')", memory_mb=256)
    assert res.exit_code != 0
    assert "allocated" not in res.stdout
    assert "MemoryError" in res.stderr


def test_environment_is_stripped(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-parent-secret")
    monkeypatch.setenv("MY_SERVICE_API_KEY", "another-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    res = run_python("import os, json\nprint(json.dumps(dict(os.environ)))")
    env = json.loads(res.stdout)
    assert not [k for k in env if k.upper().endswith("_API_KEY")]
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert "secret" not in res.stdout
    assert "PATH" in env
    assert env["HOME"] == env["TMPDIR"]  # home is the throwaway work dir


def test_temp_dir_is_fresh_and_removed():
    res = run_python("import os\nopen('scratch.txt', 'w').write('x')\nprint(os.getcwd())\nprint(sorted(os.listdir('.')))")
    lines = res.stdout.splitlines()
    workdir = lines[0]
    assert lines[1] == "['main.py', 'scratch.txt']"
    assert not os.path.exists(workdir)
    second = run_python("import os\nprint(os.getcwd())")
    assert second.stdout.strip() != workdir


def test_stdin_and_files():
    res = run_python(
        "import sys, helper\nprint(helper.double(int(sys.stdin.read())))",
        stdin="21",
        files={"helper.py": "def double(x):\n    return 2 * x\n", "data/notes.txt": "n"},
    )
    assert res.stdout.strip() == "42", res.stderr


def test_files_cannot_escape_workdir():
    with pytest.raises(ValueError):
        run_python("pass", files={"../evil.py": "x"})


def test_output_is_capped_with_marker():
    res = run_python("import sys\nfor _ in range(20000): sys.stdout.write('x' * 100)", timeout_s=10)
    assert res.exit_code == 0
    assert len(res.stdout) < OUTPUT_CAP_BYTES + 200
    assert "truncated" in res.stdout


def test_site_packages_visible():
    # -I/-S would hide installed packages; the python tool needs them.
    res = run_python("import pydantic\nprint('ok')")
    assert res.stdout.strip() == "ok", res.stderr


def test_concurrent_runs_from_threads():
    # the evaluator scores from worker threads; limits must not rely on preexec_fn
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: run_python(f"print({i} * 2)", timeout_s=20), range(8)))
    assert [r.stdout.strip() for r in results] == [str(i * 2) for i in range(8)]


def test_limits_are_applied():
    res = run_python("import resource\nprint(resource.getrlimit(resource.RLIMIT_AS)[0])", memory_mb=300)
    assert int(res.stdout) == 300 * 1024 * 1024
