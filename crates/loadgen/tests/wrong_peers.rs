//! Peers that answer wrongly, or not at all: loadgen must count it and fail the run, and must
//! not mind replies that arrive in pieces.

mod common;

use common::Peer;
use loadgen::{Bulk, Error, PingPong, Report, Storm, Target, Workload};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

fn pingpong(depth: usize) -> Workload {
    Workload::PingPong(PingPong {
        connections: 1,
        size: 64,
        depth,
        duration: Duration::from_millis(200),
        warmup: Duration::ZERO,
    })
}

fn run_against(
    serve: fn(std::net::TcpStream) -> std::io::Result<()>,
    workload: &Workload,
) -> Report {
    let peer = Peer::spawn(serve);
    let report = loadgen::run(&Target::new(peer.addr()), workload).unwrap();
    peer.finish();
    report
}

#[test]
fn an_unreversed_echo_is_a_mismatch() {
    let report = run_against(common::echo, &pingpong(1));
    assert!(!report.is_success());
    assert_eq!((report.mismatches, report.resets, report.short), (1, 0, 0));
    assert_eq!(report.messages, 0);
}

#[test]
fn a_dropped_byte_is_a_mismatch() {
    let report = run_against(common::drop_a_byte, &pingpong(1));
    assert!(!report.is_success());
    assert_eq!((report.mismatches, report.resets, report.short), (1, 0, 0));
    assert_eq!(report.messages, 2);
}

#[test]
fn a_reply_cut_short_by_the_end_of_the_stream_is_short() {
    let report = run_against(common::truncate_third_reply, &pingpong(1));
    assert!(!report.is_success());
    assert_eq!((report.mismatches, report.resets, report.short), (0, 0, 1));
    assert_eq!(report.messages, 2);
}

#[test]
fn replies_in_one_byte_pieces_are_fine() {
    for depth in [1, 3] {
        let report = run_against(common::reverse_in_pieces, &pingpong(depth));
        assert!(report.is_success(), "{}", report.summary());
        assert!(report.messages > 0);
    }
}

#[test]
fn bulk_against_an_unreversed_echo_is_a_mismatch() {
    let workload = Workload::Bulk(Bulk {
        connections: 1,
        bytes_per_connection: 256 << 10,
        line: 100,
    });
    let report = run_against(common::echo, &workload);
    assert!(!report.is_success());
    assert_eq!(report.mismatches, 1);
    assert_eq!(report.messages, 0);
}

#[test]
fn bulk_missing_its_last_byte_is_short() {
    let spec = Bulk {
        connections: 1,
        bytes_per_connection: 100 << 10,
        line: 50,
    };
    let report = run_against(common::all_but_the_last_byte, &Workload::Bulk(spec.clone()));
    assert!(!report.is_success());
    assert_eq!((report.mismatches, report.resets, report.short), (0, 0, 1));
    assert_eq!(report.bytes, spec.lines() * 50 - 1);
}

#[test]
fn bulk_against_a_peer_that_never_closes_fails_soon() {
    let spec = Bulk {
        connections: 2,
        bytes_per_connection: 100 << 10,
        line: 50,
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (done, wait) = mpsc::channel::<()>();
    let peer = thread::spawn(move || {
        let mut held = Vec::new();
        for _ in 0..2 {
            let (mut stream, _) = listener.accept().unwrap();
            stream.set_read_timeout(Some(common::PATIENCE)).unwrap();
            // The request fits the loopback socket buffers, so it can be read whole (up to
            // the client's half-close) before answering.
            let mut request = Vec::new();
            stream.read_to_end(&mut request).unwrap();
            let mut reply = Vec::with_capacity(request.len());
            for line in request.split_inclusive(|&b| b == b'\n') {
                reply.extend_from_slice(&common::reversed(line));
            }
            stream.write_all(&reply).unwrap();
            // Every reply sent, and no close: the stream is held open until the test is over.
            held.push(stream);
        }
        let _ = wait.recv_timeout(common::PATIENCE);
    });
    let started = Instant::now();
    let report = loadgen::run(&Target::new(addr), &Workload::Bulk(spec.clone())).unwrap();
    let took = started.elapsed();
    drop(done);
    peer.join().unwrap();
    assert!(!report.is_success());
    assert_eq!((report.mismatches, report.resets, report.short), (0, 0, 2));
    assert_eq!(report.messages, 2 * spec.lines());
    // The measured time ends at the last reply verified, not with the wait for the close.
    assert!(
        report.elapsed < Duration::from_secs(1),
        "{:?}",
        report.elapsed
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn a_storm_against_an_unreversed_echo_is_all_mismatches() {
    let workload = Workload::Storm(Storm {
        duration: Duration::from_millis(100),
        concurrency: 2,
        size: 64,
    });
    let report = run_against(common::echo, &workload);
    assert!(!report.is_success());
    assert!(report.mismatches > 0);
    assert_eq!(report.messages, 0);
}

#[test]
fn nobody_listening_is_a_connect_error() {
    // A port that was free a moment ago; nothing listens there now.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for workload in [
        pingpong(1),
        Workload::Bulk(Bulk::default()),
        Workload::Storm(Storm::default()),
    ] {
        let error = loadgen::run(&Target::new(addr), &workload).unwrap_err();
        assert!(matches!(error, Error::Connect { .. }), "{error}");
    }
}

#[test]
fn settings_a_run_cannot_use_are_refused_before_connecting() {
    let addr = "127.0.0.1:9".parse().unwrap();
    let bad = [
        Workload::PingPong(PingPong {
            connections: 0,
            ..PingPong::default()
        }),
        Workload::PingPong(PingPong {
            size: 1,
            ..PingPong::default()
        }),
        Workload::PingPong(PingPong {
            depth: 0,
            ..PingPong::default()
        }),
        Workload::Bulk(Bulk {
            line: 1,
            ..Bulk::default()
        }),
        Workload::Storm(Storm {
            concurrency: 0,
            ..Storm::default()
        }),
    ];
    for workload in bad {
        let error = loadgen::run(&Target::new(addr), &workload).unwrap_err();
        assert!(matches!(error, Error::Invalid(_)), "{workload:?}");
    }
}

#[test]
fn a_server_pid_that_is_no_process_is_refused_before_connecting() {
    let target = Target {
        // Above any pid_max the kernel allows.
        server_pid: Some(u32::MAX),
        ..Target::new("127.0.0.1:9".parse().unwrap())
    };
    let error = loadgen::run(&target, &pingpong(1)).unwrap_err();
    assert!(matches!(error, Error::Proc(_)), "{error}");
}

#[test]
fn an_unknown_congestion_control_is_refused_before_connecting() {
    let target = Target {
        congestion: Some("no-such-algorithm".to_owned()),
        ..Target::new("127.0.0.1:9".parse().unwrap())
    };
    let error = loadgen::run(&target, &pingpong(1)).unwrap_err();
    match error {
        Error::Invalid(what) => assert!(what.contains("`no-such-algorithm`"), "{what}"),
        other => panic!("{other}"),
    }
}
