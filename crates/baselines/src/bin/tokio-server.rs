//! `tokio-server [--framing line|chunk] [-q] PORT`: the reverse protocol written the way most
//! people would write it with tokio, as a baseline for `cargo xtask bench`.
//!
//! Two worker threads, one task per connection; a line connection is `BufReader` +
//! `read_until(b'\n')` + reverse + `write_all`, a chunk connection is `read` + reverse +
//! `write_all`. Nothing is tuned: this is "what users would pick instead", and the real server
//! has to beat it to justify itself. The one concession is `TCP_NODELAY`, which every
//! request/response server sets; without it Nagle's algorithm holds back pipelined replies for
//! a delayed ACK (40 ms), which would measure the kernel's timer instead of the server.

#![forbid(unsafe_code)]

use baselines::{Command, MAX_LINE, Options, UsageError};
use protocol::{Framing, LineTooLong};
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};

/// The most a chunk connection reads at once: tokio's own `BufReader` default.
const CHUNK: usize = 8 * 1024;

/// A line's body may be `MAX_LINE` bytes, plus `\r\n`: one `read_until` never takes more, so a
/// client sending no newline cannot make a connection buffer without bound.
const LINE_LIMIT: u64 = MAX_LINE as u64 + 2;

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
    let (reader, mut writer) = stream.split();
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader)
            .take(LINE_LIMIT)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            break;
        }
        echo(quiet, &line);
        if too_long(&line) {
            let error = LineTooLong { max_line: MAX_LINE };
            writer
                .write_all(format!("error: {error}\n").as_bytes())
                .await?;
            writer.shutdown().await?;
            // As the real server: the reply ends there, the rest of the input is discarded
            // until the client closes, so the client sees a FIN rather than a reset.
            tokio::io::copy(&mut reader, &mut tokio::io::sink()).await?;
            return Ok(());
        }
        baselines::reverse_line(&mut line);
        writer.write_all(&line).await?;
    }
    writer.shutdown().await
}

/// Whether what `read_until` returned is over the limit: a body longer than `MAX_LINE`, or
/// `LINE_LIMIT` bytes without a newline (the body is longer still).
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
