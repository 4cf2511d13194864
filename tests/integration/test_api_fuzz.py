"""The admin API against its own OpenAPI document: schemathesis fetches `/v1/openapi.json` from
a running daemon (TCP listener with a bearer token) and fuzzes every operation with valid and
invalid input. No 5xx, every status documented, every body matching its schema, and invalid
input rejected with a 4xx.

The secondary target is down, so a generated drill is refused by preflight (409) instead of
holding for hours, and a generated promote cannot move DNS anywhere healthy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support import Lab, free_port

TOKEN = "fuzz-token-0123456789"


@pytest.fixture(scope="module")
def api_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, str]]:
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    (workdir / "admin.token").write_text(TOKEN + "\n")
    port = free_port()
    with Lab(workdir, addresses=("127.0.0.81", "127.0.0.82")) as lab:
        admin = f'admin: {{socket: "{lab.socket}"}}'
        assert admin in lab.text
        lab.text = lab.text.replace(
            admin,
            f'admin: {{socket: "{lab.socket}", listen: "127.0.0.1:{port}", '
            f'token_file: "{workdir / "admin.token"}"}}',
        )
        lab.config.write_text(lab.text)
        lab.secondary.stop()
        lab.start()
        lab.wait_answer("127.0.0.81")
        lab.wait_health("secondary", "down")
        yield lab, f"http://127.0.0.1:{port}"


def _operations() -> list[tuple[str, str]]:
    from failover.api_routes import ROUTES

    return [(route.method, route.path) for route in ROUTES]


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def served_schema(api_lab: tuple[Lab, str]) -> Any:
    """The document the daemon serves, loaded by schemathesis."""
    _, base = api_lab
    return schemathesis.openapi.from_url(
        f"{base}/v1/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}
    )


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("service", [None, "shop"])
@pytest.mark.parametrize(("method", "path"), _operations())
def test_every_operation_matches_its_schema(
    api_lab: tuple[Lab, str],
    served_schema: Any,
    method: str,
    path: str,
    service: str | None,
    mode: GenerationMode,
) -> None:
    if service is not None and "{service}" not in path:
        pytest.skip("no service in this path")
    _, base = api_lab
    operation = served_schema[path][method]
    fixed = {"service": service} if service else None
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)

    @settings(
        max_examples=50,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    @given(case=strategy)
    def check(case: Any) -> None:
        case.call_and_validate(
            base_url=base,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=60,
            checks=CHECKS,
        )

    try:
        check()
    except Unsatisfiable:  # no parameter and no body: nothing can be made invalid
        assert mode is GenerationMode.NEGATIVE
        pytest.skip("nothing to make invalid")


def test_the_served_document_is_the_generated_one(api_lab: tuple[Lab, str]) -> None:
    from failover.api_routes import openapi_document

    lab, _ = api_lab
    served = lab.get("/v1/openapi.json")
    assert served == openapi_document()
    promote = served["paths"]["/v1/services/{service}/promote"]["post"]
    body = promote["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/PromoteRequest"}
    request = served["components"]["schemas"]["PromoteRequest"]
    assert request["required"] == ["reason", "target"]
    assert request["additionalProperties"] is False
    assert set(promote["responses"]) >= {"200", "400", "404", "409", "502"}
    status = served["components"]["schemas"]["StatusBody"]
    assert {"instance", "leader", "services"} <= set(status["required"])
