"""Reading Prometheus text expositions in tests, with prometheus-client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, list[tuple[dict[str, str], float]]]


def samples(text: str) -> Samples:
    """Every sample of an exposition, by metric name."""
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def one(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample with exactly these labels, None when there is none."""
    found = [v for lab, v in samples(text).get(name, []) if lab == labels]
    assert len(found) <= 1, f"{name}{labels} appears {len(found)} times"
    return found[0] if found else None


def normalised(series: list[tuple[dict[str, str], float]]) -> list[tuple[tuple[str, ...], float]]:
    """Series in a comparable form (labels sorted, samples sorted)."""
    return sorted((tuple(f"{k}={v}" for k, v in sorted(lab.items())), val) for lab, val in series)
