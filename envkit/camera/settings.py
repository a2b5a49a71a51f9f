"""The camera kit's one setting, apart so its plugin can read it without importing more."""

from __future__ import annotations

#: ``Settings.options`` key of the MediaMTX choice: ``upstream``, ``standin`` or an image.
SETTING = "mediamtx"
SETTING_ENV = "ENVKIT_MEDIAMTX"
