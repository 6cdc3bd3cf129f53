import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ArgsError, splitArgs } from '../../web/src/shell-words.ts';

describe("the start form's arguments, split as a shell splits words", () => {
  it('splits on blanks and keeps quoted blanks', () => {
    assert.deepEqual(splitArgs('  -c  "echo hi"  \'a  b\' plain\tx '), [
      '-c',
      'echo hi',
      'a  b',
      'plain',
      'x',
    ]);
    assert.deepEqual(splitArgs(''), []);
    assert.deepEqual(splitArgs('   '), []);
  });

  it('joins quoted and plain parts next to each other into one word', () => {
    assert.deepEqual(splitArgs('--name="my job" --x=\'1 2\'3'), ['--name=my job', '--x=1 23']);
    assert.deepEqual(splitArgs('""'), ['']);
    assert.deepEqual(splitArgs("a '' b"), ['a', '', 'b']);
  });

  it('keeps backslashes as a shell does: any next character outside quotes, four inside double quotes', () => {
    assert.deepEqual(splitArgs('a\\ b c\\"d'), ['a b', 'c"d']);
    assert.deepEqual(splitArgs('"x\\"y \\\\ \\$HOME \\n"'), ['x"y \\ $HOME \\n']);
    assert.deepEqual(splitArgs("'no \\escape'"), ['no \\escape']);
    assert.deepEqual(splitArgs('end\\'), ['end\\']);
    // A no-break space is a character of the word, as in a shell.
    assert.deepEqual(splitArgs('a\u00a0b c'), ['a\u00a0b', 'c']);
  });

  it('refuses an unclosed quote, naming the field', () => {
    for (const text of ['"open', "it's", 'a "b\\"']) {
      assert.throws(
        () => splitArgs(text),
        (err: unknown) => err instanceof ArgsError && err.field === 'args' && /not closed/.test(err.message),
        text,
      );
    }
  });
});
