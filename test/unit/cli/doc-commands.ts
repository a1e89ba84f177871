/**
 * The command lines of spec/config.md §5, verbatim (program name "gost"), and a minimal
 * POSIX-shell word splitter so they are parsed exactly as a shell would hand them over.
 */

export interface DocCommand {
  id: string;
  command: string;
}

// S2 is printed in the docs without its closing quote (a shell typo); the quote is added here
// and nothing else is changed.
export const DOC_COMMANDS: DocCommand[] = [
  { id: 'S1', command: 'gost -L "tunnel://:8443?entrypoint=:80&tunnel=.example.com:4d21094e-b74c-4916-86c1-d9fa36ea677b,example.org:ac74d9dd-3125-442a-a7c1-f9e49e05faca"' },
  { id: 'S2', command: 'gost -L "tunnel://:8443?entrypoint.id=9fd6c586-86f9-49c1-a03a-d4876851695a' + '"' },
  { id: 'S3', command: 'gost -L tunnel://:8443?tunnel.direct=true' },
  { id: 'S4', command: 'gost -L tunnel://:8443?tunnel=iperf.local:22f43305-42f7-4232-bbbc-aa6c042e3bc3' },
  { id: 'C1', command: 'gost -L rtcp://:0/192.168.1.1:80 -F "tunnel://:8443?tunnel.id=4d21094e-b74c-4916-86c1-d9fa36ea677b&tunnel.weight=1"' },
  { id: 'C2', command: 'gost -L rtcp://:0/192.168.2.1:80 -F tunnel://:8443?tunnel.id=ac74d9dd-3125-442a-a7c1-f9e49e05faca' },
  { id: 'C3', command: 'gost -L rtcp://:0/:5201 -L rudp://:0/:5201 -F tunnel://:8443?tunnel.id=22f43305-42f7-4232-bbbc-aa6c042e3bc3' },
  { id: 'C4', command: 'gost -L rtcp://:0/192.168.1.1:80 -F tunnel+wss://wisper.gost.run:443' },
  { id: 'C5', command: 'gost -L rtcp://:0/192.168.1.1:80 -F tunnel+wss://wisper.gost.run:443?tunnel.id=893787fd-fcd2-46a0-8dd4-f9103ae84df4' },
  { id: 'C6', command: 'gost -L rtcp://:0/192.168.1.1:22 -F tunnel+wss://wisper.gost.run:443?tunnel.id=f8baa731-4057-4300-ab75-c4e603834f1b' },
  { id: 'C7', command: 'gost -L rudp://:0/192.168.1.1:53 -F tunnel+wss://wisper.gost.run:443?tunnel.id=f8baa731-4057-4300-ab75-c4e603834f1b' },
  { id: 'C8', command: 'gost -L rtcp://:0/192.168.1.1:80 -F tunnel+wss://tunnel.gost.plus:443?tunnel.id=f8baa731-4057-4300-ab75-c4e603834f1b' },
  { id: 'C9', command: 'gost -L rtcp://:0/192.168.1.1:80 -F tunnel+wss://tunnel.gost.plus:443' },
  { id: 'C10', command: 'gost -L rtcp://hello/192.168.1.1:80 -F tunnel+wss://tunnel.gost.plus:443?tunnel.id=f8baa731-4057-4300-ab75-c4e603834f1b' },
  { id: 'C11', command: 'gost -L rtcp://:0/192.168.1.1:22 -F tunnel+wss://tunnel.gost.plus:443?tunnel.id=f8baa731-4057-4300-ab75-c4e603834f1b' },
  { id: 'C12', command: 'gost -L rudp://:0/192.168.1.1:53 -F tunnel+wss://tunnel.gost.plus:443?tunnel.id=f8baa731-4057-4300-ab75-c4e603834f1b' },
  { id: 'C13', command: 'gost -L file://:8000 -L rtcp://:0/:8000 -F tunnel+ws://gost.local:80?tunnel.id=381433e1-7980-11ee-bbdb-60f262c1e32d' },
  { id: 'V1', command: 'gost -L tcp://:8000?sniffing=true -F tunnel://:8443?tunnel.id=9fd6c586-86f9-49c1-a03a-d4876851695a' },
  { id: 'V2', command: 'gost -L tcp://:8000?sniffing=true -F tunnel://:8443?tunnel.id=ac74d9dd-3125-442a-a7c1-f9e49e05faca' },
  { id: 'V3', command: 'gost -L tcp://:8000/srv-2.local -F tunnel://:8443?tunnel.id=ac74d9dd-3125-442a-a7c1-f9e49e05faca' },
  { id: 'V4', command: 'gost -L tcp://:2222/ssh.srv-2.local -F tunnel://:8443?tunnel.id=aede1f6a-762b-45da-b937-b6632356555a' },
  { id: 'V5', command: 'gost -L tcp://:6379/redis.srv-3.local -F tunnel://:8443?tunnel.id=aede1f6a-762b-45da-b937-b6632356555a' },
  { id: 'V6', command: 'gost -L udp://:1053/dns.srv-2.local -L udp://:2053/dns.srv-3.local -F tunnel://:8443?tunnel.id=aede1f6a-762b-45da-b937-b6632356555a' },
  { id: 'V7', command: 'gost -L tcp://:15201/iperf.local -L udp://:15201/iperf.local?keepalive=true -F tunnel://:8443?tunnel.id=22f43305-42f7-4232-bbbc-aa6c042e3bc3' },
  { id: 'V8', command: 'gost -L tcp://:15201 -L udp://:15201?keepalive=true -F tunnel://:8443?tunnel.id=22f43305-42f7-4232-bbbc-aa6c042e3bc3' },
  { id: 'V9', command: 'gost -L tcp://:2222/f1bbbb4aa9d9868a.gost.run -F tunnel+wss://wisper.gost.run:443?tunnel.id=f8baa731-4057-4300-ab75-c4e603834f1b' },
  { id: 'V10', command: 'gost -L udp://:1053/f1bbbb4aa9d9868a.gost.run -F tunnel+wss://wisper.gost.run:443?tunnel.id=f8baa731-4057-4300-ab75-c4e603834f1b' },
  { id: 'V11', command: 'gost -L tcp://:2222/f1bbbb4aa9d9868a.gost.plus -F tunnel+wss://tunnel.gost.plus:443?tunnel.id=f8baa731-4057-4300-ab75-c4e603834f1b' },
  { id: 'V12', command: 'gost -L udp://:1053/f1bbbb4aa9d9868a.gost.plus -F tunnel+wss://tunnel.gost.plus:443?tunnel.id=f8baa731-4057-4300-ab75-c4e603834f1b' },
];

/** Splits a command line into words like a POSIX shell (quotes, backslash); no expansions. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < line.length && '"\\$`'.includes(line[i + 1]!)) cur += line[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      cur += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw new Error(`unterminated ${quote} in: ${line}`);
  if (inWord) words.push(cur);
  return words;
}

/** argv after the program name. */
export function argvOf(command: string): string[] {
  const words = shellWords(command);
  if (words[0] !== 'gost') throw new Error(`expected a gost command: ${command}`);
  return words.slice(1);
}
