//! The streamed build context: a producer thread writes the tar into a bounded channel and the
//! HTTP request body reads from it, so the context is never whole in memory.
//!
//! At most [`CHUNKS_IN_FLIGHT`] chunks of [`CHUNK`] bytes wait between the writer and the socket;
//! when the engine reads slowly the writer blocks. When the request is dropped (Ctrl-C, a failed
//! build) the channel closes and the writer's next write fails with `BrokenPipe`, ending the
//! thread. The producer's own error is kept for the build to report in preference to the
//! aborted request it causes.

use super::error::BoxError;
use bytes::Bytes;
use futures_util::Stream;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Bytes per chunk sent to the engine.
pub const CHUNK: usize = 256 * 1024;
/// Chunks buffered between the tar writer and the socket (≤ 2 MiB in flight).
pub const CHUNKS_IN_FLIGHT: usize = 8;

/// Shared counters the build loop reads for upload progress.
#[derive(Debug, Default)]
pub struct UploadState {
    /// Bytes handed to the HTTP body so far.
    pub sent: AtomicU64,
    /// The body has ended (the whole tar was sent, or the producer failed).
    pub finished: AtomicBool,
}

/// A `Write` that sends full chunks through the channel, blocking when it is full.
pub struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx.blocking_send(Ok(Bytes::from(chunk))).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the engine stopped reading the context",
            )
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send_buf()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buf()
    }
}

/// A running upload: the body stream for the request and the producer thread.
pub struct Upload<S> {
    pub body: S,
    pub state: Arc<UploadState>,
    pub producer: std::thread::JoinHandle<Result<u64, BoxError>>,
}

/// Counts what goes through a `Write` (the tar size, for the report).
struct Counting<'a> {
    inner: &'a mut ChannelWriter,
    n: u64,
}

impl Write for Counting<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Starts the producer thread; the returned body yields its bytes.
pub fn start<F>(
    produce: F,
) -> io::Result<Upload<impl Stream<Item = io::Result<Bytes>> + Send + 'static>>
where
    F: FnOnce(&mut dyn Write) -> Result<(), BoxError> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
    let producer = std::thread::Builder::new()
        .name("ctxbuild-context".into())
        .spawn(move || {
            let mut w = ChannelWriter {
                tx,
                buf: Vec::with_capacity(CHUNK),
            };
            let mut counting = Counting {
                inner: &mut w,
                n: 0,
            };
            let result = produce(&mut counting).and_then(|()| {
                counting.flush()?;
                Ok(counting.n)
            });
            if let Err(e) = &result {
                // Abort the request body so the engine does not build a truncated context.
                let _ = w.tx.blocking_send(Err(io::Error::other(format!(
                    "context producer failed: {e}"
                ))));
            }
            result
        })?;
    let state = Arc::new(UploadState::default());
    let st = state.clone();
    let body = futures_util::stream::unfold((rx, st), |(mut rx, st)| async move {
        match rx.recv().await {
            Some(item) => {
                match &item {
                    Ok(b) => {
                        st.sent.fetch_add(b.len() as u64, Ordering::Relaxed);
                    }
                    Err(_) => st.finished.store(true, Ordering::Relaxed),
                }
                Some((item, (rx, st)))
            }
            None => {
                st.finished.store(true, Ordering::Relaxed);
                None
            }
        }
    });
    Ok(Upload {
        body,
        state,
        producer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[test]
    fn streams_everything_in_bounded_chunks() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let total = 3 * CHUNK + 17;
        let up = start(move |w: &mut dyn Write| {
            let block = vec![7u8; 1000];
            let mut left = total;
            while left > 0 {
                let n = left.min(block.len());
                w.write_all(&block[..n])?;
                left -= n;
            }
            Ok(())
        })
        .unwrap();
        let state = up.state.clone();
        let chunks: Vec<Bytes> = rt.block_on(up.body.map(|r| r.unwrap()).collect());
        assert!(chunks.iter().all(|c| c.len() <= CHUNK));
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), total);
        assert_eq!(state.sent.load(Ordering::Relaxed), total as u64);
        assert!(state.finished.load(Ordering::Relaxed));
        assert_eq!(up.producer.join().unwrap().unwrap(), total as u64);
    }

    #[test]
    fn a_failing_producer_aborts_the_body() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let up = start(|w: &mut dyn Write| {
            w.write_all(b"partial")?;
            Err("cannot read app/secret.py: permission denied".into())
        })
        .unwrap();
        let items: Vec<io::Result<Bytes>> = rt.block_on(up.body.collect());
        assert!(items.last().unwrap().is_err());
        let err = up.producer.join().unwrap().unwrap_err();
        assert!(err.to_string().contains("app/secret.py"));
    }

    #[test]
    fn a_dropped_body_stops_the_producer() {
        let up = start(|w: &mut dyn Write| {
            let block = vec![0u8; CHUNK];
            loop {
                w.write_all(&block)?;
            }
        })
        .unwrap();
        drop(up.body);
        let err = up.producer.join().unwrap().unwrap_err();
        assert!(err.to_string().contains("stopped reading"), "{err}");
    }
}
