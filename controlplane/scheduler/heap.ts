/**
 * A binary heap of items with string keys: push, pop and peek in O(log n) / O(1), and removal or
 * re-ordering of any item by key in O(log n) (it remembers where each item sits).
 */
export class Heap<T> {
  private readonly items: T[] = [];
  private readonly positions = new Map<string, number>();

  constructor(
    private readonly keyOf: (item: T) => string,
    /** True when `a` must come out before `b`. */
    private readonly before: (a: T, b: T) => boolean,
  ) {}

  get size(): number {
    return this.items.length;
  }

  has(key: string): boolean {
    return this.positions.has(key);
  }

  get(key: string): T | undefined {
    const at = this.positions.get(key);
    return at === undefined ? undefined : this.items[at];
  }

  peek(): T | undefined {
    return this.items[0];
  }

  /** Adds the item, or replaces (and re-orders) the one with the same key. */
  push(item: T): void {
    const key = this.keyOf(item);
    const at = this.positions.get(key);
    if (at !== undefined) {
      this.items[at] = item;
      this.fix(at);
      return;
    }
    this.items.push(item);
    this.positions.set(key, this.items.length - 1);
    this.up(this.items.length - 1);
  }

  pop(): T | undefined {
    if (this.items.length === 0) return undefined;
    const top = this.items[0]!;
    this.removeAt(0);
    return top;
  }

  delete(key: string): T | undefined {
    const at = this.positions.get(key);
    if (at === undefined) return undefined;
    const item = this.items[at]!;
    this.removeAt(at);
    return item;
  }

  values(): IterableIterator<T> {
    return this.items.values();
  }

  private removeAt(at: number): void {
    const item = this.items[at]!;
    this.positions.delete(this.keyOf(item));
    const last = this.items.pop()!;
    if (at < this.items.length) {
      this.items[at] = last;
      this.positions.set(this.keyOf(last), at);
      this.fix(at);
    }
  }

  private fix(at: number): void {
    if (!this.up(at)) this.down(at);
  }

  private swap(i: number, j: number): void {
    const a = this.items[i]!;
    const b = this.items[j]!;
    this.items[i] = b;
    this.items[j] = a;
    this.positions.set(this.keyOf(b), i);
    this.positions.set(this.keyOf(a), j);
  }

  /** Moves the item at `at` up while it must come before its parent; true when it moved. */
  private up(at: number): boolean {
    let i = at;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(this.items[i]!, this.items[parent]!)) break;
      this.swap(i, parent);
      i = parent;
    }
    return i !== at;
  }

  private down(at: number): void {
    let i = at;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let first = i;
      if (left < this.items.length && this.before(this.items[left]!, this.items[first]!)) first = left;
      if (right < this.items.length && this.before(this.items[right]!, this.items[first]!)) first = right;
      if (first === i) return;
      this.swap(i, first);
      i = first;
    }
  }
}
