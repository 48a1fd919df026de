"""Write data_manifests/schema.json again from the manifest model (biosig.manifests.Record).

    python scripts/manifest_schema.py            # data_manifests/schema.json
    python scripts/manifest_schema.py OUT.json

tests/test_manifests_schema.py fails while the committed file and the model differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

from biosig.manifests.schema import write_record_json_schema

if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / \
        "data_manifests" / "schema.json"
    print(f"wrote {write_record_json_schema(out)}")
