"""Pure renderables and text formats: data in, Rich renderables or strings out.

The only place outside ``kitefan.cli`` that may import rich. No I/O, no asyncio.
"""

from __future__ import annotations
