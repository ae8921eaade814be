//! Every workload against our server, in process, briefly: no errors, and something measured.

mod common;

use common::Running;
use loadgen::{Bulk, PingPong, Report, Storm, Target, Workload};
use std::time::Duration;

fn pingpong(connections: usize, size: usize, depth: usize) -> Workload {
    Workload::PingPong(PingPong {
        connections,
        size,
        depth,
        duration: Duration::from_millis(200),
        warmup: Duration::from_millis(50),
    })
}

fn assert_clean(report: &Report) {
    assert!(report.is_success(), "{}", report.summary());
    assert_eq!(report.errors(), 0);
    assert!(report.messages > 0, "{}", report.summary());
    assert!(report.bytes > 0);
    assert!(report.msgs_per_sec() > 0.0);
    assert!(report.latency_us(0.5) > 0.0);
}

#[test]
fn pingpong_one_connection() {
    let server = Running::start();
    let report = loadgen::run(&Target::new(server.addr()), &pingpong(1, 64, 1)).unwrap();
    server.stop();
    assert_clean(&report);
    assert_eq!(report.bytes, report.messages * 64);
    assert_eq!(report.latency_ns.len(), report.messages);
    assert_eq!(report.elapsed, Duration::from_millis(200));
}

#[test]
fn pingpong_depth_4_on_several_connections() {
    let server = Running::start();
    let report = loadgen::run(&Target::new(server.addr()), &pingpong(5, 300, 4)).unwrap();
    let summary = server.stop();
    assert_clean(&report);
    assert_eq!(report.bytes, report.messages * 300);
    assert_eq!(summary.connections, 5);
    // Every line sent was answered: warm-up and drain included, the server saw at least the
    // measured bytes each way.
    assert!(summary.bytes_out >= report.bytes);
    assert_eq!(summary.bytes_in, summary.bytes_out);
}

#[test]
fn pingpong_smallest_lines() {
    let server = Running::start();
    let report = loadgen::run(&Target::new(server.addr()), &pingpong(2, 2, 3)).unwrap();
    server.stop();
    assert_clean(&report);
}

#[test]
fn pingpong_reports_the_servers_usage() {
    let server = Running::start();
    let target = Target {
        // The server runs in this very process.
        server_pid: Some(std::process::id()),
        ..Target::new(server.addr())
    };
    let report = loadgen::run(&target, &pingpong(2, 64, 1)).unwrap();
    server.stop();
    assert_clean(&report);
    let usage = report.server.expect("server usage");
    assert!(usage.peak_rss_kib > 0);
    assert!(report.result_line().contains(" server_peak_rss_kib="));
}

#[test]
fn bulk_streams_and_verifies_everything() {
    let server = Running::start();
    let spec = Bulk {
        connections: 3,
        bytes_per_connection: 1 << 20,
        line: 100,
    };
    let report = loadgen::run(&Target::new(server.addr()), &Workload::Bulk(spec.clone())).unwrap();
    let summary = server.stop();
    assert_clean(&report);
    assert_eq!(report.messages, 3 * spec.lines());
    assert_eq!(report.bytes, 3 * spec.lines() * 100);
    assert_eq!(summary.bytes_out, report.bytes);
}

#[test]
fn bulk_with_lines_that_do_not_divide_anything() {
    let server = Running::start();
    let spec = Bulk {
        connections: 2,
        bytes_per_connection: 300_001,
        line: 37,
    };
    let report = loadgen::run(&Target::new(server.addr()), &Workload::Bulk(spec.clone())).unwrap();
    server.stop();
    assert_clean(&report);
    assert_eq!(report.messages, 2 * spec.lines());
    assert_eq!(report.bytes, 2 * spec.lines() * 37);
}

#[test]
fn storm_connects_over_and_over() {
    let server = Running::start();
    let spec = Storm {
        duration: Duration::from_millis(200),
        concurrency: 4,
        size: 64,
    };
    let report = loadgen::run(&Target::new(server.addr()), &Workload::Storm(spec)).unwrap();
    let summary = server.stop();
    assert_clean(&report);
    assert!(summary.connections >= report.messages);
    assert_eq!(report.bytes, report.messages * 64);
}

#[test]
fn storm_over_ipv6_where_there_is_ipv6() {
    let server = Running::start();
    let Some(addr) = server.addr_v6() else {
        server.stop();
        return;
    };
    let spec = Storm {
        duration: Duration::from_millis(100),
        concurrency: 2,
        size: 20,
    };
    let report = loadgen::run(&Target::new(addr), &Workload::Storm(spec)).unwrap();
    server.stop();
    assert_clean(&report);
}
