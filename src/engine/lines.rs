//! The engine's NDJSON answers cut into lines, bounded: shared by the classic `POST /build`
//! decoder and BuildKit's trace decoder, whatever transport carried the bytes.
//!
//! A line longer than [`MAX_LINE`] is refused as a [`Malformed`] stream instead of being
//! buffered (bollard's decoder holds a whole line, so one 400 MB line costs 400 MB). It knows
//! nothing of JSON or connections: the caller feeds it bytes and decodes each line.

/// The longest NDJSON line accepted. A trace message carries a batch of vertexes and logs; the
/// daemon cuts log chunks far below this, so a longer line is a broken or hostile stream.
pub const MAX_LINE: usize = 1 << 20;

/// A stream the decoder cannot read: an over-long line, junk JSON, a bad trace payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

/// Splits a byte stream into lines, holding at most [`MAX_LINE`] bytes of an unfinished one.
#[derive(Debug)]
pub struct LineSplitter {
    pending: Vec<u8>,
    cap: usize,
}

impl Default for LineSplitter {
    fn default() -> Self {
        LineSplitter::new(MAX_LINE)
    }
}

impl LineSplitter {
    pub fn new(cap: usize) -> LineSplitter {
        LineSplitter {
            pending: Vec::new(),
            cap,
        }
    }

    /// Feeds a chunk; calls `line` for every complete line (without its newline).
    pub fn push(
        &mut self,
        mut chunk: &[u8],
        line: &mut dyn FnMut(&[u8]) -> Result<(), Malformed>,
    ) -> Result<(), Malformed> {
        while let Some(nl) = memchr::memchr(b'\n', chunk) {
            if self.pending.len() + nl > self.cap {
                return Err(self.too_long());
            }
            if self.pending.is_empty() {
                line(&chunk[..nl])?;
            } else {
                self.pending.extend_from_slice(&chunk[..nl]);
                let whole = std::mem::take(&mut self.pending);
                line(&whole)?;
            }
            chunk = &chunk[nl + 1..];
        }
        if self.pending.len() + chunk.len() > self.cap {
            return Err(self.too_long());
        }
        self.pending.extend_from_slice(chunk);
        Ok(())
    }

    /// The end of the stream: a last line without a newline.
    pub fn finish(
        &mut self,
        line: &mut dyn FnMut(&[u8]) -> Result<(), Malformed>,
    ) -> Result<(), Malformed> {
        let rest = std::mem::take(&mut self.pending);
        if rest.iter().any(|b| !b.is_ascii_whitespace()) {
            line(&rest)?;
        }
        Ok(())
    }

    fn too_long(&mut self) -> Malformed {
        self.pending = Vec::new();
        Malformed(format!(
            "a line of the build stream exceeds {} KiB",
            self.cap >> 10
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_splitter_refuses_an_over_long_line_without_holding_it() {
        let mut s = LineSplitter::new(MAX_LINE);
        let mut lines = Vec::new();
        s.push(b"{\"a\":1}\n{\"b\"", &mut |l| {
            lines.push(l.to_vec());
            Ok(())
        })
        .unwrap();
        s.push(b":2}\n", &mut |l| {
            lines.push(l.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(lines, [b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]);

        // 2 MiB without a newline, fed in 64 KiB chunks as a socket would.
        let chunk = vec![b'x'; 64 * 1024];
        let mut err = None;
        for _ in 0..32 {
            if let Err(e) = s.push(&chunk, &mut |_| Ok(())) {
                err = Some(e);
                break;
            }
            assert!(s.pending.len() <= MAX_LINE, "memory stays bounded");
        }
        let err = err.expect("a 2 MiB line is refused");
        assert!(err.0.contains("exceeds 1024 KiB"), "{err}");
        assert!(s.pending.capacity() <= MAX_LINE);
    }
}
