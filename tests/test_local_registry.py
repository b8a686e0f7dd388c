"""The embedded-model registry and GGUF assembly, on small fake part packages (no llama.cpp needed),
plus the registry's own data checked against pyproject.toml."""

from __future__ import annotations

import hashlib
import multiprocessing
import sys
import tomllib
from pathlib import Path

import pytest

from harnessopt.llm import describe_model, is_local_model
from harnessopt.llm import model_files as mf
from harnessopt.llm.local_format import constraint_of
from harnessopt.llm.registry import LOCAL_MODELS, LocalModelError, LocalModelSpec, PartSource, local_spec

PART_SIZES = [300_000, 300_000, 123_457]


def make_parts(root: Path, prefix: str, sizes: list[int] = PART_SIZES) -> list[tuple[str, bytes]]:
    """Installs fake part packages ``<prefix>N`` (module folder + data file) under ``root``."""
    made = []
    for i, size in enumerate(sizes, start=1):
        data = hashlib.sha256(f"{prefix}{i}".encode()).digest() * (size // 32 + 1)
        data = data[:size]
        pkg = root / f"{prefix}{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise RuntimeError('part modules must never be imported')\n")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)
        made.append((f"{prefix}{i}", data))
    return made


def fake_spec(prefix: str, made: list[tuple[str, bytes]], *, sha256: str | None = None) -> LocalModelSpec:
    whole = b"".join(d for _, d in made)
    parts = [PartSource(package=m.replace("_", "-"), version="1.0", module=m, file=f"data/part{i:02d}.bin",
                        size=len(d), sha256=hashlib.sha256(d).hexdigest())
             for i, (m, d) in enumerate(made, start=1)]
    return LocalModelSpec(name=f"local/{prefix}", title="fake", kind="chat", file_name=f"{prefix}.gguf",
                          size=len(whole), sha256=sha256 or hashlib.sha256(whole).hexdigest(), parts=parts,
                          extra="local", n_ctx=512, chat_template="gguf")


@pytest.fixture
def env(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    cache = tmp_path / "cache"
    monkeypatch.setenv(mf.CACHE_ENV, str(cache))
    return site, cache


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")) if cache.is_dir() else []


def test_parts_are_assembled_once_and_verified(env):
    site, cache = env
    made = make_parts(site, "fakeok_part")
    spec = fake_spec("fakeok_part", made)
    path = mf.ensure_model_file(spec)
    assert path.parent == cache and path.read_bytes() == b"".join(d for _, d in made)
    assert leftovers(cache) == [path.name, path.name + ".verified"]
    assert "fakeok_part1" not in sys.modules  # located as files, never imported
    # A verified file is trusted by its marker: the parts are not read again.
    for module, _ in made:
        (site / module / "data").rename(site / module / "moved")
    assert mf.ensure_model_file(spec) == path


def test_corrupted_part_is_refused_naming_the_package_and_nothing_is_left(env):
    site, cache = env
    made = make_parts(site, "fakebad_part")
    spec = fake_spec("fakebad_part", made)
    damaged = site / "fakebad_part2" / "data" / "part02.bin"
    data = bytearray(damaged.read_bytes())
    data[1000] ^= 0xFF  # same size, one byte flipped
    damaged.write_bytes(bytes(data))
    with pytest.raises(mf.ModelFileError) as err:
        mf.ensure_model_file(spec)
    message = str(err.value)
    assert "\n" not in message and "fakebad-part2" in message and "sha256" in message
    assert "pip install --force-reinstall 'fakebad-part2==1.0'" in message
    assert leftovers(cache) == []  # no half-written model, no temp file


def test_truncated_part_is_refused_before_anything_is_written(env):
    site, cache = env
    made = make_parts(site, "fakeshort_part")
    spec = fake_spec("fakeshort_part", made)
    (site / "fakeshort_part3" / "data" / "part03.bin").write_bytes(made[2][1][:-10])
    with pytest.raises(mf.ModelFileError, match=r"fakeshort-part3 is damaged .*123447 bytes, expected 123457"):
        mf.ensure_model_file(spec)
    assert leftovers(cache) == []


def test_missing_part_names_the_package_and_the_extra(env):
    site, cache = env
    made = make_parts(site, "fakegone_part")
    spec = fake_spec("fakegone_part", made)
    import shutil

    shutil.rmtree(site / "fakegone_part1")
    with pytest.raises(mf.ModelFileError) as err:
        mf.ensure_model_file(spec)
    assert str(err.value) == ("local/fakegone_part: part package fakegone-part1 is not installed; "
                              "pip install 'harnessopt[local]' (or pip install 'fakegone-part1==1.0')")
    assert leftovers(cache) == []
    assert isinstance(err.value, LocalModelError)  # the gateway turns these into PermanentLLMError


def test_wrong_whole_file_hash_is_refused(env):
    site, cache = env
    made = make_parts(site, "fakewhole_part")
    spec = fake_spec("fakewhole_part", made, sha256="0" * 64)
    with pytest.raises(mf.ModelFileError, match="fails its size/sha256 check"):
        mf.ensure_model_file(spec)
    assert leftovers(cache) == []


def test_a_tampered_cached_file_is_rebuilt(env):
    site, cache = env
    made = make_parts(site, "faketamper_part")
    spec = fake_spec("faketamper_part", made)
    path = mf.ensure_model_file(spec)
    data = bytearray(path.read_bytes())
    data[5] ^= 0xFF
    path.write_bytes(bytes(data))  # new mtime: the marker no longer vouches for it
    assert mf.ensure_model_file(spec).read_bytes() == b"".join(d for _, d in made)


def _assemble_in_child(spec_json: str, log: str, cache: str, site: str) -> None:
    import os

    sys.path.insert(0, site)
    os.environ[mf.CACHE_ENV] = cache
    original = mf._assemble

    def logged(spec, target):
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        original(spec, target)

    mf._assemble = logged
    mf.ensure_model_file(LocalModelSpec.model_validate_json(spec_json))


def test_concurrent_first_use_assembles_once(env, tmp_path):
    site, cache = env
    made = make_parts(site, "fakeconc_part", [4_000_000, 4_000_000, 1_000_001])
    spec = fake_spec("fakeconc_part", made)
    log = tmp_path / "assembled.log"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_assemble_in_child, args=(spec.model_dump_json(), str(log), str(cache), str(site)))
             for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 4
    assert len(log.read_text().splitlines()) == 1
    assert (cache / spec.file_name).read_bytes() == b"".join(d for _, d in made)


# --------------------------------------------------------------------------- the registry's data


def test_registry_sizes_add_up_and_parts_are_in_the_right_extra():
    extras = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for spec in LOCAL_MODELS.values():
        assert sum(p.size for p in spec.parts) == spec.size, spec.name
        assert len({p.module for p in spec.parts}) == len(spec.parts)
        for part in spec.parts:
            assert part.requirement in extras[spec.extra], f"{part.requirement} missing from [{spec.extra}]"


def test_default_models_and_install():
    from harnessopt.llm import DEFAULT_META_MODEL, DEFAULT_TASK_MODEL

    assert DEFAULT_TASK_MODEL == "local/gemma-3-270m" and DEFAULT_META_MODEL == "local/qwen2.5-coder-1.5b"
    # `pip install '.[local]'` must bring both defaults.
    assert local_spec(DEFAULT_TASK_MODEL).extra == local_spec(DEFAULT_META_MODEL).extra == "local"


def test_describe_model_tells_base_from_chat():
    gemma = describe_model("local/gemma-3-270m")
    assert gemma.kind == "base" and gemma.local and gemma.context_size == 4096 and "BASE" in gemma.notes
    qwen = describe_model("local/qwen2.5-coder-1.5b")
    assert qwen.kind == "chat" and qwen.context_size == 8192
    assert describe_model("openai/gpt-4o-mini").kind == "chat"
    assert describe_model("local/nope").kind == "unknown"
    assert is_local_model("local/nope") and not is_local_model("ollama/llama3")
    with pytest.raises(LocalModelError, match="local/qwen2.5-coder-0.5b"):
        local_spec("local/nope")


def test_response_formats():
    assert constraint_of(None) is None and constraint_of({"type": "text"}) is None
    assert constraint_of({"type": "json_object"}).kind == "json"
    schema = {"type": "object", "properties": {"b": {"type": "string"}, "a": {"type": "integer"}}}
    c = constraint_of({"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert c.kind == "schema" and c.text.index('"b"') < c.text.index('"a"')  # property order kept
    assert constraint_of({"type": "grammar", "grammar": 'root ::= "yes"'}).text == 'root ::= "yes"'
    with pytest.raises(LocalModelError, match="needs a non-empty 'grammar'"):
        constraint_of({"type": "grammar"})
    with pytest.raises(LocalModelError, match="unsupported response_format type 'xml'"):
        constraint_of({"type": "xml"})
