// A node:test reporter that counts leaf tests (not suites) and prints one machine-readable line.
export default async function* summary(source: AsyncIterable<{ type: string; data: any }>) {
  let passed = 0, failed = 0, skipped = 0;
  for await (const ev of source) {
    if (ev.type !== 'test:pass' && ev.type !== 'test:fail') continue;
    if (ev.data.details?.type === 'suite') {
      // A suite that fails outside its tests (a hook, a crash of the file) still counts once.
      if (ev.type === 'test:fail' && ev.data.details?.error?.failureType !== 'subtestsFailed') failed++;
      continue;
    }
    if (ev.data.skip || ev.data.todo) skipped++;
    else if (ev.type === 'test:pass') passed++;
    else failed++;
  }
  yield `TRELLIS-SUMMARY ${passed} ${failed} ${skipped}\n`;
}
