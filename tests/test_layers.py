"""The domain's imports, against the standard library's own list of module names.

pyproject.toml's import-linter contracts name the third-party packages we install; this
also catches one added later, which a list cannot know about.
"""

from __future__ import annotations

import sys

import grimp


def test_the_domain_imports_only_the_standard_library() -> None:
    graph = grimp.build_graph("csms", include_external_packages=True, cache_dir=None)
    outside = {
        imported.split(".")[0]
        for module in graph.find_children("csms.core") | {"csms.core"}
        for imported in graph.find_modules_directly_imported_by(module)
        if not imported.startswith("csms.")
    }
    assert outside, "the graph holds the domain's standard-library imports"
    assert sorted(outside - sys.stdlib_module_names) == []
