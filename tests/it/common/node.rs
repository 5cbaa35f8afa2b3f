//! Node.js for the tests that run JavaScript (the browser check, the Node
//! consumer): fail with what to install when it is missing, never skip.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

/// Panics with a clear message unless Node.js 18 or later is on PATH.
pub async fn require(who: &str) {
    let version = match Command::new("node").arg("--version").output().await {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        _ => panic!("{who} need Node.js 18 or later on PATH (Debian: apt-get install nodejs npm)"),
    };
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 18,
        "{who} need Node.js 18 or later, found {version}"
    );
}

/// `npm ci` in `dir` unless `node_modules` is current with its lock file;
/// one install at a time per test binary.
pub async fn npm_ci(dir: &Path, who: &str) {
    static ONCE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = ONCE.lock().await;
    let modified = |p: PathBuf| p.metadata().and_then(|m| m.modified()).ok();
    let installed = modified(dir.join("node_modules/.package-lock.json"));
    if installed.is_some() && installed >= modified(dir.join("package-lock.json")) {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("cannot run npm ({e}): {who} need npm on PATH (Debian: apt-get install npm)")
        });
    assert!(
        out.status.success(),
        "npm ci in {} failed:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
