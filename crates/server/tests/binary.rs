//! The built `server` binary: its command line, exit codes, the lines it prints, signals, and
//! what it costs when idle.

mod common;

use common::{Binary, connect, read_n, read_to_end, send_pieces};
use rustix::process::Signal;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::process::Command;
use std::time::{Duration, Instant};

fn run_to_end(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_server"))
        .args(args)
        .output()
        .expect("run the server binary");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_arguments_exit_2_with_one_line_naming_the_value() {
    for (args, named) in [
        (&["--ring-size", "1000", "0"][..], "1000"),
        (&["--framing", "words", "0"], "words"),
        (&["--exit", "maybe", "0"], "maybe"),
        (&["--buffer-size", "0", "0"], "--buffer-size"),
        (&["--idle-timeout", "soon", "0"], "soon"),
        (&["not-a-port"], "not-a-port"),
        (&["70000"], "70000"),
        (&[], "<PORT>"),
        (&["--bogus", "0"], "--bogus"),
    ] {
        let (code, stdout, stderr) = run_to_end(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
    }
}

#[test]
fn help_and_version_exit_0_on_stdout() {
    let (code, stdout, stderr) = run_to_end(&["--help"]);
    assert_eq!(code, Some(0), "{stderr}");
    for option in [
        "--bind",
        "--framing",
        "--exit",
        "--quiet",
        "--ring-size",
        "--buffer-size",
        "--max-line",
        "--max-frame",
        "--max-connections",
        "--max-pending",
        "--idle-timeout",
        "--wait",
    ] {
        assert!(stdout.contains(option), "help lacks {option}:\n{stdout}");
    }
    let (code, stdout, _) = run_to_end(&["--version"]);
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with("server "), "{stdout}");
}

#[test]
fn a_port_in_use_exits_1_with_one_plain_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    for args in [&["--bind", "127.0.0.1", &port][..], &[&port]] {
        let (code, _, stderr) = run_to_end(args);
        assert_eq!(code, Some(1), "{stderr}");
        assert_eq!(
            stderr,
            format!("error: cannot listen on 127.0.0.1:{port}: Address already in use\n")
        );
    }
}

#[test]
fn it_listens_on_both_loopbacks_with_one_port_and_stops_on_sigterm() {
    let mut server = Binary::spawn(&["--quiet", "0"]);
    let v4 = server.listening();
    let v6_line = format!("listening on [::1]:{}", v4.port());
    if TcpListener::bind("[::1]:0").is_ok() {
        server.wait_for_line(|l| l == v6_line);
        let v6: SocketAddr = format!("[::1]:{}", v4.port()).parse().unwrap();
        let mut client = connect(v6);
        client.write_all(b"over six\n").unwrap();
        assert_eq!(read_n(&mut client, 9), b"xis revo\n");
    }
    let mut client = connect(v4);
    client.write_all(b"over four\n").unwrap();
    assert_eq!(read_n(&mut client, 10), b"ruof revo\n");

    let summary = server.terminate();
    assert!(summary.contains("stopped by signal"), "{summary}");
    // The connection is closed at the stop.
    assert_eq!(read_to_end(&mut client), b"");
}

#[test]
fn explicit_bind_addresses_share_the_port_picked_for_the_first() {
    let ipv6 = TcpListener::bind("[::1]:0").is_ok();
    let args: &[&str] = if ipv6 {
        &["-q", "--bind", "127.0.0.1", "--bind", "::1", "0"]
    } else {
        &["-q", "--bind", "127.0.0.1", "0"]
    };
    let mut server = Binary::spawn(args);
    let v4 = server.listening();
    if ipv6 {
        let v6_line = format!("listening on [::1]:{}", v4.port());
        server.wait_for_line(|l| l == v6_line);
    }
    server.signal(Signal::TERM);
    let (status, lines, _) = server.wait();
    assert_eq!(status.code(), Some(0), "{lines:?}");
}

/// A misbehaving client is closed with a log line; connection events are `debug`.
#[test]
fn connection_events_and_misbehaving_clients_are_logged() {
    let mut server = Binary::spawn_logging(&["-q", "--max-line", "4", "0"], "debug");
    let addr = server.listening();
    let mut client = connect(addr);
    client.write_all(b"toolong\n").unwrap();
    assert_eq!(
        read_to_end(&mut client),
        b"error: line longer than 4 bytes\n"
    );
    drop(client);
    server.wait_for_line(|l| l.contains("DEBUG") && l.contains("line longer than 4 bytes"));
    server.wait_for_line(|l| l.contains("DEBUG") && l.contains("opened"));
    server.wait_for_line(|l| l.contains("DEBUG") && l.contains("closed"));
    server.signal(Signal::TERM);
    let (status, lines, _) = server.wait();
    assert_eq!(status.code(), Some(0), "{lines:?}");
}

#[test]
fn sigint_stops_it_gracefully_too() {
    let mut server = Binary::spawn(&["--quiet", "0"]);
    let addr = server.listening();
    let mut client = connect(addr);
    client.write_all(b"abc\n").unwrap();
    assert_eq!(read_n(&mut client, 4), b"cba\n");
    server.signal(Signal::INT);
    let (status, lines, _) = server.wait();
    assert_eq!(status.code(), Some(0), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("summary: ")),
        "{lines:?}"
    );
}

/// A client that sends 16 MiB and reads none of the replies keeps the server's stop waiting
/// (for up to 5 s) on its pending output: a second signal then ends the process at once.
/// (`--max-pending` lets the server take all 16 MiB, so that the client's write completes.)
#[test]
fn a_second_signal_while_stopping_ends_the_process_with_status_1() {
    let room = "67108864";
    let mut server = Binary::spawn(&[
        "--quiet",
        "--max-pending",
        room,
        "--max-buffered",
        room,
        "0",
    ]);
    let addr = server.listening();
    let mut stuck = connect(addr);
    let lines: Vec<u8> = (0..160_000u32)
        .flat_map(|i| format!("{i:099}\n").into_bytes())
        .collect();
    // More than the sockets hold unread (see the partial-write test in load.rs).
    stuck.write_all(&lines).unwrap();
    server.signal(Signal::TERM);
    server.wait_for_line(|l| l.contains("signal received: stopping"));
    server.signal(Signal::TERM);
    let (status, lines, _) = server.wait();
    assert_eq!(status.code(), Some(1), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.starts_with("summary: ")),
        "{lines:?}"
    );
    drop(stuck);
}

#[test]
fn exit_split_across_writes_stops_it_with_status_0_and_received_bytes_are_printed() {
    let mut server = Binary::spawn(&["--buffer-size", "2", "0"]);
    let addr = server.listening();
    let mut client = connect(addr);
    send_pieces(&mut client, &[b"hello\n", b"ex", b"it", b"\n"]);
    assert_eq!(read_n(&mut client, 6), b"olleh\n");
    let (status, lines, stdout) = server.wait();
    assert_eq!(status.code(), Some(0), "{lines:?}");
    let summary = lines
        .iter()
        .find(|l| l.starts_with("summary: "))
        .expect("summary line");
    assert!(
        summary.contains("stopped by exit from 127.0.0.1:"),
        "{summary}"
    );
    // Without --quiet the bytes received are printed raw, as they came.
    assert_eq!(stdout, b"hello\nexit\n");
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut client), b"");
}

#[test]
fn quiet_prints_nothing_on_stdout() {
    let mut server = Binary::spawn(&["-q", "0"]);
    let addr = server.listening();
    let mut client = connect(addr);
    client.write_all(b"abc\nexit\n").unwrap();
    assert_eq!(read_n(&mut client, 4), b"cba\n");
    let (status, _, stdout) = server.wait();
    assert_eq!(status.code(), Some(0));
    assert_eq!(stdout, b"");
}

/// CPU time (user + system) the process has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name may contain spaces; the fields after its `)` are plain.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The CPU ticks `server` burns over an idle `window` after one connection came and went.
fn idle_ticks(wait: &str, window: Duration) -> u64 {
    let mut server = Binary::spawn(&["--quiet", "--wait", wait, "0"]);
    let addr = server.listening();
    let mut client = connect(addr);
    client.write_all(b"warm up\n").unwrap();
    assert_eq!(read_n(&mut client, 8), b"pu mraw\n");
    drop(client);
    let before = cpu_ticks(server.pid());
    // A measurement window, not synchronisation: nothing happens during it.
    let end = Instant::now() + window;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
    let used = cpu_ticks(server.pid()) - before;
    server.signal(Signal::TERM);
    let (status, _, _) = server.wait();
    assert_eq!(status.code(), Some(0));
    used
}

/// The original's worker spun a whole core forever. With `--wait block` (the default) an
/// idle server sleeps; `--wait spin` shows what the check would catch.
#[test]
fn an_idle_server_uses_no_cpu_unless_told_to_spin() {
    let window = Duration::from_millis(600);
    // Clock ticks are 10 ms: 600 ms of spinning is about 60, or a third of that when the
    // machine's two cores are shared with two other busy processes.
    let blocked = idle_ticks("block", window);
    assert!(
        blocked <= 3,
        "an idle --wait block server used {blocked} ticks"
    );
    let spun = idle_ticks("spin", window);
    assert!(
        spun >= 10,
        "--wait spin used only {spun} ticks: is the check measuring?"
    );
}

/// Under load the worker logs what both threads counted every couple of seconds, at `debug`.
#[test]
fn under_load_a_stats_line_is_logged_every_few_seconds() {
    let mut server = Binary::spawn_logging(&["--quiet", "0"], "debug");
    let addr = server.listening();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let talker = std::thread::spawn(move || {
        let mut client = connect(addr);
        // A line every 50 ms until told to stop, or for as long as any test waits.
        for _ in 0..(common::PATIENCE.as_millis() / 50) {
            client.write_all(b"load\n").unwrap();
            assert_eq!(read_n(&mut client, 5), b"daol\n");
            if stopped.recv_timeout(Duration::from_millis(50)).is_ok() {
                break;
            }
        }
    });
    let line = server.wait_for_line(|l| l.contains("stats: "));
    stop.send(()).unwrap();
    common::join(talker);
    for field in [
        " connections (",
        " rejected, ",
        " timed out)",
        " ring events, ",
        " bytes in, ",
        " bytes out, ",
        " pauses, ",
        "pending high-water ",
        "buffered ",
    ] {
        assert!(line.contains(field), "{field:?} missing: {line}");
    }
    server.signal(Signal::TERM);
    let (status, lines, _) = server.wait();
    assert_eq!(status.code(), Some(0), "{lines:?}");
}
