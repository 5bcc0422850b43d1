/**
 * Every message given to the translator (`trans.__`, `_n`, `_p`, `_np`) in the sources comes
 * out as written. JupyterLab's translator formats each message: `%1`, `%2`… are placeholders
 * and `%%` is an escaped `%`, so a message that names the `%%dag` magic literally would read
 * "%dag". Magics go in as arguments instead.
 */
import * as fs from 'fs';
import * as path from 'path';

import { nullTranslator } from '@jupyterlab/translation';
import * as ts from 'typescript';

const SRC = path.join(__dirname, '..');

/** Which arguments of each translation call are messages. */
const MESSAGE_ARGS: Record<string, number[]> = {
  __: [0],
  _n: [0, 1],
  _p: [1],
  _np: [1, 2]
};

interface ICall {
  /** Where the call is, `file:line`. */
  where: string;
  /** The method called. */
  method: string;
  /** The literal text of each argument, or null when it is not a literal. */
  args: (string | null)[];
}

function literal(node: ts.Expression): string | null {
  if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) {
    return node.text;
  }
  if (ts.isNumericLiteral(node)) {
    return node.text;
  }
  return null;
}

/** The translation calls of every source file (not the tests). */
function translationCalls(): ICall[] {
  const calls: ICall[] = [];
  for (const name of fs.readdirSync(SRC).sort()) {
    if (!name.endsWith('.ts') || name.endsWith('.d.ts')) {
      continue;
    }
    const file = path.join(SRC, name);
    const source = ts.createSourceFile(
      file,
      fs.readFileSync(file, 'utf-8'),
      ts.ScriptTarget.ES2020,
      true
    );
    const visit = (node: ts.Node): void => {
      if (
        ts.isCallExpression(node) &&
        ts.isPropertyAccessExpression(node.expression) &&
        node.expression.name.text in MESSAGE_ARGS &&
        /trans$/i.test(node.expression.expression.getText(source))
      ) {
        const line =
          source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
        calls.push({
          where: `${name}:${line}`,
          method: node.expression.name.text,
          args: node.arguments.map(literal)
        });
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return calls;
}

describe('translated messages', () => {
  const calls = translationCalls();
  const trans = nullTranslator.load('kyte_jupyter');

  it('finds the translation calls of the sources', () => {
    expect(calls.length).toBeGreaterThan(80);
    const files = new Set(calls.map(c => c.where.split(':')[0]));
    for (const f of ['index.ts', 'panel.ts', 'logview.ts']) {
      expect(files).toContain(f);
    }
  });

  it('are string literals (so that they can be extracted for translators)', () => {
    const notLiteral = calls
      .filter(c => MESSAGE_ARGS[c.method].some(i => c.args[i] === null))
      .map(c => c.where);
    expect(notLiteral).toEqual([]);
  });

  it("keep every '%' that is not a placeholder", () => {
    const changed: string[] = [];
    for (const call of calls) {
      for (const i of MESSAGE_ARGS[call.method]) {
        const message = call.args[i]!;
        // Distinct placeholder values, so that only the formatting can differ.
        const values = Array.from({ length: 9 }, (_, k) => `<arg${k + 1}>`);
        const expected = message.replace(
          /%(\d)/g,
          (_, d: string) => values[Number(d) - 1]
        );
        const rendered = trans.__(message, ...values);
        if (rendered !== expected) {
          changed.push(`${call.where}: "${message}" reads "${rendered}"`);
        }
      }
    }
    expect(changed).toEqual([]);
  });

  it('show the magics as written', () => {
    const rendered = calls
      .filter(c => c.method === '__' && c.args.every(a => a !== null))
      .map(c => trans.__(c.args[0]!, ...c.args.slice(1)));
    expect(rendered).toContain(
      'Write one Airflow DAG file per DAG of this notebook (kyte-include cells and %%dag cells)'
    );
    expect(rendered).toContain(
      'The notebook has no %%dag cell, so no DAG file was written.'
    );
    expect(rendered).toContain(
      '(If %%dag is unknown, run %load_ext kyte_jupyter first.)'
    );
    // The messages above and the others that mention %%dag (the list grows with features).
    expect(
      rendered.filter(r => r.includes('%%dag')).length
    ).toBeGreaterThanOrEqual(5);
    expect(rendered.filter(r => /(^|[^%])%dag\b/.test(r))).toEqual([]);
  });
});
