import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { commandLine, visible } from '../../web/src/format.ts';

describe('the dashboard shows text as it is held', () => {
  it('shows control characters as escapes', () => {
    assert.equal(visible('a\x1b[31mb\nc\x7f'), 'a\\x1b[31mb\\nc\\x7f');
  });

  it('shows the characters that reorder or hide text as code points', () => {
    // "txt.exe" written reversed by a right-to-left override would show as "exe.txt".
    assert.equal(visible('report\u202Etxt.exe'), 'report\\u{202E}txt.exe');
    assert.equal(
      visible('\u2066a\u2069\u200f\u061c\u0085'),
      '\\u{2066}a\\u{2069}\\u{200F}\\u{061C}\\u{0085}',
    );
    // Zero-width and format characters, separators, and tag characters (outside the BMP).
    assert.equal(
      visible('a\u200bb\u00adc\ufeff\u2029\u{E0041}'),
      'a\\u{200B}b\\u{00AD}c\\u{FEFF}\\u{2029}\\u{E0041}',
    );
  });

  it('leaves other text alone, HTML included (it is rendered as text)', () => {
    assert.equal(visible('<img src=x onerror=alert(1)> é 名前 🙂'), '<img src=x onerror=alert(1)> é 名前 🙂');
  });

  it('quotes arguments as a shell would and keeps them visible', () => {
    assert.equal(
      commandLine({ command: 'echo', args: ['a b', "it's", 'x\u202Ey'] }),
      "echo 'a b' 'it'\\''s' 'x\\u{202E}y'",
    );
  });
});
