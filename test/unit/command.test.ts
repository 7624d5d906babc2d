/**
 * Command handlers, the pure part: reading a declaration, filling placeholders (no payload text
 * can become a flag, a second command or part of a longer argument), and the stdout protocol.
 */
import { ConfigError } from '../../src/domain/errors';
import {
  CommandInputError,
  commandArgv,
  parseCommandLine,
  placeholderPath,
  readCommandSpec,
} from '../../src/domain/command';

const fail = (path: string, problem: string) => new ConfigError(path, problem);
const readTimeout = (value: unknown) => Number(value) * 1000;
const read = (value: unknown) => readCommandSpec(value, 'agent.handlers.deploy', fail, readTimeout);

describe('placeholders', () => {
  it.each([
    ['{payload.version}', ['version']],
    ['{payload.a.b-c.d_e}', ['a', 'b-c', 'd_e']],
    ['--version={payload.version}', null],
    ['{payload}', null],
    ['{payload.}', null],
    ['x{payload.version}', null],
    ['{payload.version} ', null],
  ])('%s names %j', (element, path) => {
    expect(placeholderPath(element)).toEqual(path);
  });

  // Each hostile value stays one argument, exactly as given: spawn passes argv to the program
  // without a shell, so nothing in it is interpreted.
  it.each([
    ['; rm -rf /'],
    ['$(touch /tmp/pwned)'],
    ['`id`'],
    ['--help'],
    ['-rf'],
    ['a\nb'],
    ['v1 && reboot'],
    ['*'],
    [''],
  ])('passes %j as one whole argument and nothing more', (value) => {
    const argv = commandArgv(['/bin/deploy', '--version', '{payload.version}', 'end'], {
      version: value,
    });
    expect(argv).toEqual(['/bin/deploy', '--version', value, 'end']);
  });

  it('puts numbers in as text', () => {
    expect(commandArgv(['/bin/x', '{payload.n}'], { n: 42.5 })).toEqual(['/bin/x', '42.5']);
  });

  it('never fills a placeholder inside a longer argument', () => {
    expect(commandArgv(['/bin/x', 'v={payload.v}'], { v: '; rm -rf /' })).toEqual([
      '/bin/x',
      'v={payload.v}',
    ]);
  });

  it.each([
    [{}, "the command needs payload.version, which the task's payload does not have"],
    [null, "the command needs payload.version, which the task's payload does not have"],
    [
      { version: ['a', '--b'] },
      'the command needs payload.version as a string or a number, got an array',
    ],
    [
      { version: { x: 1 } },
      'the command needs payload.version as a string or a number, got an object',
    ],
    [{ version: true }, 'the command needs payload.version as a string or a number, got a boolean'],
    [{ version: null }, 'the command needs payload.version as a string or a number, got null'],
  ])('refuses payload %j: %s', (payload, message) => {
    const run = () => commandArgv(['/bin/deploy', '{payload.version}'], payload);
    expect(run).toThrow(CommandInputError);
    expect(run).toThrow(message);
  });

  it('does not read inherited properties', () => {
    expect(() => commandArgv(['/bin/x', '{payload.constructor}'], {})).toThrow(CommandInputError);
  });
});

describe('a declaration', () => {
  it('reads command, cwd, env and timeout', () => {
    expect(
      read({
        command: ['/bin/deploy', '{payload.v}', 3],
        cwd: 'app',
        env: { A: 'x', B: 2 },
        timeout: 5,
      }),
    ).toEqual({
      command: ['/bin/deploy', '{payload.v}', '3'],
      cwd: 'app',
      env: { A: 'x', B: '2' },
      timeoutMs: 5000,
    });
  });

  it.each([
    [
      'not a mapping',
      '/bin/x',
      'agent.handlers.deploy',
      'must be a mapping {command, cwd, env, timeout}',
    ],
    ['no command', {}, 'agent.handlers.deploy.command', 'must be a non-empty list'],
    [
      'an empty command',
      { command: [] },
      'agent.handlers.deploy.command',
      'must be a non-empty list',
    ],
    [
      'a command string',
      { command: '/bin/x --y' },
      'agent.handlers.deploy.command',
      'must be a non-empty list',
    ],
    [
      'an empty argument',
      { command: ['/bin/x', ''] },
      'agent.handlers.deploy.command[1]',
      'must be a non-empty string',
    ],
    [
      'a placeholder inside an argument',
      { command: ['/bin/x', '--v={payload.v}'] },
      'agent.handlers.deploy.command[1]',
      'a placeholder must be a whole argument',
    ],
    [
      'a placeholder naming no field',
      { command: ['/bin/x', '{payload}'] },
      'agent.handlers.deploy.command[1]',
      'a placeholder must be a whole argument',
    ],
    [
      'a placeholder as the program',
      { command: ['{payload.bin}'] },
      'agent.handlers.deploy.command[0]',
      'the program must be fixed',
    ],
    [
      'an unknown key',
      { command: ['/bin/x'], shell: true },
      'agent.handlers.deploy.shell',
      'unknown key',
    ],
    [
      'a bad variable name',
      { command: ['/bin/x'], env: { 'A-B': 'x' } },
      'agent.handlers.deploy.env.A-B',
      'is not a variable name',
    ],
    [
      'a variable that is a list',
      { command: ['/bin/x'], env: { A: [1] } },
      'agent.handlers.deploy.env.A',
      'must be a string',
    ],
  ])('refuses %s, naming the key', (_what, value, key, problem) => {
    let error: unknown;
    try {
      read(value);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).key).toBe(key);
    expect((error as ConfigError).message).toContain(problem);
  });
});

describe('lines a command prints', () => {
  it.each([
    [
      '::progress 3/10 copying files',
      { kind: 'progress', current: 3, total: 10, text: 'copying files' },
    ],
    ['::progress 7', { kind: 'progress', current: 7, total: null, text: null }],
    ['::result {"a": 1}', { kind: 'result', json: '{"a": 1}' }],
    ['progress 3/10', null],
    [' ::progress 3/10', null],
    ['::progress three', null],
  ])('%j', (line, said) => {
    expect(parseCommandLine(line)).toEqual(said);
  });
});
