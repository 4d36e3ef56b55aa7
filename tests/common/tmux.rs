//! A real terminal for end-to-end tests: a detached tmux session running
//! a command, its screen read with capture-pane, keys sent with send-keys.

use std::process::Command;
use std::time::{Duration, Instant};

pub fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().expect("run tmux");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn tmux_available() -> bool {
    let ok = Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "tmux is required in CI (scripts/test-all.sh installs it)");
        // Past the test harness's capture, so a skip is never silent.
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED: tmux is not installed");
    }
    ok
}

pub struct Session {
    pub name: String,
}

impl Session {
    pub fn start(name: &str, command: &str) -> Session {
        // The dashboard's warm-start cache goes to a directory of the
        // test's own, never the user's ~/.cache.
        let cache = std::env::temp_dir().join(format!("leaseq-test-cache-{name}"));
        let _ = std::fs::remove_dir_all(&cache);
        Session::start_with_cache(name, &cache, command)
    }

    /// As [`start`](Self::start), with the cache in `cache` (kept: a
    /// relaunch finds what the last launch saved).
    pub fn start_with_cache(name: &str, cache: &std::path::Path, command: &str) -> Session {
        let _ = Command::new("tmux").args(["kill-session", "-t", name]).output();
        let cache_env = format!("LEASEQ_CACHE_DIR={}", cache.display());
        let status = Command::new("tmux")
            .args(["new-session", "-d", "-s", name, "-x", "120", "-y", "40", "-e", &cache_env, command])
            .status()
            .expect("start tmux");
        assert!(status.success());
        Session { name: name.to_string() }
    }

    pub fn screen(&self) -> String {
        tmux(&["capture-pane", "-p", "-t", &self.name])
    }

    pub fn keys(&self, keys: &[&str]) {
        for key in keys {
            tmux(&["send-keys", "-t", &self.name, key]);
            std::thread::sleep(Duration::from_millis(60));
        }
    }

    pub fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.name]).output();
    }
}
