//! `delay-proxy UPSTREAM_PORT DELAY_MS`: an HTTP proxy on 127.0.0.1 that
//! holds every request DELAY_MS before forwarding it to 127.0.0.1:UPSTREAM_PORT
//! (a remote S3's round trip in front of moto, for `bench/s3.sh`). Prints
//! its port on stdout, then serves until killed.

use std::time::Duration;

use anyhow::{Context, Result};
use reg_tests::proxy::{Fault, Proxy};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [upstream, delay] = &args[..] else {
        anyhow::bail!("usage: delay-proxy UPSTREAM_PORT DELAY_MS");
    };
    let upstream: u16 = upstream.parse().context("UPSTREAM_PORT")?;
    let delay = Duration::from_millis(delay.parse().context("DELAY_MS")?);
    let proxy = Proxy::start_delayed(upstream, delay, |_, _| Fault::Forward)?;
    let port = proxy
        .endpoint()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_string();
    println!("{port}");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
