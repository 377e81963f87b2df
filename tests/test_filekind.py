"""Recognising the toolkit's files, so that a command given the wrong one names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator.filekind import identify, wrong_kind


@pytest.mark.parametrize(("text", "what"), [
    ("<!DOCTYPE html><html><title>Kafka → QStash audit</title>", "audit html"),
    ("<!doctype html><title>QStash migration plan</title>", "plan html"),
    ("Kafka → QStash audit\n\n  cluster  x\n", "audit table"),
    ("# Kafka → QStash audit (2026)\n", "audit markdown"),
    ('{"topics": [], "consumer_groups": [], "cluster": {}}', "inventory"),
    ("version: 1\nsource: {}\nroutes: [{topic: t, pattern: fanout}]\n", "plan file"),
    ("kafka: {}\nroutes: [{topic: t, destinations: []}]\n", "bridge config"),
    ("groups: {billing: 'https://b.example.com/'}\n", "endpoint file"),
])
def test_identify(tmp_path: Path, text: str, what: str) -> None:
    path = tmp_path / "f"
    path.write_text(text)
    kind = identify(path)
    assert kind is not None and kind.what == what


def test_unknown_and_right_kinds_are_no_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("something: else\n")
    assert identify(path) is None and wrong_kind(path, "inventory") is None
    path.write_text("groups: {a: 'https://a.example.com'}\n")
    assert wrong_kind(path, "endpoint file") is None
    assert wrong_kind(path, "inventory") == (
        f"{path}: this is an endpoint file, not an inventory; `migrator plan` reads an audit "
        "inventory (`migrator audit --format json -o inventory.json`).")
