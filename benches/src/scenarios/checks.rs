//! Issue 4's acceptance lines, each judged on one row of the run: measured figure,
//! target, and a verdict that says by how much a missed target was missed.
//!
//! Ratios are the rows' MB/s over iperf3's single-stream MiB/s (see [`super::report`]).
//! A throughput line also names what the machine itself can do at that rate: for produce,
//! how fast `dd` fills new page-cache pages (a log kept in the page cache cannot be written
//! faster); for consume, how fast the disk reads with `O_DIRECT` (a log kept out of the
//! page cache cannot be read back faster).

use super::plan::{Flush, Mode};
use super::runner::{Reference, SessionRecord, STEAL_NOTE_SECONDS};

/// One acceptance line of issue 4, judged on one row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub criterion: String,
    pub row: String,
    pub measured: Option<f64>,
    pub target: f64,
    /// `pass`, `MISS …` with the shortfall, or `no figure`.
    pub verdict: String,
    /// For throughput lines: the target in MiB/s beside the machine's own limit for it.
    pub machine: Option<String>,
}

/// Which figure of a row a check reads, and which way the target points.
#[derive(Debug, Clone, Copy)]
enum Figure {
    RatioToIperf3AtLeast,
    E2eP99MsAtMost,
    RecordsPerSecAtLeast,
}

/// One acceptance line: which row it reads, which figure, and the target.
#[derive(Debug, Clone, Copy)]
struct Criterion {
    text: &'static str,
    session: &'static str,
    step: &'static str,
    flush: Flush,
    figure: Figure,
    target: f64,
}

const fn criterion(
    text: &'static str,
    (session, step): (&'static str, &'static str),
    flush: Flush,
    figure: Figure,
    target: f64,
) -> Criterion {
    Criterion {
        text,
        session,
        step,
        flush,
        figure,
        target,
    }
}

const PRODUCE_1P1P: (&str, &str) = ("accept-1p1p", "accept-1p1p");
const CONSUME_1P1P: (&str, &str) = ("accept-1p1p", "accept-1p1p-consume");
const E2E_10K: (&str, &str) = ("e2e-10k", "e2e-10k");
const PRODUCE_100B: (&str, &str) = ("accept-100b", "accept-100b");

/// Issue 4's acceptance lines (the Iggy-shape line applies the first target to its row).
const CRITERIA: [Criterion; 9] = [
    criterion(
        "1p/1 partition/1000 B produce ≥ 0.35 × iperf3",
        PRODUCE_1P1P,
        Flush::Interval,
        Figure::RatioToIperf3AtLeast,
        0.35,
    ),
    criterion(
        "1p/1 partition/1000 B produce ≥ 0.2 × iperf3",
        PRODUCE_1P1P,
        Flush::Always,
        Figure::RatioToIperf3AtLeast,
        0.2,
    ),
    criterion(
        "consume of that data ≥ 0.65 × iperf3",
        CONSUME_1P1P,
        Flush::Interval,
        Figure::RatioToIperf3AtLeast,
        0.65,
    ),
    criterion(
        "consume of that data ≥ 0.65 × iperf3",
        CONSUME_1P1P,
        Flush::Always,
        Figure::RatioToIperf3AtLeast,
        0.65,
    ),
    criterion(
        "e2e 10k/s × 1000 B, p99 ≤ 1 ms",
        E2E_10K,
        Flush::Interval,
        Figure::E2eP99MsAtMost,
        1.0,
    ),
    criterion(
        "e2e 10k/s × 1000 B, p99 ≤ 3 ms",
        E2E_10K,
        Flush::Always,
        Figure::E2eP99MsAtMost,
        3.0,
    ),
    criterion(
        "100 B records, 1 producer ≥ 2,000,000 records/s",
        PRODUCE_100B,
        Flush::Interval,
        Figure::RecordsPerSecAtLeast,
        2_000_000.0,
    ),
    criterion(
        "100 B records, 1 producer ≥ 2,000,000 records/s",
        PRODUCE_100B,
        Flush::Always,
        Figure::RecordsPerSecAtLeast,
        2_000_000.0,
    ),
    criterion(
        "Iggy shape 1p/1 partition produce ≥ 0.35 × iperf3",
        ("iggy-1p1p", "iggy-1p1p"),
        Flush::Interval,
        Figure::RatioToIperf3AtLeast,
        0.35,
    ),
];

/// The checks whose rows ran.
pub fn checks(sessions: &[SessionRecord], reference: Reference) -> Vec<Check> {
    CRITERIA
        .iter()
        .filter_map(|line| {
            let row = sessions
                .iter()
                .filter(|record| record.session == line.session && record.flush == line.flush)
                .flat_map(|record| &record.rows)
                .find(|row| row.step.name == line.step)?;
            let measured = match line.figure {
                Figure::RatioToIperf3AtLeast => row.ratio_to_iperf3,
                Figure::E2eP99MsAtMost => row.bench.summary.e2e_ms.p99,
                Figure::RecordsPerSecAtLeast => row.bench.summary.records_per_sec,
            };
            Some(Check {
                criterion: line.text.to_owned(),
                row: format!("{} flush={}", line.step, line.flush.name()),
                measured,
                target: line.target,
                verdict: with_host_note(
                    verdict(line.figure, measured, line.target, row.error.is_some()),
                    row.host_steal_seconds,
                ),
                machine: match line.figure {
                    Figure::RatioToIperf3AtLeast => {
                        machine_note(row.step.mode, line.target, reference)
                    }
                    Figure::E2eP99MsAtMost => latency_note(line.flush, line.target, reference),
                    Figure::RecordsPerSecAtLeast => None,
                },
            })
        })
        .collect()
}

/// `target 863 MiB/s; new page-cache pages (dd, no sync): 369 MiB/s (0.43 × the target)`:
/// the rate a ratio target asks for, beside what the machine does at that job without a
/// broker (`None` for e2e rows and when a limit was not measured).
fn machine_note(mode: Mode, target_ratio: f64, reference: Reference) -> Option<String> {
    let target = target_ratio * reference.iperf3_mib_per_sec?;
    let (what, limit) = match mode {
        Mode::Produce => (
            "new page-cache pages (dd, no sync)",
            reference.page_cache_write_mib_per_sec?,
        ),
        Mode::Consume => ("disk read (dd, O_DIRECT)", reference.disk_read_mib_per_sec?),
        Mode::E2e => return None,
    };
    Some(format!(
        "target {target:.0} MiB/s; {what}: {limit:.0} MiB/s ({:.2} × the target)",
        limit / target
    ))
}

/// `loopback round trip p99 (sockperf, 1000 B): 0.62 ms (0.62 × the limit)`, and under
/// `flush = always` the p99 of a 4 KiB fdatasync too: the floors an e2e p99 stands on,
/// beside the limit it must meet (`None` when the round trip was not measured).
fn latency_note(flush: Flush, limit_ms: f64, reference: Reference) -> Option<String> {
    let round_trip = reference.round_trip_p99_ms?;
    let mut note = format!(
        "loopback round trip p99 (sockperf, 1000 B): {round_trip:.2} ms ({:.2} × the limit)",
        round_trip / limit_ms
    );
    if let (Flush::Always, Some(sync)) = (flush, reference.fdatasync_p99_ms) {
        note.push_str(&format!(
            "; 4 KiB fdatasync p99 (fio): {sync:.2} ms ({:.2} × the limit)",
            sync / limit_ms
        ));
    }
    Some(note)
}

/// A verdict measured while the host stole CPU says so.
fn with_host_note(verdict: String, stolen: Option<f64>) -> String {
    match stolen.filter(|stolen| *stolen > STEAL_NOTE_SECONDS) {
        Some(stolen) => format!("{verdict} (host stole {stolen:.2} s of CPU)"),
        None => verdict,
    }
}

fn verdict(figure: Figure, measured: Option<f64>, target: f64, had_errors: bool) -> String {
    let Some(measured) = measured else {
        return "no figure".to_owned();
    };
    let at_most = matches!(figure, Figure::E2eP99MsAtMost);
    let met = if at_most {
        measured <= target
    } else {
        measured >= target
    };
    let verdict = if met {
        "pass".to_owned()
    } else if at_most {
        format!("MISS: {:.1} × the limit", measured / target)
    } else {
        format!("MISS: {:.0} % short", (1.0 - measured / target) * 100.0)
    };
    if had_errors {
        format!("{verdict} (row has errors)")
    } else {
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_say_by_how_much() {
        assert_eq!(
            verdict(Figure::RatioToIperf3AtLeast, Some(0.4), 0.35, false),
            "pass"
        );
        assert_eq!(
            verdict(Figure::RatioToIperf3AtLeast, Some(0.175), 0.35, false),
            "MISS: 50 % short"
        );
        assert_eq!(
            verdict(Figure::E2eP99MsAtMost, Some(2.0), 1.0, true),
            "MISS: 2.0 × the limit (row has errors)"
        );
        assert_eq!(
            verdict(Figure::E2eP99MsAtMost, None, 1.0, false),
            "no figure"
        );
    }

    #[test]
    fn throughput_lines_name_the_machines_limit() {
        let reference = Reference {
            iperf3_mib_per_sec: Some(2000.0),
            dd_mib_per_sec: Some(900.0),
            page_cache_write_mib_per_sec: Some(560.0),
            disk_read_mib_per_sec: Some(1000.0),
            round_trip_p99_ms: None,
            fdatasync_p99_ms: None,
        };
        assert_eq!(
            machine_note(Mode::Produce, 0.35, reference).as_deref(),
            Some("target 700 MiB/s; new page-cache pages (dd, no sync): 560 MiB/s (0.80 × the target)")
        );
        assert_eq!(
            machine_note(Mode::Consume, 0.65, reference).as_deref(),
            Some("target 1300 MiB/s; disk read (dd, O_DIRECT): 1000 MiB/s (0.77 × the target)")
        );
        let unmeasured = Reference {
            page_cache_write_mib_per_sec: None,
            ..reference
        };
        assert_eq!(machine_note(Mode::Produce, 0.35, unmeasured), None);
        assert_eq!(machine_note(Mode::E2e, 0.35, reference), None);
    }

    #[test]
    fn e2e_lines_name_the_round_trip_and_under_always_the_fdatasync() {
        let reference = Reference {
            round_trip_p99_ms: Some(0.62),
            fdatasync_p99_ms: Some(0.84),
            ..Reference::default()
        };
        assert_eq!(
            latency_note(Flush::Interval, 1.0, reference).as_deref(),
            Some("loopback round trip p99 (sockperf, 1000 B): 0.62 ms (0.62 × the limit)")
        );
        assert_eq!(
            latency_note(Flush::Always, 3.0, reference).as_deref(),
            Some(
                "loopback round trip p99 (sockperf, 1000 B): 0.62 ms (0.21 × the limit); \
                 4 KiB fdatasync p99 (fio): 0.84 ms (0.28 × the limit)"
            )
        );
        assert_eq!(latency_note(Flush::Always, 3.0, Reference::default()), None);
    }

    #[test]
    fn a_verdict_under_host_steal_says_so() {
        assert_eq!(
            with_host_note("pass".to_owned(), Some(0.37)),
            "pass (host stole 0.37 s of CPU)"
        );
        assert_eq!(with_host_note("pass".to_owned(), Some(0.01)), "pass");
        assert_eq!(with_host_note("pass".to_owned(), None), "pass");
    }
}
