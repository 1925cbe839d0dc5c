#!/usr/bin/env python3
"""Parses a Prometheus text-format page with the prometheus_client package's
own parser (Debian: python3-prometheus-client) and prints what it read as
JSON, for the node tests to assert on.

The page comes on standard input. The output is a list of families, each
{"name", "type", "documentation", "samples": [{"name", "labels", "value"}]}.
A page the parser cannot read makes it exit non-zero with the parser's
error. The parser, not this script, decides what the page means: this only
copies its result out.
"""

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def number(value):
    # JSON has no infinities or NaN; say them as the format writes them.
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return value


def main():
    page = sys.stdin.read()
    families = []
    for family in text_string_to_metric_families(page):
        families.append({
            "name": family.name,
            "type": family.type,
            "documentation": family.documentation,
            "samples": [
                {"name": s.name, "labels": dict(s.labels), "value": number(s.value)}
                for s in family.samples
            ],
        })
    json.dump(families, sys.stdout)


if __name__ == "__main__":
    main()
