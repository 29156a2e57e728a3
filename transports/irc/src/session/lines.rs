//! Bytes from the server into lines: CR LF (or a bare LF) ends a line, and
//! a line longer than [`MAX_LINE`] is an error, detected as soon as the
//! bytes pass the bound, so it is never buffered whole.

/// The longest line read from a server: 512 bytes plus the 8191 bytes
/// IRCv3 allows for message tags.
pub const MAX_LINE: usize = 512 + 8191;

/// The server sent a line longer than [`MAX_LINE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLong;

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the server sent a line longer than {MAX_LINE} bytes")
    }
}

/// The partial line between reads.
#[derive(Debug, Default)]
pub struct LineBuffer {
    partial: Vec<u8>,
}

impl LineBuffer {
    /// Splits `data` into whole lines (without their line ends), keeping
    /// the unfinished last one for the next call.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Vec<u8>>, TooLong> {
        let mut lines = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let (take, end) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (rest.len(), false),
            };
            if self.partial.len() + take > MAX_LINE + 2 {
                self.partial = Vec::new();
                return Err(TooLong);
            }
            self.partial.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if end {
                while matches!(self.partial.last(), Some(b'\n' | b'\r')) {
                    self.partial.pop();
                }
                lines.push(std::mem::take(&mut self.partial));
            }
        }
        Ok(lines)
    }

    /// A new socket: nothing carried over.
    pub fn clear(&mut self) {
        self.partial = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_reads_and_line_ends_go() {
        let mut b = LineBuffer::default();
        assert_eq!(b.push(b"PING :a\r\nPRIVMSG #a :hel").unwrap(), [b"PING :a"]);
        assert_eq!(b.push(b"lo\r").unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(
            b.push(b"\nPING :b\nPING :c").unwrap(),
            [b"PRIVMSG #a :hello".to_vec(), b"PING :b".to_vec()]
        );
        // A last line without its end stays partial (and is dropped with
        // the socket).
        b.clear();
        assert_eq!(b.push(b"\r\n").unwrap(), [b""]);
    }

    #[test]
    fn a_line_past_the_bound_is_an_error_before_it_is_whole() {
        let mut b = LineBuffer::default();
        let mut data = b"PING :a\r\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', MAX_LINE));
        assert_eq!(b.push(&data).unwrap(), [b"PING :a"]);
        // Two more bytes are still a line end's worth; three are not.
        assert_eq!(b.push(b"xx").unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(b.push(b"x"), Err(TooLong));
        assert!(TooLong.to_string().contains("longer than 8703 bytes"));
        // The longest line that fits, with its CR LF.
        let mut b = LineBuffer::default();
        let mut line = vec![b'y'; MAX_LINE];
        line.extend_from_slice(b"\r\n");
        assert_eq!(b.push(&line).unwrap(), [vec![b'y'; MAX_LINE]]);
    }
}
