//! The built-in page `/ui` in a real headless browser (Debian's `chromium`): against a
//! broker with two topics, records and a consumer group, the page rendered by the
//! browser (its DOM after the scripts ran) shows the healthy banner, the broker, both
//! topics, one row per partition with its leader and high watermark, the group with its
//! lag, and the last records of the chosen partition, with record contents shown as text
//! (markup in a value is escaped, never parsed). A screenshot is taken too. With
//! `--admin-peek false` the page shows a notice instead of records.
//!
//! Without `chromium` on the PATH the test says SKIPPED on stderr and passes, except
//! under `CI=true`, where it fails: CI must run it (`.ci/run` installs chromium). Set
//! `STRATA_UI_SCREENSHOT=path.png` to keep the screenshot (how `docs/images/ui.png` is
//! made).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use strata_tests::admin_api::{admin_address, get_until};
use strata_tests::cli_runner::{run_bounded, strata, text};
use strata_tests::cluster::{Cluster, ClusterOptions};

/// The browser: `$STRATA_CHROMIUM`, else `chromium` on the PATH.
fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("STRATA_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|candidate| candidate.is_file())
}

/// Headless chromium on `url` with `extra` (`--dump-dom`, `--screenshot=…`), its own
/// profile directory, and 10 s of virtual time for the page's fetches and timers.
fn chromium(browser: &Path, profile: &Path, url: &str, extra: &[String]) -> std::process::Output {
    let mut command = Command::new(browser);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=10000",
            "--window-size=1400,1500",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url);
    let output = tokio::task::block_in_place(|| run_bounded(command, ""));
    assert!(
        output.status.success(),
        "chromium failed: {}",
        text(&output.stderr)
    );
    output
}

fn cli_ok(cluster: &Cluster, args: &[&str], input: &str) {
    let output = strata(cluster, 1, args, input);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        text(&output.stderr)
    );
}

/// The HTML of the element `<table id="{id}"…>…</table>` in `dom`.
fn table<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("<table id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table {id} in the page:\n{dom}"));
    let end = dom[start..].find("</table>").expect("the table ends") + start;
    &dom[start..end]
}

/// The body rows of a table, each as its cells' text (tags removed).
fn rows(table: &str) -> Vec<Vec<String>> {
    let body = &table[table.find("<tbody>").expect("a tbody")..];
    body.split("<tr>")
        .skip(1)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let cell = &cell[cell.find('>').map_or(0, |i| i + 1)..];
                    let cell = cell.split("</td>").next().unwrap_or_default();
                    strip_tags(cell)
                })
                .collect()
        })
        .collect()
}

fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// The browser, or `None` after saying SKIPPED (a failure under `CI=true`).
fn browser_or_skip(test: &str) -> Option<PathBuf> {
    let found = find_chromium();
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromium is not installed, and CI=true: the /ui browser test must run in CI \
             (apt-get install -y chromium)"
        );
        eprintln!(
            "SKIPPED admin_ui::{test}: chromium is not installed (apt-get install -y \
             chromium); the /ui page was not tested in a browser"
        );
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_renders_the_cluster_in_a_headless_browser() {
    let Some(browser) = browser_or_skip("the_page_renders_the_cluster_in_a_headless_browser")
    else {
        return;
    };
    let mut options = ClusterOptions::new(1);
    options.extra_args = vec!["--offsets-topic-partitions".into(), "1".into()];
    let cluster = tokio::task::block_in_place(|| Cluster::start(options)).unwrap();
    let admin = tokio::task::block_in_place(|| admin_address(&cluster, 1));
    cli_ok(
        &cluster,
        &["topic", "create", "orders", "-p", "3", "-r", "1"],
        "",
    );
    cli_ok(
        &cluster,
        &["topic", "create", "payments", "-p", "1", "-r", "1"],
        "",
    );
    cli_ok(
        &cluster,
        &["produce", "orders", "-p", "0", "-f", "%k %v\\n"],
        "alice first-order\nbob second-order\nmallory <b>not-bold</b>\n",
    );
    cli_ok(&cluster, &["produce", "payments"], "p1\np2\np3\np4\n");
    cli_ok(
        &cluster,
        &[
            "consume", "payments", "-g", "billing", "-n", "1", "-f", "%v\\n",
        ],
        "",
    );
    tokio::task::block_in_place(|| {
        get_until(&admin, "/v1/cluster/health", |status, _| status == 200)
    });

    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{admin}/ui#peek=orders/0");
    let dom = text(&chromium(&browser, profile.path(), &url, &["--dump-dom".into()]).stdout);

    assert!(dom.contains("Cluster healthy"), "{dom}");
    let brokers = rows(table(&dom, "brokers"));
    assert_eq!(brokers.len(), 1, "{brokers:?}");
    assert_eq!(brokers[0][0], "1");
    assert_eq!(brokers[0][3], "live");
    let topics: Vec<String> = rows(table(&dom, "topics"))
        .into_iter()
        .map(|row| row[0].clone())
        .collect();
    assert_eq!(topics, ["orders", "payments"]);
    // Topic, partition, leader, epoch, replicas, ISR, log start, high watermark.
    let partitions = rows(table(&dom, "partitions"));
    let partition_rows: Vec<(&str, &str, &str, &str)> = partitions
        .iter()
        .map(|row| {
            (
                row[0].as_str(),
                row[1].as_str(),
                row[2].as_str(),
                row[7].as_str(),
            )
        })
        .collect();
    assert_eq!(
        partition_rows,
        [
            ("orders", "0", "1", "3"),
            ("orders", "1", "1", "0"),
            ("orders", "2", "1", "0"),
            ("payments", "0", "1", "4"),
        ]
    );
    let groups = rows(table(&dom, "groups"));
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(
        (groups[0][0].as_str(), groups[0][4].as_str()),
        ("billing", "3")
    );
    // Offset, timestamp, key, value, headers; newest first.
    let peek = rows(table(&dom, "peek"));
    let records: Vec<(&str, &str, &str)> = peek
        .iter()
        .map(|row| (row[0].as_str(), row[2].as_str(), row[3].as_str()))
        .collect();
    assert_eq!(
        records,
        [
            ("2", "mallory", "&lt;b&gt;not-bold&lt;/b&gt;"),
            ("1", "bob", "second-order"),
            ("0", "alice", "first-order"),
        ]
    );
    // The value's markup stayed text: no <b> element was made from it.
    assert!(!dom.contains("<b>not-bold</b>"), "{dom}");

    let screenshot = match std::env::var_os("STRATA_UI_SCREENSHOT") {
        Some(path) => PathBuf::from(path),
        None => profile.path().join("ui.png"),
    };
    chromium(
        &browser,
        profile.path(),
        &url,
        &[format!("--screenshot={}", screenshot.display())],
    );
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 10_000, "a {}-byte screenshot", png.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_peek_switched_off_the_page_shows_a_notice_and_no_records() {
    let Some(browser) = browser_or_skip("with_the_peek_switched_off_the_page_shows_a_notice")
    else {
        return;
    };
    let mut options = ClusterOptions::new(1);
    options.extra_args = vec!["--admin-peek".into(), "false".into()];
    let cluster = tokio::task::block_in_place(|| Cluster::start(options)).unwrap();
    let admin = tokio::task::block_in_place(|| admin_address(&cluster, 1));
    cli_ok(
        &cluster,
        &["topic", "create", "orders", "-p", "1", "-r", "1"],
        "",
    );
    cli_ok(&cluster, &["produce", "orders"], "secret-value\n");
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{admin}/ui#peek=orders/0");
    let dom = text(&chromium(&browser, profile.path(), &url, &["--dump-dom".into()]).stdout);
    assert!(dom.contains("Showing records is switched off"), "{dom}");
    assert!(dom.contains("<table id=\"peek\" hidden"), "{dom}");
    assert!(!dom.contains("secret-value"), "{dom}");
    // The rest of the page is there.
    assert_eq!(rows(table(&dom, "partitions"))[0][7], "1");
}
