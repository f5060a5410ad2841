//! Stamps the commit the broker is built from into `STRATA_GIT_SHA`, for the
//! `strata_build_info` metric: `$STRATA_GIT_SHA` when it is set (a build from a source
//! archive), else `git rev-parse --short=12 HEAD`, else "unknown". A build outside a git
//! checkout, or without git, still works.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=STRATA_GIT_SHA");
    let sha = std::env::var("STRATA_GIT_SHA")
        .ok()
        .filter(|sha| !sha.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    // Run again when HEAD moves: HEAD itself (a checkout) and the branch it names (a
    // commit). Only files that exist are named, or cargo would rerun every build.
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]) {
        let head = std::path::Path::new(&git_dir).join("HEAD");
        if head.exists() {
            println!("cargo:rerun-if-changed={}", head.display());
        }
    }
    if let (Some(common_dir), Some(branch)) = (
        git(&["rev-parse", "--git-common-dir"]),
        git(&["symbolic-ref", "-q", "HEAD"]),
    ) {
        for candidate in [branch.as_str(), "packed-refs"] {
            let path = std::path::Path::new(&common_dir).join(candidate);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    println!("cargo:rustc-env=STRATA_GIT_SHA={sha}");
}
