//! `cargo xtask smoke`: builds the server, starts it and talks to it with the real OpenBSD `nc`,
//! as a user would, to check line reversal and the `exit` shutdown end to end.
//!
//! The steps:
//!
//! 1. check that `nc` is OpenBSD netcat, which has `-N` (shut the socket's write side down at
//!    the end of stdin; without it `nc` would never tell the server that the input is over);
//! 2. `cargo build -p server` and find `target/debug/server`;
//! 3. start `server --quiet 0` and read the port from its `listening on 127.0.0.1:PORT` line;
//! 4. run the checks, each with its own `nc -N 127.0.0.1 PORT`.
//!
//! Every wait is bounded and every child process is killed on the way out, so a broken server
//! makes the smoke test fail, never hang. The server's stderr is drained by a thread for the
//! whole run, so the server never blocks on a full pipe, and its lines are shown on a failure.

use crate::process::{
    KillOnDrop, PendingOutput, ServerLog, Stop, capture_output, collect, parse_listening,
    target_dir, wait_until,
};
use std::env;
use std::ffi::OsString;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, ExitCode, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How to get the netcat the smoke test needs, for the error messages.
const INSTALL_HINT: &str = "install it with: apt-get install netcat-openbsd";

/// How long the server may take to print its `listening on` line once started.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one `nc` may run: a session of a few bytes on loopback takes milliseconds.
const NC_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the server may take to exit once it has been sent `exit`.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// The pause between `ex` and `it\n` in the split `exit` check.
const EXIT_PAUSE: Duration = Duration::from_millis(300);

/// How long to wait for the last output of a process that has exited or been killed.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// How many of the server's last stderr lines a failure report shows: enough for any real
/// diagnosis, without burying the error under a flood of log lines.
const SHOWN_LINES: usize = 200;

/// Runs `cargo xtask smoke` from the workspace at `root`: exit 0 if every check passed, 1 with
/// an `error:` line (and the server's stderr) if one failed.
pub(crate) fn command(root: &Path) -> ExitCode {
    match run(root) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(1)
        }
    }
}

/// Checks for netcat, builds and starts the server, and runs the checks, printing a line for
/// each one passed.
///
/// # Errors
///
/// A message saying what failed, ready to follow `error: `; once the server has started, it
/// ends with the server's stderr lines.
fn run(root: &Path) -> Result<(), String> {
    check_netcat()?;
    let binary = build_server(root)?;
    let mut server = Server::spawn(&binary)?;
    let result = server
        .wait_listening()
        .and_then(|addr| run_checks(&mut server, addr));
    match result {
        Ok(()) => {
            println!("smoke: all checks passed");
            Ok(())
        }
        Err(what) => Err(server.failure(&what)),
    }
}

/// The checks, in order, against the server listening at `addr`. The last one stops the server.
///
/// # Errors
///
/// What the first failed check found.
fn run_checks(server: &mut Server, addr: SocketAddr) -> Result<(), String> {
    println!("smoke: server listening on {addr}");
    check_exchange(addr, b"hello\n", b"olleh\n")?;
    println!("smoke: hello -> olleh ok");
    // `\r` belongs to the terminator, so it stays after the reversed bytes.
    check_exchange(addr, b"one\ntwo\r\nthree\n", b"eno\nowt\r\neerht\n")?;
    println!("smoke: three lines (LF and CRLF) in one session ok");
    check_split_exit(server, addr)?;
    println!("smoke: split exit stops the server (status 0, summary line) ok");
    Ok(())
}

/// Sends `input` in one `nc` session, half-closes, and expects exactly `expected` back.
///
/// # Errors
///
/// If `nc` fails or the answer is not `expected`.
fn check_exchange(addr: SocketAddr, input: &[u8], expected: &[u8]) -> Result<(), String> {
    let mut nc = Netcat::connect(addr)?;
    nc.send(input)?;
    let out = nc.finish()?;
    if !out.status.success() {
        return Err(format!(
            "nc sending {} exited with {}{}",
            show(input),
            out.status,
            out.stderr_note()
        ));
    }
    if out.stdout != expected {
        return Err(format!(
            "sent {}, expected {} back, got {}",
            show(input),
            show(expected),
            show(&out.stdout)
        ));
    }
    Ok(())
}

/// Sends `exit` in two writes with a pause between them: the server must exit with status 0,
/// print a `summary:` line, and not echo the line.
///
/// # Errors
///
/// If the server does not exit in time, exits with a failure, prints no summary, or answers.
fn check_split_exit(server: &mut Server, addr: SocketAddr) -> Result<(), String> {
    let mut nc = Netcat::connect(addr)?;
    nc.send(b"ex")?;
    // A deliberate pause in the scenario, not synchronisation: it makes it likely that the
    // server reads `ex` and `it\n` apart, which is the case under test. Nothing below depends on
    // it happening; the check holds either way.
    thread::sleep(EXIT_PAUSE);
    nc.send(b"it\n")?;
    nc.close_stdin();

    let Some(status) = server.wait_exit(Instant::now() + EXIT_TIMEOUT)? else {
        return Err(format!(
            "the server was still running {} s after a split `exit` line",
            EXIT_TIMEOUT.as_secs()
        ));
    };
    if !status.success() {
        return Err(format!(
            "the server exited with {status} after `exit`, expected exit status 0"
        ));
    }
    // The server has exited, so its stderr ends; the reader thread hands over the last lines.
    if !server.log.wait_closed(Instant::now() + DRAIN_TIMEOUT) {
        return Err(format!(
            "the server's stderr did not end within {} s of its exit",
            DRAIN_TIMEOUT.as_secs()
        ));
    }
    if !server.log.lines.iter().any(|l| l.starts_with("summary:")) {
        return Err("the server exited without writing a `summary:` line to stderr".to_owned());
    }
    let out = nc.finish()?;
    if !out.stdout.is_empty() {
        return Err(format!(
            "the server answered the `exit` line with {}, expected nothing",
            show(&out.stdout)
        ));
    }
    Ok(())
}

/// Checks that `nc` is on the PATH and is OpenBSD netcat.
///
/// # Errors
///
/// A one-line message naming the package to install.
fn check_netcat() -> Result<(), String> {
    let help = netcat_help()?;
    if is_openbsd_netcat(&help) {
        Ok(())
    } else {
        Err(format!(
            "the smoke test needs OpenBSD netcat (nc), but the `nc` on the PATH does not offer \
             -N in `nc -h` (another netcat?); {INSTALL_HINT}"
        ))
    }
}

/// Runs `nc -h` and returns what it printed, stdout then stderr.
///
/// # Errors
///
/// If `nc` cannot be run (with the install hint) or does not finish in time.
fn netcat_help() -> Result<String, String> {
    let spawned = Command::new("nc")
        .arg("-h")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let child = match spawned {
        Ok(child) => child,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(format!(
                "the smoke test needs OpenBSD netcat (nc), which is not on the PATH; \
                 {INSTALL_HINT}"
            ));
        }
        Err(err) => {
            return Err(format!(
                "the smoke test needs OpenBSD netcat (nc), but `nc -h` could not be run: {err}; \
                 {INSTALL_HINT}"
            ));
        }
    };
    let mut child = KillOnDrop(child);
    let (stdout, stderr) = capture_output(&mut child.0).map_err(|err| format!("smoke: {err}"))?;
    // The exit status is not looked at: OpenBSD `nc -h` prints its help and exits with 1.
    match wait_until(&mut child.0, Instant::now() + NC_TIMEOUT) {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(format!(
                "`nc -h` did not finish within {} s",
                NC_TIMEOUT.as_secs()
            ));
        }
        Err(err) => return Err(format!("could not wait for `nc -h`: {err}")),
    }
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    let mut help = collect(&stdout, deadline);
    help.extend(collect(&stderr, deadline));
    Ok(String::from_utf8_lossy(&help).into_owned())
}

/// Whether `help`, the output of `nc -h`, is that of OpenBSD netcat: whether it documents `-N`
/// as shutting the socket down, the one feature the smoke test relies on. (Other netcats have
/// no `-N`; old OpenBSD netcats neither, and they do not do for us either.)
fn is_openbsd_netcat(help: &str) -> bool {
    help.lines().any(|line| {
        line.trim_start().strip_prefix("-N").is_some_and(|rest| {
            rest.starts_with(char::is_whitespace) && rest.to_ascii_lowercase().contains("shutdown")
        })
    })
}

/// Builds the server with `cargo build -p server` and returns the path of its binary.
///
/// # Errors
///
/// If cargo cannot be run, the build fails, or the binary is not where it should be.
fn build_server(root: &Path) -> Result<PathBuf, String> {
    // `cargo xtask` runs under cargo, which says in CARGO which cargo it is.
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let status = Command::new(&cargo)
        .args(["build", "-p", "server"])
        .current_dir(root)
        .status()
        .map_err(|err| format!("smoke: could not run {}: {err}", cargo.to_string_lossy()))?;
    if !status.success() {
        return Err(format!("smoke: `cargo build -p server` failed ({status})"));
    }
    let binary = target_dir(root, env::var_os("CARGO_TARGET_DIR"))
        .join("debug")
        .join(format!("server{}", env::consts::EXE_SUFFIX));
    if !binary.is_file() {
        return Err(format!(
            "smoke: `cargo build -p server` succeeded but there is no {}",
            binary.display()
        ));
    }
    Ok(binary)
}

/// `bytes` quoted, with `\n`, `\r` and other non-printing bytes escaped, for messages.
fn show(bytes: &[u8]) -> String {
    format!("\"{}\"", bytes.escape_ascii())
}

/// The outcome of one `nc` session.
struct NcOutput {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl NcOutput {
    /// `nc`'s stderr as a suffix for a message, or nothing if it was silent.
    fn stderr_note(&self) -> String {
        let text = String::from_utf8_lossy(&self.stderr);
        let text = text.trim();
        if text.is_empty() {
            String::new()
        } else {
            format!("; nc said: {text}")
        }
    }
}

/// One `nc -N` session with the server.
struct Netcat {
    child: KillOnDrop,
    /// `None` once closed: `-N` then shuts the socket's write side down.
    stdin: Option<ChildStdin>,
    stdout: PendingOutput,
    stderr: PendingOutput,
}

impl Netcat {
    /// Starts `nc -N IP PORT` with its stdin, stdout and stderr piped.
    ///
    /// # Errors
    ///
    /// If `nc` cannot be started.
    fn connect(addr: SocketAddr) -> Result<Self, String> {
        let child = Command::new("nc")
            .arg("-N")
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| format!("could not start nc -N {} {}: {err}", addr.ip(), addr.port()))?;
        let mut child = KillOnDrop(child);
        let stdin = child.0.stdin.take();
        let (stdout, stderr) =
            capture_output(&mut child.0).map_err(|err| format!("smoke: {err}"))?;
        Ok(Self {
            child,
            stdin,
            stdout,
            stderr,
        })
    }

    /// Writes `bytes` to `nc`'s stdin and flushes them, so that they go out now.
    ///
    /// # Errors
    ///
    /// If the write fails (typically because `nc` has exited), with what `nc` said.
    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(format!("cannot send {}: nc's stdin is closed", show(bytes)));
        };
        if let Err(err) = stdin.write_all(bytes).and_then(|()| stdin.flush()) {
            let note = match self.finish() {
                Ok(out) => format!("; nc exited with {}{}", out.status, out.stderr_note()),
                Err(finish_err) => format!("; {finish_err}"),
            };
            return Err(format!("writing {} to nc failed: {err}{note}", show(bytes)));
        }
        Ok(())
    }

    /// Closes `nc`'s stdin: the end of the input, which `-N` passes on to the server.
    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Closes stdin, waits (bounded) for `nc` to exit and returns what it printed.
    ///
    /// # Errors
    ///
    /// If `nc` does not exit in time (it is then killed) or cannot be waited for.
    fn finish(&mut self) -> Result<NcOutput, String> {
        self.close_stdin();
        let status = match wait_until(&mut self.child.0, Instant::now() + NC_TIMEOUT) {
            Ok(Some(status)) => status,
            Ok(None) => {
                self.child.stop();
                let got = collect(&self.stdout, Instant::now() + DRAIN_TIMEOUT);
                return Err(format!(
                    "nc did not finish within {} s (killed it); it had received {}",
                    NC_TIMEOUT.as_secs(),
                    show(&got)
                ));
            }
            Err(err) => return Err(format!("could not wait for nc: {err}")),
        };
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        Ok(NcOutput {
            status,
            stdout: collect(&self.stdout, deadline),
            stderr: collect(&self.stderr, deadline),
        })
    }
}

/// The running server: killed and reaped when dropped.
struct Server {
    child: KillOnDrop,
    log: ServerLog,
}

impl Server {
    /// Starts `binary --quiet 0` with its stderr piped to a [`ServerLog`].
    ///
    /// # Errors
    ///
    /// If the process or the reading thread cannot be started.
    fn spawn(binary: &Path) -> Result<Self, String> {
        let mut child = Command::new(binary)
            .args(["--quiet", "0"])
            .stdin(Stdio::null())
            // With --quiet it should print nothing there; whatever it prints must not block it.
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| format!("smoke: could not start {}: {err}", binary.display()))?;
        let stderr = child.stderr.take();
        // The guard first, so that the error paths below kill the server.
        let child = KillOnDrop(child);
        let stderr = stderr.ok_or("smoke: the server's stderr is not piped")?;
        // Every line is kept: the failure message counts the ones it leaves out.
        let log = ServerLog::start(stderr, usize::MAX).map_err(|err| format!("smoke: {err}"))?;
        Ok(Self { child, log })
    }

    /// Waits for the `listening on 127.0.0.1:PORT` line and returns that address.
    ///
    /// # Errors
    ///
    /// If the line does not come within [`LISTEN_TIMEOUT`] or the server exits first.
    fn wait_listening(&mut self) -> Result<SocketAddr, String> {
        let deadline = Instant::now() + LISTEN_TIMEOUT;
        let found = self.log.wait_for(deadline, |line| {
            parse_listening(line).filter(|addr| addr.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST))
        });
        match found {
            Ok(addr) => Ok(addr),
            Err(Stop::TimedOut) => Err(format!(
                "the server did not print `listening on 127.0.0.1:PORT` within {} s",
                LISTEN_TIMEOUT.as_secs()
            )),
            Err(Stop::Closed) => {
                let how = match self.wait_exit(Instant::now() + DRAIN_TIMEOUT) {
                    Ok(Some(status)) => format!("exited with {status}"),
                    _ => "closed its stderr".to_owned(),
                };
                Err(format!(
                    "the server {how} before printing `listening on 127.0.0.1:PORT`"
                ))
            }
        }
    }

    /// Waits for the server to exit until `deadline`: its status, or `None` if it still runs.
    ///
    /// # Errors
    ///
    /// If the state of the process cannot be read.
    fn wait_exit(&mut self, deadline: Instant) -> Result<Option<ExitStatus>, String> {
        wait_until(&mut self.child.0, deadline)
            .map_err(|err| format!("could not wait for the server: {err}"))
    }

    /// Stops the server and returns the message for a failed step `what`, with the (last
    /// [`SHOWN_LINES`]) lines the server wrote to stderr.
    fn failure(&mut self, what: &str) -> String {
        self.child.stop();
        // Once the server is gone its stderr ends; wait a moment for the last lines.
        self.log.wait_closed(Instant::now() + DRAIN_TIMEOUT);
        let mut message = format!("smoke: {what}");
        if self.log.lines.is_empty() {
            message.push_str("\n(the server wrote nothing to stderr)");
        } else {
            message.push_str("\nthe server's stderr:");
            let skipped = self.log.lines.len().saturating_sub(SHOWN_LINES);
            if skipped > 0 {
                message.push_str(&format!("\n  ... ({skipped} earlier lines not shown)"));
            }
            for line in &self.log.lines[skipped..] {
                message.push_str("\n  ");
                message.push_str(line);
            }
        }
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start of `nc -h` from Debian's netcat-openbsd 1.219.
    const OPENBSD_HELP: &str = "OpenBSD netcat (Debian patchlevel 1.219-1)
usage: nc [-46CDdFhklNnrStUuvZz] [-I length] [-i interval] [-M ttl]
\t  [destination] [port]
\tCommand Summary:
\t\t-4\t\tUse IPv4
\t\t-l\t\tListen mode, for inbound connects
\t\t-N\t\tShutdown the network socket after EOF on stdin
\t\t-n\t\tSuppress name/port resolutions
";

    /// The start of `nc -h` from Debian's netcat-traditional.
    const TRADITIONAL_HELP: &str = "[v1.10-47]
connect to somewhere:\tnc [-options] hostname port[s] [ports] ...
listen for inbound:\tnc -l -p port [-options] [hostname] [port]
options:
\t-l\t\t\tlisten mode, for inbound connects
\t-n\t\t\tnumeric-only IP addresses, no DNS
\t-q secs\t\t\tquit after EOF on stdin and delay of secs
";

    #[test]
    fn openbsd_netcat_is_recognised() {
        assert!(is_openbsd_netcat(OPENBSD_HELP));
        assert!(!is_openbsd_netcat(TRADITIONAL_HELP));
        assert!(!is_openbsd_netcat(""));
        // `N` in the usage line's cluster of flags is not enough: the option must be described.
        assert!(!is_openbsd_netcat("usage: nc [-46CDdFhklNnrStUuvZz]\n"));
        assert!(!is_openbsd_netcat("\t-Nx\tShutdown\n"));
    }

    #[test]
    fn bytes_are_shown_escaped() {
        assert_eq!(show(b"owt\r\n"), r#""owt\r\n""#);
        assert_eq!(show(b""), r#""""#);
    }
}
