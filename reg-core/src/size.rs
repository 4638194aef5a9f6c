//! Sizes a person can read, for summaries on stderr. Records keep exact
//! bytes: they are data for programs.

/// Binary units after bytes: each is 1024 of the one before.
const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/// `n` bytes as a person reads them: `512 B`, `1.0 KiB`, `12.3 MiB`,
/// `4.0 GiB` (one decimal, binary units, rounded to nearest).
pub fn human_bytes(n: u64) -> String {
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    // Move up while the rounded value would print as 1024.0 or more.
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn table() {
        const K: u64 = 1024;
        for (n, want) in [
            (0, "0 B"),
            (1, "1 B"),
            (1023, "1023 B"),
            (K, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (12_900_000, "12.3 MiB"),
            (K * K - 1, "1.0 MiB"),
            (K * K, "1.0 MiB"),
            (5 * K * K * K, "5.0 GiB"),
            (3 * K * K * K * K + K * K * K * K / 2, "3.5 TiB"),
            (u64::MAX, "16.0 EiB"),
        ] {
            assert_eq!(human_bytes(n), want, "{n}");
        }
    }
}
