"""The polyglot test plugin in Python, built with componentize-py."""

from componentize_py_types import Err
import wit_world
from wit_world import exports
from wit_world.exports import shapes


class Shapes(exports.Shapes):
    def area(self, s: shapes.Shape) -> int:
        if isinstance(s, shapes.Shape_Circle):
            return (s.value * s.value * 314) // 100
        if isinstance(s, shapes.Shape_Rect):
            a, b = s.value
            return abs(b.x - a.x) * abs(b.y - a.y)
        return 0

    def midpoint(self, a: shapes.Point, b: shapes.Point) -> shapes.Point:
        return shapes.Point(x=(a.x + b.x) // 2, y=(a.y + b.y) // 2)

    def find(self, items, needle):
        try:
            return items.index(needle)
        except ValueError:
            return None

    def parse_age(self, text: str) -> int:
        try:
            age = int(text)
        except ValueError:
            raise Err(f"not a number: {text}")
        if age < 0 or age > 150:
            raise Err(f"out of range: {age}")
        return age

    def label(self, p, u):
        unit = {None: "?", shapes.Unit.METRIC: "m", shapes.Unit.IMPERIAL: "ft"}[u]
        return f"({p.x}, {p.y}) {unit}"

    def shift(self, points, dx, dy):
        return [shapes.Point(x=p.x + dx, y=p.y + dy) for p in points]


class WitWorld(wit_world.WitWorld):
    def spin(self) -> int:
        n = 0
        while True:
            n += 1

    def hog(self, megabytes: int) -> int:
        chunks = []
        for _ in range(megabytes):
            chunks.append(bytearray(b"\x01" * (1 << 20)))
        return len(chunks)
