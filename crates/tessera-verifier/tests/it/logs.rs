//! One in-memory log subscriber for the whole test binary, so a test can check what the
//! verifier logged (and that no secret is in it).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

fn buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&buffer);
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || Capture(Arc::clone(&writer)))
            .try_init();
        buffer
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts capturing (idempotent).
pub fn capture() {
    let _ = buffer();
}

/// Everything logged so far by every test of this binary.
pub fn captured() -> String {
    String::from_utf8_lossy(&buffer().lock().unwrap()).into_owned()
}
