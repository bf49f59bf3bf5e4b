"""What ships to Lambda: the app and its library, never the operator tooling (`ops`, `local_stack`, `tooling`)."""

from __future__ import annotations

import zipfile

from tests.deploy.conftest import Package


def test_the_deployment_package_holds_only_app_py_and_chalicelib(prod_package: Package) -> None:
    with zipfile.ZipFile(prod_package.deployment_zip) as archive:
        names = archive.namelist()
    ours = {name.split("/", 1)[0] for name in names if name == "app.py" or name.startswith("chalicelib/")}
    assert ours == {"app.py", "chalicelib"}
    for tooling in ("tooling/", "ops/", "local_stack/", "tests/", "benchmarks/", "infra/"):
        assert not any(name.startswith(tooling) for name in names), tooling
