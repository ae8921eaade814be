//! `tokio-server [--framing line|chunk] [-q] PORT`: the reverse protocol written the way most
//! people would write it with tokio, as a baseline for `cargo xtask bench`.
//!
//! Two worker threads, one task per connection, each `read` + reverse + one `write_all`. A line
//! connection reverses in place every line a read completed and writes them all at once (one
//! send per line would measure system calls, not tokio), carrying an unfinished line to the
//! front of its buffer for the next read. Nothing is tuned: this is "what users would pick
//! instead", and the real server has to beat it to justify itself. The one concession is
//! `TCP_NODELAY`, which every request/response server sets; without it Nagle's algorithm holds
//! back pipelined replies for a delayed ACK (40 ms), which would measure the kernel's timer
//! instead of the server.

#![forbid(unsafe_code)]

use baselines::{Command, MAX_LINE, Options, UsageError};
use protocol::{Framing, LineFramer, LineTooLong, LinesEnd};
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::ControlFlow;
use std::process::ExitCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};

/// The most a chunk connection reads at once: tokio's own `BufReader` default.
const CHUNK: usize = 8 * 1024;

/// A line connection's buffer: the framer lets an unfinished line grow to `MAX_LINE + 1` bytes
/// (a `\r` may yet start a `\r\n`), so every read still has 64 KiB of room behind it, and a
/// client sending no newline cannot make a connection buffer more.
const LINE_BUF: usize = 64 * 1024 + MAX_LINE + 1;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let options = match baselines::parse_args(std::env::args_os()) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => {
            print!("{}", baselines::usage("tokio-server"));
            return ExitCode::SUCCESS;
        }
        Err(UsageError(message)) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    // The handlers go in before the `listening on` line: whoever reads that line may send
    // SIGTERM at once, and without a handler it would kill the process (not exit 0).
    let (mut terminate, mut interrupt) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(terminate), Ok(interrupt)) => (terminate, interrupt),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("error: cannot install the SIGINT/SIGTERM handlers: {error}");
            return ExitCode::from(1);
        }
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, options.port));
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {addr}: {error}");
            return ExitCode::from(1);
        }
    };
    match listener.local_addr() {
        Ok(local) => eprintln!("listening on {local}"),
        Err(error) => {
            eprintln!("error: cannot read the listening address: {error}");
            return ExitCode::from(1);
        }
    }
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tokio::spawn(serve(stream, options));
                }
                // One failed accept (a client that gave up, descriptors running out) is no
                // reason to stop serving the others.
                Err(error) => eprintln!("warning: accept failed: {error}"),
            },
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    // Returning drops the runtime, which cancels every connection's task.
    ExitCode::SUCCESS
}

/// Serves one connection to its end; an I/O error just ends it (the client went away).
async fn serve(stream: TcpStream, options: Options) {
    // Failing to set it costs latency only.
    let _ = stream.set_nodelay(true);
    let _ = match options.framing {
        Framing::Chunk => serve_chunks(stream, options.quiet).await,
        _ => serve_lines(stream, options.quiet).await,
    };
}

async fn serve_lines(mut stream: TcpStream, quiet: bool) -> io::Result<()> {
    let mut buf = vec![0; LINE_BUF];
    // `buf[..carried]` is the start of an unfinished line, moved to the front after each read.
    let mut carried = 0;
    loop {
        let n = stream.read(&mut buf[carried..]).await?;
        if n == 0 {
            break;
        }
        let filled = carried + n;
        echo(quiet, &buf[carried..filled]);
        // The buffer starts at a line start, so a fresh framer sees each line whole and reports
        // it in buffer offsets; rescanning the carry costs less than the read that follows it.
        let mut answered = 0;
        let end = LineFramer::new(MAX_LINE).decode_lines(&mut buf[..filled], |buf, line| {
            buf[line.body].reverse();
            answered = line.end;
            ControlFlow::Continue(())
        });
        // Lines are reversed in place, terminators kept, so `buf[..answered]` is every reply
        // this read completed: one send, however many lines the client pipelined.
        if answered > 0 {
            stream.write_all(&buf[..answered]).await?;
        }
        match end {
            // The callback never breaks, so the framer never stops before the unfinished line.
            Ok(LinesEnd::Kept { from } | LinesEnd::Stopped { at: from }) => {
                buf.copy_within(from..filled, 0);
                carried = filled - from;
            }
            Err(error) => return refuse(stream, error).await,
        }
    }
    if carried > 0 {
        // The end of the stream ends the last line: reversed whole, a trailing `\r` included.
        let last = &mut buf[..carried];
        if too_long(last) {
            return refuse(stream, LineTooLong { max_line: MAX_LINE }).await;
        }
        last.reverse();
        stream.write_all(last).await?;
    }
    stream.shutdown().await
}

/// Answers a line over the limit as the real server does: the error line, a FIN, and the rest
/// of the input discarded until the client closes, so the client sees a FIN rather than a reset.
async fn refuse(mut stream: TcpStream, error: LineTooLong) -> io::Result<()> {
    stream
        .write_all(format!("error: {error}\n").as_bytes())
        .await?;
    stream.shutdown().await?;
    tokio::io::copy(&mut stream, &mut tokio::io::sink()).await?;
    Ok(())
}

/// Whether a line's body is over the limit. Used on the last line at the end of the stream,
/// where a trailing `\r` is data and counts (the framer checks the lines before it).
fn too_long(line: &[u8]) -> bool {
    baselines::body_len(line) > MAX_LINE
}

async fn serve_chunks(mut stream: TcpStream, quiet: bool) -> io::Result<()> {
    let mut buf = vec![0; CHUNK];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        echo(quiet, &buf[..n]);
        buf[..n].reverse();
        stream.write_all(&buf[..n]).await?;
    }
    stream.shutdown().await
}

/// Copies received bytes to stdout unless `-q`. Blocking, and on a worker thread: fine for the
/// debugging aid it is; the bench always passes `-q`.
fn echo(quiet: bool, bytes: &[u8]) {
    if !quiet {
        let mut stdout = io::stdout().lock();
        // A closed stdout must not stop the serving.
        let _ = stdout.write_all(bytes).and_then(|()| stdout.flush());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_counts_the_body_only() {
        let body = vec![b'a'; MAX_LINE];
        for (tail, over) in [
            (&b"\n"[..], false),
            (b"\r\n", false),
            (b"", false),
            (b"a\n", true),
            (b"\r", true),
            (b"ab", true),
        ] {
            let mut line = body.clone();
            line.extend_from_slice(tail);
            assert_eq!(too_long(&line), over, "{tail:?}");
        }
    }
}
