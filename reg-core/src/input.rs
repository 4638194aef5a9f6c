//! Records on stdin, a line at a time: the one line reader of the tools
//! that read records (reg-orphans, reg-rm, and reg-keep's tag and `--pulls`
//! input) and the input error of reg-orphans and reg-rm. A line is numbered
//! from 1 and must be UTF-8; what it means is the tool's.

use std::fmt;
use std::io::BufRead;

/// Why the input was refused: the 1-based line (0: the input as a whole,
/// such as no input at all) and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub line: u64,
    pub why: String,
}

impl InputError {
    pub fn at(line: u64, why: impl Into<String>) -> InputError {
        InputError {
            line,
            why: why.into(),
        }
    }

    /// The same refusal, saying that nothing was deleted (reg-rm's input
    /// is refused whole, before anything is touched).
    pub fn nothing_deleted(mut self) -> InputError {
        self.why.push_str(" (nothing was deleted)");
        self
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "stdin: {}", self.why)
        } else {
            write!(f, "stdin line {}: {}", self.line, self.why)
        }
    }
}

impl std::error::Error for InputError {}

/// Reads lines of text, numbering them.
pub struct Lines<R> {
    r: R,
    buf: Vec<u8>,
    line: u64,
}

impl<R: BufRead> Lines<R> {
    pub fn new(r: R) -> Lines<R> {
        Lines {
            r,
            buf: Vec::with_capacity(512),
            line: 0,
        }
    }

    /// The number of the last line read (0 before the first).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The next line's number and text (with its line ending), `None` at
    /// the end. A read error or a line that is not UTF-8 refuses the input
    /// at that line.
    pub fn next_line(&mut self) -> Result<Option<(u64, &str)>, InputError> {
        self.buf.clear();
        let n = self
            .r
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| InputError::at(self.line + 1, format!("cannot read: {e}")))?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        std::str::from_utf8(&self.buf)
            .map(|t| Some((self.line, t)))
            .map_err(|_| InputError::at(self.line, "not valid UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_numbered_and_must_be_utf8() {
        let mut l = Lines::new(&b"a\n\nb"[..]);
        assert_eq!(l.next_line().unwrap(), Some((1, "a\n")));
        assert_eq!(l.next_line().unwrap(), Some((2, "\n")));
        assert_eq!(l.next_line().unwrap(), Some((3, "b")));
        assert_eq!(l.line(), 3);
        assert_eq!(l.next_line().unwrap(), None);
        let mut l = Lines::new(&b"ok\n\xff\xfe\n"[..]);
        l.next_line().unwrap();
        let e = l.next_line().unwrap_err();
        assert_eq!(e.to_string(), "stdin line 2: not valid UTF-8");
        assert_eq!(InputError::at(0, "no input").to_string(), "stdin: no input");
        assert_eq!(
            InputError::at(4, "bad").nothing_deleted().to_string(),
            "stdin line 4: bad (nothing was deleted)"
        );
    }
}
