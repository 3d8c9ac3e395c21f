#!/usr/bin/env node
// Entry point of the `eventsinks` command. The relay's libraries (yaml, zod, prom-client, pino,
// better-sqlite3) are dependencies of eventsinks-relay; they are still loaded here, behind a
// message, so an install that lost one says so in a line instead of a stack trace.
// A reader that goes away (`eventsinks dlq list x | head -1`) is no error of ours: stop quietly,
// as other command-line tools do, instead of an unhandled EPIPE and its stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  process.stderr.write(`eventsinks: cannot write the output: ${error.message}\n`);
  process.exit(74);
});

const io = {
  out: (text: string): void => void process.stdout.write(text),
  err: (text: string): void => void process.stderr.write(text),
};

try {
  const { main } = await import('./main.js');
  process.exitCode = await main(process.argv.slice(2), io);
} catch (error) {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'ERR_MODULE_NOT_FOUND') {
    io.err(
      `eventsinks: ${(error as Error).message}\n` +
        'The install of eventsinks-relay is incomplete: reinstall it (npm install eventsinks-relay)\n',
    );
    process.exitCode = 1;
  } else {
    // main() turns every failure into a line and an exit code; this is a failure to load it.
    const verbose = /^(debug|trace)$/.test(process.env.EVENTSINKS_LOG_LEVEL ?? '');
    const text = error instanceof Error ? error.message : String(error);
    io.err(
      `eventsinks: internal error: ${verbose && error instanceof Error ? (error.stack ?? text) : text}\n`,
    );
    process.exitCode = 70;
  }
}
