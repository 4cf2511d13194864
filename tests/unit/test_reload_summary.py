"""A reload's one-line summary stays readable whatever it touched (`reload.Delta.text`)."""

from __future__ import annotations

from failover.reload import Delta


def test_a_small_delta_names_everything() -> None:
    delta = Delta(added=("new",), removed=("old",), changed=("shop",))
    assert delta.text() == "+new ~shop -old"
    assert Delta().text() == ""


def test_a_large_delta_names_the_first_ones_and_counts_the_rest() -> None:
    changed = tuple(f"svc{i:05d}" for i in range(10_000))
    delta = Delta(added=("fresh",), changed=changed)
    text = delta.text()
    assert text.startswith("+fresh ~svc00000 ~svc00001")
    assert text.endswith("and 9,981 more (1 added, 10,000 changed)")
    assert len(text) < 400
    assert len(delta.as_json()["changed"]) == 10_000  # the journal entry keeps every name
