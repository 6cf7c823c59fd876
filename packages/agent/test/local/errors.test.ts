// LocalStateError codes reach HTTP through http/errors.ts with the state's sentence as the body.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalStateError, type LocalStateErrorCode } from '../../src/local/errors.ts';
import { mapError } from '../../src/http/errors.ts';

test('each local state error maps to Consul\'s status with its text unchanged', () => {
  const cases: [LocalStateErrorCode, string, number, boolean][] = [
    ['ERR_LOCAL_CHECK_UNSUPPORTED', 'Invalid check: docker checks are not supported by this agent', 400, true],
    ['ERR_LOCAL_SCRIPTS_DISABLED', "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true", 400, true],
    ['ERR_LOCAL_UNKNOWN_SERVICE', 'Unknown service ID "web". Ensure that the service ID is passed, not the service name.', 404, true],
    ['ERR_LOCAL_UNKNOWN_CHECK', 'Unknown check ID "c". Ensure that the check ID is passed, not the check name.', 404, true],
    ['ERR_LOCAL_NOT_TTL_CHECK', 'CheckID "c" does not have associated TTL', 404, true],
    ['ERR_STOPPED', 'agent is shutting down', 500, false],
  ];
  for (const [code, text, status, refused] of cases) {
    const err = new LocalStateError(code, text);
    assert.deepEqual(mapError(err), { statusCode: status, body: text, headers: {} }, code);
    assert.equal(err.refused, refused, code);
  }
});
