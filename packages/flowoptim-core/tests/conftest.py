"""pytest setup for flowoptim-core: make ``core_helpers`` importable from the test modules."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
