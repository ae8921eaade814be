//! The `result` line: its keys, their order, and how values are written.

use loadgen::{Bulk, PingPong, Report, ServerUsage, Storm, Workload};
use std::collections::HashSet;
use std::time::Duration;

/// A report with round figures: 100 latencies of 1 µs but one of 1.5 µs and one of 2 µs
/// (below 2048 ns the histogram is exact).
fn report(workload: Workload, server: Option<ServerUsage>) -> Report {
    let mut latency_ns = loadgen::latency_histogram();
    latency_ns.record_n(1000, 98).unwrap();
    latency_ns.record(1500).unwrap();
    latency_ns.record(2000).unwrap();
    Report {
        workload,
        elapsed: Duration::from_secs(5),
        messages: 700_000,
        bytes: 44_800_000,
        latency_ns,
        mismatches: 0,
        resets: 2,
        short: 1,
        server,
    }
}

fn pingpong() -> Workload {
    Workload::PingPong(PingPong {
        connections: 64,
        size: 64,
        depth: 1,
        ..PingPong::default()
    })
}

#[test]
fn a_pingpong_line_with_server_figures() {
    let server = ServerUsage {
        user: Duration::from_millis(1200),
        system: Duration::from_millis(3000),
        peak_rss_kib: 12000,
    };
    let line = report(pingpong(), Some(server)).result_line();
    assert_eq!(
        line,
        "result mode=pingpong connections=64 size=64 depth=1 secs=5.000 messages=700000 \
         bytes=44800000 msgs_per_sec=140000.0 mb_per_sec=8.96 p50_us=1.0 p99_us=1.5 \
         p999_us=2.0 max_us=2.0 mismatches=0 resets=2 short=1 server_user_s=1.200 \
         server_sys_s=3.000 server_user_us_per_msg=1.71 server_cpu_us_per_msg=6.00 \
         server_cpu_s_per_gib=100.663 server_peak_rss_kib=12000"
    );
}

#[test]
fn without_a_server_pid_there_are_no_server_keys() {
    let line = report(pingpong(), None).result_line();
    assert!(line.ends_with(" mismatches=0 resets=2 short=1"), "{line}");
    assert!(!line.contains("server_"));
}

#[test]
fn bulk_and_storm_name_their_own_settings() {
    let bulk = Workload::Bulk(Bulk {
        connections: 8,
        bytes_per_connection: 64 << 20,
        line: 100,
    });
    let line = report(bulk, None).result_line();
    assert!(
        line.starts_with("result mode=bulk connections=8 line=100 mib=64 secs=5.000 "),
        "{line}"
    );
    let half = Workload::Bulk(Bulk {
        connections: 1,
        bytes_per_connection: 512 << 10,
        line: 100,
    });
    assert!(report(half, None).result_line().contains(" mib=0.5 "));

    let storm = Workload::Storm(Storm {
        concurrency: 8,
        ..Storm::default()
    });
    let line = report(storm, None).result_line();
    assert!(
        line.starts_with("result mode=storm connections=8 concurrency=8 size=64 secs=5.000 "),
        "{line}"
    );
}

#[test]
fn every_line_is_result_then_unique_keys_with_values_without_spaces() {
    let server = ServerUsage {
        user: Duration::ZERO,
        system: Duration::ZERO,
        peak_rss_kib: 1,
    };
    for workload in [
        pingpong(),
        Workload::Bulk(Bulk::default()),
        Workload::Storm(Storm::default()),
    ] {
        let line = report(workload, Some(server)).result_line();
        let mut words = line.split(' ');
        assert_eq!(words.next(), Some("result"));
        let mut keys = HashSet::new();
        for word in words {
            let (key, value) = word.split_once('=').expect("key=value");
            assert!(!key.is_empty() && !value.is_empty(), "{word}");
            assert!(keys.insert(key.to_owned()), "{key} twice");
        }
        for key in [
            "mode",
            "connections",
            "secs",
            "messages",
            "bytes",
            "msgs_per_sec",
            "mb_per_sec",
            "p50_us",
            "p99_us",
            "p999_us",
            "max_us",
            "mismatches",
            "resets",
            "short",
            "server_user_s",
            "server_sys_s",
            "server_user_us_per_msg",
            "server_cpu_us_per_msg",
            "server_cpu_s_per_gib",
            "server_peak_rss_kib",
        ] {
            assert!(keys.contains(key), "{key} missing from {line}");
        }
    }
}

#[test]
fn an_empty_run_writes_zeros_not_nan() {
    let mut empty = report(pingpong(), None);
    empty.messages = 0;
    empty.bytes = 0;
    empty.elapsed = Duration::ZERO;
    empty.latency_ns = loadgen::latency_histogram();
    empty.server = Some(ServerUsage {
        user: Duration::from_millis(10),
        system: Duration::ZERO,
        peak_rss_kib: 1,
    });
    let line = empty.result_line();
    assert!(!line.contains("NaN") && !line.contains("inf"), "{line}");
    assert!(
        line.contains(" msgs_per_sec=0.0 mb_per_sec=0.00 p50_us=0.0 "),
        "{line}"
    );
    assert!(line.contains(" server_cpu_us_per_msg=0.00 "), "{line}");
}
