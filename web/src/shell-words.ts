/** Arguments a shell would refuse (an unclosed quote); `field` names the form's field, as the API's errors do. */
export class ArgsError extends Error {
  readonly field = 'args';
}

/**
 * Splits arguments as a POSIX shell splits words, without expansion: blanks (space, tab, newline;
 * not other Unicode spaces) separate words; single quotes keep everything; double quotes keep
 * everything but `\"`, `\\`, `\$` and `` \` ``; a backslash outside quotes keeps the next
 * character (at the very end, itself); quoted and plain parts next to each other are one word
 * (`--name="my job"` is `--name=my job`). An unclosed quote is an error naming the field, as a
 * shell refuses it.
 */
export function splitArgs(text: string): string[] {
  const args: string[] = [];
  let word: string | null = null;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === ' ' || c === '\t' || c === '\n') {
      if (word !== null) args.push(word);
      word = null;
      i++;
      continue;
    }
    word ??= '';
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end === -1) throw new ArgsError('Arguments: a single quote is not closed');
      word += text.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      let j = i + 1;
      for (;;) {
        if (j >= text.length) {
          throw new ArgsError('Arguments: a double quote is not closed');
        }
        const d = text[j]!;
        if (d === '"') break;
        if (d === '\\' && '"\\$`'.includes(text[j + 1] ?? '')) {
          word += text[j + 1];
          j += 2;
        } else {
          word += d;
          j++;
        }
      }
      i = j + 1;
    } else if (c === '\\') {
      // A backslash at the very end keeps itself, as sh keeps it.
      word += text[i + 1] ?? '\\';
      i += 2;
    } else {
      word += c;
      i++;
    }
  }
  if (word !== null) args.push(word);
  return args;
}
