//! Third-party decoders that panic on damaged input, turned into errors.
//!
//! The Arrow IPC reader (and, rarely, the Parquet reader) can panic on a damaged file instead of
//! returning an error: a buffer offset past its end, say. [`catch`] runs such a decoder so that
//! its panic becomes an [`Error`] naming the file, and the panic message is not printed: a
//! process-wide panic hook, installed once, stays quiet for panics inside [`catch`] on the same
//! thread and hands every other panic to the hook that was there before.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Once;

use super::error::{Error, Result};

thread_local! {
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    static MESSAGE: RefCell<String> = const { RefCell::new(String::new()) };
}

fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) {
                let text = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "an internal error".into());
                MESSAGE.with(|m| *m.borrow_mut() = text);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `decode` (reading `file`); a panic inside it becomes an error that says the file is
/// damaged, with the decoder's message.
pub fn catch<T>(file: &Path, what: &str, decode: impl FnOnce() -> Result<T>) -> Result<T> {
    install_hook();
    let was = GUARDED.with(|g| g.replace(true));
    let result = catch_unwind(AssertUnwindSafe(decode));
    GUARDED.with(|g| g.set(was));
    result.unwrap_or_else(|_| {
        let message = MESSAGE.with(|m| std::mem::take(&mut *m.borrow_mut()));
        Err(Error::Table {
            file: file.to_path_buf(),
            message: format!("the {what} file is damaged ({message}); write it again from its source"),
        })
    })
}
