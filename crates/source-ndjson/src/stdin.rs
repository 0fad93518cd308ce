//! Standard input that a stop request can end: a pipe may stay silent forever,
//! so it is read on a thread of its own. When it is quiet, reads say so
//! (`WouldBlock`), so the lines read so far go out as a batch; once a stop is
//! requested, the source sees the end of input.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::time::Duration;

/// Bytes read from stdin at a time.
const CHUNK: usize = 1 << 20;
/// Chunks buffered ahead of the source (bounds memory).
const CHUNKS_AHEAD: usize = 4;
/// How long the pipe may be silent before the lines read so far go out, and how
/// often a silent pipe is checked for a stop request.
const QUIET: Duration = Duration::from_millis(100);

/// Reads standard input until its end, or until `stop` is set.
pub(crate) struct StoppableStdin {
    chunks: Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    offset: usize,
    stop: Arc<AtomicBool>,
}

impl StoppableStdin {
    /// Starts reading stdin on a background thread.
    pub(crate) fn spawn(stop: Arc<AtomicBool>) -> io::Result<Self> {
        let (sender, chunks) = sync_channel(CHUNKS_AHEAD);
        std::thread::Builder::new()
            .name("delink-stdin".to_owned())
            .spawn(move || {
                let mut stdin = io::stdin().lock();
                loop {
                    let mut chunk = vec![0u8; CHUNK];
                    let read = match stdin.read(&mut chunk) {
                        Ok(0) => return,
                        Ok(read) => read,
                        Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                        Err(error) => {
                            let _ = sender.send(Err(error));
                            return;
                        }
                    };
                    chunk.truncate(read);
                    if sender.send(Ok(chunk)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(StoppableStdin {
            chunks,
            current: Vec::new(),
            offset: 0,
            stop,
        })
    }
}

impl Read for StoppableStdin {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        while self.offset == self.current.len() {
            match self.chunks.recv_timeout(QUIET) {
                Ok(chunk) => {
                    self.current = chunk?;
                    self.offset = 0;
                }
                Err(RecvTimeoutError::Timeout) if self.stop.load(Ordering::Relaxed) => {
                    return Ok(0);
                }
                Err(RecvTimeoutError::Timeout) => return Err(io::ErrorKind::WouldBlock.into()),
                Err(RecvTimeoutError::Disconnected) => return Ok(0),
            }
        }
        let available = &self.current[self.offset..];
        let count = available.len().min(buffer.len());
        buffer[..count].copy_from_slice(&available[..count]);
        self.offset += count;
        Ok(count)
    }
}
