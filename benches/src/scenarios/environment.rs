//! The machine a run happened on, which every published figure states
//! (`docs/BENCHMARKS.md`, "Method"): cores, memory, kernel, CPU model, the disk (`lsblk`),
//! the filesystem under the data root (`findmnt`), the git sha and the time. Each probe
//! that fails leaves its field `None`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::process::{on_path, run_captured};

/// Where and when the run happened.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Environment {
    pub started_at: String,
    pub hostname: Option<String>,
    pub cpus: usize,
    pub cpu_model: Option<String>,
    pub memory_gib: Option<f64>,
    pub kernel: Option<String>,
    pub disk: Option<String>,
    pub data_root: String,
    pub data_root_filesystem: Option<String>,
    pub git_sha: Option<String>,
    pub strata_version: Option<String>,
    /// Set when `--prefault-memory` touched the free memory before measuring.
    pub prefault: Option<String>,
    /// Set when `--warm-page-cache` kept the page cache full during the sitting.
    pub page_cache_fill: Option<String>,
    /// The guest's free page reporting (virtio-balloon), when the kernel has it: freed
    /// memory goes back to the host, and the next first touch of it is slow again.
    pub free_page_reporting: Option<String>,
}

impl Environment {
    /// Probes the machine. `workspace` is where `git` runs; `strata` reports its version.
    pub fn probe(workspace: &Path, strata: &Path, data_root: &Path) -> Environment {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let tool = |program: &str, args: &[&str], cwd: &Path| -> Option<String> {
            if !on_path(program) && !Path::new(program).is_file() {
                return None;
            }
            let mut command = Command::new(program);
            command.args(args).current_dir(cwd);
            let finished =
                run_captured(command, "probe", data_root, Duration::from_secs(20)).ok()?;
            let text = finished.stdout.trim().to_owned();
            (finished.status?.success() && !text.is_empty()).then_some(text)
        };
        let root = data_root.display().to_string();
        Environment {
            started_at: rfc3339_now(),
            hostname: read("/proc/sys/kernel/hostname").map(|text| text.trim().to_owned()),
            cpus: std::thread::available_parallelism().map_or(1, |count| count.get()),
            cpu_model: read("/proc/cpuinfo").and_then(|text| cpu_model(&text)),
            memory_gib: read("/proc/meminfo").and_then(|text| memory_gib(&text)),
            kernel: read("/proc/sys/kernel/osrelease").map(|text| text.trim().to_owned()),
            disk: tool(
                "lsblk",
                &["-d", "-e", "7", "-o", "NAME,SIZE,ROTA,TYPE,MODEL"],
                data_root,
            )
            .map(|text| one_line(&text)),
            data_root_filesystem: tool(
                "findmnt",
                &["-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", &root],
                data_root,
            )
            .map(|text| one_line(&text)),
            data_root: root.clone(),
            git_sha: tool("git", &["rev-parse", "--short", "HEAD"], workspace),
            strata_version: tool(&strata.display().to_string(), &["--version"], data_root),
            prefault: None,
            page_cache_fill: None,
            free_page_reporting: free_page_reporting(Path::new(PAGE_REPORTING_PARAMETERS)),
        }
    }

    /// The machine's memory in bytes, when it is known.
    pub fn memory_bytes(&self) -> Option<u64> {
        self.memory_gib
            .map(|gib| (gib * f64::from(1u32 << 30)).round() as u64)
    }

    /// The markdown lines printed above the table.
    pub fn markdown(&self) -> String {
        let unknown = |value: &Option<String>| value.clone().unwrap_or_else(|| "?".to_owned());
        let memory = self
            .memory_gib
            .map_or_else(|| "?".to_owned(), |gib| format!("{gib:.1} GiB"));
        format!(
            "- started: {}\n- host: {} — {} CPUs ({}), {memory} RAM, kernel {}\n\
             - disk (lsblk): {}\n- data root: {} on {}\n- strata: {} (git {})\n",
            self.started_at,
            unknown(&self.hostname),
            self.cpus,
            unknown(&self.cpu_model),
            unknown(&self.kernel),
            unknown(&self.disk),
            self.data_root,
            unknown(&self.data_root_filesystem),
            unknown(&self.strata_version),
            unknown(&self.git_sha),
        ) + &format!(
            "- memory: {}; free page reporting: {}\n",
            self.prefault.as_deref().unwrap_or(
                "not prefaulted (a lazily backed VM's first touch of each page is slow)"
            ),
            self.free_page_reporting
                .as_deref()
                .unwrap_or("not in this kernel")
        ) + &format!(
            "- page cache: {}\n",
            self.page_cache_fill.as_deref().unwrap_or(
                "as the runs left it (a fresh VM's is empty, and its new pages are backed on \
                 first touch)"
            )
        )
    }
}

const PAGE_REPORTING_PARAMETERS: &str = "/sys/module/page_reporting/parameters";

/// `blocks of 2 MiB (order 9), min_free_ms 0, 38.1 GiB reported so far` from the module's
/// parameters; `None` when the kernel has no free page reporting. Parameters a kernel
/// does not have are left out.
fn free_page_reporting(parameters: &Path) -> Option<String> {
    let read = |name: &str| {
        std::fs::read_to_string(parameters.join(name))
            .ok()
            .map(|text| text.trim().to_owned())
    };
    let order: u32 = read("page_reporting_order")?.parse().ok()?;
    let mut parts = vec![format!(
        "blocks of {} KiB (order {order})",
        4u64 << order.min(30)
    )];
    if let Some(min_free_ms) = read("min_free_ms") {
        parts.push(format!("min_free_ms {min_free_ms}"));
    }
    if let Some(kib) = read("reported_kib").and_then(|kib| kib.parse::<f64>().ok()) {
        parts.push(format!("{:.1} GiB reported so far", kib / 1024.0 / 1024.0));
    }
    Some(parts.join(", "))
}

fn one_line(text: &str) -> String {
    text.lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("; ")
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
}

fn memory_gib(meminfo: &str) -> Option<f64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / (1024.0 * 1024.0))
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn rfc3339_now() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    rfc3339(seconds)
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`, by Howard Hinnant's `civil_from_days`.
pub fn rfc3339(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let second_of_day = unix_seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_767_269_045), "2026-01-01T12:04:05Z");
    }

    #[test]
    fn free_page_reporting_is_described_from_its_parameters() -> std::io::Result<()> {
        let temp = tempfile::tempdir()?;
        let dir = temp.path();
        assert_eq!(free_page_reporting(dir), None);
        std::fs::write(dir.join("page_reporting_order"), "9\n")?;
        assert_eq!(
            free_page_reporting(dir).as_deref(),
            Some("blocks of 2048 KiB (order 9)")
        );
        std::fs::write(dir.join("min_free_ms"), "0\n")?;
        std::fs::write(dir.join("reported_kib"), "2097152\n")?;
        assert_eq!(
            free_page_reporting(dir).as_deref(),
            Some("blocks of 2048 KiB (order 9), min_free_ms 0, 2.0 GiB reported so far")
        );
        Ok(())
    }

    #[test]
    fn meminfo_and_cpuinfo_are_read() {
        assert_eq!(memory_gib("MemTotal:       2097152 kB\n"), Some(2.0));
        assert_eq!(
            cpu_model("processor : 0\nmodel name\t: Xeon X\n").as_deref(),
            Some("Xeon X")
        );
    }
}
