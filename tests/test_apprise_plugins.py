"""watcher.notify.apprise_plugins: the same plugin objects as apprise's own instantiate, without
importing apprise's whole plugin set for the schemes a config names.

Each side runs in a fresh interpreter: apprise's plugin set, once loaded, stays loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys

URLS = [
    "json://127.0.0.1:9/hook",
    "jsons://user:pw@example.com/x?-X-Token=abc",
    "JSON://127.0.0.1/x",
    "json://",
    "mailtos://alerts@smtp.example.com?to=ops@example.com&from=alerts@example.com",
    "mailto://127.0.0.1:2525/?from=a@b&to=c@d&mode=insecure",
    "slack://TokenA/TokenB/TokenC/#alerts",
    "tgram://123456789:abcdefg_hijklmnop/12315544",
    "discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js",
    "https://discord.com/api/webhooks/4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js",
    "ntfy://ntfy.sh/topic",
    "matrix://user:pass@host/#room",
    "msteams://a/b/c/d",
    "nosuch://x",
    "not a url",
]

_PROBE = """
import json, logging, sys
logging.disable(logging.CRITICAL)
mode, urls = sys.argv[1], json.loads(sys.argv[2])
if mode == "ours":
    from watcher.notify.apprise_plugins import instantiate
else:
    import apprise
    instantiate = apprise.Apprise.instantiate
out = {}
for url in urls:
    o = instantiate(url)
    out[url] = None if o is None else [type(o).__qualname__, o.url(privacy=False), sorted(o.tags)]
from apprise.manager_plugins import NotificationManager
out["full set loaded"] = bool(NotificationManager())
out["modules"] = sorted(m for m in sys.modules if m.startswith("apprise.plugins."))
print(json.dumps(out))
"""


def _probe(mode: str, urls: list[str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode, json.dumps(urls)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_each_url_gives_what_apprise_gives() -> None:
    theirs = _probe("apprise", URLS)
    for url in URLS:  # one interpreter per URL: a fallback to the full set changes nothing
        assert _probe("ours", [url])[url] == theirs[url], url


def test_json_and_mail_urls_import_only_their_plugin_modules() -> None:
    out = _probe("ours", ["json://127.0.0.1:9/hook", "mailtos://a@smtp.example.com?to=b@c.d"])
    assert out["full set loaded"] is False
    modules = out["modules"]
    assert isinstance(modules, list)
    assert "apprise.plugins.custom_json" in modules
    assert "apprise.plugins.email" in modules
    assert "apprise.plugins.slack" not in modules
    assert len(modules) < 10


def test_urls_apprise_knows_only_natively_use_the_full_set() -> None:
    out = _probe("ours", ["https://discord.com/api/webhooks/4174216298/JHMHI8qBe7bk2ZwO5U711o3dV"])
    assert out["full set loaded"] is True
