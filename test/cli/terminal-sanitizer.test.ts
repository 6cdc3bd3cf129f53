import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { OutputWriter } from '../../src/cli/output-writer.ts';
import { printable, sanitizeTerminalOutput, TerminalSanitizer } from '../../src/cli/terminal-sanitizer.ts';

const clean = (text: string) => sanitizeTerminalOutput(Buffer.from(text)).toString();
const ESC = '\x1b';

describe('terminal sanitizer', () => {
  it('removes OSC 0 and OSC 2 (window title), ended by BEL or by ST', () => {
    assert.equal(clean(`a${ESC}]0;pwned\x07b`), 'ab');
    assert.equal(clean(`a${ESC}]2;pwned${ESC}\\b`), 'ab');
  });

  it('removes OSC 52 (clipboard write) and OSC 8 hyperlinks', () => {
    assert.equal(clean(`${ESC}]52;c;Y3VybCBldmlsIHwgc2g=\x07ok\n`), 'ok\n');
    assert.equal(clean(`${ESC}]8;;https://evil.example${ESC}\\click${ESC}]8;;${ESC}\\`), 'click');
  });

  it('removes DCS, SOS, PM and APC strings', () => {
    assert.equal(
      clean(`x${ESC}P+q544e${ESC}\\y${ESC}_apc${ESC}\\z${ESC}^pm\x07!${ESC}Xsos${ESC}\\.`),
      'xyz!.',
    );
  });

  it('removes CSI sequences other than SGR', () => {
    const csi = `${ESC}[2J${ESC}[H${ESC}[?1049h${ESC}[6n${ESC}[5;10r${ESC}[3A${ESC}[>c${ESC}[4 q`;
    assert.equal(clean(`${csi}text`), 'text');
  });

  it('keeps SGR colours and attributes, newlines, tabs and carriage returns', () => {
    const text = `${ESC}[31mred${ESC}[0m\t${ESC}[1;38;2;10;20;30mrgb${ESC}[m\r\n${ESC}[38:5:200mx${ESC}[0m\n`;
    assert.equal(clean(text), text);
  });

  it('keeps UTF-8 text and removes the C1 controls written as UTF-8', () => {
    assert.equal(clean('héllo wörld € 日本 🎉\n'), 'héllo wörld € 日本 🎉\n');
    assert.equal(clean('a\u009b2Jb\u009d0;title\u009cc\u0090dcs\u009cd'), 'abcd');
  });

  it('never passes on a 0xC2 without its continuation: with the other stream it would make a C1 control', () => {
    // Each stream has its own sanitizer, and both reach one terminal: a bare 0xC2 at the end of
    // stdout's write, then a lone 0x9B (plain by itself) on stderr, would be U+009B, CSI, there.
    const stdout = new TerminalSanitizer();
    const stderr = new TerminalSanitizer();
    const onTerminal = Buffer.concat([
      stdout.write(Buffer.from([0xc2, 0xc2])),
      stderr.write(Buffer.from([0x9b, 0x32, 0x4a])),
      stdout.write(Buffer.from([0x41])),
      stdout.end(),
    ]);
    assert.doesNotMatch(onTerminal.toString(), /[\u0080-\u009f]/, 'no C1 control on the terminal');
    // The 0x9B alone (after a whole character) is no character either: U+FFFD to a UTF-8 reader.
    assert.equal(onTerminal.toString(), '\ufffd\ufffd2J\ufffdA');
    assert.equal(clean('\u00a0 \u00b0 £'), '\u00a0 \u00b0 £', 'U+00A0 to U+00BF stay');
    const split = new TerminalSanitizer();
    assert.deepEqual([...split.write(Buffer.from([0x61, 0xc2]))], [0x61], 'held until its next byte');
    assert.deepEqual([...split.write(Buffer.from([0xb0]))], [0xc2, 0xb0]);
    assert.deepEqual([...split.write(Buffer.from([0xc2]))], []);
    assert.deepEqual([...split.end()], [0xef, 0xbf, 0xbd], 'a last lone 0xC2 is U+FFFD');
  });

  it('removes other ESC sequences and C0 controls (reset, charsets, bell, backspace)', () => {
    assert.equal(clean(`a${ESC}cb${ESC}(0c${ESC}7d${ESC}8e\x07f\x08g\x0eh\x0fi\x7fj`), 'abcdefghij');
  });

  it('recognizes sequences split across chunks, byte by byte', () => {
    const text = `pre${ESC}]52;c;aGk=\x07mid${ESC}[31mred${ESC}[0m${ESC}[2Jpost\u009b1mé${ESC}]0;t${ESC}\\end`;
    const sanitizer = new TerminalSanitizer();
    const parts = [...Buffer.from(text)].map((byte) => sanitizer.write(Uint8Array.of(byte)));
    parts.push(sanitizer.end());
    assert.equal(Buffer.concat(parts).toString(), clean(text));
    assert.equal(clean(text), `premid${ESC}[31mred${ESC}[0mpost${ESC}[1méend`);
  });

  it('an unterminated OSC swallows nothing after an ESC that starts a new sequence', () => {
    assert.equal(clean(`${ESC}]0;title${ESC}[32mgreen`), `${ESC}[32mgreen`);
    assert.equal(clean(`${ESC}]0;title\x18visible`), 'visible');
  });

  it('printable() shows control characters in names and messages as escapes', () => {
    assert.equal(printable(`job${ESC}]0;x\x07\nname\t\u009b`), 'job\\x1b]0;x\\x07\\nname\\t\\x9b');
  });
});

describe('output writer', () => {
  const sink = (isTTY: boolean) => {
    const chunks: Buffer[] = [];
    const stream = Object.assign(
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          chunks.push(chunk);
          callback();
        },
      }),
      { isTTY },
    );
    return { stream, text: () => Buffer.concat(chunks).toString() };
  };
  const dangerous = `ok${ESC}]52;c;aGk=\x07${ESC}[2J${ESC}[32mgreen${ESC}[0m\n`;

  it('sanitizes what goes to a terminal, per job stream', async () => {
    const out = sink(true);
    const err = sink(true);
    const writer = new OutputWriter({
      stdout: out.stream,
      stderr: err.stream,
      raw: false,
      allToStdout: false,
    });
    await writer.write('stdout', Buffer.from(`ok${ESC}]52;c;`));
    await writer.write('stderr', Buffer.from(`err${ESC}[2`));
    await writer.write('stdout', Buffer.from(`aGk=\x07${ESC}[2J${ESC}[32mgreen${ESC}[0m\n`));
    await writer.write('stderr', Buffer.from('Jline\n'));
    await writer.end();
    assert.equal(out.text(), `ok${ESC}[32mgreen${ESC}[0m\n`);
    assert.equal(err.text(), 'errline\n');
  });

  it('with raw, keeps every byte even on a terminal', async () => {
    const out = sink(true);
    const writer = new OutputWriter({
      stdout: out.stream,
      stderr: sink(true).stream,
      raw: true,
      allToStdout: false,
    });
    await writer.write('stdout', Buffer.from(dangerous));
    await writer.end();
    assert.equal(out.text(), dangerous);
  });

  it('passes bytes through exactly when not writing to a terminal', async () => {
    const out = sink(false);
    const writer = new OutputWriter({
      stdout: out.stream,
      stderr: sink(false).stream,
      raw: false,
      allToStdout: true,
    });
    await writer.write('stderr', Buffer.from(dangerous));
    await writer.end();
    assert.equal(out.text(), dangerous);
  });
});
