/**
 * Every quantization method's own options as CLI flags, from the methods' schemas (quant/method.ts):
 * one flag per option name, registered once for `quantize` and `study`. Only the flags the user
 * actually gave are passed on; the method checks them (an option it does not take is an error)
 * and fills in its defaults.
 */
import type { Command } from 'commander';
import { METHODS } from '../quant/registry.js';
import { allOptions } from '../quant/options.js';

const camel = (flag: string) => flag.replace(/^--(no-)?/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

export function methodOptionFlags(cmd: Command): Command {
  for (const [name, spec] of allOptions(METHODS)) {
    if (camel(spec.flag) !== name) throw new Error(`method option ${name}: its flag ${spec.flag} must spell the same name`);
    const owners = Object.values(METHODS).filter((m) => name in m.options).map((m) => m.name).join(', ');
    const help = `${owners}: ${spec.help}`;
    if (spec.kind === 'boolean') cmd.option(spec.default ? `--no-${spec.flag.slice(2)}` : spec.flag, help);
    else cmd.option(`${spec.flag} <${spec.kind === 'integer' ? 'n' : 'x'}>`, `${help} (default ${spec.default})`);
  }
  return cmd;
}

/** The method options the user gave on the command line (by option name), values as commander parsed them. */
export function givenMethodOptions(cmd: Command): Record<string, unknown> {
  const values = cmd.opts() as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const name of allOptions(METHODS).keys()) if (cmd.getOptionValueSource(name) === 'cli') out[name] = values[name];
  return out;
}
