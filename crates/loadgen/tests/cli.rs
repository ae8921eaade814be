//! The `loadgen` binary: its exit status and its one line on stdout.

mod common;

use common::Running;
use std::net::TcpListener;
use std::process::{Command, Output};

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .expect("run loadgen")
}

#[test]
fn a_clean_run_prints_one_result_line_and_exits_0() {
    let server = Running::start();
    let addr = server.addr().to_string();
    let pid = std::process::id().to_string();
    let output = loadgen(&[
        "--addr",
        &addr,
        "--server-pid",
        &pid,
        "pingpong",
        "--connections",
        "2",
        "--duration",
        "0.2",
        "--warmup",
        "0.05",
    ]);
    server.stop();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("result mode=pingpong connections=2 size=64 depth=1 secs=0.200 "),
        "{stdout}"
    );
    assert!(
        stdout.contains(" mismatches=0 resets=0 short=0 "),
        "{stdout}"
    );
    assert!(stdout.contains(" server_cpu_us_per_msg="), "{stdout}");
    assert!(stderr.contains("pingpong: 2 connections"), "{stderr}");
}

#[test]
fn no_server_exits_1() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let output = loadgen(&["--addr", &addr, "storm", "--duration", "0.1"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot connect"));
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["pingpong"][..],
        &["--addr", "127.0.0.1:9", "pingpong", "--size", "1"],
        &["--addr", "127.0.0.1:9", "pingpong", "--duration", "soon"],
        &["--addr", "127.0.0.1:9", "bulk", "--mib", "0"],
        &["--addr", "127.0.0.1:9", "nonsense"],
        &["--addr", "not an address", "storm"],
    ] {
        let output = loadgen(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}
