"""JSON Schemas of the YAML files, so editors validate them as they are typed (``nox -s schema``)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from framework.models import FILE_MODELS, MachinesFile


def schema_texts() -> dict[str, str]:
    """File name → schema text, for each kind of YAML file."""
    from framework.accepted import AcceptedFile
    from framework.criteria import BlessingFile
    from framework.findings import FindingsFile
    from framework.known_failures import KnownFailuresFile

    texts = {}
    models: dict[str, type[BaseModel]] = {
        **FILE_MODELS,
        "blessing": BlessingFile,
        "accepted": AcceptedFile,
        "findings": FindingsFile,
        "known_failures": KnownFailuresFile,
        "machines": MachinesFile,
    }
    # blessing, accepted, findings, known-failures files: models beside their features (which import framework.models)
    for kind, model in models.items():
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["title"] = f"dask-blessing {kind} file"
        texts[f"{kind}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return texts


def export_schemas(directory: Path, check: bool = False) -> list[str]:
    """Write the schemas (or, with ``check``, only report which committed ones differ). Returns the stale ones."""
    directory.mkdir(parents=True, exist_ok=True)
    stale = []
    for name, text in schema_texts().items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            stale.append(name)
            if not check:
                path.write_text(text)
    return stale
