//! Log lines collected in a buffer and written out when it fills, every
//! interval, and at exit: one `write` for a burst of admissions instead of
//! one per line, without a thread hand-off per line.

use std::io::{self, BufWriter, Stdout, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Big enough for a few dozen admission lines.
const CAPACITY: usize = 16 * 1024;

type Shared = Arc<Mutex<BufWriter<Stdout>>>;

/// Where the formatter writes a line.
#[derive(Clone)]
pub struct Buffered(Shared);

/// The buffer behind its lock, for one line.
pub struct Line<'a>(MutexGuard<'a, BufWriter<Stdout>>);

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Lines are flushed in bursts, not each on its own.
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffered {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        // A poisoned lock still holds a usable buffer.
        Line(self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Writes out what is buffered when dropped, at the end of `main`.
pub struct FlushOnDrop(Shared);

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        flush(&self.0);
    }
}

fn flush(shared: &Shared) {
    let _ = shared.lock().unwrap_or_else(|e| e.into_inner()).flush();
}

/// A buffered stdout, flushed at least every `interval` by a thread that
/// sleeps in between.
pub fn stdout(interval: Duration) -> (Buffered, FlushOnDrop) {
    let shared: Shared = Arc::new(Mutex::new(BufWriter::with_capacity(CAPACITY, io::stdout())));
    let flusher = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("gracehook-log".into())
        .spawn(move || {
            loop {
                std::thread::sleep(interval);
                flush(&flusher);
            }
        });
    if let Err(error) = spawned {
        // Without the thread lines still go out when the buffer fills and at exit.
        eprintln!("warning: no log flushing thread ({error}); logs are written in bursts");
    }
    (Buffered(shared.clone()), FlushOnDrop(shared))
}
