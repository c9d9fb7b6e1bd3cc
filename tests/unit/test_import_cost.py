"""What importing an entry point loads: structural checks of the cold-start path.

Never timings (machines are noisy): ``benchmarks/cold_start.py`` reports the speed. These
tests pin down the structure that keeps it cheap, each in a fresh interpreter.
"""

from __future__ import annotations

import subprocess
import sys

import pytest


def loaded_after(statement: str) -> set[str]:
    """The modules in ``sys.modules`` after running ``statement`` in a fresh interpreter."""
    code = f"import sys\n{statement}\nprint('\\n'.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_the_lambda_entry_does_not_import_httpx_until_a_client_is_built() -> None:
    assert "httpx" not in loaded_after("import bridge.aws_lambda")


def test_the_configuration_does_not_import_the_langsmith_client() -> None:
    loaded = loaded_after("import bridge.config")
    assert "bridge.langsmith.client" not in loaded
    assert "httpx" not in loaded


def test_building_a_client_loads_httpx() -> None:
    statement = (
        "from bridge.langsmith import LangSmithClient\n"
        "from bridge.secrets import Secret\n"
        "LangSmithClient('https://eu.api.smith.langchain.com', Secret('k')).close()"
    )
    assert {"httpx", "bridge.langsmith._http"} <= loaded_after(statement)


def test_every_public_name_still_imports_from_the_package() -> None:
    import bridge.langsmith as package
    from bridge.langsmith import (
        REGION_ENDPOINTS,
        ApiKey,
        CreatedKey,
        LangSmithClient,
        RateLimiter,
        RetryPolicy,
        Workspace,
        normalize_endpoint,
    )
    from bridge.langsmith.client import LangSmithClient as Defined

    assert LangSmithClient is Defined
    assert REGION_ENDPOINTS["eu"] == normalize_endpoint("https://eu.api.smith.langchain.com/")
    assert all((ApiKey, CreatedKey, RateLimiter, RetryPolicy, Workspace))
    assert set(package.__all__) <= set(dir(package))


def test_an_unknown_package_name_is_an_attribute_error() -> None:
    import bridge.langsmith as package

    with pytest.raises(AttributeError, match="NoSuchThing"):
        package.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018


def test_the_configuration_models_build_on_first_use_and_every_one_can() -> None:
    """``defer_build`` moves a model's build from import to first use, so a model that
    cannot be built would only fail there: build each one here."""
    statement = (
        "import bridge.config\n"
        "from bridge.config.base import Frozen\n"
        "def every(cls): return [cls, *(m for sub in cls.__subclasses__() for m in every(sub))]\n"
        "models = every(Frozen)[1:]\n"
        "assert len(models) >= 8, models\n"
        "assert not any(m.__pydantic_complete__ for m in models)\n"
        "for m in models: m.model_json_schema()\n"
        "assert all(m.__pydantic_complete__ for m in models)"
    )
    loaded_after(statement)
