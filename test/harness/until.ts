/**
 * Polls until a probe gives a value (anything but undefined), and returns it; fails naming what
 * was awaited after `timeoutMs`. For waits on state another process or loop brings about.
 *
 *   const bound = await until('pod web bound', async () => (await get()).spec.nodeName || undefined);
 */
export async function until<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 15_000,
  intervalMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not so after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
