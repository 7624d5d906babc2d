/**
 * The client's command line read into requests: targets, payloads, options per command, and
 * the errors that name what was wrong.
 */
import { UsageError } from '../../src/client/exit-codes';
import { parseClientArgs, type ClientInvocation } from '../../src/client/args';
import { CLIENT_COMMANDS } from '../../src/client';
import { CLIENT_COMMAND_NAMES, usage } from '../../src/cli/usage';

const files: Record<string, string> = {
  'task.json': '{"version": "4.2", "steps": [1, 2]}',
  'list.json': '[1, 2]',
  'broken.json': '{"version":',
};

function parse(argv: string[], env: NodeJS.ProcessEnv = {}): ClientInvocation {
  return parseClientArgs(argv, {
    env,
    readFile: (path) => {
      const text = files[path];
      if (text === undefined) throw new Error(`ENOENT: no such file, open '${path}'`);
      return text;
    },
    newIdentifier: () => 'generated-id',
  });
}

function usageError(argv: string[]): string {
  try {
    parse(argv);
  } catch (thrown) {
    expect(thrown).toBeInstanceOf(UsageError);
    return (thrown as Error).message;
  }
  throw new Error(`${argv.join(' ')} was accepted`);
}

it('routes the same commands in the CLI entry point as the client knows, and lists them', () => {
  expect([...CLIENT_COMMAND_NAMES]).toEqual([...CLIENT_COMMANDS]);
  const help = usage();
  for (const command of CLIENT_COMMANDS) expect(help).toMatch(new RegExp(`^  ${command} `, 'm'));
});

describe('the connection', () => {
  it('defaults to http://localhost:8888 with no token', () => {
    expect(parse(['list']).connection).toEqual({ url: 'http://localhost:8888', token: null });
  });

  it('takes TASKER_URL and TASKER_TOKEN, and --url and --token over them', () => {
    const env = { TASKER_URL: 'http://env:1/', TASKER_TOKEN: 'from-env' };
    expect(parse(['list'], env).connection).toEqual({ url: 'http://env:1', token: 'from-env' });
    expect(parse(['list', '--url', 'https://flag:2', '--token', 't'], env).connection).toEqual({
      url: 'https://flag:2',
      token: 't',
    });
  });

  it.each([
    ['localhost:8888', /"localhost:8888" is not an http:\/\/ or https:\/\/ URL/],
    ['not a url', /--url: "not a url" is not a URL/],
  ])('refuses --url %s', (url, message) => {
    expect(usageError(['list', '--url', url])).toMatch(message);
  });
});

describe('send', () => {
  it('names endpoints, with a generated identifier', () => {
    expect(parse(['send', 'worker', '--endpoints', 'console1, console2']).request).toEqual({
      command: 'send',
      type: 'worker',
      body: { identifier: 'generated-id', endpoints: ['console1', 'console2'] },
      wait: false,
    });
  });

  it.each([
    [['--select', 'role=web,dc=fra1'], { labels: { role: 'web', dc: 'fra1' } }],
    [['--select', 'role=web', '--online'], { labels: { role: 'web' }, status: 'online' }],
    [['--select', '*'], '*'],
    [['--select', '*', '--online'], { status: 'online' }],
    [['--online'], { status: 'online' }],
  ])('selects with %j', (flags, endpoints) => {
    const request = parse(['send', 'worker', ...flags]).request;
    expect(request).toMatchObject({ body: { endpoints } });
  });

  it('broadcasts only when told to, with no endpoints in the body', () => {
    const request = parse(['send', 'worker', '--broadcast', '--wait', '--id', 'b1']).request;
    expect(request).toEqual({
      command: 'send',
      type: 'worker',
      body: { identifier: 'b1' },
      wait: true,
    });
    expect(usageError(['send', 'worker'])).toBe(
      'send needs its endpoints: --endpoints a,b, --select role=web (or "*"), or --broadcast',
    );
  });

  it('takes one way of targeting, not several', () => {
    expect(usageError(['send', 'w', '--endpoints', 'a', '--select', '*'])).toBe(
      'send takes one of --endpoints, --select, not several',
    );
    expect(usageError(['send', 'w', '--endpoints', 'a', '--online'])).toBe(
      '--online is for --select',
    );
  });

  it.each([
    [['--endpoints', 'a,,b'], '--endpoints: "a,,b" has an empty name; give a,b,c'],
    [['--select', 'role'], '--select: "role" is not label=value (e.g. role=web,dc=fra1, or "*")'],
    [['--select', '=web'], '--select: "=web" is not label=value (e.g. role=web,dc=fra1, or "*")'],
  ])('refuses %j', (flags, message) => {
    expect(usageError(['send', 'w', ...flags])).toBe(message);
  });

  it('reads the payload from a file, inline JSON, and key=value operands', () => {
    const body = (argv: string[]): unknown =>
      (parse(['send', 'w', '--endpoints', 'a', ...argv]).request as { body: unknown }).body;
    expect(body(['--payload', '@task.json'])).toMatchObject({
      payload: { version: '4.2', steps: [1, 2] },
    });
    expect(body(['--payload', '"text"'])).toMatchObject({ payload: 'text' });
    expect(
      body(['seconds=2', 'name=web 1', 'dry=true', 'tags=["a"]', 'db.host=x', 'db.port=5']),
    ).toMatchObject({
      payload: { seconds: 2, name: 'web 1', dry: true, tags: ['a'], db: { host: 'x', port: 5 } },
    });
    // operands add to a file's object and win over its fields
    expect(body(['--payload', '@task.json', 'version=5'])).toMatchObject({
      payload: { version: 5, steps: [1, 2] },
    });
    expect(body([])).not.toHaveProperty('payload');
  });

  it.each([
    [['--payload', '@missing.json'], /^--payload: cannot read missing.json: ENOENT/],
    [['--payload', '@broken.json'], /^--payload: broken.json is not JSON: /],
    [['--payload', '{x}'], /^--payload: "\{x\}" is not JSON: /],
    [
      ['--payload', '@list.json', 'a=1'],
      /key=value arguments need a payload that is a JSON object/,
    ],
    [['seconds'], /"seconds" is not key=value/],
    [['a..b=1'], /"a..b=1": a key is empty or __proto__/],
    [['__proto__.x=1'], /a key is empty or __proto__/],
  ])('refuses the payload %j', (flags, message) => {
    expect(usageError(['send', 'w', '--endpoints', 'a', ...flags])).toMatch(message);
  });

  it('sends a rollout and a success threshold', () => {
    const request = parse([
      'send',
      'w',
      '--endpoints',
      'a,b,c,d',
      '--batch',
      '25%',
      '--max-errors',
      '1',
      '--pause',
      '30s',
      '--success-threshold',
      '75%',
    ]).request;
    expect(request).toMatchObject({
      body: {
        rollout: { batch: '25%', max_errors: 1, pause: '30s' },
        success_threshold: '75%',
      },
    });
    expect(usageError(['send', 'w', '--endpoints', 'a', '--pause', '1s'])).toBe(
      '--max-errors and --pause are for a rollout: give --batch too',
    );
    expect(usageError(['send', 'w', '--endpoints', 'a', '--batch', 'half'])).toBe(
      '--batch: "half" is neither a count nor a percentage such as 25%',
    );
  });

  it('sends a priority of 0 to 9', () => {
    expect(parse(['send', 'w', '--endpoints', 'a', '--priority', '9']).request).toMatchObject({
      body: { priority: 9 },
    });
    expect(usageError(['send', 'w', '--endpoints', 'a', '--priority', '10'])).toBe(
      '--priority must be 0 to 9, got "10"',
    );
  });
});

describe('the other commands', () => {
  it('reads get, watch, cancel and retry', () => {
    expect(parse(['get', 'worker', 'a/b']).request).toEqual({
      command: 'get',
      type: 'worker',
      identifier: 'a/b',
    });
    expect(parse(['watch', 'worker', 'w1']).request).toMatchObject({ command: 'watch' });
    expect(
      parse(['cancel', 'worker', 'w1', '--endpoints', 'a,b', '--reason', 'bad release']).request,
    ).toEqual({
      command: 'cancel',
      type: 'worker',
      identifier: 'w1',
      body: { endpoints: ['a', 'b'], reason: 'bad release' },
    });
    expect(parse(['retry', 'worker', 'w1', '--wait']).request).toEqual({
      command: 'retry',
      type: 'worker',
      identifier: 'w1',
      body: {},
      wait: true,
    });
  });

  it('turns list and endpoints filters into the API query', () => {
    expect(
      parse([
        'list',
        'worker',
        '--status',
        'FAILED,INCOMPLETE',
        '--id-prefix',
        'rel-',
        '--limit',
        '5',
      ]).request,
    ).toEqual({
      command: 'list',
      type: 'worker',
      query: [
        ['status', 'FAILED,INCOMPLETE'],
        ['identifier', 'rel-'],
        ['limit', '5'],
      ],
    });
    expect(parse(['list']).request).toEqual({ command: 'list', type: null, query: [] });
    expect(
      parse(['endpoints', '--label', 'role=web', '--label', 'dc=fra1', '--status', 'online'])
        .request,
    ).toEqual({
      command: 'endpoints',
      name: null,
      query: [
        ['status', 'online'],
        ['label', 'role=web'],
        ['label', 'dc=fra1'],
      ],
    });
    expect(parse(['endpoints', 'web1']).request).toMatchObject({ name: 'web1' });
  });

  it('takes --json everywhere, and --help as a request for the usage', () => {
    expect(parse(['endpoints', '--json']).json).toBe(true);
    expect(parse(['send', '--help']).request).toBeNull();
  });

  it.each([
    [['get', 'worker'], 'get needs TYPE IDENTIFIER'],
    [['get', 'worker', 'a', 'b'], 'get: unexpected argument "b"'],
    [['list', 'worker', '--reason', 'x'], 'list does not take --reason'],
    [['get', 'w', 'i', '--wait'], 'get does not take --wait'],
    [['list', '--frobnicate'], 'list: unknown option --frobnicate (tasker list --help lists them)'],
    [['deploy'], 'unknown command "deploy"'],
  ])('refuses %j', (argv, message) => {
    expect(usageError(argv)).toBe(message);
  });
});
