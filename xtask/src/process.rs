//! Child processes for the xtask commands: bounded waits, a guard that kills on every path, and
//! output read on threads so that no pipe fills up. Shared by `smoke` and `bench`.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// How often a bounded wait for a child looks at it again.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Cargo's target directory for the workspace at `root`, given the value of `CARGO_TARGET_DIR`:
/// that directory (relative to `root`, where cargo was run, if relative), else `root/target`.
pub(crate) fn target_dir(root: &Path, from_env: Option<OsString>) -> PathBuf {
    match from_env {
        // `join` with an absolute path gives that path.
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// The address in a `listening on ADDR` line of the server's stderr, if `line` is one.
pub(crate) fn parse_listening(line: &str) -> Option<SocketAddr> {
    line.trim_end().strip_prefix("listening on ")?.parse().ok()
}

/// Waits for `child` to exit until `deadline`, polling: `Some(status)` if it did, `None` if it
/// is still running.
///
/// # Errors
///
/// If the state of the child cannot be read.
pub(crate) fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

/// A child process that is killed and reaped when this goes out of scope, on every path.
pub(crate) struct KillOnDrop(pub(crate) Child);

impl KillOnDrop {
    /// Kills the process if it still runs, and reaps it.
    pub(crate) fn stop(&mut self) {
        // Best effort: an error means the process has already exited (or been reaped), which is
        // what we want.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The bytes of a child's stdout or stderr, as a reader thread will send them once the stream
/// ends. A channel rather than a join handle, so that waiting for it can be bounded.
pub(crate) type PendingOutput = Receiver<Vec<u8>>;

/// Reads `reader` to its end on a thread, which sends what it read on the returned channel.
///
/// # Errors
///
/// If the thread cannot be started.
fn read_to_end_in_thread(mut reader: impl Read + Send + 'static) -> Result<PendingOutput, String> {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("xtask-output".to_owned())
        .spawn(move || {
            let mut bytes = Vec::new();
            // A read error ends the output early; what was read still counts.
            let _ = reader.read_to_end(&mut bytes);
            // The receiver may have given up waiting; then nobody needs the bytes.
            let _ = tx.send(bytes);
        })
        .map_err(|err| format!("could not start a thread: {err}"))?;
    Ok(rx)
}

/// Starts reading the child's stdout and stderr on threads, so that neither pipe can fill up.
///
/// # Errors
///
/// If the child's stdout or stderr is not piped, or a thread cannot be started.
pub(crate) fn capture_output(child: &mut Child) -> Result<(PendingOutput, PendingOutput), String> {
    let stdout = child.stdout.take().ok_or("a child's stdout is not piped")?;
    let stderr = child.stderr.take().ok_or("a child's stderr is not piped")?;
    Ok((
        read_to_end_in_thread(stdout)?,
        read_to_end_in_thread(stderr)?,
    ))
}

/// What a reader thread read, or nothing if it has not finished by `deadline` (or was already
/// collected).
pub(crate) fn collect(output: &PendingOutput, deadline: Instant) -> Vec<u8> {
    output
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .unwrap_or_default()
}

/// Why waiting for a line of a server's stderr stopped without finding it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    TimedOut,
    /// The stderr ended: the server has exited.
    Closed,
}

/// A server's stderr, read line by line on a thread for the whole run, so that the server never
/// blocks on a full pipe; the lines are kept for messages.
pub(crate) struct ServerLog {
    incoming: Receiver<String>,
    /// The last `keep` lines received, without their terminators.
    pub(crate) lines: Vec<String>,
    keep: usize,
}

impl ServerLog {
    /// Starts the thread that reads `stderr` to its end; the log keeps its last `keep` lines.
    ///
    /// # Errors
    ///
    /// If the thread cannot be started.
    pub(crate) fn start(stderr: impl Read + Send + 'static, keep: usize) -> Result<Self, String> {
        let (tx, rx) = mpsc::channel();
        thread::Builder::new()
            .name("xtask-server-stderr".to_owned())
            .spawn(move || {
                let mut reader = BufReader::new(stderr);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let text = String::from_utf8_lossy(&line);
                            // Keep reading even if nobody listens any more: the server must
                            // never block on a full pipe.
                            let _ = tx.send(text.trim_end_matches(['\n', '\r']).to_owned());
                        }
                    }
                }
            })
            .map_err(|err| format!("could not start a thread: {err}"))?;
        Ok(Self {
            incoming: rx,
            lines: Vec::new(),
            keep,
        })
    }

    /// Waits until `deadline` for a new line for which `pick` gives `Some`, keeping every line
    /// received (the last `keep` of them).
    ///
    /// # Errors
    ///
    /// If the deadline passes or the stderr ends first.
    pub(crate) fn wait_for<T>(
        &mut self,
        deadline: Instant,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> Result<T, Stop> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.incoming.recv_timeout(left) {
                Ok(line) => {
                    let picked = pick(&line);
                    if self.lines.len() == self.keep {
                        self.lines.remove(0);
                    }
                    self.lines.push(line);
                    if let Some(value) = picked {
                        return Ok(value);
                    }
                }
                Err(RecvTimeoutError::Timeout) => return Err(Stop::TimedOut),
                Err(RecvTimeoutError::Disconnected) => return Err(Stop::Closed),
            }
        }
    }

    /// Takes in every line until the stderr ends; whether it did by `deadline`.
    pub(crate) fn wait_closed(&mut self, deadline: Instant) -> bool {
        self.wait_for(deadline, |_| None::<()>) == Err(Stop::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_lines() {
        assert_eq!(
            parse_listening("listening on 127.0.0.1:4242"),
            Some("127.0.0.1:4242".parse().unwrap())
        );
        assert_eq!(
            parse_listening("listening on [::1]:4242"),
            Some("[::1]:4242".parse().unwrap())
        );
        assert_eq!(
            parse_listening("listening on 127.0.0.1:4242\r"),
            Some("127.0.0.1:4242".parse().unwrap())
        );
    }

    #[test]
    fn other_lines_are_not_listening_lines() {
        for line in [
            "",
            "listening on",
            "listening on ",
            "listening on localhost:4242",
            "listening on 127.0.0.1",
            "listening on ::1:4242",
            "listening on 127.0.0.1:99999",
            "Listening on 127.0.0.1:4242",
            "[INFO server] listening on 127.0.0.1:4242",
            "summary: 3 connections",
        ] {
            assert_eq!(parse_listening(line), None, "for {line:?}");
        }
    }

    #[test]
    fn the_address_is_read_only_from_a_whole_listening_line() {
        assert_eq!(
            parse_listening("listening on 127.0.0.1:4242\r"),
            Some("127.0.0.1:4242".parse().unwrap())
        );
        assert_eq!(parse_listening("[INFO] listening on 127.0.0.1:4242"), None);
        assert_eq!(parse_listening("listening on 127.0.0.1"), None);
    }

    #[test]
    fn target_dir_from_the_environment() {
        let root = Path::new("/work/project");
        assert_eq!(target_dir(root, None), Path::new("/work/project/target"));
        assert_eq!(
            target_dir(root, Some(OsString::new())),
            Path::new("/work/project/target")
        );
        assert_eq!(
            target_dir(root, Some(OsString::from("/tmp/t"))),
            Path::new("/tmp/t")
        );
        assert_eq!(
            target_dir(root, Some(OsString::from("out"))),
            Path::new("/work/project/out")
        );
    }

    #[test]
    fn a_relative_target_dir_is_taken_from_the_root() {
        let root = Path::new("/w");
        assert_eq!(target_dir(root, None), Path::new("/w/target"));
        assert_eq!(
            target_dir(root, Some(OsString::from("/t"))),
            Path::new("/t")
        );
        assert_eq!(
            target_dir(root, Some(OsString::from("o"))),
            Path::new("/w/o")
        );
    }

    /// The log reader on an in-memory stderr: lines without terminators, the picked value, and
    /// the end of the stream.
    #[test]
    fn server_log_reads_lines_until_the_end() {
        let stderr = io::Cursor::new(
            b"[INFO] starting\r\nlistening on 127.0.0.1:5555\nlistening on [::1]:5555\nsummary"
                .to_vec(),
        );
        let mut log = ServerLog::start(stderr, usize::MAX).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(
            log.wait_for(deadline, parse_listening),
            Ok("127.0.0.1:5555".parse().unwrap())
        );
        assert!(log.wait_closed(deadline));
        assert_eq!(
            log.lines,
            [
                "[INFO] starting",
                "listening on 127.0.0.1:5555",
                "listening on [::1]:5555",
                "summary",
            ]
        );
        assert_eq!(log.wait_for(deadline, parse_listening), Err(Stop::Closed));
    }

    /// With a limit, the log keeps the newest lines.
    #[test]
    fn server_log_keeps_the_last_lines() {
        let stderr = io::Cursor::new(b"one\ntwo\nthree\nfour\n".to_vec());
        let mut log = ServerLog::start(stderr, 2).unwrap();
        assert!(log.wait_closed(Instant::now() + Duration::from_secs(10)));
        assert_eq!(log.lines, ["three", "four"]);
    }
}
