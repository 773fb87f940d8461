//! A child process under test (a real hedger, gateway or feed handler binary) that is killed
//! and reaped on drop, test failure included, so that a failing test leaves no process behind.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct ChildGuard(Option<Child>);

impl ChildGuard {
    /// Spawns `cmd` with stdout discarded and stderr written to the file `stderr_log`.
    ///
    /// # Panics
    /// The log cannot be created or the command cannot be spawned.
    pub fn spawn(cmd: &mut Command, stderr_log: &Path) -> ChildGuard {
        let log = std::fs::File::create(stderr_log).expect("create the child's log");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        ChildGuard(Some(child))
    }

    /// Guards `child`, spawned by the caller with pipes of its own (a READY line on stdout, a
    /// stdin pipe whose closing stops it).
    pub fn adopt(child: Child) -> ChildGuard {
        ChildGuard(Some(child))
    }

    /// The process id.
    ///
    /// # Panics
    /// The child was already killed or stopped through this guard.
    pub fn pid(&self) -> u32 {
        self.0.as_ref().expect("the child is running").id()
    }

    /// The exit status if the child has exited by now (it stays guarded).
    ///
    /// # Panics
    /// The child was already killed or stopped through this guard, or cannot be waited for.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let c = self.0.as_mut().expect("the child is running");
        c.try_wait().expect("wait for the child")
    }

    /// SIGKILL now, and reap (a crash at an arbitrary point).
    ///
    /// # Panics
    /// The child was already killed or stopped through this guard, or cannot be killed.
    pub fn sigkill(&mut self) {
        let mut c = self.0.take().expect("the child is running");
        c.kill().expect("SIGKILL the child");
        c.wait().expect("reap the child");
    }

    /// SIGTERM (a clean stop), then waits for the exit at most `within`; its status.
    ///
    /// # Panics
    /// The child was already killed or stopped, or did not exit within `within` (it is then
    /// killed).
    pub fn sigterm(&mut self, within: Duration) -> ExitStatus {
        let mut c = self.0.take().expect("the child is running");
        let sent = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {}", c.id());
        let t0 = Instant::now();
        loop {
            if let Some(s) = c.try_wait().expect("wait for the child") {
                return s;
            }
            if t0.elapsed() > within {
                let _ = c.kill();
                let _ = c.wait();
                panic!("the child ignored SIGTERM for {within:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
