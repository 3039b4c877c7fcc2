// The polyglot test plugin in JavaScript, built with componentize-js.

export const shapes = {
  area(s) {
    switch (s.tag) {
      case 'circle':
        return (BigInt(s.val) * BigInt(s.val) * 314n) / 100n;
      case 'rect': {
        const [a, b] = s.val;
        return BigInt(Math.abs(b.x - a.x)) * BigInt(Math.abs(b.y - a.y));
      }
      default:
        return 0n;
    }
  },
  midpoint(a, b) {
    return { x: Math.floor((a.x + b.x) / 2), y: Math.floor((a.y + b.y) / 2) };
  },
  find(items, needle) {
    const index = items.indexOf(needle);
    return index < 0 ? undefined : index;
  },
  parseAge(text) {
    const age = /^-?\d+$/.test(text) ? Number(text) : NaN;
    if (Number.isNaN(age)) throw `not a number: ${text}`;
    if (age < 0 || age > 150) throw `out of range: ${age}`;
    return age;
  },
  label(p, u) {
    const unit = u === undefined ? '?' : u === 'metric' ? 'm' : 'ft';
    return `(${p.x}, ${p.y}) ${unit}`;
  },
  shift(points, dx, dy) {
    return points.map((p) => ({ x: p.x + dx, y: p.y + dy }));
  },
};

export function spin() {
  let n = 0n;
  for (;;) n += 1n;
}

export function hog(megabytes) {
  const chunks = [];
  for (let i = 0; i < megabytes; i++) chunks.push(new Uint8Array(1 << 20).fill(1));
  return chunks.length;
}
