// Prints the closing `tests: N passed, N failed` line of .ci/run from vitest's JSON report, so
// the count CI reads is the runner's own, not something parsed out of its console output.
// Usage: node scripts/test-summary.mjs [report.json] [runner exit code]
import { existsSync, readFileSync } from 'node:fs';

const [path = '.ci/vitest.json', exitArg = '0'] = process.argv.slice(2);
const runnerExit = Number(exitArg);

function summarize() {
  if (!existsSync(path)) {
    console.log(`no vitest report at ${path}: the test run did not finish`);
    return { passed: 0, failed: 1 };
  }
  let report;
  try {
    report = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    console.log(`unreadable vitest report at ${path}: ${e instanceof Error ? e.message : e}`);
    return { passed: 0, failed: 1 };
  }
  const passed = report.numPassedTests ?? 0;
  let failed = report.numFailedTests ?? 0;
  // A test file that throws while loading fails without any failed test in it; count it once.
  const brokenFiles = (report.testResults ?? []).filter(
    (f) => f.status === 'failed' && !(f.assertionResults ?? []).some((a) => a.status === 'failed'),
  );
  for (const f of brokenFiles) console.log(`test file failed outside any test: ${f.name}${f.message ? `: ${f.message.split('\n')[0]}` : ''}`);
  failed += brokenFiles.length;
  // Keep the line honest with the exit status: vitest also fails a run on unhandled errors.
  if (runnerExit !== 0 && failed === 0) {
    console.log(`vitest exited ${runnerExit} with no failed test in its report (unhandled error?): counted as 1 failure`);
    failed = 1;
  }
  return { passed, failed };
}

const { passed, failed } = summarize();
console.log(`tests: ${passed} passed, ${failed} failed`);
