# A typical small stdlib service for the start-up benchmark: imports 30 common
# standard-library modules, does a little work with each, and reports how many
# modules that loaded.  Inside teepy the line is returned through teex; run
# natively (no teex module) it is printed, so one file serves both.
import sys

_before = set(sys.modules)

import argparse
import base64
import bisect
import collections
import copy
import csv
import dataclasses
import datetime
import decimal
import email.message
import enum
import fractions
import functools
import hashlib
import heapq
import io
import itertools
import json
import logging
import pathlib
import pprint
import re
import statistics
import string
import struct
import textwrap
import typing
import urllib.parse
import uuid
import zlib

DIRECT = 30  # the import statements above


class Level(enum.Enum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass(frozen=True)
class Order:
    ident: str
    amount: decimal.Decimal
    level: Level
    tags: typing.Tuple[str, ...] = ()


def work():
    ap = argparse.ArgumentParser(prog="app30")
    ap.add_argument("--count", type=int, default=40)
    ap.add_argument("--name", default="svc")
    args = ap.parse_args(["--count", "40"])

    log = io.StringIO()
    logger = logging.getLogger("app30")
    logger.addHandler(logging.StreamHandler(log))
    logger.setLevel(logging.INFO)

    start = datetime.datetime(2026, 11, 22, 12, 0, tzinfo=datetime.timezone.utc)
    orders = []
    for i in range(args.count):
        ident = str(uuid.uuid5(uuid.NAMESPACE_URL, "https://example.org/order/%d" % i))
        amount = decimal.Decimal(i * 37 % 101) / decimal.Decimal(7)
        orders.append(Order(ident, amount.quantize(decimal.Decimal("0.01")),
                            Level.HIGH if i % 3 == 0 else Level.LOW, ("a", "b")[: i % 3]))
    logger.info("made %d orders at %s", len(orders), (start + datetime.timedelta(hours=3)).isoformat())

    by_level = collections.Counter(o.level.name for o in orders)
    amounts = sorted(float(o.amount) for o in orders)
    top = heapq.nlargest(3, amounts)
    pos = bisect.bisect_left(amounts, 5.0)
    mean = statistics.mean(amounts)
    ratio = fractions.Fraction(by_level["HIGH"], len(orders))
    total = functools.reduce(lambda a, b: a + b, (o.amount for o in orders), decimal.Decimal(0))

    buf = io.StringIO()
    w = csv.writer(buf)
    for o in itertools.islice(orders, 10):
        w.writerow([o.ident, o.amount, o.level.name, "|".join(o.tags)])
    rows = list(csv.reader(io.StringIO(buf.getvalue())))

    doc = json.dumps({"orders": [dataclasses.asdict(o) for o in orders[:5]]}, default=str, sort_keys=True)
    packed = struct.pack("<%dd" % len(amounts), *amounts)
    blob = base64.b64encode(zlib.compress(packed + doc.encode()))
    url = urllib.parse.urlencode({"q": args.name, "n": len(orders)})
    parts = urllib.parse.urlsplit("https://example.org/api/v1/orders?" + url)
    words = re.findall(r"[a-z]+", textwrap.fill(string.ascii_lowercase * 4, 30))
    path = pathlib.PurePosixPath("/srv/app") / parts.path.lstrip("/") / "index.json"
    msg = email.message.EmailMessage()
    msg["Subject"] = "report for %s" % args.name
    msg.set_content(pprint.pformat(dict(by_level)))
    clone = copy.deepcopy(orders[:5])

    h = hashlib.sha256()
    for item in (doc, blob.decode(), parts.query, " ".join(words), str(path), msg.as_string(),
                 repr(top), str(pos), "%.6f" % mean, str(ratio), str(total), repr(rows[0]),
                 log.getvalue(), str(len(clone))):
        h.update(item.encode())
    return h.hexdigest()[:16]


def main():
    digest = work()
    loaded = len(set(sys.modules) - _before)
    return "app30: %d modules imported, %d loaded in all; work %s" % (DIRECT, loaded, digest)


try:  # inside teepy the result goes back through teex; run natively it is printed
    from teex import TEEX_return as give
except ImportError:
    give = print
give(main())
