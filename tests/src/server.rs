//! A server program the tests start on 127.0.0.1 (moto's S3 server,
//! Azurite): on a free port, in a temporary directory of its own that holds
//! its log, tried up to three times (a port taken between choosing and
//! binding it), killed on drop.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::registry::free_port;

/// A running server.
pub struct Server {
    name: &'static str,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Server {
    /// Starts `program` (called `name` in messages) with the arguments
    /// `args` gives for a free port, and waits up to 30 s until `ready`
    /// says it answers.
    pub fn start(
        name: &'static str,
        program: &Path,
        args: &dyn Fn(u16) -> Vec<String>,
        ready: &dyn Fn(&Server) -> bool,
    ) -> Result<Server> {
        let mut last = None;
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix(&format!("reg-tests-{name}-"))
                .tempdir()?;
            let port = free_port()?;
            let log = fs::File::create(dir.path().join("server.log"))?;
            let child = Command::new(program)
                .args(args(port))
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {}", program.display()))?;
            let mut s = Server {
                name,
                dir,
                port,
                child: Some(child),
            };
            match s.wait_ready(ready) {
                Ok(()) => return Ok(s),
                Err(e) => {
                    s.stop();
                    last = Some(e);
                }
            }
        }
        Err(last.expect("tried"))
    }

    fn wait_ready(&mut self, ready: &dyn Fn(&Server) -> bool) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("{} exited at start ({status}): {}", self.name, self.log());
            }
            if ready(self) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} did not answer within 30 s: {}", self.name, self.log());
            }
            sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
