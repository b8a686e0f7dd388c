"""Reading a benchmark's rows: local CSV / JSONL / JSON / parquet files or a hub dataset, via `datasets`.

Every cell of a CSV stays text; parse errors name the file and the line.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harnessopt.benchmark.spec import BenchmarkError, BenchmarkSpec

FORMATS = ("csv", "jsonl", "json", "parquet")
_EXT_FORMAT = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}


def one_line(exc: BaseException, limit: int = 160) -> str:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    msg = f"{type(exc).__name__}: {msg}"
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def resolve_local(ref: str, base: Path) -> Path:
    if ref.startswith("pkg:"):
        pkg, _, rest = ref[4:].partition("/")
        try:
            found = importlib.util.find_spec(pkg)
        except (ImportError, ValueError):
            found = None
        if found is None or not found.submodule_search_locations:
            return Path(f"<package {pkg} not installed>") / rest
        return Path(list(found.submodule_search_locations)[0]) / rest
    p = Path(ref).expanduser()
    return p if p.is_absolute() else base / p


def _format_of(paths: list[Path], declared: str | None) -> str:
    if declared:
        return declared
    name = paths[0].name.lower()
    for suffix in (".gz", ".bz2", ".xz", ".zst"):
        name = name.removesuffix(suffix)
    fmt = _EXT_FORMAT.get(Path(name).suffix)
    if fmt is None:
        raise BenchmarkError(f"cannot tell the format of {paths[0]}; set source.format to one of {', '.join(FORMATS)}")
    return fmt


def _default_names(split: str, spec: BenchmarkSpec) -> list[str]:
    names = spec.source.files.get(split)
    if names:
        return [Path(n.split("/", 1)[1] if n.startswith("pkg:") else n).name for n in ([names] if isinstance(names, str) else names)]
    exts = [spec.source.format] if spec.source.format else ["csv", "jsonl", "json", "parquet", "jsonl.gz"]
    return [f"{split}.{e}" for e in exts]


class LoadedRows:
    """Rows of each source split as column dicts, plus where they came from."""

    def __init__(self) -> None:
        self.columns: dict[str, dict[str, list[Any]]] = {}
        self.where: dict[str, str] = {}  # source split -> file(s) or hub id, for messages
        self.class_names: dict[str, list[str]] = {}  # column -> ClassLabel names (hub)
        self.data_dir: Path | None = None


def _datasets():
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - dependency
        raise BenchmarkError(f"the 'datasets' package is needed to load benchmarks ({exc}); pip install datasets") from None
    return datasets


def _quiet(fn: Callable[[], Any]) -> Any:
    datasets = _datasets()
    was = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        return fn()
    finally:
        if was:
            datasets.enable_progress_bars()


def _load_files(files: dict[str, list[Path]], declared_format: str | None, out: LoadedRows) -> None:
    datasets = _datasets()
    for split, paths in files.items():
        for p in paths:
            if not p.is_file():
                raise BenchmarkError(f"data file {p} (source split {split!r}) not found")
        out.where[split] = ", ".join(str(p) for p in paths)
    for split, paths in files.items():
        fmt = _format_of(paths, declared_format)
        builder = {"jsonl": "json", "json": "json", "csv": "csv", "parquet": "parquet"}[fmt]
        kwargs: dict[str, Any] = {}
        if fmt == "csv":
            sep = "\t" if paths[0].suffix.lower() == ".tsv" or paths[0].name.lower().endswith(".tsv.gz") else ","
            # Keep every cell as text: "007" stays "007", "NA" stays "NA", labels "1" stay strings.
            kwargs.update(sep=sep, keep_default_na=False, features=_string_features(paths[0], sep))
        # One split per call (splits may differ in columns); "train" is only datasets' internal
        # name here, since a source split may be called anything, even datasets' reserved "all".
        try:
            ds = _quiet(lambda: datasets.load_dataset(builder, data_files={"train": [str(p) for p in paths]}, split="train", **kwargs))
            out.columns[split] = ds.to_dict()  # inside: pyarrow decodes text lazily, bad bytes fail here
        except BenchmarkError:
            raise
        except Exception as exc:  # noqa: BLE001 - any parser error becomes one line naming the file
            # datasets' own errors rarely say where; find the first bad line ourselves.
            found = next(((p, why) for p in paths if (why := _first_problem(p, fmt))), None)
            if found:
                raise BenchmarkError(f"could not read {found[0]} as {fmt}: {found[1]}") from None
            raise BenchmarkError(f"could not read {out.where[split]} as {fmt} ({one_line(exc)})") from None


def _string_features(path: Path, sep: str):
    import csv
    import gzip

    from datasets import Features, Value

    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:  # type: ignore[operator]
            header = next(csv.reader(fh, delimiter=sep), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        why = _first_problem(path, "csv") or one_line(exc)
        raise BenchmarkError(f"could not read {path} as csv: {why}") from None
    if not header:
        raise BenchmarkError(f"{path} is empty; a CSV needs a header row")
    return Features({name: Value("string") for name in header})


def _first_problem(path: Path, fmt: str) -> str | None:
    """Where and why `path` does not parse as `fmt`, as "line N: cause; fix", or None if it does."""
    import csv
    import gzip
    import io
    import json

    try:
        raw = gzip.open(path).read() if path.suffix.lower() == ".gz" else path.read_bytes()
    except OSError as exc:
        return one_line(exc)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return (f"line {line} is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                "re-save the file as UTF-8")
    if fmt == "jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                return f"line {n} is not valid JSON ({exc}); fix or remove that line"
            if not isinstance(row, dict):
                return f"line {n} is a JSON {type(row).__name__}, not an object; each line must be one {{...}} row"
    elif fmt == "json":
        try:
            json.loads(text)
        except ValueError as exc:
            return f"not valid JSON ({exc}); fix the file"
    elif fmt == "csv":
        sep = "\t" if ".tsv" in path.name.lower() else ","
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
        try:
            header = next(reader, [])
            for row in reader:
                if row and len(row) != len(header):
                    return (f"line {reader.line_num} has {len(row)} fields but the header has {len(header)}; "
                            "quote cells that contain the separator or fix the row")
        except csv.Error as exc:
            return f"line {reader.line_num}: {exc}; fix that line"
    return None


def _load_hub(spec: BenchmarkSpec, out: LoadedRows) -> None:
    datasets = _datasets()
    src = spec.source
    hint = ", ".join(f"{n}" for s in spec.source_splits() for n in _default_names(s, spec)[:1])
    try:
        dd = _quiet(lambda: datasets.load_dataset(src.hub, src.hub_config, revision=src.revision))
    except Exception as exc:  # noqa: BLE001
        raise BenchmarkError(
            f"could not load {src.hub} from the hub ({one_line(exc, 120)}); "
            f"pass --data DIR pointing at local {hint.replace(', ', '/')}"
        ) from None
    for split in spec.source_splits():
        if split not in dd:
            raise BenchmarkError(f"{src.hub} has no split {split!r} (it has: {', '.join(dd)}); fix [splits] in {spec.path or spec.name}")
        ds = dd[split]
        cols = ds.to_dict()
        for col, feat in ds.features.items():
            if type(feat).__name__ == "ClassLabel":
                out.class_names[src.rename.get(col, col)] = list(feat.names)
                cols[col] = [feat.int2str(v) if isinstance(v, int) and v >= 0 else v for v in cols[col]]
        out.columns[split] = {src.rename.get(c, c): v for c, v in cols.items()}
        out.where[split] = f"{src.hub} (hub split {split!r})"


def load_rows(spec: BenchmarkSpec, data: str | Path | None) -> LoadedRows:
    out = LoadedRows()
    needed = spec.source_splits()
    if data is not None:
        data = Path(data).expanduser()
        if data.is_file():
            if len(needed) != 1:
                raise BenchmarkError(
                    f"--data {data} is one file but {spec.name} reads source splits {', '.join(needed)}; "
                    "pass a directory holding one file per split"
                )
            files = {needed[0]: [data]}
            out.data_dir = data.parent
        elif data.is_dir():
            files = {}
            for split in needed:
                names = _default_names(split, spec)
                hits = [data / n for n in names if (data / n).is_file()]
                if not hits:
                    raise BenchmarkError(f"no file for source split {split!r} in {data} (looked for {', '.join(names)})")
                files[split] = hits if spec.source.files.get(split) else hits[:1]
            out.data_dir = data
        else:
            raise BenchmarkError(f"--data {data} does not exist")
        _load_files(files, spec.source.format, out)
        return out
    src = spec.source
    base = spec.base_dir / (src.data_dir or ".")
    if src.files:
        missing = [s for s in needed if s not in src.files]
        if missing and not src.hub:
            raise BenchmarkError(f"{spec.path or spec.name}: source.files has no entry for source split(s) {', '.join(missing)}")
        files = {s: [resolve_local(r, base) for r in ([src.files[s]] if isinstance(src.files[s], str) else src.files[s])] for s in needed if s in src.files}
        if not missing and all(p.is_file() for ps in files.values() for p in ps):
            out.data_dir = base if src.data_dir else next(iter(files.values()))[0].parent
            _load_files(files, src.format, out)
            return out
        if not src.hub:
            absent = next(p for ps in files.values() for p in ps if not p.is_file())
            raise BenchmarkError(f"data file {absent} not found; pass --data DIR or fix source.files in {spec.path or spec.name}")
    if src.hub:
        _load_hub(spec, out)
        return out
    raise BenchmarkError(f"{spec.path or spec.name} has no [source] hub id or files; pass --data DIR or FILE")
