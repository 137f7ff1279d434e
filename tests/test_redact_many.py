"""The secret registry with many secrets (a reseller's managed-account keys, DESIGN §10):
registering is cheap, the pattern is built once per batch, at the next scrub."""

from __future__ import annotations

from watcher.core import redact


def test_the_pattern_is_built_once_for_a_batch_of_secrets() -> None:
    keys = [f"KEYmany-{i:05d}-0123456789abcdef" for i in range(500)]
    before = redact.pattern_builds()
    for key in keys:
        redact.register_secret(key)
    assert redact.pattern_builds() == before  # not one build per secret
    text = f"child {keys[0]} and {keys[-1]}"
    assert redact.scrub(text) == "child *** and ***"
    assert redact.scrub(text) == "child *** and ***"
    assert redact.pattern_builds() == before + 1
    redact.register_secret(keys[7])  # known already: nothing to build
    assert redact.scrub(keys[7]) == "***"
    assert redact.pattern_builds() == before + 1
