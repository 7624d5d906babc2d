/**
 * What is derived from the setting declarations (src/config/settings.ts) and written down:
 * the reference in docs/configuration.md and the options of `tasker --help`.
 */
import fs from 'node:fs';
import { DOC_FILE, withReference } from '../../scripts/config-reference';
import { usage } from '../../src/cli/usage';
import { DECLARED, SETTING_FLAGS } from '../../src/config';

it('docs/configuration.md holds the current reference (else: npm run docs:config)', () => {
  const text = fs.readFileSync(DOC_FILE, 'utf8');
  if (withReference(text) !== text) {
    throw new Error(
      `${DOC_FILE} is out of date with src/config/settings.ts: run npm run docs:config`,
    );
  }
  for (const path of DECLARED.keys()) expect(text).toContain(`| \`${path}\` |`);
});

it('tasker --help lists the flag of every setting that has one', () => {
  const help = usage();
  for (const { name, arg, path } of SETTING_FLAGS) {
    expect(help).toMatch(new RegExp(`--${name} ${arg} .*\\(${path.replace('.', '\\.')}\\)`));
  }
});
